package internal

import (
	"cmp"
	"hash/maphash"
	"slices"
)

// nameIndex finds a zone's node by name. It is cut into shards by a hash of
// the name, each a short list sorted by that hash, so that a snapshot
// following a change copies the few short lists the changed names fall in
// (a memmove each) rather than a map of every name.
type nameIndex struct {
	shards [][]indexed
	mask   uint64
}

type indexed struct {
	hash uint64
	n    *node
}

// namesPerShard keeps a shard to a few cache lines.
const namesPerShard = 16

var nameSeed = maphash.MakeSeed()

func hashName(name string) uint64 { return maphash.String(nameSeed, name) }

func newNameIndex(names map[string]*node) nameIndex {
	n := 1
	for n*namesPerShard < len(names) && n < 1<<16 {
		n *= 2
	}
	x := nameIndex{shards: make([][]indexed, n), mask: uint64(n - 1)}
	for name, v := range names {
		h := hashName(name)
		x.shards[h&x.mask] = append(x.shards[h&x.mask], indexed{h, v})
	}
	for _, s := range x.shards {
		slices.SortFunc(s, byHash)
	}
	return x
}

func byHash(a, b indexed) int { return cmp.Compare(a.hash, b.hash) }

// find returns where name is, or would go, in its shard.
func (x nameIndex) find(name string, h uint64) (int, bool) {
	s := x.shards[h&x.mask]
	i, _ := slices.BinarySearchFunc(s, h, func(e indexed, h uint64) int { return cmp.Compare(e.hash, h) })
	for j := i; j < len(s) && s[j].hash == h; j++ {
		if s[j].n.name == name {
			return j, true
		}
	}
	return i, false
}

func (x nameIndex) get(name string) *node {
	if len(x.shards) == 0 {
		return nil
	}
	h := hashName(name)
	if i, ok := x.find(name, h); ok {
		return x.shards[h&x.mask][i].n
	}
	return nil
}

// each calls f for every node, in no particular order.
func (x nameIndex) each(f func(*node)) {
	for _, s := range x.shards {
		for _, e := range s {
			f(e.n)
		}
	}
}

// with returns an index without the names in gone and with the nodes in
// add, sharing the untouched shards with x.
func (x nameIndex) with(gone []string, add []*node) nameIndex {
	y := nameIndex{shards: slices.Clone(x.shards), mask: x.mask}
	var copied []uint64 // a change touches few shards
	own := func(h uint64) {
		if i := h & y.mask; !slices.Contains(copied, i) {
			y.shards[i], copied = slices.Clone(y.shards[i]), append(copied, i)
		}
	}
	for _, name := range gone {
		h := hashName(name)
		if i, ok := y.find(name, h); ok {
			own(h)
			y.shards[h&y.mask] = slices.Delete(y.shards[h&y.mask], i, i+1)
		}
	}
	for _, n := range add {
		h := hashName(n.name)
		own(h)
		if i, ok := y.find(n.name, h); ok {
			y.shards[h&y.mask][i].n = n
		} else {
			y.shards[h&y.mask] = slices.Insert(y.shards[h&y.mask], i, indexed{h, n})
		}
	}
	return y
}
