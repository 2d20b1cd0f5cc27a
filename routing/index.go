package routing

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sync/atomic"
)

// appIndex groups one app's routable backends the way scoring asks for them,
// so a decision scans the client's country first and stops at the first tier
// that has an eligible backend, instead of scoring the whole app.
type appIndex struct {
	all       *group
	byCountry map[string]*group
	byRegion  map[string]*group
}

// group is the backends of one tier for some clients, in the app's order,
// cut into chunks. The chunks of a large group each remember their least
// loaded backend, refreshed whenever one of their backends' load or health
// changes, so a decision reads one slot per chunk instead of every slot; a
// small one is scanned whole.
//
// Chunks never change once published (but for best), so an index patched
// for an edit shares with the one before every chunk the edit does not
// touch: the edit costs a chunk per group, not the app.
type group struct {
	chunks []*chunk
	// cells, for a large group: where each chunk's loads find it, one per
	// chunk. Indexes patched from one another share them, so a patch
	// points a load at its new chunk with one store.
	cells []*cell
}

// chunkSize balances the refresh (a scan of one chunk on every acquire and
// release) against the decision (a read per chunk).
const chunkSize = 32

type chunk struct {
	slots []slot
	best  atomic.Int32 // index in slots of the least loaded eligible slot, -1 for none
}

// cell holds the newest chunk at one place of a large group.
type cell struct{ c atomic.Pointer[chunk] }

// publish makes ch, refreshed, the cell's chunk. Its loads refresh the
// chunk the cell held until the store: a change of load in between
// refreshed that one, so ch looks once more after.
func (c *cell) publish(ch *chunk) {
	ch.refresh()
	c.c.Store(ch)
	ch.refresh()
}

// slot is a backend with what the scan needs precomputed: the reciprocal of
// soft limit times weight turns the score's two divisions into a multiply.
// Every backend of the app has one, in the groups of its country and
// region; one the table does not let route (unhealthy, deleted, without a
// valid address) has a hard limit of 0, so it is never eligible, and an
// edit that makes it routable again changes its slot, not the groups.
type slot struct {
	b    *Backend
	load *Load
	inv  float64
	hard int64
	at   int32 // the backend's place in the app's list; grows along a group
}

func buildAppIndex(backends []*Backend) *appIndex {
	ix := &appIndex{byCountry: map[string]*group{}, byRegion: map[string]*group{}}
	// Two passes: the first counts the backends of each country and
	// region, so that every group's slots are cut from one array.
	// An app has few countries and regions: they are found by a scan of
	// the keys seen so far, starting with the previous row's.
	type tally struct {
		key string
		n   int
	}
	find := func(list []tally, last *int, key string) int {
		if *last < len(list) && list[*last].key == key {
			return *last
		}
		for i := range list {
			if list[i].key == key {
				*last = i
				return i
			}
		}
		*last = len(list)
		return -1
	}
	var countries, regions []tally
	var lastC, lastR int
	n := len(backends)
	for _, b := range backends {
		if b.Country != "" {
			if i := find(countries, &lastC, b.Country); i >= 0 {
				countries[i].n++
			} else {
				countries = append(countries, tally{b.Country, 1})
			}
		}
		if b.Region != "" {
			if i := find(regions, &lastR, b.Region); i >= 0 {
				regions[i].n++
			} else {
				regions = append(regions, tally{b.Region, 1})
			}
		}
	}
	backing := make([]slot, 3*n)
	all := backing[0:0:n]
	offset := n
	cut := func(tallies []tally) [][]slot {
		gs := make([][]slot, len(tallies))
		for i, t := range tallies {
			gs[i] = backing[offset : offset : offset+t.n]
			offset += t.n
		}
		return gs
	}
	cSlots, rSlots := cut(countries), cut(regions)
	lastC, lastR = 0, 0
	for i, b := range backends {
		s := slotOf(b, int32(i))
		all = append(all, s)
		if b.Country != "" {
			k := find(countries, &lastC, b.Country)
			cSlots[k] = append(cSlots[k], s)
		}
		if b.Region != "" {
			k := find(regions, &lastR, b.Region)
			rSlots[k] = append(rSlots[k], s)
		}
	}
	// Each backend is in at most three groups (all, its country, its
	// region), so the cells its load refreshes fit three places of one
	// array for the whole app: two allocations per app, none per backend.
	w := watchList{flat: make([]*cell, 3*n), n: make([]uint8, n)}
	ix.all = newGroup(all, &w)
	for i, t := range countries {
		ix.byCountry[t.key] = newGroup(cSlots[i], &w)
	}
	for i, t := range regions {
		ix.byRegion[t.key] = newGroup(rSlots[i], &w)
	}
	lists := make([][]*cell, n)
	for i, b := range backends {
		if w.n[i] > 0 {
			lists[i] = w.flat[3*i : 3*i+int(w.n[i]) : 3*i+int(w.n[i])]
			b.Load.cells.Store(&lists[i])
		}
	}
	return ix
}

