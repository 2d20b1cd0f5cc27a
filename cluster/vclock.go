package cluster

import (
	"encoding/binary"
	"slices"
	"sort"
	"sync"

	"github.com/edgeproxy/edgeproxy/store"
)

// A node holds many version vectors: its own of its last announcements
// and every member's last. Each has an entry per POP that ever wrote. As
// maps keyed by site name they were some 40 KB each at a thousand POPs,
// all of it pointers the garbage collector marks, and every vector a
// member sent cost a map operation per site. So a node numbers the sites
// it hears of, once, and holds its vectors as arrays of versions by site
// number: 8 bytes a site, nothing to mark, compared and copied as arrays.
// The wire and the store still speak store.Vector, keyed by name.

// vclock is a version vector by the site numbers of one node's
// siteTable. A number past its end is at version 0. A vclock that has
// been shared is never modified.
type vclock []uint64

// at is the version of site number i.
func (v vclock) at(i int) uint64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// set returns v with site number i at version x, grown if need be. v
// must be the caller's own.
func (v vclock) set(i int, x uint64) vclock {
	if i >= len(v) {
		if x == 0 {
			return v
		}
		v = append(v, make(vclock, i+1-len(v))...)
	}
	v[i] = x
	return v
}

// equal tells whether v and w hold the same versions.
func (v vclock) equal(w vclock) bool {
	for i := range max(len(v), len(w)) {
		if v.at(i) != w.at(i) {
			return false
		}
	}
	return true
}

// covers tells whether vector a has every version b has.
func covers(a, b vclock) bool {
	for i, x := range b {
		if a.at(i) < x {
			return false
		}
	}
	return true
}

// siteTable numbers the sites one node has heard of, in the order it
// heard of them. Numbers are never reused.
type siteTable struct {
	mu    sync.Mutex
	ids   map[string]int
	names []string
	// sorted is every site number in site name order: the order a digest
	// hashes in; pos is each site number's place in it, and epoch counts
	// the sites numbered, which move the places after theirs.
	sorted []int
	pos    []int
	epoch  int
}

// id returns the number of site, numbering it if it is new.
func (t *siteTable) id(site string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idLocked(site)
}

func (t *siteTable) idLocked(site string) int {
	if i, ok := t.ids[site]; ok {
		return i
	}
	if t.ids == nil {
		t.ids = map[string]int{}
	}
	i := len(t.names)
	t.ids[site] = i
	t.names = append(t.names, site)
	at := sort.Search(len(t.sorted), func(k int) bool { return t.names[t.sorted[k]] >= site })
	t.sorted = slices.Insert(t.sorted, at, i)
	t.pos = append(t.pos, 0)
	for k := at; k < len(t.sorted); k++ {
		t.pos[t.sorted[k]] = k
	}
	t.epoch++
	return i
}

// compact returns v by site number.
func (t *siteTable) compact(v store.Vector) vclock { return t.apply(nil, v) }

// apply returns base with the entries of diff (a site at version 0 is
// one the sender lacks), as a new vector.
func (t *siteTable) apply(base vclock, diff store.Vector) vclock {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(vclock, max(len(base), len(t.names)))
	copy(out, base)
	for site, x := range diff {
		out = out.set(t.idLocked(site), x)
	}
	return out
}

// vector returns v keyed by site name, without the sites at version 0.
func (t *siteTable) vector(v vclock) store.Vector {
	if v == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(store.Vector, len(v))
	for i, x := range v {
		if x != 0 {
			out[t.names[i]] = x
		}
	}
	return out
}

// difference returns the entries of v that differ from base, keyed by
// site name, a site v lacks at version 0.
func (t *siteTable) difference(v, base vclock) store.Vector {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := store.Vector{}
	for i := range max(len(v), len(base)) {
		if x := v.at(i); x != base.at(i) {
			out[t.names[i]] = x
		}
	}
	return out
}

// lower lowers each site of seen to its version in v.
func (t *siteTable) lower(seen store.Vector, v vclock) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for site, x := range seen {
		y := uint64(0)
		if i, ok := t.ids[site]; ok {
			y = v.at(i)
		}
		seen[site] = min(x, y)
	}
}

// digest is the digest of v (digest.go), computed without building a map.
func (t *siteTable) digest(v vclock) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.hashLocked(v, 0, fnvOffset, nil)
}

// A digest hashes every site's name, in name order: some 40 KB at a
// thousand POPs, and a node's vector changes at every merge, at one site
// or two. So the digest of a node's own vector keeps marks: the hash's
// state before every digestBlock-th site of the order. The digest of the
// vector after a merge starts from the mark before the first site that
// moved, about half the work on average.

// digestBlock is how many sites of the name order one mark covers.
const digestBlock = 32

// digestMarks are the marks of one vector's digest, valid while the
// table numbers no new site (epoch).
type digestMarks struct {
	epoch  int
	states []uint64
}

// digestMarked returns the digest of v and its marks. With prev, the
// marks of a vector that differs from v at the site numbers changed and
// nowhere else, it hashes from the block of the first of them.
func (t *siteTable) digestMarked(v vclock, prev *digestMarks, changed ...int) (uint64, *digestMarks) {
	t.mu.Lock()
	defer t.mu.Unlock()
	marks := &digestMarks{epoch: t.epoch, states: make([]uint64, (len(t.sorted)+digestBlock-1)/digestBlock)}
	from := 0
	if prev != nil && prev.epoch == t.epoch && len(prev.states) == len(marks.states) {
		from = len(marks.states) - 1 // the last block at least
		for _, i := range changed {
			from = min(from, t.pos[i]/digestBlock)
		}
		from = max(from, 0)
		copy(marks.states, prev.states[:from])
	}
	h := fnvOffset
	if from > 0 {
		h = prev.states[from]
	}
	return t.hashLocked(v, from, h, marks.states), marks
}

// hashLocked hashes v's sites in name order from block from on, starting
// from state h, and returns the digest. With states, it records there
// the state before each block it hashes.
func (t *siteTable) hashLocked(v vclock, from int, h uint64, states []uint64) uint64 {
	var b [binary.MaxVarintLen64]byte
	for k := from * digestBlock; k < len(t.sorted); k++ {
		if states != nil && k%digestBlock == 0 {
			states[k/digestBlock] = h
		}
		i := t.sorted[k]
		x := v.at(i)
		if x == 0 {
			continue
		}
		s := t.names[i]
		h = fnvAdd(h, binary.AppendUvarint(b[:0], uint64(len(s))))
		h = fnvAdd(h, s)
		h = fnvAdd(h, binary.AppendUvarint(b[:0], x))
	}
	return max(h, 1)
}

// FNV-1a, 64 bits, as hash/fnv computes it: written out so that a digest
// goes through no interface and allocates nothing.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvAdd[B []byte | string](h uint64, b B) uint64 {
	for i := 0; i < len(b); i++ {
		h ^= uint64(b[i])
		h *= fnvPrime
	}
	return h
}
