//go:build linux

package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// withoutCommitWatch makes the test's watchers use the Go reports of every
// write, as where the commit watch cannot start.
func withoutCommitWatch(t *testing.T) {
	commitNotifier = func(string, string) (*commitReports, error) { return nil, errors.New("off for this test") }
	t.Cleanup(func() { commitNotifier = notifyCommits })
}

// cliCommits makes n commits of stmt through one sqlite3 process, one every
// gap, as an operator's script or a heartbeat writer would.
func cliCommits(t *testing.T, path, stmt string, n int, gap time.Duration) {
	t.Helper()
	cli := exec.Command("sqlite3", "-cmd", ".timeout 5000", path)
	in, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		fmt.Fprintf(in, "%s\nSELECT %d;\n", stmt, i)
		time.Sleep(gap)
	}
	in.Close()
	io.Copy(io.Discard, out)
	if err := cli.Wait(); err != nil {
		t.Fatalf("sqlite3: %v", err)
	}
}

// Commits to a table no snapshot holds (an operator's table here; on a POP
// also heartbeats, leases and the replicator's bookkeeping) are not looked
// at by the watcher's goroutines: the commit watch's thread looks, finds the
// journal where it was, and wakes no one. A commit to the backends then
// routes at once, followed to the position the thread read, with no look
// of the watcher's own either. With the Go reports of every write, each of
// those commits costs a look, and the caller is told why.
func TestCommitsToOtherTablesAreNotLookedAt(t *testing.T) {
	for _, watch := range []string{"commit watch", "Go reports"} {
		t.Run(watch, func(t *testing.T) {
			if watch == "Go reports" {
				withoutCommitWatch(t)
			}
			s := openTemp(t)
			path := s.Path()
			sqlite(t, path, `CREATE TABLE operator_notes (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO operator_notes VALUES (1, 0);`)
			stats := &WatchStats{}
			tables := make(chan *routing.Table, 100)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			slower := make(chan error, 1)
			go s.Watch(ctx, Watcher{Stats: stats, OnTable: func(t *routing.Table, _ []string) { tables <- t },
				OnSlowerFollow: func(err error) { slower <- err }})
			<-tables // the baseline
			time.Sleep(50 * time.Millisecond)
			select {
			case err := <-slower:
				if watch == "commit watch" {
					t.Errorf("the commit watch ran, yet the watcher says: %v", err)
				} else if !strings.Contains(err.Error(), "off for this test") || !strings.Contains(err.Error(), "every write") {
					t.Errorf("the watcher says %q; want why the commit watch did not start, and what it does instead", err)
				}
			default:
				if watch == "Go reports" {
					t.Error("the commit watch did not start, and the watcher did not say so")
				}
			}

			const commits = 40
			before := stats.Looks.Load()
			cliCommits(t, path, "UPDATE operator_notes SET v = v + 1 WHERE k = 1;", commits, 10*time.Millisecond)
			time.Sleep(50 * time.Millisecond)
			looks := stats.Looks.Load() - before
			if watch == "commit watch" && looks > 1 {
				t.Errorf("%d commits to a table no snapshot holds made %d looks, want none but the safety poll's (one a second)", commits, looks)
			}
			if watch == "Go reports" && looks < commits/2 {
				t.Errorf("%d commits with the Go reports made %d looks, want one per commit or so: the comparison above proves nothing", commits, looks)
			}
			t.Logf("%s: %d commits to another table, %d looks", watch, commits, looks)

			// Three inserts, each followed within 200 ms: one look over
			// all three is the safety poll's at most.
			looks = 0
			for i := range 3 {
				id := fmt.Sprintf("x%d", i)
				before, start := stats.Looks.Load(), time.Now()
				sqlite(t, path, fmt.Sprintf(`INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('%s','myapp','eu','10.0.0.9',80)`, id))
				t.Logf("then insert %d routed after %v", i, routedWithin(t, tables, id, start, 200*time.Millisecond))
				looks += stats.Looks.Load() - before
			}
			if watch == "commit watch" && looks > 1 {
				t.Errorf("three inserts made %d looks of the watcher's own, want none but the safety poll's: each is followed to the position the thread read", looks)
			}
		})
	}
}

