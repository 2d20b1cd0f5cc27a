package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// A backend the POP holds down stops receiving connections at once and gets
// them back as soon as the flag clears, without a new snapshot.
func TestDownFlagAppliesWithoutNewSnapshot(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "FR", 1, 100, 0)
	b := backend("b", "eu", "FR", 1, 100, 0)
	tbl := NewTable(1, time.Now(), []*Backend{a, b}, nil)
	ip := netip.MustParseAddr("203.0.113.1")
	acquire := func() string {
		d := s.Acquire(tbl, nil, "myapp", ip, client("FR"), nil)
		if d.Backend == nil {
			return ""
		}
		d.Backend.Load.Release()
		return d.Backend.ID
	}
	if got := acquire(); got != "a" {
		t.Fatalf("got %s, want a", got)
	}
	if !a.Load.SetDown(DownActive, true) || a.Load.SetDown(DownActive, true) {
		t.Fatal("SetDown must report a change only the first time")
	}
	if got := acquire(); got != "b" {
		t.Fatalf("a is down: got %s, want b", got)
	}
	b.Load.SetDown(DownEjected, true)
	if got := acquire(); got != "" {
		t.Fatalf("both down: got %s", got)
	}
	a.Load.SetDown(DownActive, false)
	if got := acquire(); got != "a" {
		t.Fatalf("a is back: got %s", got)
	}
	if a.Routable() == false || b.Routable() == true {
		t.Fatal("Routable must follow the live view")
	}
	ex := s.Explain(tbl.App("myapp"), client("FR"))
	if ex[1].Eligible || ex[1].Reason != "skipped: ejected after repeated connection failures" {
		t.Fatalf("explain: %+v", ex[1])
	}
}

// An affinity binding does not hold a client on a backend that went down.
func TestDownFlagBreaksAffinity(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "FR", 1, 100, 0)
	b := backend("b", "eu", "FR", 1, 100, 0)
	tbl := NewTable(1, time.Now(), []*Backend{a, b}, nil)
	aff := NewAffinity(time.Minute, nil)
	ip := netip.MustParseAddr("203.0.113.1")
	d := s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil)
	d.Backend.Load.Release()
	a.Load.SetDown(DownActive, true)
	d = s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil)
	if d.Backend != b || d.Sticky {
		t.Fatalf("got %s sticky=%v, want b by score", idOf(d.Backend), d.Sticky)
	}
}

func TestPreferRTTBreaksTiesOnly(t *testing.T) {
	a := backend("a", "eu", "FR", 1, 100, 0)
	b := backend("b", "eu", "FR", 1, 100, 0)
	c := backend("c", "eu", "FR", 1, 100, 0)
	de := backend("de", "eu", "DE", 1, 100, 0)
	a.Load.SetRTT(900)
	b.Load.SetRTT(300)
	de.Load.SetRTT(10) // a better RTT never beats a better geo tier
	tbl := NewTable(1, time.Now(), []*Backend{a, b, c, de}, nil)
	ip := netip.MustParseAddr("203.0.113.1")
	for _, tc := range []struct {
		prefer bool
		want   string
	}{{false, "a"}, {true, "b"}} {
		s := Scorer{LocalRegion: "eu", PreferRTT: tc.prefer}
		d := s.Acquire(tbl, nil, "myapp", ip, client("FR"), nil)
		if d.Backend.ID != tc.want {
			t.Fatalf("prefer_rtt=%v: got %s, want %s", tc.prefer, d.Backend.ID, tc.want)
		}
		d.Backend.Load.Release()
	}
	// Load still comes first: a busier low-RTT backend loses.
	setActive(b, 5)
	s := Scorer{LocalRegion: "eu", PreferRTT: true}
	if got, _ := s.Pick(tbl.App("myapp"), client("FR"), nil); got != a {
		t.Fatalf("got %s, want a (b is busier)", idOf(got))
	}
}

// With live health and RTTs in play, the indexed pick, Pick and Rank still
// agree.
func TestIndexedPickEqualsScanWithHealth(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	countries := []string{"FR", "DE", "BR", "US", ""}
	regions := DefaultRegions()
	for round := range 3000 {
		n := 1 + rng.IntN(10)
		list := make([]*Backend, n)
		for i := range list {
			cc := countries[rng.IntN(len(countries))]
			b := backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1+rng.IntN(2), 1+rng.IntN(2), rng.IntN(4))
			setActive(b, rng.IntN(3))
			if rng.IntN(4) == 0 {
				b.Load.SetDown(uint32(1+rng.IntN(3)), true)
			}
			if rng.IntN(3) > 0 {
				b.Load.SetRTT(int64(rng.IntN(4)))
			}
			list[i] = b
		}
		tbl := NewTable(1, time.Now(), list, nil)
		s := Scorer{LocalRegion: []string{"eu", "sa"}[rng.IntN(2)], PreferRTT: rng.IntN(2) == 0}
		c := client(countries[rng.IntN(len(countries))])
		want, wantTier := s.Pick(list, c, nil)
		got, gotTier := s.pick(tbl.apps.get("myapp").index, c, nil)
		if got != want || (want != nil && gotTier != wantTier) {
			t.Fatalf("round %d: indexed %s/%v, scan %s/%v", round, idOf(got), gotTier, idOf(want), wantTier)
		}
		ranked := s.Rank(list, c)
		if (want == nil) != (len(ranked) == 0) || (want != nil && ranked[0].Backend != want) {
			t.Fatalf("round %d: rank %v, pick %s", round, rankIDs(ranked), idOf(want))
		}
	}
}

func TestPickWithHealthAllocatesNothing(t *testing.T) {
	s := Scorer{LocalRegion: "eu", PreferRTT: true}
	list := make([]*Backend, 100)
	for i := range list {
		list[i] = backend(fmt.Sprintf("b%d", i), "eu", "FR", 1, 100, 0)
		list[i].Load.SetRTT(int64(100 + i%7))
	}
	list[3].Load.SetDown(DownActive, true)
	tbl := NewTable(1, time.Now(), list, nil)
	ip := netip.MustParseAddr("203.0.113.1")
	c := client("FR")
	allocs := testing.AllocsPerRun(1000, func() {
		d := s.Acquire(tbl, nil, "myapp", ip, c, nil)
		d.Backend.Load.Release()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decision", allocs)
	}
}
