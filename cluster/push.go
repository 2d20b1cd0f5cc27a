package cluster

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// commitReports is the kernel's report of writes to the node's file; a
// test swaps it to deliver a report before the commit is visible, as a
// slow sync does.
var commitReports = (*store.Store).NotifyChanges

// pushLoop sends every local commit to all members as soon as it is
// visible. Where the kernel reports changes to the file, it sleeps until
// one is reported (a commit by this process or any other), confirms it
// with a read of the local version and, when that shows nothing yet, looks
// again after 1, 2, 4, ... 256 ms; it also checks every PushSafetyPoll.
// Elsewhere it checks every PushPoll. notify is commitReports.
func (n *Node) pushLoop(notify func(*store.Store, context.Context) (*store.ChangeReports, error)) {
	reports, err := notify(n.st, n.ctx)
	poll := n.cfg.PushSafetyPoll
	if err != nil {
		reports = &store.ChangeReports{} // never signals
		poll = n.cfg.PushPoll
		lvl := slog.LevelDebug
		if runtime.GOOS == "linux" {
			// Expected to work here (out of inotify watches?): the poll
			// costs a few percent of a core.
			lvl = slog.LevelWarn
		}
		n.log.Log(n.ctx, lvl, "cluster: changes to the file are not reported; polling it", "every", poll, "error", err)
	}
	versions := n.st.VersionReader()
	defer versions.Close()
	start, err := versions.Read(n.ctx)
	seen, last := start.Data, start.Own
	if err != nil {
		n.log.Error("cluster: reading the local version", "error", err)
	}
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	var wait time.Duration // next settle delay; 0 when not settling
	var settleAt time.Time // when settle fires, while it is armed
	arm := func(d time.Duration) {
		settle.Reset(d)
		settleAt = time.Now().Add(d)
	}
	// explained: since the last report some commit became visible (moved
	// data_version); the report may have been of it.
	explained := false
	for {
		reported := false
		select {
		case <-n.ctx.Done():
			return
		case <-ticker.C:
		case <-reports.C:
			if explained && !settleAt.IsZero() && time.Until(settleAt) <= settleFirst {
				// Just after a look that found a commit (a merge, most
				// often), of which this may report the last writes: the
				// look due within a millisecond covers it, and drains
				// the report.
				continue
			}
			reported, wait, explained = true, settleFirst, false
		case <-settle.C:
			reported, settleAt = true, time.Time{}
		}
		// Not during a merge of this node's (merge): the look waits for
		// the vector the merge leaves, and finds it the file's.
		n.mergeMu.Lock()
		// A report that came meanwhile (the rest of a commit's writes,
		// the merge waited for) is of writes made before this look.
		if reports.Drain() && !reported {
			reported, wait, explained = true, settleFirst, false
		}
		read, err := versions.Read(n.ctx)
		data, v := read.Data, read.Own
		switch {
		case err == nil && (reported || v > last):
			// Whatever changed (a commit, a merge, an external edit),
			// anti-entropy compares again. After the read: a vector read
			// meanwhile may predate the change, and is read again.
			n.looked(read)
		case reported:
			n.fileChanged()
		}
		n.mergeMu.Unlock()
		if err != nil || v <= last {
			// Nothing to push. Look again shortly while the report may be
			// of a commit not visible yet, backing off. A look that finds
			// nothing new after one that found a commit (a merge, which
			// moves data_version alone) has most likely explained the
			// report: one last look, at the end of the series, is for a
			// local commit that became visible after the merge (a writer
			// syncing the WAL first), and costs a merge three looks in
			// all, not nine.
			done := explained && data == seen
			explained = explained || data != seen
			seen = data
			switch {
			case err != nil || wait == 0 || wait > settleLast:
				wait = 0
			case done:
				arm(settleLast)
				wait = 2 * settleLast // after this look, none
			default:
				arm(wait)
				wait *= 2
			}
			continue
		}
		seen = data
		wait = 0
		ch, err := n.st.ChangesSince(n.ctx, n.st.SiteID(), last, v)
		if err != nil {
			n.log.Error("cluster: reading local changes", "error", err)
			continue
		}
		if to := n.alive(); len(to) > 0 {
			b := n.sendSegments(to, []store.Segment{{Origin: n.st.SiteID(), From: last, To: v, Changes: ch}})
			n.Stats.BytesPushed.Add(uint64(b))
			n.Stats.Pushes.Add(1)
		}
		last = v
	}
}
