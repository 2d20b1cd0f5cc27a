package cluster

import (
	"errors"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// Past a few hundred POPs one cluster spends more on membership than on
// replication: memberlist gossips every join, suspicion and death to every
// member, and each commit is pushed to every member. Regional clusters
// keep both to a region. A few POPs of each region are bridges: each runs
// a second node, in a global cluster of bridges, on the same file. What a
// bridge merges from one of its clusters it relays at once to every member
// of the other, so a commit crosses the world in three hops (origin to its
// region, a bridge to the other bridges, each bridge to its region)
// instead of one, and each member still gets it pushed, not gossiped.
//
// A relayed change is merged like a push: members acknowledge it to the
// bridge that relayed it, which keeps anti-entropy at rest, and do not
// forward it (the bridge sent it to every live member). Changes a member
// already holds are dropped before the merge, so the copies that several
// bridges of a region relay cost a trim, and a change relayed back to a
// bridge that holds it ends there. Anti-entropy runs in each cluster
// unchanged: what a bridge missed from one side reaches the other side
// through its vector like any change of its file.

// Bridge makes a and b, two nodes on one file, a in its region's cluster
// and b in the global cluster of bridges, relay to each other's cluster
// what they merge from their own. Tombstones are then collected by a
// alone, once every POP of every region has them (floor.go).
func Bridge(a, b *Node) error {
	if a == b || a.st != b.st {
		return errors.New("cluster: a bridge joins two nodes that replicate the same file")
	}
	if a.cfg.Cluster == b.cfg.Cluster {
		return errors.New("cluster: a bridge joins two clusters with different labels")
	}
	a.sibling.Store(b)
	b.sibling.Store(a)
	b.secondary.Store(true)
	// a's metadata now names it a bridge; tell its region.
	if err := a.ml.UpdateNode(2 * time.Second); err != nil {
		a.log.Debug("cluster: bridge metadata not yet broadcast; it spreads with membership", "error", err)
	}
	a.log.Info("cluster: bridging", "to", b.cfg.Cluster, "as", b.cfg.Name)
	b.log.Info("cluster: bridging", "to", a.cfg.Cluster, "as", a.cfg.Name)
	return nil
}

// relay sends every live member segments that the bridge's other node
// has just merged into the file.
func (n *Node) relay(segs []store.Segment) {
	// The merge was the other node's: this one's view of the file is
	// stale, and anti-entropy compares again.
	n.fileChanged()
	to := n.alive()
	if len(to) == 0 {
		return
	}
	var changes int
	for _, s := range segs {
		changes += len(s.Changes)
	}
	n.Stats.ChangesRelayed.Add(uint64(changes))
	n.sendPacked(to, segs, func(batch []store.Segment) []byte { return encodeRelay(n.cfg.Name, batch) })
}
