//go:build linux

package health

import (
	"context"
	"errors"
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
