package routing

import "github.com/edgeproxy/edgeproxy/internal/shardindex"

// idIndex finds a backend by ID. A snapshot derived from another copies
// only the shards its changed backends fall in (see shardindex), not a map
// of the whole table.
type idIndex struct {
	shardindex.Index[*Backend]
}

// shardTarget is about how many IDs one shard holds when the index is built.
const shardTarget = 64

func backendID(b *Backend) string { return b.ID }

// newIDIndex indexes backends in table order; of several rows with one ID,
// the last is found.
func newIDIndex(backends []*Backend) idIndex {
	return idIndex{shardindex.Build(backends, shardTarget, backendID)}
}

func (x idIndex) get(id string) *Backend {
	b, _ := x.Get(id)
	return b
}

// crowded reports whether the index has outgrown its shards, so a derived
// table should build a new one.
func (x idIndex) crowded(n int) bool { return x.Outgrown(n, shardTarget) }

// with returns an index where every change's Old is gone and its New is
// present, sharing the untouched shards with x.
func (x idIndex) with(changes []Change) idIndex {
	var gone []string
	var put []*Backend
	for _, c := range changes {
		if c.Old != nil && x.get(c.Old.ID) == c.Old {
			gone = append(gone, c.Old.ID)
		}
		if c.New != nil {
			put = append(put, c.New)
		}
	}
	return idIndex{x.With(gone, put)}
}
