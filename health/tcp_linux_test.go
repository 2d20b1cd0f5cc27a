//go:build linux

package health

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testnet"
)

// A TCP check of a backend that never completes the handshake (its accept
// queue is full, so the kernel drops the SYN) fails by its timeout.
func TestTCPCheckTimeout(t *testing.T) {
	addr := testnet.HungListener(t)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := TCP{}.Probe(addr).Check(ctx)
	if err == nil || time.Since(start) > time.Second {
		t.Fatalf("check of a hung backend: %v after %v", err, time.Since(start))
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("check of a hung backend failed with %v, want a timeout", err)
	}
}

// Through the monitor, a backend that stops completing handshakes is taken
// out by timeouts: the connect in flight is waited for off the scheduler.
func TestMonitorTakesOutAHungBackend(t *testing.T) {
	addr := testnet.HungListener(t)
	changes := make(chan Status, 4)
	m := NewMonitor(Config{Interval: 100 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 2},
		func(st Status, changed bool) {
			if changed {
				changes <- st
			}
		})
	defer m.Stop()
	m.Sync([]Target{{ID: "hung", Addr: addr}})
	select {
	case st := <-changes:
		if st.Healthy || st.Failures < 2 || !strings.Contains(st.LastError, "timeout") {
			t.Fatalf("hung backend: %+v", st)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("a hung backend was never taken out: %+v", m.Statuses())
	}
}

// Every TCP check is a new connection the backend accepts, yet the probe
// holds one socket between checks instead of one per check; a refused
// check costs the kept socket, and the next one starts afresh.
func TestTCPCheckReusesItsSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			c.Close()
		}
	}()
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	p := TCP{}.Probe(addr)
	before := fds()
	for i := range 20 {
		if err := p.Check(t.Context()); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		select {
		case <-accepted:
		case <-time.After(time.Second):
			t.Fatalf("check %d passed but the backend accepted no connection", i)
		}
	}
	if held := fds() - before; held != 1 {
		t.Fatalf("the probe holds %d descriptors after 20 checks, want 1", held)
	}
	ln.Close()
	if err := p.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("check of a closed port: %v", err)
	}
	if held := fds() - (before - 1); held != 0 { // less the listener
		t.Fatalf("the probe holds %d descriptors after a refused check, want 0", held)
	}
	p.Close()
}
