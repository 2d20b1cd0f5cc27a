package cluster

import (
	"cmp"
	"maps"

	"github.com/hashicorp/memberlist"

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
// lower bound once computed (vectors only grow), so what was heard stays
// usable, and a newer floor only raises it; a member that is cut off
// keeps the floor it sent last, and with it every tombstone it lacked,
// until it comes back or leaves.
//
// Floors travel in the rounds in which a bridge finds old tombstones, and
// name only their sites. A POP or bridge that missed the last one (lost,
// or sent while it was taken for dead) would keep its tombstones until the
// next delete: so a node whose floors do not cover its old tombstones
// asks, each round, the members that owe it one, and they answer it alone.

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
	if kept := g.lowerToRegions(seen); kept != "" {
		return kept
	}
	n.sendFloor(floorMsg{From: n.cfg.Name, Global: true, Vector: seen})
	return ""
}

// lowerToRegions lowers seen, already lowered to what a bridge's region
// holds, on the bridge's global node, to the floor of every region: the
// global members' vectors and the region floors they sent. It says why
// when it cannot tell.
func (n *Node) lowerToRegions(seen store.Vector) (kept string) {
	if m := n.collectSeen(seen); m != "" {
		return "the vector of global member " + m + " is not known yet"
	}
	if m := n.collectRegionFloors(seen); m != "" {
		return "global member " + m + " has not sent its region's floor yet"
	}
	return ""
}

// collectSeen lowers seen to what every member not known to have left
// has confirmed, and names a member whose vector is not at hand, if any.
func (n *Node) collectSeen(seen store.Vector) (missing string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.known {
		if p.state == memberlist.StateLeft {
			continue
		}
		if p.vector == nil {
			return p.name
		}
		n.sites.lower(seen, p.vector)
	}
	return ""
}

// collectRegionFloors lowers seen, on a bridge's global node, to the
// region floors its members sent, and names a member not known to have
// left that has sent none, if any. It asks each member whose floor does
// not cover seen for a new one.
func (n *Node) collectRegionFloors(seen store.Vector) (missing string) {
	want := maps.Clone(seen)
	var owe []*memberlist.Node
	n.mu.Lock()
	for _, p := range n.known {
		if p.state == memberlist.StateLeft {
			continue
		}
		if p.node != nil && !vectorCovers(p.floor, want) {
			owe = append(owe, p.node)
		}
		if p.floor == nil {
			missing = cmp.Or(missing, p.name)
			continue
		}
		lower(seen, p.floor)
	}
	n.mu.Unlock()
	n.sendFloorTo(owe, floorMsg{From: n.cfg.Name, Ask: true, Vector: want})
	return missing
}

// lowerToGlobalFloor lowers seen, on a POP that is no bridge, to the
// floor of every region that a bridge of its region sent last. A POP in a
// cluster without bridges needs none; one with bridges waits for it.
func (n *Node) lowerToGlobalFloor(seen store.Vector) bool {
	var bridges []*memberlist.Node
	n.mu.Lock()
	for _, p := range n.known {
		if p.bridge && p.state != memberlist.StateLeft && p.node != nil {
			bridges = append(bridges, p.node)
		}
	}
	floor := n.globalFloor
	n.mu.Unlock()
	if len(bridges) == 0 {
		return true
	}
	if !vectorCovers(floor, seen) {
		n.sendFloorTo(bridges, floorMsg{From: n.cfg.Name, Global: true, Ask: true, Vector: maps.Clone(seen)})
	}
	if floor == nil {
		return false
	}
	lower(seen, floor)
	return true
}

// raise returns floor with each site raised to its version in v, as a
// new vector: the old one may be in use outside n.mu.
func raise(floor, v store.Vector) store.Vector {
	out := maps.Clone(floor)
	if out == nil {
		return v
	}
	for site, x := range v {
		out[site] = max(out[site], x)
	}
	return out
}

// vectorCovers tells whether vector a has every version b has.
func vectorCovers(a, b store.Vector) bool {
	for site, x := range b {
		if a[site] < x {
			return false
		}
	}
	return true
}

// lower lowers each site of seen to its version in v (0 where v lacks it).
func lower(seen, v store.Vector) {
	for site, x := range seen {
		seen[site] = min(x, v[site])
	}
}

func (n *Node) sendFloor(m floorMsg) {
	n.sendFloorTo(n.alive(), m)
}

// sendFloorTo sends m to each of to.
func (n *Node) sendFloorTo(to []*memberlist.Node, m floorMsg) {
	if len(to) == 0 {
		return
	}
	msg := encodeFloor(m)
	for _, nd := range to {
		n.send(nd, msg, 0)
	}
}

// handleFloor keeps a floor a bridge sent (a global one on a POP that is
// no bridge, a region's on a bridge's global node), or answers an ask.
func (n *Node) handleFloor(m floorMsg) {
	if m.Ask {
		n.answerFloor(m)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !m.Global {
		if p := n.known[m.From]; p != nil {
			p.floor = raise(p.floor, m.Vector)
		}
		return
	}
	if n.sibling.Load() == nil {
		n.globalFloor = raise(n.globalFloor, m.Vector)
	}
}

// answerFloor sends the member that asked, on a bridge, the floor of the
// sites it named: of every region to a POP of the bridge's region, of the
// bridge's region to another bridge. It sends nothing while a floor it
// takes from is not known yet; the member asks again next round.
func (n *Node) answerFloor(ask floorMsg) {
	other := n.sibling.Load()
	n.mu.Lock()
	var to *memberlist.Node
	if p := n.known[ask.From]; p != nil {
		to = p.node
	}
	n.mu.Unlock()
	if other == nil || to == nil || ask.Global == n.secondary.Load() {
		return // not a bridge, an unknown member, or asked on the wrong side
	}
	vec, err := n.st.Vector(n.ctx)
	if err != nil {
		return
	}
	seen := make(store.Vector, len(ask.Vector))
	for site := range ask.Vector {
		seen[site] = vec[site]
	}
	region := n // asked by a POP of this region: other is the global node
	if !ask.Global {
		region = other // asked by another bridge
	}
	if region.collectSeen(seen) != "" || (ask.Global && other.lowerToRegions(seen) != "") {
		return
	}
	n.send(to, encodeFloor(floorMsg{From: n.cfg.Name, Global: ask.Global, Vector: seen}), 0)
}