// newGroup cuts slots into chunks; for a large group it also refreshes
// them and notes in w the cells each backend's load must refresh.
func newGroup(slots []slot, w *watchList) *group {
	k := (len(slots) + chunkSize - 1) / chunkSize
	g := &group{chunks: make([]*chunk, k)}
	chunks := make([]chunk, k)
	for i := range chunks {
		end := min((i+1)*chunkSize, len(slots))
		chunks[i].slots = slots[i*chunkSize : end : end]
		g.chunks[i] = &chunks[i]
	}
	if len(slots) <= 2*chunkSize {
		return g
	}
	cells := make([]cell, k)
	g.cells = make([]*cell, k)
	for i, c := range g.chunks {
		c.refresh()
		g.cells[i] = &cells[i]
		g.cells[i].c.Store(c)
		for _, s := range c.slots {
			w.add(s.at, g.cells[i])
		}
	}
	return g
}

// slotOf is b's slot at place at of its app's list.
func slotOf(b *Backend, at int32) slot {
	s := slot{b: b, load: b.Load, inv: 1 / (b.EffectiveSoftLimit() * b.EffectiveWeight()), hard: int64(b.HardLimit), at: at}
	switch {
	case !b.TableRoutable():
		s.hard = 0 // never eligible
	case s.hard <= 0:
		s.hard = math.MaxInt64
	}
	return s
}

// maxPatched is how many edits of one app a snapshot patches into the
// app's index; more are built again.
const maxPatched = 8

// patched returns the index of the app's list after p: edits that kept
// each backend in its place and its groups (editedInPlace), and backends
// added at the end of the list. It is ix's groups with the chunks an edit
// or an addition touches made again, and the loads of their backends
// pointed at them; every other chunk is ix's, and so are the cells.
// Building an index passes twice over the app's backends, a cache miss and
// string comparisons each, and points every load at it.
func (ix *appIndex) patched(p patch) *appIndex {
	nix := &appIndex{all: ix.all, byCountry: ix.byCountry, byRegion: ix.byRegion}
	copied := false // whether nix has maps of its own yet
	own := func() {
		if !copied {
			nix.byCountry, nix.byRegion = maps.Clone(nix.byCountry), maps.Clone(nix.byRegion)
			copied = true
		}
	}
	for _, e := range p.edits {
		s := slotOf(e.new, e.at)
		nix.all = nix.all.with(s)
		if g := nix.byCountry[e.new.Country]; g != nil {
			own()
			nix.byCountry[e.new.Country] = g.with(s)
		}
		if g := nix.byRegion[e.new.Region]; g != nil {
			own()
			nix.byRegion[e.new.Region] = g.with(s)
		}
	}
	if len(p.adds) == 0 {
		return nix
	}
	// The added backends' slots, by group, in the list's order.
	all := make([]slot, len(p.adds))
	var byCountry, byRegion map[string][]slot
	for k, b := range p.adds {
		s := slotOf(b, p.from+int32(k))
		all[k] = s
		if b.Country != "" {
			if byCountry == nil {
				byCountry = map[string][]slot{}
			}
			byCountry[b.Country] = append(byCountry[b.Country], s)
		}
		if b.Region != "" {
			if byRegion == nil {
				byRegion = map[string][]slot{}
			}
			byRegion[b.Region] = append(byRegion[b.Region], s)
		}
	}
	w := newAppendWatch(p.adds)
	nix.all = nix.all.appended(all, w)
	for key, slots := range byCountry {
		own()
		nix.byCountry[key] = nix.byCountry[key].appended(slots, w)
	}
	for key, slots := range byRegion {
		own()
		nix.byRegion[key] = nix.byRegion[key].appended(slots, w)
	}
	w.point()
	return nix
}

