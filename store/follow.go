package store

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Delta says what a snapshot a Watcher delivers changed against the one
// it delivered before.
type Delta struct {
	// Full: the whole table was read (the first snapshot, a schema change,
	// a file without a journal or one the journal cannot account for):
	// anything may have changed.
	Full bool
	// Backends are the IDs of the backend rows that were added, changed
	// or removed.
	Backends []string
	// Pops is set when the pops rows changed.
	Pops bool
	// Health are the IDs of backends whose health rows changed.
	Health []string
}

// view is what a follower's last snapshot was read from: the table, each
// backend's rowid (table order) and the journal position, so the next
// snapshot reads only the rows the journal names. It is the follower's
// own; the tables it builds are shared and never change.
type view struct {
	table    *routing.Table
	backends routing.Rows     // table.Rows()
	rowOf    map[string]int64 // backend ID -> rowid; rowids grow along backends
	warnings map[string]rowWarning
	query    string // backendQuery for the file's columns
	unique   bool   // every ID names one row
	journal  bool   // pos is valid: the view can follow the journal
	pos      journalPos
}

type rowWarning struct {
	rowid int64
	msg   string
}

// warningList is the load warnings in table order.
func (v *view) warningList() []string {
	if len(v.warnings) == 0 {
		return nil
	}
	ws := make([]rowWarning, 0, len(v.warnings))
	for _, w := range v.warnings {
		ws = append(ws, w)
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i].rowid < ws[j].rowid })
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.msg
	}
	return out
}

// followLimit is how many journal entries a follower reads row by row;
// past it (or past an eighth of the table) reading the whole table is
// cheaper.
const followLimit = 4096

// follow brings v up to the file as r sees it. It returns the next view
// and what changed, or nil when nothing a snapshot holds changed since v.
// With a nil v, or one the journal cannot bring forward, it reads
// everything.
func (s *Store) follow(ctx context.Context, r reading, v *view) (*view, Delta, error) {
	if v != nil && v.journal {
		if pos, ok := s.journalNow(ctx, r); ok {
			nv, d, ok, err := s.followJournal(ctx, r, v, pos)
			if err != nil || ok {
				return nv, d, err
			}
		}
	}
	nv, err := s.readAll(ctx, r)
	if err != nil {
		return nil, Delta{}, s.wrap(err)
	}
	return nv, Delta{Full: true}, nil
}

// followJournal brings v, a view that follows the journal, up to pos by
// re-reading the rows the entries up to pos name. ok is false when the
// journal cannot account for what changed (another journal or schema,
// entries pruned, too many of them, two rows with one ID): the caller
// reads everything. A nil view with ok means nothing changed.
func (s *Store) followJournal(ctx context.Context, r reading, v *view, pos journalPos) (nv *view, d Delta, ok bool, err error) {
	switch {
	case pos.id != v.pos.id || pos.schema != v.pos.schema || pos.n < v.pos.n:
		return nil, Delta{}, false, nil
	case pos.n == v.pos.n:
		return nil, Delta{}, true, nil
	}
	ch, ok, err := s.readJournal(ctx, r, v.pos.n, pos.n, min(followLimit, max(64, v.backends.Len()/8)))
	if err != nil || !ok {
		return nil, Delta{}, false, s.wrapNil(err)
	}
	var rows []backendRow
	if len(ch.backends) > 0 {
		if rows, err = readRows(ctx, r, v.query, ch.backends); err != nil {
			return nil, Delta{}, false, s.wrap(err)
		}
	}
	nv, ok, err = s.apply(ctx, r, v, ch, rows)
	if err != nil || !ok {
		return nil, Delta{}, false, s.wrapNil(err)
	}
	nv.pos = pos
	return nv, Delta{Backends: ch.backends, Pops: ch.pops, Health: ch.health}, true, nil
}

// rowByID ends a backend query to read the rows of one ID.
const rowByID = " WHERE id = ?"

