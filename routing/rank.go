package routing

import (
	"cmp"
	"slices"
)

// Ranked is a backend in a ranking, with the tier it has for the client.
type Ranked struct {
	Backend *Backend
	Tier    Tier
}

// Rank orders the eligible backends among candidates best first for client
// c: the order in which repeated calls to Pick would return them if each
// winner were skipped in the next call. Answers that list every backend at
// once, such as DNS, use it so that the first entry is the one a connection
// from the same client would get. Ties keep table order, as in Pick.
//
// Rank allocates the result and sorts; it is meant for building snapshots,
// not for the connection path.
func (s Scorer) Rank(candidates []*Backend, c Client) []Ranked {
	type scored struct {
		Ranked
		score float64
	}
	list := make([]scored, 0, len(candidates))
	for _, b := range candidates {
		if !b.Routable() || b.AtHardLimit() {
			continue
		}
		tier := s.Tier(b, c)
		list = append(list, scored{Ranked{b, tier}, s.score(b, tier)})
	}
	// Stable: equal scores keep table order, which is Pick's tie-break.
	slices.SortStableFunc(list, func(x, y scored) int {
		if c := cmp.Compare(x.score, y.score); c != 0 || !s.PreferRTT {
			return c
		}
		return cmp.Compare(rttKey(x.Backend.Load), rttKey(y.Backend.Load))
	})
	out := make([]Ranked, len(list))
	for i := range list {
		out[i] = list[i].Ranked
	}
	return out
}