// appendWatch collects the cells loads must refresh that they do not yet:
// an added backend's, and those of a group that grew large enough to
// remember its chunks' best.
type appendWatch struct {
	added map[*Load]bool // the added backends' loads
	cells map[*Load][]*cell
}

func newAppendWatch(adds []*Backend) *appendWatch {
	w := &appendWatch{added: make(map[*Load]bool, len(adds)), cells: map[*Load][]*cell{}}
	for _, b := range adds {
		w.added[b.Load] = true
	}
	return w
}

func (w *appendWatch) add(l *Load, c *cell) { w.cells[l] = append(w.cells[l], c) }

// point gives each load its cells. An added backend's load refreshes only
// the cells it got here (a load the tracker kept from an earlier row of
// the same ID may still name that row's); every other load keeps its own
// and gets the new ones.
func (w *appendWatch) point() {
	for l := range w.added {
		if cells := w.cells[l]; len(cells) > 0 {
			l.cells.Store(&cells)
		} else {
			l.cells.Store(nil)
		}
	}
	for l, cells := range w.cells {
		if w.added[l] {
			continue
		}
		list := cells
		if cs := l.cells.Load(); cs != nil {
			list = append(slices.Clip(*cs), cells...)
		}
		l.cells.Store(&list)
	}
}

// appended returns the group with slots (of backends added at the end of
// the app's list) after its own, or a group of them alone for g nil. The
// last chunk is copied if it has room, new chunks follow, and every other
// chunk is g's. w gets the cells loads must now refresh: the added
// slots', or every slot's when the group grows large.
func (g *group) appended(slots []slot, w *appendWatch) *group {
	ng := &group{}
	if g != nil {
		ng.chunks, ng.cells = slices.Clone(g.chunks), slices.Clone(g.cells)
	}
	first := len(ng.chunks) // the first chunk made here
	if k := len(ng.chunks) - 1; k >= 0 && len(ng.chunks[k].slots) < chunkSize {
		room := min(chunkSize-len(ng.chunks[k].slots), len(slots))
		ng.chunks[k] = &chunk{slots: append(slices.Clone(ng.chunks[k].slots), slots[:room]...)}
		slots, first = slots[room:], k
	}
	for len(slots) > 0 {
		m := min(chunkSize, len(slots))
		ng.chunks = append(ng.chunks, &chunk{slots: slots[:m:m]})
		slots = slots[m:]
	}
	if ng.cells == nil {
		if ng.size() <= 2*chunkSize {
			return ng // small: scanned whole
		}
		// Large now: every chunk remembers its best, through a cell
		// every load of it gets.
		first = 0
	}
	for i := first; i < len(ng.chunks); i++ {
		c := ng.chunks[i]
		made := i >= len(ng.cells)
		if made {
			ng.cells = append(ng.cells, new(cell))
		}
		ng.cells[i].publish(c)
		for _, s := range c.slots {
			if made || w.added[s.load] {
				w.add(s.load, ng.cells[i])
			}
		}
	}
	return ng
}

// with returns the group with the slot at s.at made s: the chunk that holds
// it is copied, every other shared. A large group's cell for that chunk
// then points the chunk's loads at the copy.
func (g *group) with(s slot) *group {
	k, _ := slices.BinarySearchFunc(g.chunks, s.at, func(c *chunk, at int32) int {
		return cmp.Compare(c.slots[len(c.slots)-1].at, at)
	})
	old := g.chunks[k]
	i, _ := slices.BinarySearchFunc(old.slots, s.at, func(x slot, at int32) int { return cmp.Compare(x.at, at) })
	nc := &chunk{slots: slices.Clone(old.slots)}
	nc.slots[i] = s
	ng := &group{chunks: slices.Clone(g.chunks), cells: g.cells}
	ng.chunks[k] = nc
	if ng.cells != nil {
		ng.cells[k].publish(nc)
	}
	return ng
}

// editedInPlace reports whether an edit leaves the backend in the groups
// of its app's index it was in: the same backend (its ID and load) in the
// same app, country and region. Its health, weight, limits and address
// may have changed.
func editedInPlace(c Change) bool {
	return c.Old != nil && c.New != nil && c.Old.ID == c.New.ID && c.Old.Load == c.New.Load &&
		c.Old.App == c.New.App && c.Old.Country == c.New.Country && c.Old.Region == c.New.Region
}

