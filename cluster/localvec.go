package cluster

import (
	"slices"

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
	l, err := n.local()
	return l.vec, l.digest, err
}

// localVec is the local vector as known at fileGen gen: the other sites'
// versions as of the file's versions generation (store.VectorGen), and
// the file's own version.
type localVec struct {
	vec      vclock
	digest   uint64
	marks    *digestMarks // of digest, to hash the vector after a merge from
	versions int64
	gen      uint64
}

func (n *Node) local() (localVec, error) {
	g := n.fileGen.Load()
	n.vecMu.Lock()
	held := n.held
	n.vecMu.Unlock()
	if held.vec != nil && held.gen == g {
		return held, nil
	}
	if held.vec != nil {
		// Every merge moves fileGen, and most often only that merge (or
		// a local commit) changed the file since: two values tell, where
		// a read of the whole vector is a map of every site.
		n.Stats.VectorReads.Add(1)
		own, versions, err := n.st.OwnVersion(n.ctx)
		if err != nil {
			return localVec{}, err
		}
		if versions == held.versions {
			l := n.withOwn(held, own, g)
			n.hold(l)
			return l, nil
		}
	}
	n.Stats.VectorReads.Add(1)
	sv, versions, err := n.st.VectorGen(n.ctx)
	if err != nil {
		return localVec{}, err
	}
	l := localVec{vec: n.sites.compact(sv), versions: versions, gen: g}
	l.digest, l.marks = n.sites.digestMarked(l.vec, nil)
	n.hold(l)
	return l, nil
}

func (n *Node) hold(l localVec) {
	n.vecMu.Lock()
	n.held = l
	n.vecMu.Unlock()
}

// merged takes the vector l, read before the merge res, through it: the
// merge began from l's versions generation, so l's other sites, moved by
// what it advanced, and the own version read inside it are the file's
// vector as the merge left it. It reports whether it could: a merge that
// began from another generation (another writer merged meanwhile) tells
// nothing of what else moved.
func (n *Node) merged(l localVec, res store.ApplyResult) bool {
	if l.vec == nil || res.GenBefore != l.versions {
		return false
	}
	if len(res.Advanced) == 0 && res.Own == l.vec.at(n.ownSite) {
		return true
	}
	v := slices.Clone(l.vec)
	changed := make([]int, 0, len(res.Advanced)+1)
	for site, x := range res.Advanced {
		i := n.sites.id(site)
		changed = append(changed, i)
		v = v.set(i, x)
	}
	if res.Own != v.at(n.ownSite) {
		changed = append(changed, n.ownSite)
		v = v.set(n.ownSite, res.Own)
	}
	d, marks := n.sites.digestMarked(v, l.marks, changed...)
	n.hold(localVec{vec: v, digest: d, marks: marks, versions: res.GenAfter, gen: l.gen})
	return true
}

// looked records the push loop's read of the file after a report of a
// change. The file may hold something new, so anti-entropy compares
// again; but where the other sites' versions are those of the vector
// held, the read gives the whole vector (most reports are of the node's
// own merges, already taken forward, or of local commits), and the next
// reader of the vector need not read it.
func (n *Node) looked(v store.Versions) {
	defer n.wakeSync()
	n.vecMu.Lock()
	defer n.vecMu.Unlock()
	// The generation moves and the vector is held under one lock: a
	// reader that loads the new generation finds this vector.
	h := n.held
	g := n.fileGen.Add(1)
	if h.vec == nil || h.versions != v.Gen {
		return
	}
	n.held = n.withOwn(h, v.Own, g)
}

// withOwn is h, the vector held, with the file's own version own, for
// fileGen gen: what a read of the two values that can move without the
// versions generation gives when the generation is h's.
func (n *Node) withOwn(h localVec, own, gen uint64) localVec {
	l := localVec{vec: h.vec, digest: h.digest, marks: h.marks, versions: h.versions, gen: gen}
	if own != h.vec.at(n.ownSite) {
		l.vec = slices.Clone(h.vec).set(n.ownSite, own)
		l.digest, l.marks = n.sites.digestMarked(l.vec, h.marks, n.ownSite)
	}
	return l
}

// trim drops from segments what the file already holds by the vector
// have: whole segments it covers and, in a segment it partly covers, the
// changes up to its version of that origin. After a heal the same changes
// arrive from every member that exchanged with this node in the same
// period; merging each copy cost as much as merging the first. It returns
// the remaining segments and how many changes it dropped. have is the
// vector held, which trim leaves as it is (a copy of it at every merge
// was a tenth of a merge's work at a thousand POPs); ahead holds, by site
// number, the versions the segments kept take their origins to, as if
// merged, for the next segments and the next call.
func (t *siteTable) trim(segs []store.Segment, have vclock, ahead map[int]uint64, self string) ([]store.Segment, int) {
	out := segs[:0:0]
	dropped := 0
	for _, s := range segs {
		if s.Origin == self || s.Origin == "" {
			out = append(out, s) // the store decides (it skips them)
			continue
		}
		o := t.id(s.Origin)
		h, ok := ahead[o]
		if !ok {
			h = have.at(o)
		}
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
			ahead[o] = s.To
		}
		out = append(out, s)
	}
	return out, dropped
}
