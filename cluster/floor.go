package cluster

import (
	"github.com/hashicorp/memberlist"
	"maps"

	"github.com/edgeproxy/edgeproxy/store"
)

// A tombstone may be forgotten only once every POP holds it: a POP that
// lacks the delete and still writes to the row would otherwise bring the
// row back, on the POPs that forgot it, when its writes arrive. In one
// cluster every member knows every other's vector. In regional clusters a
// POP knows its region only, so the bridges pass floors: per site of an
// old tombstone, the lowest version the POPs a floor covers hold.
//
//   - A bridge sends the global cluster its region's floor, taken from the
//     vectors of its region's members alone.
//   - A bridge takes the floor of every region from the region floors the
//     other bridges sent and the global members' own vectors, and sends it
//     to its region, where a POP that is no bridge lowers what it may
//     forget to it.
//
// A region floor never includes a global floor, so no floor feeds back
// into itself: a floor that did could never rise again. A floor is a
// lower bound once computed (vectors only grow), so the last one heard
// stays usable; a member that is cut off keeps the floor it sent last,
// and with it every tombstone it lacked, until it comes back or leaves.
// Floors travel only in rounds that find old tombstones, and name only
// their sites.

// lowerToFloor lowers seen (this node's versions of the sites of old
// tombstones) to what every POP holds, as far as this node can tell, and
// says why when it cannot tell (then nothing is collected). Called with
// n.mu not held.
func (n *Node) lowerToFloor(seen store.Vector) (kept string) {
	if m := n.collectSeen(seen); m != "" {
		return "the vector of member " + m + " is not known yet"
	}
	g := n.sibling.Load()
	if g == nil {
		if !n.lowerToGlobalFloor(seen) {
			return "no bridge of this region has sent the floor of every region yet"
		}
		return ""
	}
	g.sendFloor(floorMsg{From: g.cfg.Name, Vector: maps.Clone(seen)})
	if m := g.collectSeen(seen); m != "" {
		return "the vector of global member " + m + " is not known yet"
	}
	if m := g.collectRegionFloors(seen); m != "" {
		return "global member " + m + " has not sent its region's floor yet"
	}
	n.sendFloor(floorMsg{From: n.cfg.Name, Global: true, Vector: seen})
	return ""
}

// collectSeen lowers seen to what every member not known to have left
// has confirmed, and names a member whose vector is not at hand, if any.
func (n *Node) collectSeen(seen store.Vector) (missing string) {
	return n.lowerToMembers(seen, func(p *peer) store.Vector { return p.vector })
}

// collectRegionFloors lowers seen, on a bridge's global node, to the
// region floors its members sent, and names a member not known to have
// left that has sent none, if any.
func (n *Node) collectRegionFloors(seen store.Vector) (missing string) {
	return n.lowerToMembers(seen, func(p *peer) store.Vector { return p.floor })
}

// lowerToMembers lowers seen to what of(member) holds, for every member
// not known to have left, or names one for which of gives nil.
func (n *Node) lowerToMembers(seen store.Vector, of func(*peer) store.Vector) (missing string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.known {
		if p.state == memberlist.StateLeft {
			continue
		}
		v := of(p)
		if v == nil {
			return p.name
		}
		lower(seen, v)
	}
	return ""
}

// lowerToGlobalFloor lowers seen, on a POP that is no bridge, to the
// floor of every region that a bridge of its region sent last. A POP in a
// cluster without bridges needs none; one with bridges waits for it.
func (n *Node) lowerToGlobalFloor(seen store.Vector) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	bridged := false
	for _, p := range n.known {
		bridged = bridged || (p.bridge && p.state != memberlist.StateLeft)
	}
	if !bridged {
		return true
	}
	if n.globalFloor == nil {
		return false
	}
	lower(seen, n.globalFloor)
	return true
}

// lower lowers each site of seen to its version in v (0 where v lacks it).
func lower(seen, v store.Vector) {
	for site, x := range seen {
		seen[site] = min(x, v[site])
	}
}

func (n *Node) sendFloor(m floorMsg) {
	msg := encodeFloor(m)
	for _, to := range n.alive() {
		n.send(to, msg, 0)
	}
}

// handleFloor keeps a floor a bridge sent: a global one on a POP that is
// no bridge, a region's on a bridge's global node.
func (n *Node) handleFloor(m floorMsg) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !m.Global {
		if p := n.known[m.From]; p != nil {
			p.floor = m.Vector
		}
		return
	}
	if n.sibling.Load() == nil {
		n.globalFloor = m.Vector
	}
}
