// Package adminclient asks a running Caddy's admin API, for the `caddy`
// subcommands of the plugins (edgeroute, bgp, wg6pn), which must not import
// one another.
package adminclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// DefaultAddress is Caddy's admin endpoint unless the operator moved it.
const DefaultAddress = "localhost:2019"

// Do sends one request to the admin endpoint at address (host:port, a URL,
// or unix/<socket path>; "" means $CADDY_ADMIN, then DefaultAddress) and
// returns the body of a 200 answer. Any other answer is an error carrying
// the API's own message.
func Do(method, address, path string, payload []byte) ([]byte, error) {
	if address == "" {
		address = os.Getenv("CADDY_ADMIN")
	}
	if address == "" {
		address = DefaultAddress
	}
	tr := &http.Transport{}
	base := address
	if sock, ok := strings.CutPrefix(address, "unix/"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		base = "http://127.0.0.1"
	} else if !strings.Contains(address, "://") {
		base = "http://" + address
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequest(method, strings.TrimSuffix(base, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tr.DialContext == nil {
		// The admin endpoint checks Origin against its own address.
		req.Header.Set("Origin", req.URL.Scheme+"://"+req.URL.Host)
	}
	c := http.Client{Timeout: 15 * time.Second, Transport: tr}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking the running Caddy at %s: %v (is it running, and is --address its admin endpoint?)", address, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s", e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Get is Do with GET and no body.
func Get(address, path string) ([]byte, error) { return Do(http.MethodGet, address, path, nil) }
