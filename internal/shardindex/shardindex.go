// Package shardindex is an immutable index of values by a string key, cut
// into shards by a hash of the key, each a short list sorted by that hash.
// A copy with a few keys changed copies the few short lists they fall in
// (a memmove each) and the pages of the shard directory that hold them,
// and shares every other: snapshots that follow one another by small
// edits (the routing table's IDs, the DNS zone's names) cost about the
// edit, not the index.
package shardindex

import (
	"cmp"
	"hash/maphash"
	"iter"
	"slices"
)

// Index finds values of type V by key. The zero Index is empty. It never
// changes once built; With makes the next one.
type Index[V any] struct {
	// pages holds the shards, 1<<bits to a page: an edit copies the
	// directory of pages and the pages it touches, not a directory of
	// every shard (tens of thousands at a hundred thousand backends'
	// DNS names, a megabyte a copy).
	pages [][][]entry[V]
	bits  uint8
	mask  uint64
	key   func(V) string
	n     int // keys held
}

func (x Index[V]) shard(i uint64) []entry[V] { return x.pages[i>>x.bits][i&(1<<x.bits-1)] }

// pageBits sizes the pages of n shards. An edit of k keys copies the
// directory (n/page entries) and up to k pages, which costs least with
// pages of about the square root of n/k shards; k is one (a routing
// table's row) to a few dozen (the DNS names of an app). Pages of the
// square root of n/4, from 4 to 128 shards, are within a small factor of
// that for either.
func pageBits(n int) uint8 {
	b := uint8(2)
	for b < 7 && 1<<(2*b+2) < n {
		b++
	}
	return b
}

type entry[V any] struct {
	hash uint64
	v    V
}

// maxShards bounds the shard directory, whose pages an edit copies.
const maxShards = 1 << 16

var seed = maphash.MakeSeed()

func hash(key string) uint64 { return maphash.String(seed, key) }

// Build indexes values, about perShard to a shard, by key(v). Of several
// values with one key, the last is kept.
func Build[V any](values []V, perShard int, key func(V) string) Index[V] {
	n := 1
	for n*perShard < len(values) && n < maxShards {
		n *= 2
	}
	shards := make([][]entry[V], n)
	x := Index[V]{bits: pageBits(n), mask: uint64(n - 1), key: key}
	for _, v := range values {
		h := hash(key(v))
		shards[h&x.mask] = append(shards[h&x.mask], entry[V]{h, v})
	}
	for i, sh := range shards {
		// Stable: values of one key keep their order, and the last stays.
		slices.SortStableFunc(sh, func(a, b entry[V]) int { return cmp.Compare(a.hash, b.hash) })
		out := sh[:0]
		for j, e := range sh {
			if !x.keyLater(sh[j+1:], e) {
				out = append(out, e)
			}
		}
		shards[i] = out
		x.n += len(out)
	}
	for p, size := 0, 1<<x.bits; p < n; p += size {
		x.pages = append(x.pages, shards[p:min(p+size, n):min(p+size, n)])
	}
	return x
}

// keyLater reports whether an entry of rest (those after e in its shard)
// has e's key.
func (x Index[V]) keyLater(rest []entry[V], e entry[V]) bool {
	for _, r := range rest {
		if r.hash != e.hash {
			return false
		}
		if x.key(r.v) == x.key(e.v) {
			return true
		}
	}
	return false
}

// Len is how many keys the index holds.
func (x Index[V]) Len() int { return x.n }

// Shards is how many shards the index has.
func (x Index[V]) Shards() int { return int(x.mask) + 1 }

// Outgrown reports whether n keys are too many for x, built for about
// perShard a shard: With keeps the shards it was built with, so an index
// that grows by edits is built again once its shards hold four times what
// they were meant to, up to a directory of 1<<14 shards.
func (x Index[V]) Outgrown(n, perShard int) bool {
	return n > 4*perShard*x.Shards() && x.Shards() < 1<<14
}

