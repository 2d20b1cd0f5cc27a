package store

import "context"

// NotifyChanges signals on the returned channel whenever the file may have
// changed: a commit by this process (a registration through the API, a
// merge of replicated changes) or by another one (the sqlite3 CLI, a
// second proxy), a checkpoint, the file being replaced. It lets a follower
// of the file sleep instead of polling it.
//
// A signal can come before the commit it reports is visible: the kernel
// reports the write of the WAL, and readers see the commit only once the
// WAL index is updated, after a sync of the WAL where the writer uses
// synchronous=FULL. A caller therefore confirms with a cheap read
// (DBVersion, or a VersionReader, which also tells whether some commit
// became visible) and, when that shows nothing new, looks again a few
// times shortly after. The channel holds one pending signal and is never
// closed; signals stop when ctx ends. Where the kernel does not report
// changes to files it returns an error, and the caller polls.
func (s *Store) NotifyChanges(ctx context.Context) (<-chan struct{}, error) {
	return notifyChanges(ctx, s.path)
}
