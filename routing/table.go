package routing

import (
	"sort"
	"sync/atomic"
	"time"
)

// Pop is one row of the pops table: a point of presence of the edge network.
type Pop struct {
	Node      string
	Region    string
	Country   string
	Addr      string // public or cluster address, host:port
	PublicKey string // WireGuard public key, base64
	Endpoint  string // WireGuard endpoint, host:port
	Prefix6   string // 6PN prefix, e.g. fdaa:0:1::/48
	Anycast   string // announced prefixes and their state
	State     string // the POP's health signal as it publishes it: serving, draining or stopping, ",stale" added while its table is unreadable
}

// Table is an immutable snapshot of the routing table. Build it with
// NewTable and never modify it afterwards: connections read it without locks.
type Table struct {
	// Generation increases every time a new snapshot is loaded.
	Generation uint64
	// LoadedAt is when the snapshot was read from the store.
	LoadedAt time.Time

	rows Rows // table order, which is v1's tie-break order
	flat atomic.Pointer[[]*Backend]
	pops []Pop
	apps appsByName
	byID idIndex
	// listOnly: no index to route by (see NewListTable).
	listOnly bool
}

// NewTable indexes backends (in table order) and pops into a snapshot.
func NewTable(generation uint64, loadedAt time.Time, backends []*Backend, pops []Pop) *Table {
	return newTable(generation, loadedAt, backends, pops, false)
}

// NewListTable is NewTable without the index a connection is routed by,
// for a reader that lists backends and never routes (the DNS server): a
// change then costs it nothing for the routing index. Tables derived from
// it have none either, and Acquire finds no backend in them.
func NewListTable(generation uint64, loadedAt time.Time, backends []*Backend, pops []Pop) *Table {
	return newTable(generation, loadedAt, backends, pops, true)
}

func newTable(generation uint64, loadedAt time.Time, backends []*Backend, pops []Pop, listOnly bool) *Table {
	t := &Table{
		Generation: generation,
		LoadedAt:   loadedAt,
		rows:       RowsOf(backends),
		pops:       pops,
		byID:       newIDIndex(backends),
		listOnly:   listOnly,
	}
	t.flat.Store(&backends)
	byApp := map[string]*appEntry{}
	var entries []*appEntry
	for _, b := range backends {
		b.takeLoad()
		e := byApp[b.App]
		if e == nil {
			e = &appEntry{name: b.App}
			byApp[b.App], entries = e, append(entries, e)
		}
		e.list = append(e.list, b)
	}
	if !listOnly {
		for _, e := range entries {
			e.index = buildAppIndex(e.list)
		}
	}
	t.apps = newAppsByName(entries)
	return t
}

// Backends returns every backend in table order, deleted ones included, as
// one slice made at the first call. The slice must not be modified. A pass
// that runs on every snapshot ranges over Rows().All() instead.
func (t *Table) Backends() []*Backend {
	if p := t.flat.Load(); p != nil {
		return *p
	}
	list := t.rows.Slice()
	t.flat.Store(&list)
	return list
}

// Rows returns every backend in table order, deleted ones included.
func (t *Table) Rows() Rows { return t.rows }

// App returns the backends of one app in table order. The slice must not be
// modified.
func (t *Table) App(name string) []*Backend {
	if e := t.apps.get(name); e != nil {
		return e.list
	}
	return nil
}

// Backend returns the backend with the given ID, or nil.
func (t *Table) Backend(id string) *Backend { return t.byID.get(id) }

// Pops returns every POP. The slice must not be modified.
func (t *Table) Pops() []Pop { return t.pops }

// AppsEditedSince returns, in no order, the apps whose list of backends
// in t is not prev's (a derived table shares the lists of the apps no
// change touched), those prev has and t lacks included: every app of t
// when prev is nil. Against the table t was derived from, it costs about
// the apps the change touched.
func (t *Table) AppsEditedSince(prev *Table) []string {
	if prev == nil {
		return t.appNames()
	}
	var out []string
	t.apps.Changed(prev.apps.Index, func(app string) {
		now, before := t.apps.get(app), prev.apps.get(app)
		if now == nil || before == nil || !sameList(now.list, before.list) {
			out = append(out, app)
		}
	})
	return out
}

func sameList(a, b []*Backend) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// Apps returns the sorted names of every app with at least one backend.
func (t *Table) Apps() []string {
	names := t.appNames()
	sort.Strings(names)
	return names
}

func (t *Table) appNames() []string {
	names := make([]string, 0, t.apps.Len())
	t.apps.Each(func(e *appEntry) { names = append(names, e.name) })
	return names
}
