package store

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/tabletest"
)

// seedTable writes n backends (100 apps, five regions) with the sqlite3
// CLI into a file Open has set up, as bench/table does.
func seedTable(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "routing.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	s.Close()
	stmt := tabletest.BackendsSQL(n)
	if out, err := exec.Command("sqlite3", path, stmt).CombinedOutput(); err != nil {
		tb.Fatalf("sqlite3: %v: %s", err, out)
	}
	return path
}

var tableSizes = []int{1000, 10000, 100000}

// BenchmarkOpenTable is a POP's start on a table of each size: open the
// file and read it whole. MB/table is the heap the snapshot keeps.
func BenchmarkOpenTable(b *testing.B) {
	for _, n := range tableSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			path := seedTable(b, n)
			ctx := context.Background()
			var kept float64
			for b.Loop() {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				s, err := Open(ctx, path, Options{})
				if err != nil {
					b.Fatal(err)
				}
				t, _, err := s.Snapshot(ctx)
				if err != nil || len(t.Backends()) != n {
					b.Fatal(err)
				}
				s.Close()
				runtime.GC()
				runtime.ReadMemStats(&m1)
				kept = float64(m1.HeapAlloc-m0.HeapAlloc) / 1e6
				runtime.KeepAlive(t)
			}
			b.ReportMetric(kept, "MB/table")
		})
	}
}

// BenchmarkWholeRead is what a change cost before the journal: the whole
// table read again.
func BenchmarkWholeRead(b *testing.B) {
	path := seedTable(b, 10000)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		if _, _, err := s.Snapshot(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFollowEdit is one single-row edit committed and followed: the
// commit (with its triggers) and the next snapshot; ns-follow/op is the
// snapshot's share.
func BenchmarkFollowEdit(b *testing.B) {
	for _, n := range tableSizes {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) { followEdits(b, n, 0, false) })
	}
	// An edit now and then, as a quiet POP gets them, each found by the
	// watcher's look at the file: the follower's code runs cold, which
	// on a virtual machine costs several times what it does warm.
	// follow=to-look follows to the position the look read, as the
	// watcher does; follow=own-read follows in a read of its own, which
	// reads the position again between BEGIN and ROLLBACK.
	quiet := 10 * time.Millisecond
	b.Run("backends=10000/quiet=10ms/follow=to-look", func(b *testing.B) { followEdits(b, 10000, quiet, true) })
	b.Run("backends=10000/quiet=10ms/follow=own-read", func(b *testing.B) { followEdits(b, 10000, quiet, false) })
}

// followEdits commits one-row edits to a file of n backends and follows
// each, quiet apart, reporting the follower's time alone. With quiet, each
// edit is found by the watcher's look first, and toLook follows to the
// position it read instead of in a read of its own.
func followEdits(b *testing.B, n int, quiet time.Duration, toLook bool) {
	path := seedTable(b, n)
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rc := readConnT(b, s)
	v, _, err := rc.follow(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	f := follower{s: s, conn: rc}
	i := 0
	var following time.Duration
	for b.Loop() {
		if _, err := s.DB().Exec(`UPDATE backends SET healthy = 1 - healthy WHERE id = ?`, fmt.Sprintf("b%d", i%n)); err != nil {
			b.Fatal(err)
		}
		i += 7919
		time.Sleep(quiet)
		t0 := time.Now()
		var (
			nv *view
			d  Delta
		)
		if quiet > 0 && !f.pollJournal(ctx) {
			b.Fatal("the look read no journal position")
		}
		if toLook {
			nv, d, err = rc.followTo(ctx, v, f.pos)
		} else {
			nv, d, err = rc.follow(ctx, v)
		}
		following += time.Since(t0)
		if err != nil || nv == nil || d.Full {
			b.Fatalf("follow: %v %v %+v", err, nv == nil, d)
		}
		v = nv
	}
	// The follower's share, without the commit.
	b.ReportMetric(float64(following.Nanoseconds())/float64(b.N), "ns-follow/op")
}
