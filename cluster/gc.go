package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// gcLoop forgets tombstones every member has seen: only when the vector of
// every member not known to have left is at hand.
func (n *Node) gcLoop() {
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		seen, err := n.st.Vector(n.ctx)
		if err != nil {
			continue
		}
		complete := true
		n.mu.Lock()
		for _, p := range n.known {
			if p.state == memberlist.StateLeft {
				continue
			}
			if p.vector == nil {
				complete = false
				break
			}
			for site, v := range seen {
				seen[site] = min(v, p.vector[site])
			}
		}
		n.mu.Unlock()
		if !complete {
			continue
		}
		k, err := n.st.CollectTombstones(n.ctx, seen, time.Now().Add(-n.cfg.TombstoneAge))
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
