package store

import "context"

// ChangeReports is the kernel's report of writes to the file: a commit by
// this process (a registration through the API, a merge of replicated
// changes) or by another one (the sqlite3 CLI, a second proxy), a
// checkpoint, the file being replaced. It lets a follower of the file
// sleep instead of polling it.
//
// C receives a signal when a write is reported, and then none until the
// follower calls Drain, just before it looks at the file. The writes of a
// commit that come in between are reported once, at the Drain: one commit
// is several writes, and a busy file many commits, so a follower that is
// waiting to look anyway is not woken by every one of them.
//
// A signal can come before the commit it reports is visible: the kernel
// reports the write of the WAL, and readers see the commit only once the
// WAL index is updated, after a sync of the WAL where the writer uses
// synchronous=FULL. A follower therefore confirms with a cheap read
// (DBVersion, or a VersionReader, which also tells whether some commit
// became visible) and, when that shows nothing new, looks again a few
// times shortly after.
type ChangeReports struct {
	// C holds one pending signal and is never closed; signals stop when
	// the context given to NotifyChanges ends.
	C <-chan struct{}
	// drain takes the kernel's reports since the last drain and arms the
	// next signal; nil where the signals come from elsewhere (a test).
	drain func() bool
}

// Drain takes the reports made so far, pending on C or not, and arms C for
// the next write. It reports whether there were any. Call it from one
// goroutine, right before a look at the file: the writes it took are of
// commits the look sees or, where a look finds nothing new, the follow-up
// looks do.
func (r *ChangeReports) Drain() bool {
	pending := false
	select {
	case <-r.C:
		pending = true
	default:
	}
	if r.drain != nil && r.drain() {
		pending = true
	}
	return pending
}

// NotifyChanges returns the kernel's reports of writes to the file, until
// ctx ends. Where the kernel does not report changes to files it returns an
// error, and the caller polls.
func (s *Store) NotifyChanges(ctx context.Context) (*ChangeReports, error) {
	return notifyChanges(ctx, s.path)
}
