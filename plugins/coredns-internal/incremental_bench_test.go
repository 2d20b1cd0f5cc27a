package internal

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/tabletest"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// editBench is a table of 10,000 backends (100 apps, five regions) the
// plugin follows: edit toggles the health of one backend, a different one
// each time, and returns the watcher's delivery of it.
type editBench struct {
	in    *Internal
	first delivery // the baseline
	edit  func() delivery
}

type delivery struct {
	t *routing.Table
	d store.Delta
}

const benchBackends = 10000

func newEditBench(b *testing.B) *editBench {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	path := filepath.Join(b.TempDir(), "routing.db")
	w, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { w.Close() })
	if out, err := exec.Command("sqlite3", path, tabletest.BackendsSQL(benchBackends)).CombinedOutput(); err != nil {
		b.Fatalf("sqlite3: %v: %s", err, out)
	}
	in := newFollower(b, path, "internal.")
	got := make(chan delivery, 4)
	go in.store.Watch(ctx, store.Watcher{OnDelta: func(t *routing.Table, d store.Delta, _ []string) { got <- delivery{t, d} }})
	i := 0
	return &editBench{in: in, first: <-got, edit: func() delivery {
		if _, err := w.DB().Exec(`UPDATE backends SET healthy = 1 - healthy WHERE id = ?`, fmt.Sprintf("b%d", i%benchBackends)); err != nil {
			b.Fatal(err)
		}
		i += 7919
		return <-got
	}}
}

// BenchmarkFollowEdit is one single-row edit as the DNS server follows
// it: ns-build/op is the records' share (the names the edit touches built
// again), next to ns-whole/op, a whole build of the same table.
func BenchmarkFollowEdit(b *testing.B) {
	ctx := context.Background()
	e := newEditBench(b)
	if err := e.in.follow(ctx, e.first.t, e.first.d, nil); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	build(e.in.build, e.first.t, e.in.snap.Load().down)
	whole := time.Since(t0)
	var building time.Duration
	for b.Loop() {
		dl := e.edit()
		t0 := time.Now()
		if err := e.in.follow(ctx, dl.t, dl.d, nil); err != nil {
			b.Fatal(err)
		}
		building += time.Since(t0)
	}
	b.ReportMetric(float64(building.Nanoseconds())/float64(b.N), "ns-build/op")
	b.ReportMetric(float64(whole.Nanoseconds()), "ns-whole/op")
}

// BenchmarkRebuildEdit is the records' share of one edit alone, with the
// memory it allocates: 200 edits are read first and built again in turn,
// from the table's whole build, as often as the benchmark asks.
func BenchmarkRebuildEdit(b *testing.B) {
	e := newEditBench(b)
	edits := make([]delivery, 200)
	for k := range edits {
		edits[k] = e.edit()
	}
	start, _ := build(e.in.build, e.first.t, nil)
	prev, k := start, 0
	b.ReportAllocs()
	for b.Loop() {
		if k == len(edits) {
			prev, k = start, 0
		}
		s, ok := rebuild(e.in.build, prev, edits[k].t, edits[k].d, prev.down)
		if !ok {
			b.Fatal("an edit of one backend's health was built whole")
		}
		e.in.snap.Store(s)
		prev = s
		k++
	}
}
