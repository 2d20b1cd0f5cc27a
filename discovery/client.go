package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client registers one backend with a POP's Auto-Discovery API and keeps it
// registered: the loop a backend (or its sidecar) runs.
type Client struct {
	// Base is the API's base URL, e.g. https://api.pop1.example.net.
	Base string
	// Token is the API's bearer token.
	Token string
	// HTTP is the client used; nil means one with a timeout of a third of
	// the TTL, between 1 and 10 seconds.
	HTTP *http.Client
	// Logf receives what the loop does; nil discards it.
	Logf func(format string, args ...any)
}

// Registration is the body of a registration, v1's payload.
type Registration struct {
	ID        string `json:"id"`
	App       string `json:"app"`
	Region    string `json:"region"`
	Country   string `json:"country,omitempty"`
	IP        string `json:"ip"`
	Port      int    `json:"port"`
	Weight    int    `json:"weight,omitempty"`
	SoftLimit int    `json:"soft_limit,omitempty"`
	HardLimit int    `json:"hard_limit,omitempty"`
}

// APIError is an answer of the API other than success.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Message) }

func (c *Client) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, ok ...int) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.Base, "/")+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	for _, code := range ok {
		if resp.StatusCode == code {
			return nil
		}
	}
	var e struct{ Error string }
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return &APIError{resp.StatusCode, e.Error}
	}
	return &APIError{resp.StatusCode, strings.TrimSpace(string(msg))}
}

// Register registers (or updates) the backend.
func (c *Client) Register(ctx context.Context, r Registration) error {
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/api/v1/register", body, http.StatusCreated, http.StatusOK)
}

// Heartbeat keeps the backend alive for another TTL.
func (c *Client) Heartbeat(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodPost, "/api/v1/heartbeat/"+url.PathEscape(id), nil, http.StatusOK)
}

// Deregister removes the backend; one the POP no longer knows counts as
// removed.
func (c *Client) Deregister(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/backends/"+url.PathEscape(id), nil, http.StatusOK, http.StatusNotFound)
}

// Run registers r, heartbeats every ttl/3 (registering again when the POP
// has forgotten the backend) until ctx ends, then deregisters. A refused
// first registration (bad request or token) is returned at once: it will not
// get better by retrying. Later failures are logged and retried.
func (c *Client) Run(ctx context.Context, r Registration, ttl time.Duration) error {
	if ttl <= 0 {
		return errors.New("the heartbeat TTL must be positive")
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: min(10*time.Second, max(ttl/3, time.Second))}
	}
	if err := c.Register(ctx, r); err != nil {
		return fmt.Errorf("register: %w", err)
	}
	c.logf("registered %s (%s:%d, app %s) with %s; heartbeat every %v", r.ID, r.IP, r.Port, r.App, c.Base, ttl/3)
	t := time.NewTicker(ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Deregister(dctx, r.ID); err != nil {
				return fmt.Errorf("deregistering %s: %w", r.ID, err)
			}
			c.logf("deregistered %s", r.ID)
			return nil
		case <-t.C:
		}
		err := c.Heartbeat(ctx, r.ID)
		var apiErr *APIError
		switch {
		case err == nil || ctx.Err() != nil:
			// Alive, or shutting down: the next loop deregisters.
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusNotFound:
			// Expired or removed meanwhile: register again.
			if err := c.Register(ctx, r); err != nil {
				c.logf("registering again failed (will retry): %v", err)
			} else {
				c.logf("registered %s again (the POP had forgotten it)", r.ID)
			}
		default:
			c.logf("heartbeat failed (will retry): %v", err)
		}
	}
}
