package cluster

import (
	"time"

	"github.com/hashicorp/memberlist"
)

// A version vector has an entry per POP that ever wrote: at a thousand
// POPs it is some 35 KB, too much to send every anti-entropy period to
// every member whose vector this node has not confirmed. Anti-entropy
// therefore first sends the vector's digest (a packet of ~40 bytes); only
// a member whose digest differs gets a vector, and that as the
// difference from a vector it announced itself, which it keeps a while.

// recentVectors is how many of its own announced vectors a node keeps
// to decode differences against.
const recentVectors = 32

// A digest hashes a vector's non-zero entries in site name order (for
// each: the site's length as a uvarint, the site, the version as a
// uvarint) with 64-bit FNV-1a, and is never 0: equal vectors (a site
// missing is at version 0) have equal digests on every node.

// announce remembers a vector this node is about to send (or whose
// digest it is about to send), so a difference from it can be decoded.
func (n *Node) announce(v vclock, d uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.recent[d]; ok {
		return
	}
	n.recent[d] = v
	n.recentOrder = append(n.recentOrder, d)
	if len(n.recentOrder) > recentVectors {
		delete(n.recent, n.recentOrder[0])
		n.recentOrder = n.recentOrder[1:]
	}
}

// vectorMsg encodes this node's vector, whose digest is digest, for a
// member: as the difference from the member's last known vector when that
// is one it announced.
func (n *Node) vectorMsg(to string, mine vclock, digest uint64, wantReply bool) []byte {
	n.announce(mine, digest)
	m := syncMsg{From: n.cfg.Name, WantReply: wantReply, Digests: true}
	n.mu.Lock()
	var base vclock
	var bd uint64
	p := n.known[to]
	if p != nil && p.legacy {
		n.mu.Unlock()
		m.Digests, m.Vector = false, n.sites.vector(mine)
		return encodeSync(m)
	}
	if p != nil && p.vector != nil {
		base, bd = p.vector, p.vectorDigest
	}
	n.mu.Unlock()
	if base != nil {
		m.Vector = n.sites.difference(mine, base)
		if d := encodeSyncDelta(m, bd); len(d) < 4+len(mine)*8 {
			return d
		}
	}
	m.Vector = n.sites.vector(mine)
	return encodeSync(m)
}

// resolve returns the whole vector a sync message carries. false: it is
// a difference from a vector that is no longer (or never was) one of this
// node's recent vectors.
func (n *Node) resolve(m syncMsg) (vclock, bool) {
	if m.Base == 0 {
		return n.sites.compact(m.Vector), true
	}
	n.mu.Lock()
	base, ok := n.recent[m.Base]
	n.mu.Unlock()
	if !ok {
		return nil, false
	}
	return n.sites.apply(base, m.Vector), true
}

// handleDigest answers a member's digest: the same as this node's, and
// the member has what this node has and the other way round (this node
// now knows the member's vector: its own); a different one, and this node
// sends its vector, asking for the member's in return, which starts the
// exchange of what each lacks.
func (n *Node) handleDigest(m digestMsg) {
	n.mu.Lock()
	p := n.known[m.From]
	var to *memberlist.Node
	if p != nil {
		p.digest, p.legacy = m.Digest, false
		to = p.node
	}
	n.mu.Unlock()
	if to == nil {
		return
	}
	n.wakeSync()
	mine, d, err := n.localVector()
	if err != nil {
		return
	}
	n.log.Debug("cluster: digest", "from", m.From, "reply", m.WantReply, "ack", m.Ack, "same", d == m.Digest)
	if d != m.Digest && m.Ack {
		// A member acknowledging a push, which has merged it but differs
		// otherwise: anti-entropy picks it among those that differ.
		return
	}
	if d != m.Digest {
		n.send(to, n.vectorMsg(m.From, mine, d, true), 0)
		return
	}
	n.announce(mine, d)
	n.mu.Lock()
	p.vector, p.vectorDigest, p.vectorAt = mine, d, time.Now()
	n.mu.Unlock()
	if m.WantReply {
		n.send(to, encodeDigest(digestMsg{From: n.cfg.Name, Digest: d}), 0)
	}
}
