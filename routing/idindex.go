package routing

import "hash/maphash"

// idIndex finds a backend by ID. It is cut into shards by a hash of the ID
// so that a snapshot derived from another copies only the shards its
// changed backends fall in, not a map of the whole table: a one-row edit
// of a 100,000-backend table copies a few hundred entries.
type idIndex struct {
	shards []map[string]*Backend
	mask   uint64
}

var idSeed = maphash.MakeSeed()

// shardTarget is about how many IDs one shard holds when the index is built.
const shardTarget = 64

func newIDIndex(backends []*Backend) idIndex {
	n := 1
	for n*shardTarget < len(backends) && n < 1<<14 {
		n *= 2
	}
	x := idIndex{shards: make([]map[string]*Backend, n), mask: uint64(n - 1)}
	per := len(backends)/n + 1
	for i := range x.shards {
		x.shards[i] = make(map[string]*Backend, per)
	}
	for _, b := range backends {
		x.shards[x.shard(b.ID)][b.ID] = b
	}
	return x
}

func (x idIndex) shard(id string) uint64 { return maphash.String(idSeed, id) & x.mask }

func (x idIndex) get(id string) *Backend {
	if len(x.shards) == 0 {
		return nil
	}
	return x.shards[x.shard(id)][id]
}

// crowded reports whether the index has outgrown its shards, so a derived
// table should build a new one.
func (x idIndex) crowded(n int) bool {
	return n > 4*shardTarget*len(x.shards) && len(x.shards) < 1<<14
}

// with returns an index where every change's Old is gone and its New is
// present, sharing the untouched shards with x.
func (x idIndex) with(changes []Change) idIndex {
	y := idIndex{shards: make([]map[string]*Backend, len(x.shards)), mask: x.mask}
	copy(y.shards, x.shards)
	copied := map[uint64]bool{}
	own := func(id string) map[string]*Backend {
		i := y.shard(id)
		if !copied[i] {
			m := make(map[string]*Backend, len(y.shards[i])+1)
			for k, v := range y.shards[i] {
				m[k] = v
			}
			y.shards[i], copied[i] = m, true
		}
		return y.shards[i]
	}
	for _, c := range changes {
		if c.Old != nil {
			m := own(c.Old.ID)
			if m[c.Old.ID] == c.Old {
				delete(m, c.Old.ID)
			}
		}
	}
	for _, c := range changes {
		if c.New != nil {
			own(c.New.ID)[c.New.ID] = c.New
		}
	}
	return y
}
