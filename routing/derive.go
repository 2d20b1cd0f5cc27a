package routing

import (
	"cmp"
	"slices"
	"time"
)

// Change is one backend row that differs between two snapshots: Old as the
// earlier table has it (nil for a new row), New as the next one has it (nil
// for a removed row).
type Change struct {
	Old, New *Backend
}

// Derive returns the snapshot NewTable(generation, loadedAt, rows, pops)
// would build, sharing with t everything the changes do not touch, so that
// following a one-row edit costs about the rows edited rather than the
// table. rows is the whole new table in table order; every backend in it
// that is not the New of a change must be the very *Backend t holds
// (Backend values are immutable: a changed row is a new value). The
// indexes of apps no change touches are t's own, the chunks and load
// bookkeeping of their backends included; apps a change touches are
// indexed again.
//
// order, if given, returns a backend's place in table order (any number
// that grows along backends, such as the row's rowid): the touched apps'
// lists are then t's lists with the changes put in place, instead of a
// pass over the whole table.
func (t *Table) Derive(generation uint64, loadedAt time.Time, rows Rows, pops []Pop, changes []Change, order func(*Backend) int64) *Table {
	n := &Table{
		Generation: generation,
		LoadedAt:   loadedAt,
		rows:       rows,
		pops:       pops,
		listOnly:   t.listOnly,
	}
	if len(changes) == 0 {
		n.apps, n.byID = t.apps, t.byID
		return n
	}
	touched := map[string]bool{}
	for _, c := range changes {
		if c.Old != nil {
			touched[c.Old.App] = true
		}
		if c.New != nil {
			c.New.takeLoad()
			touched[c.New.App] = true
		}
	}
	if t.byID.crowded(rows.Len()) {
		n.byID = newIDIndex(rows.Slice())
	} else {
		n.byID = t.byID.with(changes)
	}
	apps := make([]string, 0, len(touched))
	for app := range touched {
		apps = append(apps, app)
	}
	var lists [][]*Backend
	if order != nil {
		lists = t.edited(apps, changes, order)
	} else {
		lists = scanApps(rows, apps)
	}
	var gone []string
	var put []*appEntry
	for i, app := range apps {
		if len(lists[i]) == 0 {
			gone = append(gone, app)
			continue
		}
		e := &appEntry{name: app, list: lists[i]}
		if !t.listOnly {
			e.index = t.indexAfter(app, lists[i], changes)
		}
		put = append(put, e)
	}
	n.apps = t.apps.with(gone, put)
	if n.apps.crowded() {
		n.apps = newAppsByName(n.apps.all())
	}
	return n
}

// indexAfter returns the index of app's list after the changes: t's index
// patched when every change to the app is an edit that keeps its backend
// in its place and groups (the common edit: health, a weight, a limit, a
// port), else built again.
func (t *Table) indexAfter(app string, list []*Backend, changes []Change) *appIndex {
	if p, ok := t.patchable(app, list, changes); ok {
		return t.apps.get(app).index.patched(p)
	}
	return buildAppIndex(list)
}

// patchable returns the changes to app as a patch when t's index of it can
// be patched for them: at most maxPatched edits in place (editedInPlace),
// each backend at the same place of the app's list as before, and at most
// maxAppended backends added after all the others (registrations, whose
// rows come last). A removal and an addition of the same ID are one edit
// (the store reports an edited row so).
func (t *Table) patchable(app string, list []*Backend, changes []Change) (patch, bool) {
	before := t.apps.get(app)
	if before == nil || before.index == nil || len(list) < len(before.list) {
		return patch{}, false
	}
	old := before.list
	var edits, halves []Change
	for _, c := range changes {
		switch {
		case (c.Old == nil || c.Old.App != app) && (c.New == nil || c.New.App != app):
		case c.Old != nil && c.New != nil:
			edits = append(edits, c)
		default:
			halves = append(halves, c)
		}
		if len(edits) > 2*maxPatched || len(halves) > 2*maxPatched+maxAppended {
			return patch{}, false
		}
	}
	var adds []*Backend
	for len(halves) > 0 {
		h := halves[0]
		j := slices.IndexFunc(halves[1:], func(o Change) bool {
			return h.Old != nil && o.New != nil && o.New.ID == h.Old.ID || h.New != nil && o.Old != nil && o.Old.ID == h.New.ID
		})
		if j < 0 {
			if h.Old != nil {
				return patch{}, false // a row removed
			}
			adds = append(adds, h.New)
			halves = halves[1:]
			continue
		}
		o := halves[1+j]
		e := Change{Old: h.Old, New: o.New}
		if h.Old == nil {
			e = Change{Old: o.Old, New: h.New}
		}
		edits = append(edits, e)
		halves = slices.Delete(halves, 1+j, 2+j)[1:]
	}
	if len(edits)+len(adds) == 0 || len(edits) > maxPatched || len(adds) > maxAppended ||
		len(list) != len(old)+len(adds) {
		return patch{}, false
	}
	// The added rows must be the list's last, in some order.
	for _, b := range list[len(old):] {
		if !slices.Contains(adds, b) {
			return patch{}, false
		}
	}
	p := patch{edits: make([]placedEdit, len(edits)), from: int32(len(old)), adds: list[len(old):]}
	for k, c := range edits {
		if !editedInPlace(c) {
			return patch{}, false
		}
		i := slices.Index(old, c.Old)
		if i < 0 || list[i] != c.New {
			return patch{}, false
		}
		p.edits[k] = placedEdit{at: int32(i), new: c.New}
	}
	return p, true
}

// patch is what an app's index is patched for: edits in place, and the
// backends added at places from on of the app's list, in its order.
type patch struct {
	edits []placedEdit
	from  int32
	adds  []*Backend
}

// maxAppended is how many added backends of one app a snapshot patches
// into the app's index; more are built again with it.
const maxAppended = 256

// placedEdit is an edit in place: the backend at place at of its app's
// list is now new.
type placedEdit struct {
	at  int32
	new *Backend
}

// edited returns the lists of apps after the changes: each app's list in t
// without the changes' Old backends, with their New ones placed by order.
func (t *Table) edited(apps []string, changes []Change, order func(*Backend) int64) [][]*Backend {
	gone := make(map[*Backend]bool, len(changes))
	for _, c := range changes {
		if c.Old != nil {
			gone[c.Old] = true
		}
	}
	lists := make([][]*Backend, len(apps))
	for i, app := range apps {
		old := t.App(app)
		list := make([]*Backend, 0, len(old)+len(changes))
		for _, b := range old {
			if !gone[b] {
				list = append(list, b)
			}
		}
		for _, c := range changes {
			if c.New == nil || c.New.App != app {
				continue
			}
			key := order(c.New)
			at, _ := slices.BinarySearchFunc(list, key, func(b *Backend, k int64) int { return cmp.Compare(order(b), k) })
			list = slices.Insert(list, at, c.New)
		}
		lists[i] = list
	}
	return lists
}

// scanApps collects the lists of apps from the whole table in one pass
// (pointer reads and string comparisons), with a map only when many apps
// are asked for at once.
func scanApps(rows Rows, apps []string) [][]*Backend {
	lists := make([][]*Backend, len(apps))
	if len(apps) <= 4 {
		for b := range rows.All() {
			for i, app := range apps {
				if b.App == app {
					lists[i] = append(lists[i], b)
					break
				}
			}
		}
		return lists
	}
	at := make(map[string]int, len(apps))
	for i, app := range apps {
		at[app] = i
	}
	for b := range rows.All() {
		if i, ok := at[b.App]; ok {
			lists[i] = append(lists[i], b)
		}
	}
	return lists
}
