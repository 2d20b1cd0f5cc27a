package routing

import (
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
	// backing holds every group's slots, each group at its off.
	backing []slot
}

// group is the backends of one tier for some clients, in table order. A
// large group is cut into chunks that each remember their least loaded
// backend, refreshed whenever one of their backends' load or health
// changes, so a decision reads one slot per chunk instead of every slot.
type group struct {
	slots  []slot
	chunks []chunk
	off    int // where slots start in the index's backing
}

// chunkSize balances the refresh (a scan of one chunk on every acquire and
// release) against the decision (a read per chunk).
const chunkSize = 32

type chunk struct {
	slots []slot
	best  atomic.Int32 // index in slots of the least loaded eligible slot, -1 for none
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
	at   int32 // the backend's place in the app's list
}

func buildAppIndex(backends []*Backend) *appIndex {
	ix := &appIndex{all: &group{}, byCountry: map[string]*group{}, byRegion: map[string]*group{}}
	// Two passes: the first counts the backends of each country and
	// region, so that every group's slots are cut from one array
	// (an app's index is built again at every change to one of its rows).
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
	ix.backing = backing
	ix.all.slots = backing[0:0:n]
	offset := n
	cut := func(tallies []tally, m map[string]*group) []*group {
		gs := make([]*group, len(tallies))
		for i, t := range tallies {
			gs[i] = &group{slots: backing[offset : offset : offset+t.n], off: offset}
			offset += t.n
			m[t.key] = gs[i]
		}
		return gs
	}
	cGroups, rGroups := cut(countries, ix.byCountry), cut(regions, ix.byRegion)
	lastC, lastR = 0, 0
	for i, b := range backends {
		s := slotOf(b, int32(i))
		ix.all.slots = append(ix.all.slots, s)
		if b.Country != "" {
			g := cGroups[find(countries, &lastC, b.Country)]
			g.slots = append(g.slots, s)
		}
		if b.Region != "" {
			g := rGroups[find(regions, &lastR, b.Region)]
			g.slots = append(g.slots, s)
		}
	}
	ix.watch(backends)
	return ix
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

// watch cuts the index's large groups into chunks and points the load of
// each of the app's backends at the chunks it must refresh.
func (ix *appIndex) watch(backends []*Backend) {
	// Each backend is in at most three groups (all, its country, its
	// region), so the chunks its load refreshes fit three slots of one
	// array for the whole app: two allocations per app, none per backend.
	w := watchList{flat: make([]*chunk, 3*len(backends)), n: make([]uint8, len(backends))}
	for _, g := range ix.groups() {
		g.cut(&w)
	}
	lists := make([][]*chunk, len(backends))
	for i, b := range backends {
		if w.n[i] > 0 {
			lists[i] = w.flat[3*i : 3*i+int(w.n[i]) : 3*i+int(w.n[i])]
			b.Load.chunks.Store(&lists[i])
		}
	}
}

// maxPatched is how many edits of one app a snapshot patches into the
// app's index; more are built again.
const maxPatched = 8

// patched returns the index of the app's list after edits that kept each
// backend in its place and its groups (editedInPlace): ix's slots, with
// the edited backends' slots made again. Building an index passes twice
// over the app's backends, a cache miss and string comparisons each; a
// patch copies the slots, which hold all it needs.
func (ix *appIndex) patched(backends []*Backend, edits []Change) *appIndex {
	nb := slices.Clone(ix.backing)
	for k := range nb {
		for _, c := range edits {
			if nb[k].b == c.Old {
				nb[k] = slotOf(c.New, nb[k].at)
			}
		}
	}
	regroup := func(g *group) *group {
		return &group{slots: nb[g.off : g.off+len(g.slots) : g.off+len(g.slots)], off: g.off}
	}
	nix := &appIndex{all: regroup(ix.all), backing: nb,
		byCountry: make(map[string]*group, len(ix.byCountry)), byRegion: make(map[string]*group, len(ix.byRegion))}
	for k, g := range ix.byCountry {
		nix.byCountry[k] = regroup(g)
	}
	for k, g := range ix.byRegion {
		nix.byRegion[k] = regroup(g)
	}
	nix.watch(backends)
	return nix
}

// editedInPlace reports whether an edit leaves the backend in the groups
// of its app's index it was in: the same backend (its ID and load) in the
// same app, country and region. Its health, weight, limits and address
// may have changed.
func editedInPlace(c Change) bool {
	return c.Old != nil && c.New != nil && c.Old.ID == c.New.ID && c.Old.Load == c.New.Load &&
		c.Old.App == c.New.App && c.Old.Country == c.New.Country && c.Old.Region == c.New.Region
}

// watchList collects the chunks each backend of an app belongs to.
type watchList struct {
	flat []*chunk
	n    []uint8
}

func (w *watchList) add(at int32, c *chunk) {
	w.flat[3*int(at)+int(w.n[at])] = c
	w.n[at]++
}

func (ix *appIndex) groups() []*group {
	out := []*group{ix.all}
	for _, g := range ix.byCountry {
		out = append(out, g)
	}
	for _, g := range ix.byRegion {
		out = append(out, g)
	}
	return out
}

// cut splits a large group into chunks and notes which chunks each
// backend's load must refresh.
func (g *group) cut(watched *watchList) {
	if len(g.slots) <= 2*chunkSize {
		return
	}
	g.chunks = make([]chunk, (len(g.slots)+chunkSize-1)/chunkSize)
	for i := range g.chunks {
		c := &g.chunks[i]
		c.slots = g.slots[i*chunkSize : min((i+1)*chunkSize, len(g.slots))]
		c.refresh()
		for _, s := range c.slots {
			watched.add(s.at, c)
		}
	}
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
// ties) and its load term, or nil. The chunks answer when nothing else is
// asked of the choice; a chunk whose remembered backend turned ineligible
// since (another connection took its last slot a moment ago) is scanned.
func (g *group) best(skip []*Backend, preferRTT bool) (*Backend, float64) {
	if g.chunks == nil || len(skip) > 0 || preferRTT {
		return best(g.slots, skip, preferRTT)
	}
	var (
		winner *Backend
		min    = math.Inf(1)
	)
	for i := range g.chunks {
		c := &g.chunks[i]
		var b *Backend
		v := math.Inf(1)
		if j := c.best.Load(); j >= 0 {
			b, v = c.slots[j].b, c.slots[j].value()
		}
		if math.IsInf(v, 1) {
			b, v = best(c.slots, nil, false)
		}
		if b != nil && v < min {
			winner, min = b, v
		}
	}
	return winner, min
}

// best returns the least loaded eligible slot of a group (first on ties) and
// its load term, or nil.
func best(group []slot, skip []*Backend, preferRTT bool) (*Backend, float64) {
	var (
		winner *Backend
		min    = math.Inf(1)
	)
	for i := range group {
		s := &group[i]
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
		if !g.use || g.g == nil || len(g.g.slots) == 0 {
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

func allBackends(ix *appIndex) []*Backend {
	out := make([]*Backend, len(ix.all.slots))
	for i := range ix.all.slots {
		out[i] = ix.all.slots[i].b
	}
	return out
}
