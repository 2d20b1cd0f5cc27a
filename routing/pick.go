package routing

// Tier is the geographic distance class of a backend from a client, the
// dominant term of the score.
type Tier int

// Geo tiers, best first.
const (
	TierCountry   Tier = 0 // backend in the client's country
	TierRegion    Tier = 1 // backend in the client's region
	TierLocalPop  Tier = 2 // backend in the POP's own region
	TierElsewhere Tier = 3
)

// Tiers lists every tier in order, for metrics and reports.
var Tiers = [...]Tier{TierCountry, TierRegion, TierLocalPop, TierElsewhere}

func (t Tier) String() string {
	switch t {
	case TierCountry:
		return "country"
	case TierRegion:
		return "region"
	case TierLocalPop:
		return "pop_region"
	default:
		return "elsewhere"
	}
}

// Client is what routing knows of a client: its country (from GeoIP, "" when
// unknown) and that country's region.
type Client struct {
	Country string
	Region  string
}

// Scorer scores backends for clients of one POP.
type Scorer struct {
	// LocalRegion is the POP's own region.
	LocalRegion string
	// PreferRTT breaks ties between equal scores by the round-trip time
	// health checks measured (lower wins, unmeasured last) instead of by
	// table order.
	PreferRTT bool
}

// Tier returns the geo tier of b for client c.
func (s Scorer) Tier(b *Backend, c Client) Tier {
	switch {
	case c.Country != "" && b.Country == c.Country:
		return TierCountry
	case c.Region != "" && b.Region == c.Region:
		return TierRegion
	case b.Region == s.LocalRegion:
		return TierLocalPop
	default:
		return TierElsewhere
	}
}

// Score returns v1's score of b for c with the backend's current load.
func (s Scorer) Score(b *Backend, c Client) float64 {
	return s.score(b, s.Tier(b, c))
}

func (s Scorer) score(b *Backend, tier Tier) float64 {
	load := float64(b.Load.Active()) / b.EffectiveSoftLimit()
	return float64(tier)*100 + load/b.EffectiveWeight()
}

// Pick returns the best eligible backend among candidates (in table order)
// and its tier, or nil when none is eligible. Backends in skip (those that
// already failed for this connection) are passed over. Pick allocates
// nothing and takes no lock.
func (s Scorer) Pick(candidates []*Backend, c Client, skip []*Backend) (*Backend, Tier) {
	var (
		best      *Backend
		bestTier  Tier
		bestScore float64
	)
	for _, b := range candidates {
		if !b.Routable() || b.AtHardLimit() || contains(skip, b) {
			continue
		}
		tier := s.Tier(b, c)
		score := s.score(b, tier)
		if best == nil || score < bestScore || (s.PreferRTT && score == bestScore && rttLess(b.Load, best.Load)) {
			best, bestTier, bestScore = b, tier, score
		}
	}
	return best, bestTier
}

func contains(list []*Backend, b *Backend) bool {
	for _, x := range list {
		if x == b {
			return true
		}
	}
	return false
}

// Candidate is one backend as a routing decision saw it.
type Candidate struct {
	ID       string  `json:"id"`
	Addr     string  `json:"addr"`
	Region   string  `json:"region"`
	Country  string  `json:"country"`
	Tier     string  `json:"geo_tier"`
	TierRank int     `json:"geo"`
	Active   int64   `json:"active"`
	Load     float64 `json:"load"`
	Weight   float64 `json:"weight"`
	Score    float64 `json:"score"`
	Eligible bool    `json:"eligible"`
	Chosen   bool    `json:"chosen"`
	// Reason says why the backend won or was skipped.
	Reason string `json:"reason"`
}

// Explain scores every candidate the way Pick would and says which one wins
// and why each other one lost or was skipped. It is for operators, not for
// the connection path, and allocates freely.
func (s Scorer) Explain(candidates []*Backend, c Client) []Candidate {
	out := make([]Candidate, 0, len(candidates))
	winner, _ := s.Pick(candidates, c, nil)
	for _, b := range candidates {
		tier := s.Tier(b, c)
		cand := Candidate{
			ID:       b.ID,
			Addr:     b.Addr.String(),
			Region:   b.Region,
			Country:  b.Country,
			Tier:     tier.String(),
			TierRank: int(tier),
			Active:   b.Load.Active(),
			Load:     float64(b.Load.Active()) / b.EffectiveSoftLimit(),
			Weight:   b.EffectiveWeight(),
			Score:    s.score(b, tier),
		}
		switch {
		case b.Deleted:
			cand.Reason = "skipped: deleted"
		case !b.Healthy:
			cand.Reason = "skipped: unhealthy"
		case !b.Addr.IsValid():
			cand.Reason = "skipped: no valid address"
		case b.Load.Down():
			cand.Reason = "skipped: " + downReason(b.Load.DownReasons())
		case b.AtHardLimit():
			cand.Reason = "skipped: at hard limit"
		case b == winner:
			cand.Eligible, cand.Chosen = true, true
			cand.Reason = "chosen: lowest score"
		default:
			cand.Eligible = true
			cand.Reason = "eligible: higher score than the chosen backend"
			if winner != nil && cand.Score == s.Score(winner, c) {
				cand.Reason = "eligible: same score, later in table order"
			}
		}
		out = append(out, cand)
	}
	return out
}