// A file without a change journal (one the proxy never opened for
// writing, read by CoreDNS) is followed by whole reads, which need every
// commit: the commit watch, which cannot read a journal position there,
// reports each one. Each insert routes well within the safety poll's
// second.
func TestCommitWatchReportsEveryCommitWithoutJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, path, "PRAGMA journal_mode=WAL; "+v1Schema+`INSERT INTO backends (id, app, region, wg_ip, port, healthy) VALUES ('a','myapp','eu','10.0.0.1',80,1);`)
	s, err := Open(context.Background(), path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tables := make(chan *routing.Table, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	if tbl := <-tables; tbl.Backend("a") == nil {
		t.Fatal("the baseline lacks backend a")
	}
	for i := range 3 {
		id := fmt.Sprintf("n%d", i)
		start := time.Now()
		sqlite(t, path, fmt.Sprintf(`INSERT INTO backends (id, app, region, wg_ip, port, healthy) VALUES ('%s','myapp','eu','10.0.0.9',80,1)`, id))
		t.Logf("insert %d routed after %v", i, routedWithin(t, tables, id, start, 200*time.Millisecond))
		// Past DefaultWatchInterval, the least time between two whole
		// reads.
		time.Sleep(100 * time.Millisecond)
	}
}

// A watcher that ends stops the commit watch's thread and gives back what
// it held (its inotify descriptor, its eventfds, its connection's files): a
// process that reloads its configuration many times must not gather them.
func TestCommitWatchLeavesNothingOpen(t *testing.T) {
	s := openTemp(t)
	if _, _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := 0
	for i := range 4 {
		if i == 1 {
			// The first watcher left its connection in the pool,
			// where the next ones take it.
			before = openDescriptors(t)
		}
		ctx, cancel := context.WithCancel(context.Background())
		tables := make(chan *routing.Table, 10)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.Watch(ctx, Watcher{OnTable: func(t *routing.Table, _ []string) { tables <- t }})
		}()
		<-tables
		if n := inotifyDescriptors(t); n < 1 {
			t.Fatal("no inotify descriptor while watching: the commit watch did not start")
		}
		cancel()
		<-done
	}
	if after := openDescriptors(t); after != before {
		t.Fatalf("%d descriptors open after three watchers ended, %d before", after, before)
	}
}

// routedWithin waits for a snapshot that holds backend id, made within d
// of start, and returns how long it took.
func routedWithin(t *testing.T, tables <-chan *routing.Table, id string, start time.Time, d time.Duration) time.Duration {
	t.Helper()
	deadline := time.After(time.Until(start.Add(d)))
	for {
		select {
		case tbl := <-tables:
			if tbl.Backend(id) != nil {
				return time.Since(start).Round(time.Millisecond)
			}
		case <-deadline:
			t.Fatalf("backend %s was not routed within %v of its commit", id, d)
		}
	}
}

