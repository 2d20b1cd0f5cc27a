package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func rankIDs(r []Ranked) []string {
	ids := make([]string, len(r))
	for i, x := range r {
		ids[i] = fmt.Sprintf("%s/%v", x.Backend.ID, x.Tier)
	}
	return ids
}

func TestRankOrdersByTierThenLoadAndSkipsIneligible(t *testing.T) {
	s := Scorer{LocalRegion: "sa"}
	us := backend("us-1", "us", "US", 1, 100, 200)
	br := backend("br-1", "sa", "BR", 1, 100, 200)
	de := backend("de-1", "eu", "DE", 1, 100, 200)
	fr1 := backend("fr-1", "eu", "FR", 1, 100, 200)
	fr2 := backend("fr-2", "eu", "FR", 1, 100, 200)
	setActive(fr1, 10) // busier than fr-2: same tier, so it goes second
	sick := backend("sick", "eu", "FR", 1, 100, 200)
	sick.Healthy = false
	gone := backend("gone", "eu", "FR", 1, 100, 200)
	gone.Deleted = true
	full := backend("full", "eu", "FR", 1, 1, 1)
	setActive(full, 1)

	got := fmt.Sprint(rankIDs(s.Rank([]*Backend{us, sick, br, gone, de, full, fr1, fr2}, client("FR"))))
	want := "[fr-2/country fr-1/country de-1/region br-1/pop_region us-1/elsewhere]"
	if got != want {
		t.Fatalf("French client ranking\n got %s\nwant %s", got, want)
	}
	// A client of unknown location sees the POP's region first.
	got = fmt.Sprint(rankIDs(s.Rank([]*Backend{us, de, br}, Client{})))
	if want := "[br-1/pop_region us-1/elsewhere de-1/elsewhere]"; got != want {
		t.Fatalf("unknown client ranking\n got %s\nwant %s", got, want)
	}
	if r := s.Rank(nil, Client{}); len(r) != 0 {
		t.Fatalf("empty candidates ranked %v", rankIDs(r))
	}
}

// Rank must agree with Pick: its first entry is Pick's choice, and each next
// entry is Pick's choice once the earlier ones are skipped.
func TestRankEqualsRepeatedPick(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	countries := []string{"FR", "DE", "BR", "AR", "US", "JP", ""}
	for round := range 1000 {
		list := randomBackends(rng, 1+rng.IntN(10), countries)
		s := Scorer{LocalRegion: []string{"eu", "sa", "us"}[rng.IntN(3)]}
		c := client(countries[rng.IntN(len(countries))])
		ranked := s.Rank(list, c)
		var skip []*Backend
		for i := 0; ; i++ {
			b, tier := s.Pick(list, c, skip)
			if b == nil {
				if i != len(ranked) {
					t.Fatalf("round %d: Rank has %d entries, Pick ran out after %d", round, len(ranked), i)
				}
				break
			}
			if i >= len(ranked) || ranked[i].Backend != b || ranked[i].Tier != tier {
				t.Fatalf("round %d: entry %d: Rank %v, Pick %s/%v", round, i, rankIDs(ranked), b.ID, tier)
			}
			skip = append(skip, b)
		}
	}
}
