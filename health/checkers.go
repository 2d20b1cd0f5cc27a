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
	"fmt"
	"net/netip"
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
