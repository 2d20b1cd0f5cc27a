package cluster

import (
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// gcLoop forgets, every GCInterval, the tombstones older than
// TombstoneAge that every POP holds: every member of this node's cluster
// (of both clusters, on a bridge) and, in regional clusters, every POP of
// the other regions, as the bridges' floors tell (floor.go). It waits
// while the vector of some member not known to have left is not at hand.
func (n *Node) gcLoop() {
	t := time.NewTicker(n.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.secondary.Load() {
			n.collectTombstones()
		}
	}
}

func (n *Node) collectTombstones() {
	before := time.Now().Add(-n.cfg.TombstoneAge)
	// Most rounds find no tombstone old enough, and end here: gathering
	// every member's vector (a thousand entries each, at a thousand POPs)
	// would be the round's whole cost.
	sites, err := n.st.TombstoneSites(n.ctx, before)
	if err != nil || len(sites) == 0 {
		n.keptBecause("")
		return
	}
	vec, err := n.st.Vector(n.ctx)
	if err != nil {
		return
	}
	seen := make(store.Vector, len(sites))
	for _, s := range sites {
		seen[s] = vec[s]
	}
	kept := n.lowerToFloor(seen)
	n.keptBecause(kept)
	if kept != "" {
		return
	}
	k, err := n.st.CollectTombstones(n.ctx, seen, before)
	if err != nil {
		n.log.Error("cluster: collecting tombstones", "error", err)
		return
	}
	if k > 0 {
		n.Stats.TombstonesGC.Add(uint64(k))
		n.log.Info("cluster: tombstones collected", "count", k)
	}
}

// keptBecause records why the last round that found old tombstones could
// not collect any ("" once a round could, or found none), for Status, and
// logs a new reason.
func (n *Node) keptBecause(why string) {
	n.mu.Lock()
	changed := n.tombstonesKept != why
	n.tombstonesKept = why
	n.mu.Unlock()
	if changed && why != "" {
		n.log.Info("cluster: old tombstones kept", "because", why)
	}
}
