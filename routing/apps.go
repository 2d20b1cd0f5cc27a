package routing

import "github.com/edgeproxy/edgeproxy/internal/shardindex"

// appsByName finds an app's backends and routing index by its name. A
// derived table copies only the shards its touched apps fall in (see
// shardindex), not a map of every app: a one-row edit costs the same at
// ten apps as at ten thousand.
type appsByName struct {
	shardindex.Index[*appEntry]
	n int // apps held
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
	return appsByName{shardindex.Build(entries, appsPerShard, appName), len(entries)}
}

func (x appsByName) get(name string) *appEntry {
	e, _ := x.Get(name)
	return e
}

// crowded reports whether the index has outgrown its shards, so a derived
// table should build a new one.
func (x appsByName) crowded() bool {
	return x.n > 4*appsPerShard*x.Shards() && x.Shards() < 1<<14
}

// with returns an index without the apps in gone and with those in put
// (no app in both), sharing the untouched shards with x.
func (x appsByName) with(gone []string, put []*appEntry) appsByName {
	n := x.n
	for _, name := range gone {
		if x.get(name) != nil {
			n--
		}
	}
	for _, e := range put {
		if x.get(e.name) == nil {
			n++
		}
	}
	return appsByName{x.With(gone, put), n}
}

// all returns every app's entry, in no order.
func (x appsByName) all() []*appEntry {
	out := make([]*appEntry, 0, x.n)
	x.Each(func(e *appEntry) { out = append(out, e) })
	return out
}
