package store

// commitReports signals the commits to the file that a follower has to read,
// once they are visible: the commits that moved the change journal, or
// every commit where the follower asks for every one (its view does not
// follow the journal) or the file has no journal.
//
// Where a Watcher has it (Linux), a commit to anything a snapshot does not
// hold (heartbeats, leases, the replicator's bookkeeping, an operator's own
// tables) wakes no goroutine of the process: a thread outside the Go runtime
// waits for the kernel's reports, waits for the commit to be visible and
// looks, at about a third of what the same wake and look cost in Go.
type commitReports struct {
	// C holds one pending signal and is never closed.
	C <-chan struct{}
	// every asks for every commit (true) or only those that moved the
	// journal's position (false).
	every func(bool)
	// stop ends the reports; every must not be called after.
	stop func()
}

// commitNotifier starts the commit reports of the file at path, looked at
// with pollJournalQuery; a test swaps it for the Go reports alone.
var commitNotifier = notifyCommits
