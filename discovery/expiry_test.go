package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// TestRunExpiryWakesAtTheDeadline: with a ten-second bound on its sleep,
// the loop still removes a backend as its heartbeat runs out, including one
// registered after the loop went to sleep: it sleeps until the next expiry
// and wakes when the file changes, rather than polling.
func TestRunExpiryWakesAtTheDeadline(t *testing.T) {
	_, st := newAPI(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	expired := make(chan time.Time, 4)
	go RunExpiry(ctx, st, 10*time.Second, func(ids []string) {
		for range ids {
			expired <- time.Now()
		}
	}, func(err error) { t.Error(err) })

	reg := func(id string, ttl time.Duration) time.Time {
		now := time.Now()
		if _, err := st.Register(ctx, store.Registration{ID: id, App: "a", Region: "eu", IP: "198.51.100.1", Port: 80}, ttl, now); err != nil {
			t.Fatal(err)
		}
		return now
	}
	time.Sleep(100 * time.Millisecond) // the loop is asleep with nothing to expire
	for _, c := range []struct {
		id  string
		ttl time.Duration
	}{{"long", 5 * time.Second}, {"short", 400 * time.Millisecond}} {
		at := reg(c.id, c.ttl)
		if c.id == "long" {
			continue
		}
		select {
		case got := <-expired:
			late := got.Sub(at.Add(c.ttl))
			if late < 0 || late > 2*time.Second {
				t.Fatalf("%s expired %v after its deadline", c.id, late)
			}
		case <-time.After(4 * time.Second):
			t.Fatalf("%s (ttl %v) not expired within 4s: the loop slept to its bound", c.id, c.ttl)
		}
	}
	if _, ok, _ := st.GetRegistered(ctx, "long"); !ok {
		t.Fatal("a backend was removed before its heartbeat ran out")
	}
}
