// Package health runs active health checks (TCP connect, HTTP GET, gRPC
// grpc.health.v1.Health/Check) against backends with rise/fall hysteresis
// and a smoothed round-trip time, and tracks passive outliers: backends
// whose connections keep failing are ejected for a growing backoff.
//
// It imports neither Caddy nor CoreDNS: the edgeroute app feeds it targets
// from the routing table and applies its verdicts.
package health

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// Checker makes probes, one per backend address.
type Checker interface {
	// Probe returns the probe of one backend; it may keep a connection
	// between checks (HTTP keep-alive, a gRPC channel).
	Probe(addr netip.AddrPort) Probe
	// String describes the check, e.g. "http GET /healthz expecting 200".
	String() string
}

// Probe checks one backend. Check must honour ctx's deadline.
type Probe interface {
	Check(ctx context.Context) error
	Close()
}

// TCP passes when a TCP connection to the backend opens.
type TCP struct{}

func (TCP) String() string { return "tcp connect" }

// Probe implements Checker.
func (TCP) Probe(addr netip.AddrPort) Probe { return tcpProbe{addr} }

type tcpProbe struct{ addr netip.AddrPort }

func (p tcpProbe) Check(ctx context.Context) error { return tcpConnect(ctx, p.addr) }

func (tcpProbe) Close() {}

// HTTP passes when GET Path answers Status (any 2xx or 3xx when 0).
type HTTP struct {
	Path   string
	Status int
	// Host is sent as the Host header; default the backend address.
	Host string
	// TLS checks over HTTPS without verifying the certificate (backends
	// are addressed by IP on the private network).
	TLS bool

	transport *http.Transport
}

// NewHTTP returns an HTTP checker with its own connection pool.
func NewHTTP(path string, status int, host string, useTLS bool) *HTTP {
	if path == "" {
		path = "/"
	}
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{}).DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true},
	}
	return &HTTP{Path: path, Status: status, Host: host, TLS: useTLS, transport: tr}
}

// Close drops the checker's idle connections.
func (h *HTTP) Close() { h.transport.CloseIdleConnections() }

func (h *HTTP) String() string {
	want := "2xx/3xx"
	if h.Status != 0 {
		want = strconv.Itoa(h.Status)
	}
	return fmt.Sprintf("http GET %s expecting %s", h.Path, want)
}

// Probe implements Checker.
func (h *HTTP) Probe(addr netip.AddrPort) Probe {
	scheme := "http"
	if h.TLS {
		scheme = "https"
	}
	return &httpProbe{h: h, url: scheme + "://" + addr.String() + h.Path}
}

type httpProbe struct {
	h   *HTTP
	url string
}

func (p *httpProbe) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "edgeroute-health/2")
	if p.h.Host != "" {
		req.Host = p.h.Host
	}
	resp, err := p.h.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if p.h.Status != 0 && resp.StatusCode != p.h.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, p.h.Status)
	}
	if p.h.Status == 0 && (resp.StatusCode < 200 || resp.StatusCode >= 400) {
		return fmt.Errorf("status %d, want 2xx or 3xx", resp.StatusCode)
	}
	return nil
}

func (p *httpProbe) Close() {}

// GRPC passes when grpc.health.v1.Health/Check for Service answers SERVING
// ("" asks about the server as a whole).
type GRPC struct {
	Service string
	// Reconnect bounds the channel's reconnect backoff, so a revived
	// backend is seen within about one check interval.
	Reconnect time.Duration
}

func (g GRPC) String() string {
	if g.Service == "" {
		return "grpc health check"
	}
	return "grpc health check of " + g.Service
}

// Probe implements Checker.
func (g GRPC) Probe(addr netip.AddrPort) Probe {
	return &grpcProbe{g: g, addr: addr.String()}
}

type grpcProbe struct {
	g    GRPC
	addr string
	conn *grpc.ClientConn
}

func (p *grpcProbe) Check(ctx context.Context) error {
	if p.conn == nil {
		maxDelay := p.g.Reconnect
		if maxDelay <= 0 {
			maxDelay = 5 * time.Second
		}
		bc := backoff.DefaultConfig
		bc.BaseDelay = min(bc.BaseDelay, maxDelay)
		bc.MaxDelay = maxDelay
		conn, err := grpc.NewClient("passthrough:///"+p.addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: bc, MinConnectTimeout: maxDelay}),
			grpc.WithUserAgent("edgeroute-health/2"))
		if err != nil {
			return err
		}
		p.conn = conn
	}
	resp, err := healthpb.NewHealthClient(p.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.g.Service})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("status %s", s)
	}
	return nil
}

func (p *grpcProbe) Close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}
