package store

import (
	"context"
	"errors"
	"time"
)

// commitReports signals the commits to the file that a follower has to read,
// once they are visible: the commits that moved the change journal, or
// every commit where the follower asks for every one (its view does not
// follow the journal) or the file has no journal.
//
// Where a Watcher has it (Linux), a commit to anything a snapshot does not
// hold (heartbeats, leases, the replicator's bookkeeping, an operator's own
// tables) wakes no goroutine of the process: a thread outside the Go runtime
// waits for the kernel's reports, waits for the commit to be visible and
// looks, at about a third of what the same wake and look cost in Go. At a
// commit that moved the journal it also reads the entries and the backend
// rows they name, for the follower to take from memory.
type commitReports struct {
	// wait blocks until the thread signals a commit or kick is called,
	// and takes the signals made so far: many are one.
	wait func()
	// kick makes wait return, for a look asked for by anything else (a
	// timer, the replicator); a no-op once stopped.
	kick func()
	// every asks for every commit (true) or only those that moved the
	// journal's position (false).
	every func(bool)
	// told returns the journal's position the thread's last signal was
	// for, as its look read it; false where it had none.
	told func() (journalPos, bool)
	// ahead takes what the thread read ahead at its last signal, if it
	// holds a read not taken yet (held), with no call into C: a cgo call
	// wakes the runtime's monitor thread, which then polls while the
	// process is busy, for about a sixth of what an edit costs a quiet
	// process. behind is true when a later signal found the read not yet
	// taken and read nothing: the position told is then further on.
	ahead func() (a readAhead, held, behind bool)
	// rows sets the statement the thread reads the journal's backend rows
	// ahead with ("" for none): the view's own, by ID.
	rows func(query string)
	// stop ends the reports; every, wait, told, ahead and rows must not
	// be called after.
	stop func()
}

// readAhead is what moved the journal from from to to, as the commit
// watch's thread read it for the follower: the entries' tables and keys,
// and the backend rows they name, each once. complete is false where the
// follower has to read them itself (another table's entries, a value of
// another type than the follower reads, too many entries).
type readAhead struct {
	complete bool
	from, to journalPos
	entries  []aheadEntry
	rows     []backendRow
}

type aheadEntry struct {
	table string // "backends" or "health"
	key   string
}

// changes is what the entries name, as readJournal says it.
func (a readAhead) changes() journalChanges {
	var ch journalChanges
	seen := make(map[string]bool, len(a.entries))
	for _, e := range a.entries {
		ch.add(seen, e.table, e.key)
	}
	return ch
}

// kickOn kicks for each tick and each wake until ctx ends, and once when it
// ends: the watcher waiting on the reports looks, or returns.
func (r *commitReports) kickOn(ctx context.Context, tick <-chan time.Time, wake <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			r.kick()
			return
		case <-tick:
		case <-wake:
		}
		r.kick()
	}
}

// errNoCommitWatch is where there is none to start: the file is polled, as
// documented, and nothing is worth a warning.
var errNoCommitWatch = errors.New("no commit watch on this platform")

// commitNotifier starts the commit reports of the file at path, looked at
// with pollJournalQuery; a test swaps it for the Go reports alone.
var commitNotifier = notifyCommits