// watchList collects the cells each backend of an app belongs to.
type watchList struct {
	flat []*cell
	n    []uint8
}

func (w *watchList) add(at int32, c *cell) {
	w.flat[3*int(at)+int(w.n[at])] = c
	w.n[at]++
}

// value is the slot's load term, or +Inf when it cannot take a connection.
func (s *slot) value() float64 {
	n := s.load.active.Load()
	if n >= s.hard || s.load.health.down.Load() != 0 {
		return math.Inf(1)
	}
	return float64(n) * s.inv
}

// refresh finds the chunk's least loaded eligible slot again.
func (c *chunk) refresh() {
	bi, bv := int32(-1), math.Inf(1)
	for i := range c.slots {
		if v := c.slots[i].value(); v < bv {
			bi, bv = int32(i), v
		}
	}
	c.best.Store(bi)
}

// best returns the least loaded eligible backend of the group (first on
// ties) and its load term, or nil. A large group's chunks answer when
// nothing else is asked of the choice; a chunk whose remembered backend
// turned ineligible since (another connection took its last slot a moment
// ago) is scanned.
func (g *group) best(skip []*Backend, preferRTT bool) (*Backend, float64) {
	var (
		winner *Backend
		min    = math.Inf(1)
	)
	if g.cells == nil || len(skip) > 0 || preferRTT {
		for _, c := range g.chunks {
			winner, min = best(c.slots, skip, preferRTT, winner, min)
		}
		return winner, min
	}
	for _, c := range g.chunks {
		var b *Backend
		v := math.Inf(1)
		if j := c.best.Load(); j >= 0 {
			b, v = c.slots[j].b, c.slots[j].value()
		}
		if math.IsInf(v, 1) {
			b, v = best(c.slots, nil, false, nil, math.Inf(1))
		}
		if b != nil && v < min {
			winner, min = b, v
		}
	}
	return winner, min
}

// best returns the least loaded eligible backend of slots (first on ties)
// and its load term, or nil, counting winner and its term min, the best of
// the slots before (nil and +Inf for none).
func best(slots []slot, skip []*Backend, preferRTT bool, winner *Backend, min float64) (*Backend, float64) {
	for i := range slots {
		s := &slots[i]
		n := s.load.active.Load()
		if n >= s.hard || s.load.health.down.Load() != 0 {
			continue
		}
		v := float64(n) * s.inv
		if v < min || (preferRTT && v == min && rttLess(s.load, winner.Load)) {
			if len(skip) > 0 && contains(skip, s.b) {
				continue
			}
			winner, min = s.b, v
		}
	}
	return winner, min
}

// pick is Pick over the index. A tier can only lose to a later one when its
// best load term reaches 100 (a backend loaded a hundred times past its soft
// limit); then the exhaustive scan decides, so results equal Pick's.
func (s Scorer) pick(ix *appIndex, c Client, skip []*Backend) (*Backend, Tier) {
	if ix == nil {
		return nil, 0
	}
	groups := [...]struct {
		g    *group
		tier Tier
		use  bool
	}{
		{ix.byCountry[c.Country], TierCountry, c.Country != ""},
		{ix.byRegion[c.Region], TierRegion, c.Region != ""},
		{ix.byRegion[s.LocalRegion], TierLocalPop, true},
		{ix.all, TierElsewhere, true},
	}
	for _, g := range groups {
		if !g.use || g.g == nil || len(g.g.chunks) == 0 {
			continue
		}
		b, v := g.g.best(skip, s.PreferRTT)
		if b == nil {
			continue
		}
		if v >= 100 {
			break
		}
		// Members of a later group may belong to an earlier tier, but
		// then they were already found ineligible there.
		return b, s.Tier(b, c)
	}
	return s.Pick(allBackends(ix), c, skip)
}

// size is how many slots g holds.
func (g *group) size() int {
	n := 0
	for _, c := range g.chunks {
		n += len(c.slots)
	}
	return n
}

func allBackends(ix *appIndex) []*Backend {
	out := make([]*Backend, 0, ix.all.size())
	for _, c := range ix.all.chunks {
		for i := range c.slots {
			out = append(out, c.slots[i].b)
		}
	}
	return out
}
