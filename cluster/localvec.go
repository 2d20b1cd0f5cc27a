package cluster

import (
	"github.com/edgeproxy/edgeproxy/store"
)

// localVector returns this node's version vector and its digest, read
// from the file only when the file may have changed since the last read
// (fileGen moved). After a heal every member's digest, vector and changes
// arrive within a few periods, and each used to cost a read of the
// vector (and of the whole of it again for a reply): a quarter of the
// replicator's work then. The vector is shared: callers must not modify
// it.
//
// A vector read after loading the generation holds every change whose
// report came before; a change reported later moves the generation and
// is read next time. It is never ahead of the file.
func (n *Node) localVector() (store.Vector, uint64, error) {
	g := n.fileGen.Load()
	n.vecMu.Lock()
	if n.vec != nil && n.vecGen == g {
		v, d := n.vec, n.vecDigest
		n.vecMu.Unlock()
		return v, d, nil
	}
	n.vecMu.Unlock()
	v, err := n.st.Vector(n.ctx)
	if err != nil {
		return nil, 0, err
	}
	d := n.digests.digest(v)
	n.vecMu.Lock()
	n.vec, n.vecGen, n.vecDigest = v, g, d
	n.vecMu.Unlock()
	return v, d, nil
}

// covers tells whether vector a has every version b has.
func covers(a, b store.Vector) bool {
	for s, v := range b {
		if a[s] < v {
			return false
		}
	}
	return true
}

// trim drops from segments what the file already holds by the vector
// have: whole segments it covers and, in a segment it partly covers, the
// changes up to its version of that origin. After a heal the same changes
// arrive from every member that exchanged with this node in the same
// period; merging each copy cost as much as merging the first. It returns
// the remaining segments and how many changes it dropped. have is updated
// as if the remaining segments were merged; it must be this node's own
// copy.
func trim(segs []store.Segment, have store.Vector, self string) ([]store.Segment, int) {
	out := segs[:0:0]
	dropped := 0
	for _, s := range segs {
		if s.Origin == self || s.Origin == "" {
			out = append(out, s) // the store decides (it skips them)
			continue
		}
		h := have[s.Origin]
		if s.To <= h {
			dropped += len(s.Changes)
			continue
		}
		if s.From < h {
			var keep []store.Change
			for _, c := range s.Changes {
				if c.Seq > h {
					keep = append(keep, c)
				}
			}
			dropped += len(s.Changes) - len(keep)
			s.Changes, s.From = keep, h
		}
		if s.From <= h {
			have[s.Origin] = s.To
		}
		out = append(out, s)
	}
	return out, dropped
}
