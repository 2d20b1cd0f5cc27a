//go:build linux

package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// With the kernel reporting writes to the file, a sqlite3 commit routes at
// once even though the poll interval is far longer; a burst of commits is
// read at most once per interval.
func TestWatchIsToldOfCommits(t *testing.T) {
	s := openTemp(t)
	path := s.Path()
	probe, stop := context.WithCancel(context.Background())
	if _, err := notifyChanges(probe, path); err != nil {
		t.Fatalf("watching %s for changes: %v", path, err)
	}
	stop()
	tables := make(chan *routing.Table, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const interval = 5 * time.Second
	go s.Watch(ctx, Watcher{Interval: interval, OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	<-tables // the baseline

	start := time.Now()
	sqlite(t, path, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('x','myapp','eu','10.0.0.9',80)`)
	for {
		select {
		case tbl := <-tables:
			if tbl.Backend("x") == nil {
				continue
			}
			if took := time.Since(start); took > 200*time.Millisecond {
				t.Fatalf("sqlite3 insert routed after %v, want within 200ms", took)
			}
			t.Logf("sqlite3 insert routed after %v with a %v poll interval", time.Since(start).Round(time.Millisecond), interval)
		case <-time.After(time.Second):
			t.Fatalf("a sqlite3 insert was not seen within a second (poll interval %v): no change notification", interval)
		}
		break
	}

	// A burst of commits: with a 300 ms interval between reloads, 2 s of
	// commits make at most about 7 reloads, and the last commit is seen.
	cancel()
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	tables = make(chan *routing.Table, 1000)
	go s.Watch(ctx2, Watcher{Interval: 300 * time.Millisecond, OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	time.Sleep(100 * time.Millisecond)
	for len(tables) > 0 {
		<-tables
	}
	burst := time.Now()
	n := 0
	for time.Since(burst) < 2*time.Second {
		if _, err := s.db.Exec(`INSERT INTO backends (id, app, region, wg_ip, port) VALUES (?,'myapp','eu','10.0.0.9',80)`, fmt.Sprintf("b%d", n)); err != nil {
			t.Fatal(err)
		}
		n++
		time.Sleep(5 * time.Millisecond)
	}
	last := fmt.Sprintf("b%d", n-1)
	deadline := time.After(2 * time.Second)
	reloads := 0
	for {
		select {
		case tbl := <-tables:
			reloads++
			if tbl.Backend(last) == nil {
				continue
			}
			if reloads > 9 {
				t.Fatalf("%d commits in 2s made %d reloads, want at most one per 300ms", n, reloads)
			}
			t.Logf("%d commits in 2s: %d reloads", n, reloads)
			return
		case <-deadline:
			t.Fatalf("the last of %d commits never routed (%d reloads)", n, reloads)
		}
	}
}

// The kernel reports a commit when its WAL is written, which on a disk slow
// to sync comes well before the commit is visible. The report here comes
// 30 ms early and is the only one; the commit still routes promptly instead
// of waiting for the next poll.
func TestWatchLooksAgainAfterAnEarlyNotification(t *testing.T) {
	withoutCommitWatch(t) // the commit watch looks again on its own thread
	s := openTemp(t)
	path := s.Path()
	early := make(chan struct{}, 1)
	changeNotifier = func(context.Context, string) (*ChangeReports, error) { return &ChangeReports{C: early}, nil }
	defer func() { changeNotifier = notifyChanges }()

	tables := make(chan *routing.Table, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{Interval: 5 * time.Second, OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	<-tables // the baseline

	start := time.Now()
	early <- struct{}{}
	time.Sleep(30 * time.Millisecond)
	sqlite(t, path, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('x','myapp','eu','10.0.0.9',80)`)
	select {
	case tbl := <-tables:
		if tbl.Backend("x") == nil {
			t.Fatal("a reload without the commit")
		}
		if took := time.Since(start); took > 200*time.Millisecond {
			t.Fatalf("committed 30 ms after the notification, routed after %v; want within 200ms", took)
		}
		t.Logf("routed %v after the early notification", time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Second):
		t.Fatal("a commit made just after its notification was not read within a second")
	}
}

// A write of the WAL is signalled once; the writes after it wait for the
// drain, which takes them, and the next write after the drain is
// signalled again. Writes of another file are neither signalled nor taken.
func TestChangeReportsHoldWritesUntilDrained(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "routing.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports, err := notifyChanges(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("frame"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	signalled := func(what string) {
		t.Helper()
		select {
		case <-reports.C:
		case <-time.After(time.Second):
			t.Fatalf("%s was not signalled within a second", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-reports.C:
			t.Fatalf("%s was signalled", what)
		case <-time.After(100 * time.Millisecond):
		}
	}

	write("routing.db-wal")
	signalled("a write of the WAL")
	for range 3 {
		write("routing.db-wal")
	}
	quiet("a write before the drain")
	if !reports.Drain() {
		t.Fatal("the drain did not take the writes made after the signal")
	}
	if reports.Drain() {
		t.Fatal("a second drain took writes again")
	}
	// Another file's coming may be signalled (the directory's report of
	// it is read only at the drain), but the drain does not count it,
	// and that file's writes are not signalled at all.
	write("other.db-wal")
	select {
	case <-reports.C:
	case <-time.After(100 * time.Millisecond):
	}
	if reports.Drain() {
		t.Fatal("the drain took another file's coming for the file's")
	}
	write("other.db-wal")
	quiet("a write of another file's WAL")
	if reports.Drain() {
		t.Fatal("the drain took a write of another file's WAL")
	}
	write("routing.db-wal")
	signalled("a write after the drain")

	// A signal not yet received is taken by the drain, and the next
	// write is signalled: the drain leaves the reports armed.
	reports.Drain()
	write("routing.db-wal")
	time.Sleep(100 * time.Millisecond)
	if !reports.Drain() {
		t.Fatal("the drain did not take a pending signal")
	}
	write("routing.db")
	signalled("a write of the file after a drain that took a pending signal")

	// A WAL removed and made again is watched anew: its writes after
	// the drain that took its coming are signalled.
	reports.Drain()
	if err := os.Remove(filepath.Join(dir, "routing.db-wal")); err != nil {
		t.Fatal(err)
	}
	signalled("the WAL's removal")
	reports.Drain()
	write("routing.db-wal")
	signalled("the WAL made again")
	reports.Drain()
	write("routing.db-wal")
	signalled("a write of the WAL made again")

	// The same when the WAL's coming is followed by more reports than
	// one read of the descriptor takes.
	reports.Drain()
	if err := os.Remove(filepath.Join(dir, "routing.db-wal")); err != nil {
		t.Fatal(err)
	}
	signalled("the WAL's removal, again")
	reports.Drain()
	write("routing.db-wal")
	for i := range 400 {
		write(fmt.Sprintf("other-%03d.db-wal", i))
	}
	signalled("the WAL made again among other files")
	reports.Drain()
	write("routing.db-wal")
	signalled("a write of the WAL made again among other files")
}

// Once its context ends the notifier gives its inotify descriptor back and
// its reader stops: a process that reloads its configuration many times
// must not gather them.
func TestNotifyChangesStopsWithItsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	before := inotifyDescriptors(t)
	ctx, cancel := context.WithCancel(context.Background())
	reports, err := notifyChanges(ctx, path)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if got := inotifyDescriptors(t); got != before+1 {
		t.Fatalf("%d inotify descriptors open while watching, want %d", got, before+1)
	}
	goroutines := runtime.NumGoroutine()
	if err := os.WriteFile(path+"-wal", []byte("frame"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reports.C:
	case <-time.After(time.Second):
		t.Fatal("a write of the WAL was not reported within a second")
	}

	cancel()
	deadline := time.Now().Add(2 * time.Second)
	for inotifyDescriptors(t) != before || runtime.NumGoroutine() >= goroutines {
		if time.Now().After(deadline) {
			t.Fatalf("after the context ended: %d inotify descriptors (want %d), %d goroutines (want fewer than %d)",
				inotifyDescriptors(t), before, runtime.NumGoroutine(), goroutines)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reports.Drain() {
		t.Fatal("a drain after the context ended took reports")
	}
}

// inotifyDescriptors counts this process's open inotify descriptors.
func inotifyDescriptors(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == "anon_inode:inotify" {
			n++
		}
	}
	return n
}
