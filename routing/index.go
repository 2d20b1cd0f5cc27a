package routing

import "math"

// appIndex groups one app's routable backends the way scoring asks for them,
// so a decision scans the client's country first and stops at the first tier
// that has an eligible backend, instead of scoring the whole app.
type appIndex struct {
	all       []slot
	byCountry map[string][]slot
	byRegion  map[string][]slot
}

// slot is a backend with what the scan needs precomputed: the reciprocal of
// soft limit times weight turns the score's two divisions into a multiply.
type slot struct {
	b    *Backend
	load *Load
	inv  float64
	hard int64
}

func buildAppIndex(backends []*Backend) *appIndex {
	ix := &appIndex{byCountry: map[string][]slot{}, byRegion: map[string][]slot{}}
	for _, b := range backends {
		if !b.staticRoutable() {
			continue
		}
		s := slot{b: b, load: b.Load, inv: 1 / (b.EffectiveSoftLimit() * b.EffectiveWeight()), hard: int64(b.HardLimit)}
		if s.hard <= 0 {
			s.hard = math.MaxInt64
		}
		ix.all = append(ix.all, s)
		if b.Country != "" {
			ix.byCountry[b.Country] = append(ix.byCountry[b.Country], s)
		}
		if b.Region != "" {
			ix.byRegion[b.Region] = append(ix.byRegion[b.Region], s)
		}
	}
	return ix
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
		slots []slot
		tier  Tier
		use   bool
	}{
		{ix.byCountry[c.Country], TierCountry, c.Country != ""},
		{ix.byRegion[c.Region], TierRegion, c.Region != ""},
		{ix.byRegion[s.LocalRegion], TierLocalPop, true},
		{ix.all, TierElsewhere, true},
	}
	for _, g := range groups {
		if !g.use || len(g.slots) == 0 {
			continue
		}
		b, v := best(g.slots, skip, s.PreferRTT)
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
	out := make([]*Backend, len(ix.all))
	for i := range ix.all {
		out[i] = ix.all[i].b
	}
	return out
}
