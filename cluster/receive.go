package cluster

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// receiveLoop decodes what members send and merges changes in batches:
// whatever arrived meanwhile goes into one transaction.
func (n *Node) receiveLoop() {
	for {
		var batch [][]byte
		select {
		case <-n.ctx.Done():
			return
		case b := <-n.inbox:
			batch = append(batch, b)
		}
	drain:
		for len(batch) < 64 {
			select {
			case b := <-n.inbox:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		var in inbound
		for _, b := range batch {
			segs, relayer := n.receive(b)
			if relayer == "" {
				in.direct = append(in.direct, segs...)
				continue
			}
			in.relayed = append(in.relayed, segs...)
			if in.relayers == nil {
				in.relayers = map[string]bool{}
			}
			in.relayers[relayer] = true
		}
		if len(in.direct)+len(in.relayed) > 0 {
			n.apply(in)
		}
	}
}

// inbound is the changes of one batch of messages: from members of this
// cluster (pushes, repairs) and relayed by bridges, with their names.
type inbound struct {
	direct, relayed []store.Segment
	relayers        map[string]bool
}

// receive handles one message and returns the segments it carries and,
// for changes a bridge relayed, the bridge's name.
func (n *Node) receive(b []byte) ([]store.Segment, string) {
	n.Stats.MessagesRecv.Add(1)
	m, err := decode(b)
	if err != nil {
		n.Stats.MessagesRefused.Add(1)
		n.log.Warn("cluster: message refused", "bytes", len(b), "error", err)
		return nil, ""
	}
	switch m := m.(type) {
	case []store.Segment:
		return m, ""
	case relayMsg:
		return m.Segs, m.From
	case syncMsg:
		n.handleSync(m)
	case digestMsg:
		n.handleDigest(m)
	case floorMsg:
		n.handleFloor(m)
	case leaveMsg:
		n.markLeaving(string(m))
	}
	return nil, ""
}

// apply merges segments into the file, records the replication lag of
// their origins and, on a bridge, relays what was new to the other cluster.
func (n *Node) apply(in inbound) {
	now := time.Now()
	l, segs, res, ok := n.merge(&in, now)
	if !ok {
		return
	}
	v, before := l.vec, l.digest
	if (res.Applied > 0 || len(res.Advanced) > 0) && n.cfg.OnMerge != nil {
		n.cfg.OnMerge(res.Applied > 0)
	}
	if res.Applied > 0 && len(res.Refused) == 0 {
		// A bridge sent relayed changes to every member already.
		n.forward(in.direct, now)
	}
	if len(res.Advanced) > 0 && len(res.Refused) == 0 && before != 0 {
		n.acknowledge(in, v, before, now)
	}
	if b := n.sibling.Load(); b != nil && (res.Applied > 0 || len(res.Advanced) > 0) && len(res.Refused) == 0 {
		b.relay(segs)
	}
	n.Stats.ChangesApplied.Add(uint64(res.Applied))
	n.Stats.ChangesStale.Add(uint64(res.Stale))
	n.Stats.ChangesRefused.Add(uint64(len(res.Refused)))
	for i, r := range res.Refused {
		if i == 5 {
			n.log.Warn("cluster: more changes refused", "count", len(res.Refused)-5)
			break
		}
		n.log.Warn("cluster: change refused; not marked as seen", "origin", r.Change.Site, "table", r.Change.Table,
			"pk", r.Change.PK, "column", r.Change.Column, "reason", r.Reason)
	}
	// Replication lag per origin: commit (its HLC) to merged here. By
	// site number: a thousand members' site names hashed at every merge
	// were a tenth of the replicator's work at a thousand POPs.
	newest := map[int]uint64{}
	for _, s := range segs {
		id := n.sites.id(s.Origin)
		for _, c := range s.Changes {
			newest[id] = max(newest[id], c.HLC)
		}
	}
	n.mu.Lock()
	for _, p := range n.known {
		if h, ok := newest[p.siteID]; ok && h > 0 {
			p.lag, p.lagAt = max(0, now.Sub(store.HLCTime(h))), now
		}
	}
	n.mu.Unlock()
}

// merge drops from in what the file holds, merges the rest and takes the
// vector held through the merge. It reports false when nothing was left
// to merge or the merge failed. It holds mergeMu throughout, which the
// push loop takes to read the file after a report: a read that fell
// between the merge's commit and the vector it leaves being held would
// find the vector held older than the file, and move fileGen past the
// merge's.
func (n *Node) merge(in *inbound, now time.Time) (localVec, []store.Segment, store.ApplyResult, bool) {
	n.mergeMu.Lock()
	defer n.mergeMu.Unlock()
	l, err := n.local()
	if err == nil {
		ahead := map[int]uint64{}
		var d1, d2 int
		in.direct, d1 = n.sites.trim(in.direct, l.vec, ahead, n.st.SiteID())
		in.relayed, d2 = n.sites.trim(in.relayed, l.vec, ahead, n.st.SiteID())
		n.Stats.ChangesStale.Add(uint64(d1 + d2))
		if len(in.direct)+len(in.relayed) == 0 {
			return l, nil, store.ApplyResult{}, false
		}
	}
	segs := append(in.direct[:len(in.direct):len(in.direct)], in.relayed...)
	res, err := n.st.Apply(n.ctx, segs, now)
	if err != nil {
		if n.ctx.Err() == nil {
			n.log.Error("cluster: merging changes; anti-entropy will retry", "error", err)
		}
		return l, nil, res, false
	}
	n.log.Debug("cluster: merged", "segments", len(segs), "applied", res.Applied, "stale", res.Stale, "advanced", len(res.Advanced))
	forward := n.merged(l, res)
	if res.Applied > 0 || len(res.Advanced) > 0 {
		if forward && n.fileGen.Load() == l.gen {
			// The vector held is the file's as the merge left it, and
			// nothing was reported since it was read: what changes the
			// file next is reported, and moves fileGen then.
			n.wakeSync()
		} else {
			n.fileChanged()
		}
	}
	return l, segs, res, true
}

// forward passes changes this node has just learnt by repair (anti-entropy
// after a partition or a lost push: changes older than forwardAge) on to
// forwardFanout random members at once, instead of leaving every other
// member to find them through its own anti-entropy, two members a period.
// A member forwards only what was new to it, so each change is forwarded
// at most once per member and the spread ends by itself; fresh pushes are
// not forwarded (the origin sent them to everyone).
//
// Nor, in a region that bridges serve, are the changes of another
// region's POPs: they came through a bridge, which relays what it merges
// to every live member, so a member that learnt them by repair was alone
// in lacking them (a relay lost, a cut of its own), or the relay to the
// others is still on its way. In a 1000-POP simulation whose relays came
// late, forwarding them sent 52,650 changes again in 4 s.
func (n *Node) forward(segs []store.Segment, now time.Time) {
	old := store.MakeHLC(now.Add(-forwardAge), 0)
	var fwd []store.Segment
	for _, s := range segs {
		if s.Origin == n.st.SiteID() || len(s.Changes) == 0 {
			continue
		}
		newest := uint64(0)
		for _, c := range s.Changes {
			newest = max(newest, c.HLC)
		}
		if newest < old {
			fwd = append(fwd, s)
		}
	}
	if len(fwd) == 0 {
		return
	}
	if region := n.bridgedRegion(); region != nil {
		fwd = slices.DeleteFunc(fwd, func(s store.Segment) bool { return !region[s.Origin] })
		if len(fwd) == 0 {
			return
		}
	}
	to := n.lacking(fwd)
	rand.Shuffle(len(to), func(i, j int) { to[i], to[j] = to[j], to[i] })
	to = to[:min(forwardFanout, len(to))]
	if len(to) == 0 {
		return
	}
	n.sendSegments(to, fwd)
	for _, s := range fwd {
		n.Stats.ChangesForwarded.Add(uint64(len(s.Changes)))
	}
}

// bridgedRegion returns, on a node of a region that bridges serve (it is
// a bridge's node in its region, or a member is), the sites of the
// region's members: changes of any other site reach every member through
// a bridge. Elsewhere (one cluster for every POP, the global cluster of
// bridges) it returns nil.
func (n *Node) bridgedRegion() map[string]bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	bridged := n.sibling.Load() != nil && !n.secondary.Load()
	sites := make(map[string]bool, len(n.known))
	for _, p := range n.known {
		bridged = bridged || p.bridge
		if p.site != "" {
			sites[p.site] = true
		}
	}
	if !bridged {
		return nil
	}
	return sites
}

// lacking lists the live members that may lack some of segs: not a
// member that is the origin of them all, nor one whose vector, as last
// heard, holds them. A new POP catching up on a large table forwarded what
// it learnt back to the POP serving it, which had it all.
func (n *Node) lacking(segs []store.Segment) []*memberlist.Node {
	ids := make([]int, len(segs))
	for i, s := range segs {
		ids[i] = n.sites.id(s.Origin)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*memberlist.Node
	for _, p := range n.known {
		if p.node == nil || p.state != memberlist.StateAlive {
			continue
		}
		for i, s := range segs {
			if p.siteID != ids[i] && p.vector.at(ids[i]) < s.To {
				out = append(out, p.node)
				break
			}
		}
	}
	return out
}

// acknowledge follows the merge of pushes (every change younger than
// forwardAge): it tells each origin, and each bridge that relayed some of
// them, this node's vector after the merge,
// and takes every member that held the same vector as this node before
// the merge to hold the same one after it, having had the same pushes.
//
// Without it, every commit changed every member's vector, and each
// member then confirmed its vector with every other, two a period: N/4
// periods and N² digests across the cluster after every commit (at 300
// POPs, 90,000 packets a commit). With it, only the origin waits for
// confirmations, which come with the acknowledgements; a member whose
// push was lost sends none, stays different in the origin's view and is
// repaired by the origin's anti-entropy, as before. A member that merged
// the pushes in another order ends at the same vector.
func (n *Node) acknowledge(in inbound, prev vclock, before uint64, now time.Time) {
	fresh := store.MakeHLC(now.Add(-forwardAge), 0)
	// The pushes' origins, by site number.
	moved := map[int]bool{}
	for _, s := range in.direct {
		for _, c := range s.Changes {
			if c.HLC < fresh {
				return // a repair: members that differ may differ still
			}
		}
		moved[n.sites.id(s.Origin)] = true
	}
	// A relay went to every live member, however old its changes: a
	// bridge relays what it has just merged. (Taking a late relay for a
	// repair made every member of a busy cluster unconfirmed, and the
	// anti-entropy that followed made it busier.)
	for _, s := range in.relayed {
		moved[n.sites.id(s.Origin)] = true
	}
	relayers := in.relayers
	vec, after, err := n.localVector()
	if err != nil || after == before {
		return
	}
	// Only the pushes' origins moved: a commit of this node's own not yet
	// pushed (or anything else) would be taken for had by members that
	// never saw it, and a lost push of it never repaired.
	for i := range max(len(vec), len(prev)) {
		if vec.at(i) != prev.at(i) && !moved[i] {
			return
		}
	}
	// Members declared dead are unknown already. memberlist does not
	// tell which members it merely suspects (Node.State stays alive;
	// its own state is private), so those are taken along: a cut-off
	// one is declared dead within the cut, and then tried again.
	var to []*memberlist.Node
	// Not to a member of an older release: it refuses digests.
	told := func(p *peer) bool { return p.node != nil && p.state != memberlist.StateLeft && !p.legacy }
	n.mu.Lock()
	for _, p := range n.known {
		if p.digest == before {
			p.digest = after
			if p.vectorDigest == before {
				// Tombstone collection reads the members' vectors: it
				// keeps a tombstone 10 minutes at least, long after the
				// origin has repaired a member that lost the push.
				p.vector, p.vectorDigest = vec, after
			}
		}
		if moved[p.siteID] && told(p) {
			to = append(to, p.node)
		}
	}
	for name := range relayers {
		if p := n.known[name]; p != nil && !moved[p.siteID] && told(p) {
			to = append(to, p.node)
		}
	}
	n.mu.Unlock()
	// Members taken to hold it may send differences from it.
	n.announce(vec, after)
	if len(to) == 0 {
		return
	}
	msg := encodeDigest(digestMsg{From: n.cfg.Name, Ack: true, Digest: after})
	for _, m := range to {
		n.send(m, msg, 0)
	}
}