func openDescriptors(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// The replicator's wake (Watcher.Wake, after a merge) makes the watcher
// look at once, through the commit watch's eventfd the watcher waits on.
func TestWakeMakesTheWatcherLook(t *testing.T) {
	s := openTemp(t)
	stats := &WatchStats{}
	wake := make(chan struct{}, 1)
	tables := make(chan *routing.Table, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{Stats: stats, Wake: wake, OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	<-tables
	for i := range 3 {
		time.Sleep(50 * time.Millisecond)
		before := stats.Looks.Load()
		sent := time.Now()
		wake <- struct{}{}
		// The safety poll looks once a second: three wakes each seen
		// within 100 ms are not its doing.
		for stats.Looks.Load() == before {
			if time.Since(sent) > 100*time.Millisecond {
				t.Fatalf("wake %d: no look within 100 ms", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// Edits one commit at a time, apart, are followed from what the commit
// watch's thread read at its signal, and each snapshot holds what a whole read of
// the file holds: updates, inserts, a delete, a renamed ID, health rows, an
// unroutable address. A value of another type than the follower reads (a
// country stored as a blob) and a pops row are read by the watcher itself,
// with the same result.
func TestReadAheadMatchesWholeReads(t *testing.T) {
	ctx := context.Background()
	s := openSeeded(t, 12, 3)
	path := s.Path()
	stats := &WatchStats{}
	type delivery struct {
		t        *routing.Table
		warnings []string
	}
	got := make(chan delivery, 100)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(wctx, Watcher{Stats: stats, OnTable: func(t *routing.Table, w []string) { got <- delivery{t, w} }})
	<-got // the baseline

	edits := []struct {
		stmt  string
		ahead bool // followed from the thread's read
	}{
		{"UPDATE backends SET healthy = 0 WHERE id = 'b1'", true},
		{"UPDATE backends SET weight = 7, app = 'app9' WHERE id = 'b2'", true},
		{"INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('new', 'app1', 'sa', 'BR', '10.0.1.1', 443)", true},
		{"DELETE FROM backends WHERE id = 'b3'", true},
		{"UPDATE backends SET id = 'renamed' WHERE id = 'b4'", true},
		{"UPDATE backends SET wg_ip = 'not-an-ip' WHERE id = 'b5'; UPDATE backends SET deleted = 1 WHERE id = 'b6'", true},
		{"INSERT INTO health (backend_id, observer, healthy) VALUES ('b7', 'pop-x', 0); UPDATE backends SET port = 8080 WHERE id = 'b7'", true},
		{"UPDATE backends SET country = CAST('US' AS BLOB) WHERE id = 'b8'", false},
		{"INSERT INTO pops (node, region) VALUES ('pop-y', 'us'); UPDATE backends SET region = 'us' WHERE id = 'b9'", false},
		{"UPDATE backends SET healthy = 0 WHERE id = 'b10'", true},
	}
	last := uint64(0)
	for _, e := range edits {
		// Edits one by one: a commit within followGap of the last
		// snapshot waits for a look of the watcher's own.
		time.Sleep(2 * followGap)
		before := stats.ReadAhead.Load()
		sqlite(t, path, "BEGIN; "+e.stmt+"; COMMIT;")
		var d delivery
		select {
		case d = <-got:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no snapshot within 2 s", e.stmt)
		}
		if d.t.Generation <= last {
			t.Fatalf("%s: generation %d after %d", e.stmt, d.t.Generation, last)
		}
		last = d.t.Generation
		whole, warnings, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sameTable(t, e.stmt, d.t, whole)
		if !reflect.DeepEqual(d.warnings, warnings) {
			t.Fatalf("%s: warnings %q, whole read %q", e.stmt, d.warnings, warnings)
		}
		if ahead := stats.ReadAhead.Load() > before; ahead != e.ahead {
			t.Errorf("%s: followed from the thread's read: %v, want %v", e.stmt, ahead, e.ahead)
		}
	}
}

// A burst of commits, some within a millisecond of each other, takes every
// path between the thread's reads and the watcher's own: reads taken,
// reads found stale after a paced wait, reads the thread could not make
// because the last was not taken yet. The last snapshot holds what a whole
// read of the file holds.
func TestBurstEndsWhereTheFileEnds(t *testing.T) {
	ctx := context.Background()
	s := openSeeded(t, 50, 5)
	path := s.Path()
	stats := &WatchStats{}
	var last atomic.Pointer[routing.Table]
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Watch(wctx, Watcher{Stats: stats, OnTable: func(t *routing.Table, _ []string) { last.Store(t) }})

	rng := rand.New(rand.NewPCG(3, 4))
	var stmts []string
	for i := range 300 {
		id := fmt.Sprintf("b%d", rng.IntN(60))
		switch rng.IntN(4) {
		case 0:
			stmts = append(stmts, fmt.Sprintf("INSERT OR REPLACE INTO backends (id, app, region, country, wg_ip, port) VALUES ('%s', 'app%d', 'sa', 'BR', '10.0.1.%d', 443);", id, rng.IntN(5), i%250+1))
		case 1:
			stmts = append(stmts, fmt.Sprintf("DELETE FROM backends WHERE id = '%s';", id))
		default:
			stmts = append(stmts, fmt.Sprintf("UPDATE backends SET healthy = 1 - healthy, weight = %d WHERE id = '%s';", rng.IntN(5), id))
		}
	}
	cli := exec.Command("sqlite3", "-cmd", ".timeout 5000", path)
	in, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	for i, st := range stmts {
		fmt.Fprintln(in, st)
		if i%3 == 0 {
			time.Sleep(time.Duration(rng.IntN(12)) * time.Millisecond)
		}
	}
	in.Close()
	if err := cli.Wait(); err != nil {
		t.Fatalf("sqlite3: %v", err)
	}
	whole, _, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(300 * time.Millisecond) // within the safety poll's second
	for {
		got := last.Load()
		if got != nil && reflect.DeepEqual(got.Apps(), whole.Apps()) && len(got.Backends()) == len(whole.Backends()) {
			sameTable(t, "after the burst", got, whole)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("300 ms after the burst the followed table has %d backends, the file %d", len(got.Backends()), len(whole.Backends()))
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d commits: %d snapshots followed, %d from the thread's reads", len(stmts), stats.Followed.Load(), stats.ReadAhead.Load())
}

// openSeeded opens a store whose file holds n backends over apps apps, and
// takes its snapshot, as a POP does before it watches.
func openSeeded(t *testing.T, n, apps int) *Store {
	t.Helper()
	s := openTemp(t)
	script := ""
	for i := range n {
		script += fmt.Sprintf("INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('b%d', 'app%d', 'eu', 'DE', '10.0.%d.%d', 80);", i, i%apps, i/250, i%250+1)
	}
	sqlite(t, s.Path(), script)
	if _, _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}
