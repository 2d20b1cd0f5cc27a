package cluster

import (
	"math/rand/v2"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// syncLoop runs anti-entropy. Each period it sends its version vector to
// members whose last known vector differs from its own: two random live
// ones, and every one believed dead (a healed cut is found that way before
// memberlist notices). A member that receives it sends back what the
// sender lacks and, when asked, its own vector, to which the sender
// answers with what the member lacks.
//
// When every member's last known vector equals this node's, it rests
// until woken: by a change of the file, a member's vector or a member's
// state. Nothing can be missing then. Vectors only grow, and whichever
// side of a pair gained something sees its vector differ from what it
// last heard from the other, and sends (a file restored from an older copy
// shrinks, and differs as well). A lost message leaves the difference in
// place, so it is sent again the next period.
func (n *Node) syncLoop() {
	interval := n.cfg.SyncInterval
	t := time.NewTimer(interval)
	defer t.Stop()
	var resting bool
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		case <-n.syncWake:
			if resting {
				// Not at once: give the pushes of a fresh commit their
				// grace first.
				resting = false
				t.Reset(interval)
			}
			continue
		}
		// The vector is read again only when the file may have changed.
		vec, dig, err := n.localVector()
		if err != nil {
			t.Reset(interval)
			continue
		}
		busy, later := n.syncRound(vec, dig)
		switch {
		case busy:
			t.Reset(interval)
		case later > 0:
			// Only members long dead differ: rest, but try them again
			// when due.
			resting = true
			t.Reset(later)
		default:
			resting = true
		}
	}
}

// syncRound sends this node's vector where a member may lack something or
// have something this node lacks. busy reports that it should run again
// next period; otherwise later, if not zero, is when a member dead for
// long is due again.
func (n *Node) syncRound(vec vclock, dig uint64) (busy bool, later time.Duration) {
	now := time.Now()
	var differing, differingDead []*memberlist.Node
	n.mu.Lock()
	for _, p := range n.known {
		if p.node == nil || p.state == memberlist.StateLeft {
			continue
		}
		if p.digest == dig {
			continue
		}
		if p.state != memberlist.StateDead {
			differing = append(differing, p.node)
			continue
		}
		slow, due := n.patient(p, p.syncAt, now)
		if due {
			differingDead = append(differingDead, p.node)
		}
		if !slow {
			busy = true
		} else if wait := n.cfg.DeadRetry - now.Sub(p.syncAt); later == 0 || wait < later {
			later = max(wait, time.Millisecond)
		}
	}
	n.mu.Unlock()
	if len(differing) > 0 {
		busy = true
	}
	if len(differing) == 0 && len(differingDead) == 0 {
		return busy, later
	}
	n.announce(vec, dig)
	msg := encodeDigest(digestMsg{From: n.cfg.Name, WantReply: true, Digest: dig})
	var whole []byte // for members of an older release
	send := func(m *memberlist.Node) {
		n.mu.Lock()
		legacy := n.known[m.Name] != nil && n.known[m.Name].legacy
		n.mu.Unlock()
		if !legacy {
			n.send(m, msg, 0)
			return
		}
		if whole == nil {
			whole = encodeSync(syncMsg{From: n.cfg.Name, WantReply: true, Vector: n.sites.vector(vec)})
		}
		n.send(m, whole, 0)
	}
	// Two live members a period: after a burst of commits every pair
	// confirms its vectors within a few periods, without every node
	// sending to every other at once.
	rand.Shuffle(len(differing), func(i, j int) { differing[i], differing[j] = differing[j], differing[i] })
	for _, m := range differing[:min(2, len(differing))] {
		send(m)
	}
	// Differing members believed dead may be back (a healed cut): a few
	// each period (each of them every period for DeadPatience while there
	// are no more than deadFanout, as in a cut of a few POPs; then every
	// DeadRetry). With a whole region cut off, every member of the
	// majority still reaches a few of it each period, and what they
	// exchange spreads from there: not every member to every member of
	// the region at the same moment of the heal.
	rand.Shuffle(len(differingDead), func(i, j int) {
		differingDead[i], differingDead[j] = differingDead[j], differingDead[i]
	})
	if len(differingDead) > deadFanout {
		busy = true // the others next period
		differingDead = differingDead[:deadFanout]
	}
	n.mu.Lock()
	for _, m := range differingDead {
		if p := n.known[m.Name]; p != nil {
			p.syncAt = now
		}
	}
	n.mu.Unlock()
	for _, m := range differingDead {
		send(m)
	}
	return busy, later
}

