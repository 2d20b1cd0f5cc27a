package edgeroute

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// registerFlags adds the flags of `caddy edgeroute register`.
func registerFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("api", "", "register: base URL of the edgeroute_api site, e.g. https://api.pop1.example.net")
	f.String("token", "", "register: API token (default $EDGE_API_TOKEN)")
	f.String("id", "", "register: backend id")
	f.String("region", "", "register: backend region (sa, us, eu, ap, ...)")
	f.String("country", "", "register: backend country (default: from GeoIP, then the region)")
	f.String("ip", "", "register: backend IP address")
	f.Int("port", 0, "register: backend port")
	f.Int("weight", 0, "register: weight (default 2)")
	f.Int("soft-limit", 0, "register: soft connection limit (default 100)")
	f.Int("hard-limit", 0, "register: hard connection limit (default 150)")
	f.Duration("ttl", 60*time.Second, "register: the API's heartbeat_ttl; heartbeats go every ttl/3")
}

const registerUsage = `
  caddy edgeroute register --api URL [--token T] --id ID --app APP --region R --ip IP --port P
        [--country CC] [--weight N] [--soft-limit N] [--hard-limit N] [--ttl 60s]
      registers this backend with an edgeroute_api site, heartbeats every
      ttl/3 (registering again if the POP forgot it), and deregisters on
      SIGINT or SIGTERM. The token may come from $EDGE_API_TOKEN instead of
      --token, which keeps it out of the process list.`

type registerClient struct {
	base, token string
	http        *http.Client
}

func (c *registerClient) do(ctx context.Context, method, path string, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Error string }
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error, nil
	}
	return resp.StatusCode, strings.TrimSpace(string(msg)), nil
}

func runRegister(fl caddycmd.Flags) (int, error) {
	base := strings.TrimSuffix(fl.String("api"), "/")
	token := fl.String("token")
	if token == "" {
		token = os.Getenv("EDGE_API_TOKEN")
	}
	id, app, region, ip, port := fl.String("id"), fl.String("app"), fl.String("region"), fl.String("ip"), fl.Int("port")
	var missing []string
	for name, v := range map[string]string{"--api": base, "--token (or $EDGE_API_TOKEN)": token, "--id": id, "--app": app, "--region": region, "--ip": ip} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if port == 0 {
		missing = append(missing, "--port")
	}
	if len(missing) > 0 {
		return exitFailure, fmt.Errorf("register needs %s", strings.Join(missing, ", "))
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return exitFailure, fmt.Errorf("--api %q: must be an http:// or https:// URL", base)
	}
	ttl := fl.Duration("ttl")
	if ttl <= 0 {
		return exitFailure, fmt.Errorf("--ttl must be positive")
	}
	payload := map[string]any{"id": id, "app": app, "region": region, "ip": ip, "port": port}
	if cc := fl.String("country"); cc != "" {
		payload["country"] = cc
	}
	for flag, field := range map[string]string{"weight": "weight", "soft-limit": "soft_limit", "hard-limit": "hard_limit"} {
		if v := fl.Int(flag); v != 0 {
			payload[field] = v
		}
	}
	body, _ := json.Marshal(payload)
	c := &registerClient{base: base, token: token, http: &http.Client{Timeout: min(10*time.Second, max(ttl/3, time.Second))}}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s edgeroute register: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
	}
	register := func() error {
		code, msg, err := c.do(ctx, http.MethodPost, "/api/v1/register", body)
		if err != nil {
			return err
		}
		if code != http.StatusCreated && code != http.StatusOK {
			return fmt.Errorf("register: %d: %s", code, msg)
		}
		return nil
	}
	// A bad request or token will not get better by retrying.
	if err := register(); err != nil {
		return exitFailure, err
	}
	logf("registered %s (%s:%d, app %s) with %s; heartbeat every %v", id, ip, port, app, base, ttl/3)

	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			code, msg, err := c.do(dctx, http.MethodDelete, "/api/v1/backends/"+url.PathEscape(id), nil)
			cancel()
			switch {
			case err != nil:
				return exitFailure, fmt.Errorf("deregistering %s: %v", id, err)
			case code == http.StatusOK || code == http.StatusNotFound:
				logf("deregistered %s", id)
				return 0, nil
			default:
				return exitFailure, fmt.Errorf("deregistering %s: %d: %s", id, code, msg)
			}
		case <-t.C:
		}
		code, msg, err := c.do(ctx, http.MethodPost, "/api/v1/heartbeat/"+url.PathEscape(id), nil)
		switch {
		case ctx.Err() != nil:
			// Shutting down: the next loop deregisters.
		case err != nil:
			logf("heartbeat failed (will retry): %v", err)
		case code == http.StatusNotFound:
			// Expired or removed meanwhile: register again.
			if err := register(); err != nil {
				logf("registering again failed (will retry): %v", err)
			} else {
				logf("registered %s again (the POP had forgotten it)", id)
			}
		case code != http.StatusOK:
			logf("heartbeat: %d: %s", code, msg)
		}
	}
}
