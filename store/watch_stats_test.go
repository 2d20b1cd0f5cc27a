package store

import (
	"context"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// A watcher's stats tell a snapshot that followed the journal from one that
// read the whole table, as an operator's metrics show them.
func TestWatchStatsTellFollowedFromWholeReads(t *testing.T) {
	s, first := openTwoBackends(t)
	path := s.Path()
	var st WatchStats
	got := make(chan Delta, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{From: first, Stats: &st, OnDelta: func(_ *routing.Table, d Delta, _ []string) { got <- d }})
	next := func(step string) Delta {
		t.Helper()
		select {
		case d := <-got:
			return d
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no snapshot within 5 s", step)
			return Delta{}
		}
	}

	sqlite(t, path, `UPDATE backends SET weight = 7 WHERE id = 'b'; UPDATE backends SET weight = 3 WHERE id = 'a'`)
	rows := 0
	for rows < 2 {
		d := next("two edits")
		if d.Full {
			t.Fatal("two row edits were read as the whole table")
		}
		rows += len(d.Backends)
	}
	if n, r, w := st.Followed.Load(), st.FollowedRows.Load(), st.Whole.Load(); n == 0 || r != 2 || w != 0 {
		t.Fatalf("after two row edits: followed %d snapshots of %d rows, %d whole reads; want the 2 rows followed, no whole read", n, r, w)
	}
	if st.FollowedTime.Load() <= 0 || st.WholeTime.Load() != 0 {
		t.Fatalf("after two row edits: followed time %d ns, whole time %d ns", st.FollowedTime.Load(), st.WholeTime.Load())
	}

	// A schema change is one the journal cannot account for.
	sqlite(t, path, `CREATE INDEX backends_weight ON backends (weight)`)
	if d := next("schema change"); !d.Full {
		t.Fatalf("after a schema change the snapshot followed %v; want a whole read", d.Backends)
	}
	if w := st.Whole.Load(); w != 1 || st.WholeTime.Load() <= 0 {
		t.Fatalf("after a schema change: %d whole reads in %d ns, want 1", w, st.WholeTime.Load())
	}
}