// handleSync answers a member's vector: it sends what the member lacks
// (but changes younger than pushGrace, which the origin's push is most
// likely still delivering) and, when asked, this node's own vector.
func (n *Node) handleSync(m syncMsg) {
	delta := m.Base != 0
	vec, ok := n.resolve(m)
	if !ok {
		// A difference from a vector this node no longer holds: send
		// the whole of ours, and the member answers with a difference
		// from it.
		n.mu.Lock()
		var to *memberlist.Node
		if p := n.known[m.From]; p != nil {
			to = p.node
		}
		n.mu.Unlock()
		if to != nil {
			if mine, d, err := n.localVector(); err == nil {
				n.announce(mine, d)
				n.send(to, encodeSync(syncMsg{From: n.cfg.Name, WantReply: true, Vector: n.sites.vector(mine), Digests: true}), 0)
			}
		}
		return
	}
	d := n.memberDigest(vec, m)
	n.mu.Lock()
	p := n.known[m.From]
	var to *memberlist.Node
	if p != nil {
		p.vector, p.vectorDigest, p.digest, p.vectorAt = vec, d, d, time.Now()
		p.legacy = !delta && !m.Digests
		to = p.node
	}
	n.mu.Unlock()
	if to == nil {
		return // not a member (yet): it will ask again
	}
	// The member's vector may differ from ours: compare next period.
	n.wakeSync()
	mine, mineDigest, err := n.localVector()
	if err != nil {
		return
	}
	if v := vec.at(n.ownSite); v > mine.at(n.ownSite) {
		n.skipAhead(m.From, v)
	}
	var segs []store.Segment
	if !covers(vec, mine) {
		if delta {
			m.Vector = n.sites.vector(vec)
		}
		if n.serving(m.From, m.Vector) {
			segs, err = n.st.Missing(n.ctx, m.Vector, chunkChanges, store.MakeHLC(time.Now().Add(-pushGrace), 0), serveBudget)
			if err != nil {
				n.log.Error("cluster: reading changes for a peer", "peer", m.From, "error", err)
				return
			}
			n.noteServed(m.From, segs)
		}
	}
	if len(segs) > 0 {
		n.sendReply(to, segs)
	}
	n.log.Debug("cluster: sync", "from", m.From, "reply", m.WantReply, "segments", len(segs))
	if m.WantReply {
		// Always answer with our vector: the peer then sends what it has
		// that we lack, and its view of us is fresh (a stale view would
		// make it keep targeting us).
		n.send(to, n.vectorMsg(m.From, mine, mineDigest, false), 0)
	}
}

// memberDigest returns the digest of vec, a member's vector that m carried.
// After a heal members' vectors come to equal this node's, or the one
// they are sent as a difference from: those digests are known. Hashing
// every site's name was 8 % of the simulator's CPU in a 1000-POP
// heal.
func (n *Node) memberDigest(vec vclock, m syncMsg) uint64 {
	if m.Base != 0 && len(m.Vector) == 0 {
		return m.Base
	}
	n.vecMu.Lock()
	held := n.held
	n.vecMu.Unlock()
	if held.vec != nil && vec.equal(held.vec) {
		return held.digest
	}
	return n.sites.digest(vec)
}

// skipAhead handles a member that knows this node's site at version v,
// further than the vector last read: if the file itself is behind it, the
// file was restored in place from an older copy, and new changes must not
// reuse versions the cluster has seen.
func (n *Node) skipAhead(from string, v uint64) {
	own, err := n.st.DBVersion(n.ctx)
	if err != nil || v <= own {
		return // the vector read was only older than the file
	}
	n.log.Warn("cluster: a peer has seen newer versions of this file than it holds (restored from a backup?); skipping ahead",
		"peer", from, "peer_knows", v, "local", own)
	if err := n.st.SetVersion(n.ctx, v); err != nil {
		n.log.Error("cluster: raising the local version", "error", err)
	}
	n.fileChanged()
}

// serving tells whether the member, whose vector is vec, is to be sent
// what it lacks now: not while this node's last reply to it is on its way
// (vec does not show it yet, and servedHold has not passed).
func (n *Node) serving(member string, vec store.Vector) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.known[member]
	if p == nil || p.served == nil || time.Since(p.servedAt) >= servedHold {
		return true
	}
	for o, to := range p.served {
		if vec[o] < to {
			return false
		}
	}
	return true
}

// noteServed remembers how far the reply just sent brings the member,
// where the reply is large (more than holdAbove changes): the member takes
// a while to merge it, and the same reply sent again at its next sync
// would most likely come twice. A small reply is sent again at each sync,
// so a repair whose message was lost waits for nothing.
func (n *Node) noteServed(member string, segs []store.Segment) {
	changes := 0
	for _, s := range segs {
		changes += len(s.Changes)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.known[member]
	if p == nil {
		return
	}
	p.served, p.servedAt = nil, time.Now()
	if changes <= holdAbove {
		return
	}
	p.served = store.Vector{}
	for _, s := range segs {
		p.served[s.Origin] = max(p.served[s.Origin], s.To)
	}
}
