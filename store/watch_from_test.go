package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// A watcher named the table of the last Snapshot follows on from it: no
// baseline, and the first delivery is the first edit since, as a delta
// against that table. Named any other table, it delivers a whole baseline.
func TestWatchFollowsOnFromTheSnapshot(t *testing.T) {
	s, first := openTwoBackends(t)
	path := s.Path()
	type delivery struct {
		t *routing.Table
		d Delta
	}
	watch := func(from *routing.Table) (chan delivery, context.CancelFunc) {
		got := make(chan delivery, 10)
		ctx, cancel := context.WithCancel(context.Background())
		go s.Watch(ctx, Watcher{From: from, OnDelta: func(t *routing.Table, d Delta, _ []string) { got <- delivery{t, d} }})
		return got, cancel
	}

	got, cancel := watch(first)
	select {
	case dl := <-got:
		t.Fatalf("a watcher following on from the snapshot delivered a baseline (full=%v, generation %d)", dl.d.Full, dl.t.Generation)
	case <-time.After(300 * time.Millisecond):
	}
	sqlite(t, path, `UPDATE backends SET weight = 7 WHERE id = 'b'`)
	select {
	case dl := <-got:
		if dl.d.Full || !slices.Equal(dl.d.Backends, []string{"b"}) {
			t.Fatalf("first delivery after the edit: full=%v backends %v, want the edited row alone", dl.d.Full, dl.d.Backends)
		}
		if dl.t.Backend("b").Weight != 7 || dl.t.Backend("a") != first.Backend("a") {
			t.Fatalf("the delivery is not the snapshot's table with the edit: b weighs %d, a shared: %v", dl.t.Backend("b").Weight, dl.t.Backend("a") == first.Backend("a"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the edit was never delivered")
	}
	cancel()

	// The snapshot's view went to the first watcher: another one, or one
	// named an older table, starts from a whole baseline.
	for _, from := range []*routing.Table{first, nil} {
		got, cancel := watch(from)
		select {
		case dl := <-got:
			if !dl.d.Full || dl.t.Backend("b").Weight != 7 {
				t.Fatalf("baseline: full=%v, b weighs %d", dl.d.Full, dl.t.Backend("b").Weight)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no baseline")
		}
		cancel()
	}
}

// openTwoBackends is a store whose file holds backends a and b, and the
// snapshot a watcher can follow on from.
func openTwoBackends(t *testing.T) (*Store, *routing.Table) {
	t.Helper()
	s := openTemp(t)
	sqlite(t, s.Path(), `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('a','myapp','eu','10.0.0.1',80), ('b','myapp','eu','10.0.0.2',80)`)
	first, _, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, first
}
