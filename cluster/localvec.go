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
func (n *Node) localVector() (vclock, uint64, error) {
	g := n.fileGen.Load()
	n.vecMu.Lock()
	if n.vec != nil && n.vecGen == g {
		v, d := n.vec, n.vecDigest
		n.vecMu.Unlock()
		return v, d, nil
	}
	n.vecMu.Unlock()
	sv, err := n.st.Vector(n.ctx)
	if err != nil {
		return nil, 0, err
	}
	v := n.sites.compact(sv)
	d := n.sites.digest(v)
	n.vecMu.Lock()
	n.vec, n.vecGen, n.vecDigest = v, g, d
	n.vecMu.Unlock()
	return v, d, nil
}

// trim drops from segments what the file already holds by the vector
// have: whole segments it covers and, in a segment it partly covers, the
// changes up to its version of that origin. After a heal the same changes
// arrive from every member that exchanged with this node in the same
// period; merging each copy cost as much as merging the first. It returns
// the remaining segments, have as if they were merged (have must be the
// caller's own), and how many changes it dropped.
func (t *siteTable) trim(segs []store.Segment, have vclock, self string) ([]store.Segment, vclock, int) {
	out := segs[:0:0]
	dropped := 0
	for _, s := range segs {
		if s.Origin == self || s.Origin == "" {
			out = append(out, s) // the store decides (it skips them)
			continue
		}
		o := t.id(s.Origin)
		h := have.at(o)
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
			have = have.set(o, s.To)
		}
		out = append(out, s)
	}
	return out, have, dropped
}
