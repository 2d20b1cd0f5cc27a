package cluster

import (
	"time"
)

// gcLoop forgets tombstones every member has seen (of both clusters, on a
// bridge): only when the vector of every member not known to have left is
// at hand.
func (n *Node) gcLoop() {
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if n.secondary.Load() {
			continue
		}
		before := time.Now().Add(-n.cfg.TombstoneAge)
		// Most rounds have nothing old enough to forget; gathering every
		// member's vector (a thousand entries each, at a thousand POPs)
		// would be the round's whole cost.
		if old, err := n.st.HasTombstonesBefore(n.ctx, before); err != nil || !old {
			continue
		}
		seen, err := n.st.Vector(n.ctx)
		if err != nil {
			continue
		}
		if !n.collectSeen(seen) {
			continue
		}
		if b := n.sibling.Load(); b != nil && !b.collectSeen(seen) {
			continue
		}
		k, err := n.st.CollectTombstones(n.ctx, seen, before)
		if err != nil {
			n.log.Error("cluster: collecting tombstones", "error", err)
			continue
		}
		if k > 0 {
			n.Stats.TombstonesGC.Add(uint64(k))
			n.log.Info("cluster: tombstones collected", "count", k)
		}
	}
}
