package store

import (
	"context"
	"errors"
	"fmt"
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

// Watcher reports a new snapshot whenever the rows a snapshot holds
// (backends, pops, health) change.
//
// Where the kernel reports changes to the file (Linux), a commit by any
// process is read at once; the file is also polled every second. The
// reports are taken by the commit watch's thread (commits.go), which wakes
// the watcher only for commits to what a snapshot holds, and reads the
// rows an edit wrote for it: the watcher's goroutine makes no call into C
// for an edit that comes alone. Elsewhere
// it is polled every Interval. A file with a change journal (journal.go)
// is followed row by row: a commit costs the rows it wrote. Snapshots
// follow each other at most once per Interval while commits keep coming,
// or, with the default Interval, once per followGap where the journal is
// followed and once per DefaultWatchInterval where the whole table is read
// (no journal, or one that cannot account for a change).
type Watcher struct {
	// Interval between data_version polls where changes are not
	// reported, and the least time between two reloads of the table
	// where they are. If zero: DefaultWatchInterval, and followGap
	// between snapshots that follow the journal.
	Interval time.Duration
	// OnTable receives every new snapshot with its load warnings.
	OnTable func(t *routing.Table, warnings []string)
	// OnDelta, if set, receives every new snapshot instead of OnTable,
	// with what changed since the one before.
	OnDelta func(t *routing.Table, d Delta, warnings []string)
	// OnError receives failures to read the file. The last good snapshot
	// stays in use; the watcher keeps trying.
	OnError func(err error)
	// OnSlowerFollow, if set, receives why the commit watch did not
	// start where the kernel reports writes: the watcher then wakes and
	// looks at every write to the file (or polls it every Interval when
	// no report can be had either), which costs the process about twice
	// the CPU per commit and a look per commit to any table.
	OnSlowerFollow func(err error)
	// Wake, if set, makes the watcher poll at once: the replicator sends
	// on it after merging, so a replicated change routes without waiting
	// for the next interval.
	Wake <-chan struct{}
	// From, if set, is the table the caller already holds, from this
	// store's last Snapshot: the watcher follows on from it, with no
	// baseline, and its first delivery is the first change since (a
	// whole second read of a large table saved at start). Any other
	// table is ignored.
	From *routing.Table
	// Stats, if set, counts the snapshots and how they were read.
	Stats *WatchStats
}

// slower tells the caller why commits cost more to follow than they would.
func (w Watcher) slower(err error) {
	if w.OnSlowerFollow != nil {
		w.OnSlowerFollow(err)
	}
}

// Watch follows the file until ctx ends. Its first delivery, made at once,
// is a baseline, normally the table the caller already has: take that with
// Snapshot before calling Watch, so configuration errors surface at load
// time, and name it in From to be spared the baseline.
func (s *Store) Watch(ctx context.Context, w Watcher) {
	interval, following := w.Interval, w.Interval
	if interval <= 0 {
		interval, following = DefaultWatchInterval, followGap
	}
	f := follower{s: s, w: w, last: -1}
	// The commits, where the kernel reports writes to the file: visible
	// and worth a look, from the commit watch's thread, or every write
	// from the Go reports where that thread cannot run. Elsewhere the
	// file is polled.
	poll := interval
	reports := &ChangeReports{} // never signals
	cr, err := commitNotifier(s.path, pollJournalQuery)
	if err == nil {
		defer cr.stop()
		f.commits = cr
		poll = max(interval, watchSafetyPoll)
	} else if r, rerr := changeNotifier(ctx, s.path); rerr == nil {
		reports = r
		poll = max(interval, watchSafetyPoll)
		w.slower(fmt.Errorf("commit watch: %w; following the kernel's report of every write instead", err))
	} else if !errors.Is(err, errNoCommitWatch) {
		w.slower(fmt.Errorf("commit watch: %w; reports of writes: %v; polling the file every %v instead", err, rerr, interval))
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	var (
		check  *time.Timer // the baseline, then the looks put off
		checkC <-chan time.Time
	)
	if cr != nil {
		// The watcher waits on the commit watch's eventfd itself, and
		// everything else that calls for a look writes to it: handing
		// each commit from a goroutine that waits to one that looks
		// costs a wake-up of another thread, which with the look's
		// cgo calls was most of what an edit cost a quiet process.
		check = time.AfterFunc(0, cr.kick)
		go cr.kickOn(ctx, ticker.C, w.Wake)
	} else {
		check = time.NewTimer(0)
		checkC = check.C
	}
	defer check.Stop()

	// The looks at the file are short statements, and the loop ends with
	// ctx between them. A cancellable context costs database/sql a
	// goroutine per query to watch it, and waking it: more than the
	// statement itself, at every commit to the file.
	qctx := context.WithoutCancel(ctx)
	if w.From != nil {
		// The snapshot's view is taken by one watcher only: a follower
		// updates its view's maps in place.
		if v := s.snapView.Load(); v != nil && v.table == w.From && s.snapView.CompareAndSwap(v, nil) {
			f.view = v
		}
	}
	defer f.close()
	var (
		lastLook time.Time // the last look at the rows after a commit; zero until after the baseline, which must not hold back the first commit
		baseline = true
		settle   time.Duration
		checkAt  time.Time // when check fires, if armed
	)
	arm := func(d time.Duration) {
		at := time.Now().Add(d)
		if checkAt.IsZero() || at.Before(checkAt) {
			check.Reset(d)
			checkAt = at
		}
	}
	for {
		if cr != nil {
			// A commit visible already, and of rows the view follows,
			// or any other call for a look.
			cr.wait()
			if ctx.Err() != nil {
				return
			}
			if !checkAt.IsZero() && !time.Now().Before(checkAt) {
				checkAt = time.Time{} // fired, or about to: an extra look at most
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
			case <-w.Wake:
			case <-checkC:
				checkAt = time.Time{}
			case <-reports.C:
				// One commit is many writes (each page of the WAL, then
				// the commit frame), visible only once the last is done:
				// look once, shortly after the first report. The rest
				// wait in the kernel until the look drains them.
				settle = settleFirst
				arm(coalesceReports)
				continue
			}
		}
		reports.Drain()
		moved, ok := f.moved(qctx)
		if !ok {
			continue
		}
		if !moved {
			// The kernel reports a commit's WAL write before the commit
			// is visible; a writer with synchronous=FULL syncs the WAL
			// in between. Look again shortly, backing off.
			if settle > 0 && settle <= settleLast {
				arm(settle)
				settle *= 2
			}
			continue
		}
		settle = 0
		// Commits in a burst each report a change: read the table at
		// most once per interval meanwhile, or look at the journal at
		// most once per followGap where only the changed rows are read
		// (whether or not the last look found rows to read: a stream of
		// heartbeats is commits too).
		gap := interval
		if f.view != nil && f.view.journal {
			gap = following
			if w.Interval <= 0 && f.batch >= paceAbove {
				// Under a stream of commits (its last snapshot
				// followed many rows) the follower takes at most
				// about a quarter of a core: it waits three times as
				// long as that snapshot took, and reads more per
				// snapshot, but never longer than the interval.
				// Edits that come one by one are followed at once.
				gap = min(interval, max(following, 3*f.cost))
			}
		}
		if wait := gap - time.Since(lastLook); !lastLook.IsZero() && wait > 0 {
			arm(wait)
			continue
		}
		journaled := f.view != nil && f.view.journal
		if f.reload(qctx) || journaled {
			if !baseline {
				lastLook = time.Now()
			}
		}
		f.tellCommits()
		baseline = false
		if !s.readOnly && time.Since(f.pruned) >= journalPrunePeriod {
			// A failed prune is tried again next period; the journal
			// only grows meanwhile.
			f.pruned = time.Now()
			s.pruneJournal(ctx)
		}
	}
}

// followGap is the least time between two snapshots that follow the
// journal: a burst of commits (registrations at thousands a second) is
// read in batches, which spares the snapshot's consumers, while a lone
// edit routes at once.
const followGap = 5 * time.Millisecond

// paceAbove is how many rows one followed snapshot must have read for the
// follower to pace itself: a stream of commits, not edits one by one.
const paceAbove = 8

// journalPrunePeriod is how often the writing proxy trims the journal.
const journalPrunePeriod = 10 * time.Second

// changeNotifier is the kernel's report of writes to the file; a test
// swaps it to deliver a report early, as a slow sync does.
var changeNotifier = notifyChanges

// coalesceReports is how long after the kernel's first report of a write
// the file is looked at: the writes of one commit come within it.
const coalesceReports = time.Millisecond

// A notification that shows no new commit is looked at again after 2, 4,
// ... 256 ms: half a second in all, past a slow disk's sync.
const (
	settleFirst = 2 * time.Millisecond
	settleLast  = 256 * time.Millisecond
)

// follower reads data_version on one connection, since the counter is per
// connection, and reloads the table when it moves. The connection is
// reopened only after an error.
type follower struct {
	s       *Store
	w       Watcher
	conn    *readConn
	pos     journalPos // the journal's position at the last look, when posOK
	posOK   bool
	last    int64          // data_version at the last reload; -1 forces one
	seen    int64          // data_version at the last look
	failing string         // the last error reported, so a lasting fault is logged once
	view    *view          // what the last snapshot was read from; nil: read everything
	commits *commitReports // nil: the Go reports, or none
	ahead   *readAhead     // what the commit watch read up to pos, when moved found it
	rowsFor string         // the row statement the commit watch reads ahead with
	cost    time.Duration  // how long the last followed snapshot took to read and deliver
	batch   int            // how many rows it followed
	pruned  time.Time
}

// moved reports whether the file has changed since the last reload, or a
// failure is still to be cleared. ok is false after an error, which has
// been reported.
func (f *follower) moved(ctx context.Context) (moved, ok bool) {
	if f.conn == nil {
		c, err := f.s.openReadConn(ctx)
		if err != nil {
			f.report(f.s.wrap(err))
			return false, false
		}
		f.conn, f.last = c, -1
	}
	f.posOK, f.ahead = false, nil
	if f.commits != nil {
		// The thread read what moved the journal from the view's
		// position: followed without a call into C.
		a, held, behind := f.commits.ahead()
		if held && a.complete && f.view != nil && f.view.journal && a.from == f.view.pos && a.to.after(a.from) {
			f.pos, f.posOK, f.ahead = a.to, true, &a
			if behind {
				f.commits.kick() // the commits since: a look after this one
			}
			return true, true
		}
	}
	if f.commits != nil && f.view != nil && f.view.journal {
		// The commit watch's thread has looked: a position it read
		// further along the view's journal is followed to without a
		// look here. data_version is left for the next look.
		if pos, ok := f.commits.told(); ok && pos.after(f.view.pos) {
			f.pos, f.posOK = pos, true
			return true, true
		}
	}
	f.w.Stats.look()
	if f.view != nil && f.view.journal && f.pollJournal(ctx) {
		return f.seen != f.last || f.failing != "", true
	}
	// Prepared once: a busy file is looked at hundreds of times a second
	// (every write of a commit reports a change).
	st, err := f.conn.prepared(ctx, "PRAGMA data_version")
	if err == nil {
		err = st.QueryRowContext(ctx).Scan(&f.seen)
	}
	if err != nil {
		f.drop()
		f.report(f.s.wrap(err))
		return false, false
	}
	return f.seen != f.last || f.failing != "", true
}

// pollJournalQuery is PRAGMA data_version and the journal's position
// (journalPosQuery) in one statement: one look tells whether anything was
// committed and whether it was anything a snapshot holds.
const pollJournalQuery = `SELECT (SELECT data_version FROM pragma_data_version), (SELECT v FROM crdt_meta WHERE k = 'journal'),
		(SELECT schema_version FROM pragma_schema_version), COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'crdt_journal'), 0)`

// pollJournal looks at data_version and the journal's position at once,
// for a view that follows the journal. false: it could not (the journal
// gone, say), and the caller looks at data_version alone.
func (f *follower) pollJournal(ctx context.Context) bool {
	st, err := f.conn.prepared(ctx, pollJournalQuery)
	if err != nil {
		return false
	}
	var id *string
	if err := st.QueryRowContext(ctx).Scan(&f.seen, &id, &f.pos.schema, &f.pos.n); err != nil || id == nil {
		return false
	}
	f.pos.id, f.posOK = *id, true
	return true
}

// reload reads and delivers the table, reporting whether it delivered a
// new snapshot: none when the commits since the last one wrote nothing a
// snapshot holds (heartbeats, leases, the replicator's bookkeeping).
func (f *follower) reload(ctx context.Context) bool {
	start := time.Now()
	// The look read the journal's position, and the view follows it.
	looked := f.view != nil && f.view.journal && f.posOK
	if looked && f.pos == f.view.pos {
		// The commits since wrote nothing a snapshot holds.
		f.last, f.failing = f.seen, ""
		return false
	}
	var (
		v   *view
		d   Delta
		err error
	)
	if looked {
		ok := false
		if f.ahead != nil {
			if v, d, ok = f.s.followAhead(f.view, *f.ahead); ok && f.w.Stats != nil {
				f.w.Stats.ReadAhead.Add(1)
			}
		}
		if !ok {
			v, d, err = f.conn.followTo(ctx, f.view, f.pos)
		}
	} else {
		v, d, err = f.conn.follow(ctx, f.view)
	}
	if err != nil {
		f.view = nil // half followed: start again from the whole table
		f.drop()
		f.report(err)
		return false
	}
	f.last, f.failing = f.seen, ""
	if v == nil {
		return false
	}
	f.view = v
	f.w.Stats.count(d, time.Since(start))
	switch {
	case f.w.OnDelta != nil:
		f.w.OnDelta(v.table, d, v.warningList())
	case f.w.OnTable != nil:
		f.w.OnTable(v.table, v.warningList())
	}
	if !d.Full {
		// A whole read is paced by the interval; only following
		// sets the pace of following.
		f.cost, f.batch = time.Since(start), len(d.Backends)+len(d.Health)
	}
	return true
}

// tellCommits tells the commit watch which commits the view needs: those
// that moved the journal where it follows the journal, every one where it
// reads the whole table; and how the view reads a backend row, for the
// thread to read the changed ones ahead.
func (f *follower) tellCommits() {
	if f.commits != nil {
		f.commits.every(f.view == nil || !f.view.journal)
		rows := ""
		if f.view != nil && f.view.journal {
			rows = f.view.query + rowByID
		}
		if rows != f.rowsFor {
			f.commits.rows(rows)
			f.rowsFor = rows
		}
	}
}

func (f *follower) close() {
	if f.conn != nil {
		f.conn.close(false)
		f.conn = nil
	}
}

// drop closes the connection after an error, which may have left a read
// open on it.
func (f *follower) drop() {
	if f.conn != nil {
		f.conn.close(true)
		f.conn = nil
	}
}

func (f *follower) report(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	msg := err.Error()
	if msg == f.failing {
		return
	}
	f.failing = msg
	if f.w.OnError != nil {
		f.w.OnError(err)
	}
}
