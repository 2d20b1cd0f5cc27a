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

// BenchmarkFollowEdit is one single-row edit of a table of 10,000 backends
// (100 apps, five regions) as the DNS server follows it: ns-build/op is
// the records' share (the names the edit touches built again), next to
// ns-whole/op, a whole build of the same table.
func BenchmarkFollowEdit(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "routing.db")
	w, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	const n = 10000
	stmt := tabletest.BackendsSQL(n)
	if out, err := exec.Command("sqlite3", path, stmt).CombinedOutput(); err != nil {
		b.Fatalf("sqlite3: %v: %s", err, out)
	}
	in := newFollower(b, path, "internal.")
	r := in.store
	type delivery struct {
		t *routing.Table
		d store.Delta
	}
	got := make(chan delivery, 4)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go r.Watch(wctx, store.Watcher{OnDelta: func(t *routing.Table, d store.Delta, _ []string) { got <- delivery{t, d} }})
	first := <-got
	if err := in.follow(ctx, first.t, first.d, nil); err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	build(in.build, first.t, in.snap.Load().down)
	whole := time.Since(t0)
	var building time.Duration
	i := 0
	for b.Loop() {
		if _, err := w.DB().Exec(`UPDATE backends SET healthy = 1 - healthy WHERE id = ?`, fmt.Sprintf("b%d", i%n)); err != nil {
			b.Fatal(err)
		}
		i += 7919
		dl := <-got
		t0 := time.Now()
		if err := in.follow(ctx, dl.t, dl.d, nil); err != nil {
			b.Fatal(err)
		}
		building += time.Since(t0)
	}
	b.ReportMetric(float64(building.Nanoseconds())/float64(b.N), "ns-build/op")
	b.ReportMetric(float64(whole.Nanoseconds()), "ns-whole/op")
}
