package cluster

import (
	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// alive lists the other members alive as of memberlist's last event about
// each. The nodes are the copies taken in the event callbacks, which
// memberlist makes under its lock: the ones Members returns are shared
// with memberlist, which rewrites them while a reader holds them.
func (n *Node) alive() []*memberlist.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*memberlist.Node
	for _, p := range n.known {
		if p.node != nil && p.state == memberlist.StateAlive {
			out = append(out, p.node)
		}
	}
	return out
}

// send delivers a message to a member: small ones as one packet (UDP), large
// ones over a stream in the background, one stream per member at a time.
// A large message for a member whose stream is busy waits behind it (up to
// streamQueue of them; beyond, it is dropped and anti-entropy sends again):
// after a heal the changes a member lacks and the vector asking for what it
// has leave together, and the vector used to be dropped, leaving that
// member's part of the exchange to the next period.
func (n *Node) send(to *memberlist.Node, msg []byte, changes int) {
	if len(msg) <= maxPacket {
		if err := n.ml.SendBestEffort(to, msg); err == nil {
			n.countSent(msg, changes)
			return
		}
	}
	q := queued{msg: msg, changes: changes}
	n.mu.Lock()
	if pending, busy := n.streams[to.Name]; busy {
		if len(pending) < streamQueue {
			n.streams[to.Name] = append(pending, q)
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		n.Stats.StreamsSkipped.Add(1)
		n.log.Debug("cluster: stream queue full; message dropped", "member", to.Name, "bytes", len(msg))
		return
	}
	n.streams[to.Name] = nil
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			if err := n.ml.SendReliable(to, q.msg); err != nil {
				n.log.Debug("cluster: send failed", "member", to.Name, "error", err)
			} else {
				n.countSent(q.msg, q.changes)
			}
			n.mu.Lock()
			pending := n.streams[to.Name]
			if len(pending) == 0 || n.ctx.Err() != nil {
				delete(n.streams, to.Name)
				n.mu.Unlock()
				return
			}
			q, n.streams[to.Name] = pending[0], pending[1:]
			n.mu.Unlock()
		}
	}()
}

// queued is a large message waiting for a member's stream.
type queued struct {
	msg     []byte
	changes int
}

func (n *Node) countSent(msg []byte, changes int) {
	n.Stats.MessagesSent.Add(1)
	n.Stats.BytesSent.Add(uint64(len(msg)))
	n.Stats.ChangesSent.Add(uint64(changes))
}

// sendSegments packs segments into messages of bounded size. It returns
// the bytes handed to the transport (all messages, all members).
func (n *Node) sendSegments(to []*memberlist.Node, segs []store.Segment) int {
	return n.sendPacked(to, segs, encodeChanges)
}

// sendReply sends an anti-entropy reply in one message where it fits
// replyBytes. Its parts must arrive in order: a member's vector moves only
// over versions that follow each other, and memberlist reads each stream
// message on a goroutine of its own, so two messages can be handed over in
// either order. A part that came first stayed merged but unclaimed until
// the reply was sent again.
func (n *Node) sendReply(to *memberlist.Node, segs []store.Segment) {
	n.sendPackedWithin([]*memberlist.Node{to}, segs, encodeChanges, replyBytes)
}

// sendPacked packs segments into messages of bounded size, each encoded
// by encode.
func (n *Node) sendPacked(to []*memberlist.Node, segs []store.Segment, encode func([]store.Segment) []byte) int {
	return n.sendPackedWithin(to, segs, encode, 512<<10)
}

// sendPackedWithin packs segments into messages of about budget bytes.
func (n *Node) sendPackedWithin(to []*memberlist.Node, segs []store.Segment, encode func([]store.Segment) []byte, budget int) int {
	total := 0
	var batch []store.Segment
	size, changes := 0, 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		msg := encode(batch)
		for _, m := range to {
			n.send(m, msg, changes)
		}
		total += len(msg) * len(to)
		batch, size, changes = nil, 0, 0
	}
	for _, s := range segs {
		for _, piece := range store.Split(s, chunkChanges) {
			est := 64
			for _, c := range piece.Changes {
				est += len(c.Table) + len(c.PK) + len(c.Column) + 40
				if v, ok := c.Value.(string); ok {
					est += len(v)
				} else if v, ok := c.Value.([]byte); ok {
					est += len(v)
				}
			}
			if size+est > budget {
				flush()
			}
			batch = append(batch, piece)
			size += est
			changes += len(piece.Changes)
		}
	}
	flush()
	return total
}