// find returns where key is, or would go, in its shard.
func (x Index[V]) find(key string, h uint64) (int, bool) {
	s := x.shard(h & x.mask)
	// A binary search written out: Get is on the hot path of a routing
	// decision and of a DNS answer, and a comparison function called
	// through a pointer at every step made a decision about 5% slower.
	i, hi := 0, len(s)
	for i < hi {
		m := int(uint(i+hi) >> 1)
		if s[m].hash < h {
			i = m + 1
		} else {
			hi = m
		}
	}
	for j := i; j < len(s) && s[j].hash == h; j++ {
		if x.key(s[j].v) == key {
			return j, true
		}
	}
	return i, false
}

// Get returns the value of key, and whether there is one.
func (x Index[V]) Get(key string) (V, bool) {
	if len(x.pages) > 0 {
		h := hash(key)
		if i, ok := x.find(key, h); ok {
			return x.shard(h & x.mask)[i].v, true
		}
	}
	var zero V
	return zero, false
}

// Each calls f for every value, in no particular order.
func (x Index[V]) Each(f func(V)) {
	for v := range x.All() {
		f(v)
	}
}

// All yields every value, in no particular order.
func (x Index[V]) All() iter.Seq[V] {
	return func(yield func(V) bool) {
		for _, p := range x.pages {
			for _, s := range p {
				for _, e := range s {
					if !yield(e.v) {
						return
					}
				}
			}
		}
	}
}

// With returns an index without the keys in gone and then with the values
// in put (replacing those of their keys), sharing the untouched shards
// with x. x must have been built (Build), not be the zero Index.
func (x Index[V]) With(gone []string, put []V) Index[V] {
	y := Index[V]{pages: slices.Clone(x.pages), bits: x.bits, mask: x.mask, key: x.key, n: x.n}
	var pages, shards []uint64 // copied already: an edit touches few
	own := func(h uint64) []entry[V] {
		i := h & y.mask
		p := i >> y.bits
		if !slices.Contains(pages, p) {
			y.pages[p], pages = slices.Clone(y.pages[p]), append(pages, p)
		}
		if !slices.Contains(shards, i) {
			y.pages[p][i&(1<<y.bits-1)], shards = slices.Clone(y.shard(i)), append(shards, i)
		}
		return y.shard(i)
	}
	set := func(h uint64, s []entry[V]) { i := h & y.mask; y.pages[i>>y.bits][i&(1<<y.bits-1)] = s }
	for _, key := range gone {
		h := hash(key)
		if i, ok := y.find(key, h); ok {
			set(h, slices.Delete(own(h), i, i+1))
			y.n--
		}
	}
	for _, v := range put {
		h := hash(y.key(v))
		i, ok := y.find(y.key(v), h)
		s := own(h)
		if ok {
			s[i].v = v
		} else {
			set(h, slices.Insert(s, i, entry[V]{h, v}))
			y.n++
		}
	}
	return y
}

// Changed calls f once for every key of x or prev in a shard the two do
// not share: a superset of the keys whose values differ between them. An
// index made from prev by With shares all but the shards its edits
// touched, so this costs about the edits and a pass over the shard
// directory; indexes built apart share nothing, and every key is visited.
func (x Index[V]) Changed(prev Index[V], f func(key string)) {
	if x.mask != prev.mask || x.bits != prev.bits || len(x.pages) != len(prev.pages) {
		x.Each(func(v V) { f(x.key(v)) })
		prev.Each(func(v V) {
			if _, ok := x.Get(prev.key(v)); !ok {
				f(prev.key(v))
			}
		})
		return
	}
	for p, page := range x.pages {
		if sameSlice(page, prev.pages[p]) {
			continue
		}
		for i, s := range page {
			before := prev.pages[p][i]
			if sameSlice(s, before) {
				continue
			}
			for _, e := range s {
				f(x.key(e.v))
			}
			for _, e := range before {
				if !slices.ContainsFunc(s, func(n entry[V]) bool { return n.hash == e.hash && x.key(n.v) == prev.key(e.v) }) {
					f(prev.key(e.v))
				}
			}
		}
	}
}

// sameSlice reports whether a and b are one slice: the same elements of
// the same array.
func sameSlice[E any](a, b []E) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}
