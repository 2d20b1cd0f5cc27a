package store

import (
	"sync/atomic"
	"time"
)

// WatchStats counts how a Watcher took its snapshots, for metrics: whether
// each followed the change journal (the rows that changed) or read the
// whole table, and what that cost. A POP whose snapshots keep coming from
// whole reads pays for the whole table at every change (a file without a
// journal, or schema changes), which at 100,000 backends is a second of CPU
// each. The counts only grow; read them at any time.
type WatchStats struct {
	// Followed counts snapshots that read only the rows the journal
	// named, and FollowedRows those rows (backends and health rows).
	Followed     atomic.Uint64
	FollowedRows atomic.Uint64
	// Whole counts snapshots that read the whole table: the first, and
	// any the journal could not account for.
	Whole atomic.Uint64
	// FollowedTime and WholeTime are the nanoseconds those reads took,
	// up to the next table built (not its delivery).
	FollowedTime atomic.Int64
	WholeTime    atomic.Int64
	// Looks counts the watcher's own looks at the file for commits
	// (data_version and the journal's position): one per safety poll,
	// and one per commit it is told of by the Go reports. Where the
	// commit watch runs (Linux), its thread looks instead: a commit to
	// nothing a snapshot holds is not signalled, and one that is comes
	// with the position to follow to (except where the view reads the
	// whole table).
	Looks atomic.Uint64
	// ReadAhead counts the followed snapshots whose rows the commit
	// watch's thread read at its signal: the watcher's goroutine made no
	// call into SQLite for them.
	ReadAhead atomic.Uint64
}

// look counts one look at the file.
func (st *WatchStats) look() {
	if st != nil {
		st.Looks.Add(1)
	}
}

// count adds one snapshot, read as d says in took.
func (st *WatchStats) count(d Delta, took time.Duration) {
	if st == nil {
		return
	}
	if d.Full {
		st.Whole.Add(1)
		st.WholeTime.Add(int64(took))
		return
	}
	st.Followed.Add(1)
	st.FollowedRows.Add(uint64(len(d.Backends) + len(d.Health)))
	st.FollowedTime.Add(int64(took))
}

// WatchRead is one way of reading snapshots, as metrics label it: Read is
// "changes" (the rows the journal named) or "whole" (the whole table).
type WatchRead struct {
	Read      string
	Snapshots uint64
	Seconds   float64
}

// Reads returns the snapshots and the seconds spent reading them, by how
// they were read.
func (st *WatchStats) Reads() [2]WatchRead {
	return [2]WatchRead{
		{"changes", st.Followed.Load(), time.Duration(st.FollowedTime.Load()).Seconds()},
		{"whole", st.Whole.Load(), time.Duration(st.WholeTime.Load()).Seconds()},
	}
}
