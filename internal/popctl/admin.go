package popctl

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// adminClient bounds every admin call, so a hung POP fails the caller
// instead of blocking it.
var adminClient = &http.Client{Timeout: 10 * time.Second}

// AdminDo sends one request to the admin API and returns the status code
// and the body.
func (p *POP) AdminDo(method, path, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+p.Admin+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// AdminPost posts a JSON body (which may be empty) to the admin API.
func (p *POP) AdminPost(path, body string) (int, []byte, error) {
	return p.AdminDo(http.MethodPost, path, "application/json", body)
}

// AdminGet reads an admin API path and returns its status code. When v is
// not nil the body is decoded into it; a body that is not JSON is an error
// only with status 200 (an error answer may be plain text).
func (p *POP) AdminGet(path string, v any) (int, error) {
	code, body, err := p.AdminDo(http.MethodGet, path, "", "")
	if err != nil {
		return 0, err
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil && code == 200 {
			return code, fmt.Errorf("GET %s: %v: %s", path, err, body)
		}
	}
	return code, nil
}

// Get decodes an admin API answer; any status but 200 is an error.
func (p *POP) Get(path string, v any) error {
	code, body, err := p.AdminDo(http.MethodGet, path, "", "")
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("GET %s: status %d: %s", path, code, body)
	}
	return json.Unmarshal(body, v)
}

// Metrics returns the admin endpoint's Prometheus text.
func (p *POP) Metrics() (string, error) {
	code, body, err := p.AdminDo(http.MethodGet, "/metrics", "", "")
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /metrics: status %d", code)
	}
	return string(body), err
}

// Metric returns the value of one sample of the Prometheus scrape, named
// with its labels exactly as exposed (`edgeroute_refused_connections_total{app="ghost"}`),
// or "" when the scrape has no such sample.
func (p *POP) Metric(sample string) (string, error) {
	text, err := p.Metrics()
	if err != nil {
		return "", err
	}
	return Sample(text, sample), nil
}

// Sample returns the value of one sample in a scrape's text, named as
// Metric names it, or "" when the scrape has no such sample. Samples read
// from one scrape are of one instant.
func Sample(text, sample string) string {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return v
		}
	}
	return ""
}

// Status is the part of GET /edgeroute/cluster the tools read.
type Status struct {
	Node      string            `json:"node"`
	Site      string            `json:"site"`
	DBVersion uint64            `json:"db_version"`
	Vector    map[string]uint64 `json:"vector"`
	Counts    map[string]int    `json:"members_by_state"`
	Members   []struct {
		Name   string  `json:"name"`
		State  string  `json:"state"`
		Behind int64   `json:"versions_behind"`
		LagMS  float64 `json:"lag_ms"`
		Bridge bool    `json:"bridge"`
	} `json:"members"`
	Changes  map[string]uint64 `json:"changes"`
	Messages map[string]uint64 `json:"messages"`
	Bytes    map[string]uint64 `json:"bytes"`
	// On a bridge: the cluster it relays to, and its node there.
	Bridge string  `json:"bridge"`
	Global *Status `json:"global"`
}

// Cluster reads GET /edgeroute/cluster.
func (p *POP) Cluster() (Status, error) {
	var s Status
	err := p.Get("/edgeroute/cluster", &s)
	return s, err
}

// Backend is a row of GET /edgeroute/backends.
type Backend struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

// Backends reads the routing table the POP routes with.
func (p *POP) Backends() ([]Backend, error) {
	var t struct{ Backends []Backend }
	err := p.Get("/edgeroute/backends", &t)
	return t.Backends, err
}

// WaitBackends waits up to within until the table the POP routes with
// holds n backends.
func (p *POP) WaitBackends(n int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		bs, err := p.Backends()
		if err == nil && len(bs) == n {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("not within %v: %v", within, err)
			}
			return fmt.Errorf("not within %v: table has %d backends, want %d", within, len(bs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
