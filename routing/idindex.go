package routing

import (
	"cmp"
	"hash/maphash"
	"slices"
)

// idIndex finds a backend by ID. It is cut into shards by a hash of the ID,
// each a short list sorted by that hash, so that a snapshot derived from
// another copies only the few short lists its changed backends fall in (a
// memmove each), not a map of the whole table.
type idIndex struct {
	shards [][]idEntry
	mask   uint64
}

type idEntry struct {
	hash uint64
	b    *Backend
}

var idSeed = maphash.MakeSeed()

// shardTarget is about how many IDs one shard holds when the index is built.
const shardTarget = 64

func hashID(id string) uint64 { return maphash.String(idSeed, id) }

func byIDHash(a, b idEntry) int { return cmp.Compare(a.hash, b.hash) }

// newIDIndex indexes backends in table order; of several rows with one ID,
// the last is found.
func newIDIndex(backends []*Backend) idIndex {
	n := 1
	for n*shardTarget < len(backends) && n < 1<<14 {
		n *= 2
	}
	x := idIndex{shards: make([][]idEntry, n), mask: uint64(n - 1)}
	for _, b := range backends {
		h := hashID(b.ID)
		x.shards[h&x.mask] = append(x.shards[h&x.mask], idEntry{h, b})
	}
	for i, sh := range x.shards {
		// Stable: rows of one ID keep table order, and the last stays.
		slices.SortStableFunc(sh, byIDHash)
		out := sh[:0]
		for j, e := range sh {
			if j+1 < len(sh) && sh[j+1].hash == e.hash && laterSameID(sh[j+1:], e) {
				continue
			}
			out = append(out, e)
		}
		x.shards[i] = out
	}
	return x
}

// laterSameID reports whether a later entry of the same hash has e's ID.
func laterSameID(rest []idEntry, e idEntry) bool {
	for _, r := range rest {
		if r.hash != e.hash {
			return false
		}
		if r.b.ID == e.b.ID {
			return true
		}
	}
	return false
}

// find returns where id is, or would go, in its shard.
func (x idIndex) find(id string, h uint64) (int, bool) {
	s := x.shards[h&x.mask]
	i, _ := slices.BinarySearchFunc(s, h, func(e idEntry, h uint64) int { return cmp.Compare(e.hash, h) })
	for j := i; j < len(s) && s[j].hash == h; j++ {
		if s[j].b.ID == id {
			return j, true
		}
	}
	return i, false
}

func (x idIndex) get(id string) *Backend {
	if len(x.shards) == 0 {
		return nil
	}
	h := hashID(id)
	if i, ok := x.find(id, h); ok {
		return x.shards[h&x.mask][i].b
	}
	return nil
}

// crowded reports whether the index has outgrown its shards, so a derived
// table should build a new one.
func (x idIndex) crowded(n int) bool {
	return n > 4*shardTarget*len(x.shards) && len(x.shards) < 1<<14
}

// with returns an index where every change's Old is gone and its New is
// present, sharing the untouched shards with x.
func (x idIndex) with(changes []Change) idIndex {
	y := idIndex{shards: slices.Clone(x.shards), mask: x.mask}
	var copied []uint64 // a change touches few shards
	own := func(h uint64) []idEntry {
		if i := h & y.mask; !slices.Contains(copied, i) {
			y.shards[i], copied = slices.Clone(y.shards[i]), append(copied, i)
		}
		return y.shards[h&y.mask]
	}
	for _, c := range changes {
		if c.Old == nil {
			continue
		}
		h := hashID(c.Old.ID)
		if i, ok := y.find(c.Old.ID, h); ok && y.shards[h&y.mask][i].b == c.Old {
			y.shards[h&y.mask] = slices.Delete(own(h), i, i+1)
		}
	}
	for _, c := range changes {
		if c.New == nil {
			continue
		}
		h := hashID(c.New.ID)
		i, ok := y.find(c.New.ID, h)
		s := own(h)
		if ok {
			s[i].b = c.New
		} else {
			y.shards[h&y.mask] = slices.Insert(s, i, idEntry{h, c.New})
		}
	}
	return y
}