// followAhead brings v, a view that follows the journal, up to what the
// commit watch's thread read ahead from v's position. ok is false where the
// rows cannot be followed by ID: the caller reads.
func (s *Store) followAhead(v *view, a readAhead) (*view, Delta, bool) {
	ch := a.changes()
	nv, ok, _ := s.apply(context.Background(), nil, v, ch, a.rows) // no pops entry: reads nothing, no error
	if !ok {
		return nil, Delta{}, false
	}
	nv.pos = a.to
	return nv, Delta{Backends: ch.backends, Health: ch.health}, true
}

// readRows reads the backend rows with the given IDs. One ID, an edit's,
// is looked up by itself: reading a JSON list is code a quiet process runs
// cold at every edit.
func readRows(ctx context.Context, r reading, query string, ids []string) ([]backendRow, error) {
	where, arg := rowByID, ids[0]
	if len(ids) > 1 {
		list, _ := json.Marshal(ids)
		where, arg = " WHERE id IN (SELECT value FROM json_each(?))", string(list)
	}
	st, err := r.prepared(ctx, query+where)
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, arg)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []backendRow
	for rows.Next() {
		b, err := scanBackendRow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// apply builds the view after the journal's changes from rows, the changed
// backend rows as they are now; everything else is v's, and r is read only
// for the pops when they changed. ok is false when the rows cannot be
// followed by ID (two rows with one ID).
func (s *Store) apply(ctx context.Context, r reading, v *view, ch journalChanges, rows []backendRow) (*view, bool, error) {
	nv := *v
	backends, pops := v.backends, v.table.Pops()
	var changes []routing.Change
	if len(ch.backends) > 0 {
		type added struct {
			rowid int64
			b     *routing.Backend
		}
		adds := make([]added, 0, len(rows))
		warnings := map[string]rowWarning{}
		for _, row := range rows {
			b, warning := s.backendOf(row)
			adds = append(adds, added{row.rowid, b})
			if warning != "" {
				warnings[b.ID] = rowWarning{row.rowid, warning}
			}
		}
		// The old rows of every changed ID go; the rows read now come in.
		// Places are found by binary search on the rowids before rowOf
		// changes: the dropped rows' positions, and where each read row
		// falls among the old ones.
		at := func(rowid int64) (int, bool) {
			return v.backends.Search(func(b *routing.Backend) int { return cmp.Compare(v.rowOf[b.ID], rowid) })
		}
		var drop []int // positions in v.backends
		for _, id := range ch.backends {
			r, had := v.rowOf[id]
			if !had {
				continue
			}
			i, found := at(r)
			if !found {
				return nil, false, nil
			}
			drop = append(drop, i)
		}
		sort.Slice(adds, func(i, j int) bool { return adds[i].rowid < adds[j].rowid })
		place := make([]int, len(adds))
		for k, a := range adds {
			place[k], _ = at(a.rowid)
		}
		slices.Sort(drop)
		nv.rowOf = v.rowOf // the follower's own: updated in place
		nv.warnings = v.warnings
		for _, i := range drop {
			b := v.backends.At(i)
			changes = append(changes, routing.Change{Old: b})
			delete(nv.rowOf, b.ID)
			delete(nv.warnings, b.ID)
		}
		list := make([]*routing.Backend, len(adds))
		for k, a := range adds {
			if _, dup := nv.rowOf[a.b.ID]; dup {
				return nil, false, nil
			}
			nv.rowOf[a.b.ID] = a.rowid
			if w, ok := warnings[a.b.ID]; ok {
				nv.warnings[a.b.ID] = w
			}
			changes = append(changes, routing.Change{New: a.b})
			list[k] = a.b
		}
		// The old rows minus the dropped, with the read rows in their
		// places: the chunks no edit falls in are shared.
		nv.backends = v.backends.Edit(drop, list, place)
		backends = nv.backends
	}
	if ch.pops {
		p, err := loadPops(ctx, r)
		if err != nil {
			return nil, false, err
		}
		pops = p
	}
	now := time.Now()
	rowOf := nv.rowOf
	nv.table = v.table.Derive(s.nextGeneration(now), now, backends, pops, changes, func(b *routing.Backend) int64 { return rowOf[b.ID] })
	return &nv, true, nil
}
