package routing

import "github.com/edgeproxy/edgeproxy/internal/shardindex"

// appsByName finds an app's backends and routing index by its name. A
// derived table copies only the shards its touched apps fall in (see
// shardindex), not a map of every app: a one-row edit costs the same at
// ten apps as at ten thousand.
type appsByName struct {
	shardindex.Index[*appEntry]
}

// appEntry is one app of a snapshot.
type appEntry struct {
	name  string
	list  []*Backend // table order, deleted rows included
	index *appIndex  // nil in a list-only table
}

// appsPerShard is about how many apps one shard holds when the index is
// built.
const appsPerShard = 8

func appName(e *appEntry) string { return e.name }

func newAppsByName(entries []*appEntry) appsByName {
	return appsByName{shardindex.Build(entries, appsPerShard, appName)}
}

func (x appsByName) get(name string) *appEntry {
	e, _ := x.Get(name)
	return e
}

// crowded reports whether the index has outgrown its shards, so a derived
// table should build a new one.
func (x appsByName) crowded() bool { return x.Outgrown(x.Len(), appsPerShard) }

// with returns an index without the apps in gone and then with those in put,
// sharing the untouched shards with x.
func (x appsByName) with(gone []string, put []*appEntry) appsByName {
	return appsByName{x.With(gone, put)}
}

// all returns every app's entry, in no order.
func (x appsByName) all() []*appEntry {
	out := make([]*appEntry, 0, x.Len())
	x.Each(func(e *appEntry) { out = append(out, e) })
	return out
}
