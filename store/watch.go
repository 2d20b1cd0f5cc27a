package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// DefaultWatchInterval keeps a commit routing within the 200 ms promise with
// room to spare where the file cannot be watched for changes; one poll is a
// read of an in-memory counter.
const DefaultWatchInterval = 50 * time.Millisecond

// watchSafetyPoll is how often the file is polled anyway when the kernel
// reports its changes: a safety net for changes it would not report (a
// writer on another host of a network filesystem, which SQLite does not
// support in any case).
const watchSafetyPoll = time.Second

// Watcher reports a new snapshot whenever the file changes.
//
// Where the kernel reports changes to the file (Linux), a commit by any
// process is read at once, and at most once per Interval while commits
// keep coming; the file is also polled every second. Elsewhere it is
// polled every Interval.
type Watcher struct {
	// Interval between data_version polls where changes are not
	// reported, and the least time between two reloads of the table
	// where they are; DefaultWatchInterval if zero.
	Interval time.Duration
	// OnTable receives every new snapshot with its load warnings.
	OnTable func(t *routing.Table, warnings []string)
	// OnError receives failures to read the file. The last good snapshot
	// stays in use; the watcher keeps trying.
	OnError func(err error)
	// Wake, if set, makes the watcher poll at once: the replicator sends
	// on it after merging, so a replicated change routes without waiting
	// for the next interval.
	Wake <-chan struct{}
}

// Watch follows the file until ctx ends. It does not deliver the initial
// snapshot: take that with Snapshot before calling Watch, so configuration
// errors surface at load time.
func (s *Store) Watch(ctx context.Context, w Watcher) {
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultWatchInterval
	}
	poll := interval
	changed, err := notifyChanges(ctx, s.path)
	if err == nil {
		poll = max(interval, watchSafetyPoll)
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	var lastPoll time.Time

	var (
		conn    *sql.Conn
		last    int64  = -1
		failing string // the last error reported, so a lasting fault is logged once
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-w.Wake:
		case <-changed:
			// Commits in a burst each report a change: read the table
			// at most once per interval meanwhile.
			if wait := interval - time.Since(lastPoll); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		}
		lastPoll = time.Now()
		// data_version is per connection, so every poll must use the
		// same one; it is reopened only after an error.
		if conn == nil {
			c, err := s.db.Conn(ctx)
			if err != nil {
				s.report(w, &failing, s.wrap(err))
				continue
			}
			conn, last = c, -1
		}
		var v int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
			conn.Close()
			conn = nil
			s.report(w, &failing, s.wrap(err))
			continue
		}
		if v == last && failing == "" {
			continue
		}
		t, warnings, err := s.Snapshot(ctx)
		if err != nil {
			s.report(w, &failing, err)
			continue
		}
		last, failing = v, ""
		if w.OnTable != nil {
			w.OnTable(t, warnings)
		}
	}
}

func (s *Store) report(w Watcher, failing *string, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	msg := err.Error()
	if msg == *failing {
		return
	}
	*failing = msg
	if w.OnError != nil {
		w.OnError(err)
	}
}
