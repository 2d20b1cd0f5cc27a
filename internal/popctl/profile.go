package popctl

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

// SaveProfile writes what url serves to path: a Go profile from a
// process's /debug/pprof/ endpoint, which answers once the profile's
// seconds have passed (so no client timeout).
func SaveProfile(url, path string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CPUProfileURL is the address of the POP's CPU profile over the next
// seconds, from its admin API.
func (p *POP) CPUProfileURL(seconds int) string {
	return fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.Admin, seconds)
}
