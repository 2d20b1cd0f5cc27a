package internal

import "github.com/edgeproxy/edgeproxy/internal/shardindex"

// nameIndex finds a zone's node by name. A snapshot following a change
// copies the few shards the changed names fall in (see shardindex) rather
// than a map of every name.
type nameIndex struct {
	shardindex.Index[*node]
}

// namesPerShard keeps a shard to a few cache lines.
const namesPerShard = 16

func nodeName(n *node) string { return n.name }

func newNameIndex(nodes []*node) nameIndex {
	return nameIndex{shardindex.Build(nodes, namesPerShard, nodeName)}
}

func (x nameIndex) get(name string) *node {
	n, _ := x.Get(name)
	return n
}

// with returns an index without the names in gone and with the nodes in
// add, sharing the untouched shards with x.
func (x nameIndex) with(gone []string, add []*node) nameIndex {
	return nameIndex{x.With(gone, add)}
}
