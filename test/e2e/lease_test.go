package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

const apiToken = "e2e-api-token"

// apiPOPs starts n clustered POPs, each serving the Auto-Discovery API with
// the given heartbeat TTL, and returns the API base URLs.
func apiPOPs(t *testing.T, n int, ttl string) (*cluster, []string) {
	t.Helper()
	apis := make([]string, n)
	c := startPOPs(t, n, func(i int, o *popctl.Options) {
		port, err := popctl.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		apis[i] = fmt.Sprintf("http://127.0.0.1:%d", port)
		o.Sites = fmt.Sprintf("\n%s {\n\tedgeroute_api {\n\t\ttoken %s\n\t\theartbeat_ttl %s\n\t}\n}\n", apis[i], apiToken, ttl)
	})
	return c, apis
}

// api sends one authenticated request and returns the status and body.
func api(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// A backend registered with a 3 s TTL at POP 1, POP 1 killed with kill -9:
// the backend is gone from POPs 2 and 3 within 2 TTLs. A second backend,
// registered at POP 1 too but heartbeating to POP 2, stays everywhere.
func TestRegistrationOutlivesItsPOP(t *testing.T) {
	const ttl = 3 * time.Second
	c, apis := apiPOPs(t, 3, "3s")
	orphan, kept := greeter(t, "orphan"), greeter(t, "kept")
	for id, port := range map[string]int{"orphan": orphan, "kept": kept} {
		code, body, err := api("POST", apis[0]+"/api/v1/register",
			fmt.Sprintf(`{"id":%q,"app":"myapp","region":"sa","country":"BR","ip":"127.0.0.1","port":%d}`, id, port))
		if err != nil || code != 201 {
			t.Fatalf("register %s at pop0: %d %s %v", id, code, body, err)
		}
	}
	registered := time.Now()
	if got := c.converge(`SELECT group_concat(id) FROM (SELECT id FROM backends ORDER BY id)`, 3*time.Second); got != "kept,orphan" {
		t.Fatalf("rows after registering: %q", got)
	}
	// "kept" heartbeats to POP 2 from now on, every TTL/3 as the register
	// client does.
	stop := make(chan struct{})
	beats := make(chan error, 1)
	go func() {
		defer close(beats)
		for {
			code, body, err := api("POST", apis[1]+"/api/v1/heartbeat/kept", "")
			if err == nil && code != 200 {
				err = fmt.Errorf("heartbeat at pop1: %d %s", code, body)
			}
			if err != nil {
				beats <- err
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(ttl / 3):
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		for range beats {
		}
	})
	// POP 1 dies without a word.
	c.pops[0].Kill()
	killed := time.Now()
	t.Logf("pop0 killed %v after the registrations", killed.Sub(registered).Round(time.Millisecond))
	survivors := c.pops[1:]
	gone := func() string {
		for _, p := range survivors {
			if got := c.sql(p, `SELECT group_concat(id) FROM (SELECT id FROM backends ORDER BY id)`); got != "kept" {
				return fmt.Sprintf("%s has %q", p.Opts.Name, got)
			}
		}
		return ""
	}
	eventually(t, 2*ttl, gone)
	t.Logf("the orphan was gone from both surviving POPs %v after pop0 died (%v after it registered; TTL %v)",
		time.Since(killed).Round(10*time.Millisecond), time.Since(registered).Round(10*time.Millisecond), ttl)
	// Both POPs route without it, and "kept" stays for three more TTLs.
	deadline := time.Now().Add(3 * ttl)
	for time.Now().Before(deadline) {
		select {
		case err := <-beats:
			t.Fatalf("heartbeats stopped: %v", err)
		default:
		}
		if msg := gone(); msg != "" {
			t.Fatalf("%v after pop0 died: %s", time.Since(killed).Round(time.Millisecond), msg)
		}
		for _, p := range survivors {
			if got := p.Via(); got != "kept" {
				t.Fatalf("%s routed to %q", p.Opts.Name, got)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// POP 3 never saw a heartbeat of "kept": its v1 API reports it from
	// the replicated lease, alive.
	code, body, err := api("GET", apis[2]+"/api/v1/backends/kept", "")
	if err != nil || code != 200 {
		t.Fatalf("GET kept at pop2: %d %s %v", code, body, err)
	}
	var st struct {
		Healthy   bool   `json:"healthy"`
		Heartbeat bool   `json:"heartbeat"`
		Last      uint64 `json:"last_heartbeat_secs"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || !st.Healthy || !st.Heartbeat || st.Last > 3 {
		t.Fatalf("pop2's API on kept: %s %v", body, err)
	}
	// Whichever survivor removed it first said so (the other may have
	// merged the removal instead).
	if !strings.Contains(survivors[0].Logs()+survivors[1].Logs(), `"backends":["orphan"]`) {
		t.Fatal("no surviving POP logged the orphan's removal")
	}
}
