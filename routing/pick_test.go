package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

func backend(id, region, country string, weight, soft, hard int) *Backend {
	return &Backend{
		ID: id, App: "myapp", Region: region, Country: country,
		Addr:    netip.MustParseAddrPort("10.50.0.1:8080"),
		Healthy: true, Weight: weight, SoftLimit: soft, HardLimit: hard,
		Load: new(Load),
	}
}

func client(country string) Client {
	return Client{Country: country, Region: DefaultRegions().Region(country)}
}

func setActive(b *Backend, n int) {
	for range n {
		b.Load.TryAcquire(0)
	}
}

// v1's documented behaviour: a French client prefers a French backend, then
// another EU one, then the POP's region, then anything.
func TestPickFrenchClientPrefersFranceThenEurope(t *testing.T) {
	s := Scorer{LocalRegion: "sa"}
	fr := backend("fr-1", "eu", "FR", 1, 100, 200)
	de := backend("de-1", "eu", "DE", 1, 100, 200)
	br := backend("br-1", "sa", "BR", 1, 100, 200)
	us := backend("us-1", "us", "US", 1, 100, 200)
	all := []*Backend{us, br, de, fr}

	steps := []struct {
		want *Backend
		tier Tier
	}{{fr, TierCountry}, {de, TierRegion}, {br, TierLocalPop}, {us, TierElsewhere}}
	for _, step := range steps {
		got, tier := s.Pick(all, client("FR"), nil)
		if got != step.want || tier != step.tier {
			t.Fatalf("French client got %v (tier %v), want %s (tier %v)", idOf(got), tier, step.want.ID, step.tier)
		}
		step.want.Healthy = false // take it out and see who is next
	}
	if got, _ := s.Pick(all, client("FR"), nil); got != nil {
		t.Fatalf("no healthy backend left, Pick returned %s", got.ID)
	}
}

func TestPickUnknownClientGoesToPopRegion(t *testing.T) {
	s := Scorer{LocalRegion: "sa"}
	us := backend("us-1", "us", "US", 1, 100, 200)
	br := backend("br-1", "sa", "BR", 1, 100, 200)
	got, tier := s.Pick([]*Backend{us, br}, Client{}, nil)
	if got != br || tier != TierLocalPop {
		t.Fatalf("unknown client got %s tier %v, want br-1 in the POP's region", idOf(got), tier)
	}
}

func TestPickLoadAndWeightOrderWithinTier(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "DE", 1, 100, 200)
	b := backend("b", "eu", "DE", 1, 100, 200)
	setActive(a, 10) // 0.10
	setActive(b, 5)  // 0.05
	if got, _ := s.Pick([]*Backend{a, b}, client("DE"), nil); got != b {
		t.Fatalf("less loaded backend should win, got %s", idOf(got))
	}
	// A heavier weight divides the load: 10/100/4 = 0.025 < 0.05.
	a.Weight = 4
	if got, _ := s.Pick([]*Backend{a, b}, client("DE"), nil); got != a {
		t.Fatalf("heavier weight should win, got %s", idOf(got))
	}
	// Load never crosses a tier: a country match loaded to 99% of its soft
	// limit still beats an idle region match.
	c := backend("c", "eu", "FR", 1, 100, 200)
	setActive(c, 99)
	if got, tier := s.Pick([]*Backend{a, b, c}, client("FR"), nil); got != c || tier != TierCountry {
		t.Fatalf("loaded country match should still win, got %s", idOf(got))
	}
}

func TestPickTiesKeepTableOrder(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "DE", 1, 100, 200)
	b := backend("b", "eu", "DE", 1, 100, 200)
	if got, _ := s.Pick([]*Backend{a, b}, client("DE"), nil); got != a {
		t.Fatalf("tie should go to the first backend, got %s", idOf(got))
	}
	if got, _ := s.Pick([]*Backend{b, a}, client("DE"), nil); got != b {
		t.Fatalf("tie should go to the first backend, got %s", idOf(got))
	}
}

func TestPickV1ZeroLimitsAndWeights(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	// v1: soft 0 counts as 1, weight 0 as 1, hard 0 as unlimited.
	z := backend("zero", "eu", "DE", 0, 0, 0)
	setActive(z, 1000)
	if got := s.Score(z, client("DE")); got != 1000 {
		t.Fatalf("score with zero soft limit and weight = %v, want 1000", got)
	}
	if z.AtHardLimit() {
		t.Fatal("hard limit 0 must mean unlimited")
	}
}

func TestPickSkipsHardLimitDeletedUnhealthyAndSkipList(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	full := backend("full", "eu", "FR", 1, 1, 2)
	setActive(full, 2)
	gone := backend("gone", "eu", "FR", 1, 100, 200)
	gone.Deleted = true
	sick := backend("sick", "eu", "FR", 1, 100, 200)
	sick.Healthy = false
	failed := backend("failed", "eu", "FR", 1, 100, 200)
	ok := backend("ok", "us", "US", 1, 100, 200)
	all := []*Backend{full, gone, sick, failed, ok}
	if got, _ := s.Pick(all, client("FR"), []*Backend{failed}); got != ok {
		t.Fatalf("got %s, want the only eligible backend", idOf(got))
	}
	reasons := map[string]string{}
	for _, c := range s.Explain(all, client("FR")) {
		reasons[c.ID] = c.Reason
	}
	want := map[string]string{
		"full":   "skipped: at hard limit",
		"gone":   "skipped: deleted",
		"sick":   "skipped: unhealthy",
		"failed": "chosen: lowest score",
		"ok":     "eligible: higher score than the chosen backend",
	}
	for id, r := range want {
		if reasons[id] != r {
			t.Errorf("Explain %s: %q, want %q", id, reasons[id], r)
		}
	}
}

func TestAcquireHonoursAffinityWhileEligible(t *testing.T) {
	now := time.Unix(1000, 0)
	aff := NewAffinity(10*time.Minute, func() time.Time { return now })
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "FR", 1, 100, 200)
	b := backend("b", "eu", "FR", 1, 100, 200)
	tbl := NewTable(1, now, []*Backend{a, b}, nil)
	ip := netip.MustParseAddr("203.0.113.7")

	d := s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil)
	if d.Backend != a || d.Sticky {
		t.Fatalf("first pick %s sticky=%v, want a, not sticky", idOf(d.Backend), d.Sticky)
	}
	// a is now busier than b, but the client stays on a.
	d = s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil)
	if d.Backend != a || !d.Sticky {
		t.Fatalf("second pick %s sticky=%v, want a from affinity", idOf(d.Backend), d.Sticky)
	}
	// A new client gets the best one.
	if d := s.Acquire(tbl, aff, "myapp", netip.MustParseAddr("203.0.113.8"), client("FR"), nil); d.Backend != b {
		t.Fatalf("new client got %s, want the less loaded b", idOf(d.Backend))
	}
	// Refreshed on use: 9 minutes later it is still bound.
	now = now.Add(9 * time.Minute)
	if d := s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil); d.Backend != a || !d.Sticky {
		t.Fatalf("binding lost before its TTL")
	}
	// Unhealthy backend: the binding moves.
	a.Healthy = false
	if d := s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil); d.Backend != b || d.Sticky {
		t.Fatalf("client stayed on an unhealthy backend")
	}
	a.Healthy = true
	if d := s.Acquire(tbl, aff, "myapp", ip, client("FR"), nil); d.Backend != b || !d.Sticky {
		t.Fatalf("binding should now be b, got %s sticky=%v", idOf(d.Backend), d.Sticky)
	}
	// Expiry after the TTL without use.
	now = now.Add(11 * time.Minute)
	if id := aff.Get("myapp", ip); id != "" {
		t.Fatalf("binding survived its TTL: %s", id)
	}
}

func TestAcquireNeverExceedsHardLimitConcurrently(t *testing.T) {
	s := Scorer{LocalRegion: "eu"}
	a := backend("a", "eu", "FR", 1, 1, 3)
	b := backend("b", "eu", "FR", 1, 1, 2)
	tbl := NewTable(1, time.Now(), []*Backend{a, b}, nil)
	results := make(chan *Backend, 100)
	for i := range 100 {
		go func() {
			ip := netip.AddrFrom4([4]byte{10, 0, byte(i / 256), byte(i)})
			results <- s.Acquire(tbl, nil, "myapp", ip, client("FR"), nil).Backend
		}()
	}
	got := 0
	for range 100 {
		if <-results != nil {
			got++
		}
	}
	if got != 5 || a.Load.Active() != 3 || b.Load.Active() != 2 {
		t.Fatalf("acquired %d (a=%d b=%d), want exactly 5 (3+2)", got, a.Load.Active(), b.Load.Active())
	}
}

// randomBackends returns n backends of random countries, weights, limits,
// health and loads, for property tests.
func randomBackends(rng *rand.Rand, n int, countries []string) []*Backend {
	regions := DefaultRegions()
	list := make([]*Backend, n)
	for i := range list {
		cc := countries[rng.IntN(len(countries))]
		b := backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, rng.IntN(4), rng.IntN(3), rng.IntN(6))
		b.Healthy = rng.IntN(5) > 0
		b.Deleted = rng.IntN(8) == 0
		setActive(b, rng.IntN(300))
		list[i] = b
	}
	return list
}

func idOf(b *Backend) string {
	if b == nil {
		return "<nil>"
	}
	return b.ID
}

// The indexed pick used by connections must decide exactly as the plain scan
// of v1's formula, including the rare case where load crosses a tier.
func TestIndexedPickEqualsScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	countries := []string{"FR", "DE", "BR", "AR", "US", "JP", ""}
	for round := range 2000 {
		n := 1 + rng.IntN(12)
		list := randomBackends(rng, n, countries)
		tbl := NewTable(1, time.Now(), list, nil)
		s := Scorer{LocalRegion: []string{"eu", "sa", "us"}[rng.IntN(3)]}
		c := client(countries[rng.IntN(len(countries))])
		var skip []*Backend
		if rng.IntN(3) == 0 {
			skip = []*Backend{list[rng.IntN(n)]}
		}
		want, wantTier := s.Pick(list, c, skip)
		got, gotTier := s.pick(tbl.apps.get("myapp").index, c, skip)
		if got != want || (want != nil && gotTier != wantTier) {
			t.Fatalf("round %d: indexed %s/%v, scan %s/%v", round, idOf(got), gotTier, idOf(want), wantTier)
		}
	}
}

func benchmarkAcquire(b *testing.B, countries []string) {
	s := Scorer{LocalRegion: "sa"}
	backends := make([]*Backend, 1000)
	regions := DefaultRegions()
	for i := range backends {
		cc := countries[i%len(countries)]
		backends[i] = backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1+i%3, 100, 0)
		setActive(backends[i], i%50)
	}
	tbl := NewTable(1, time.Now(), backends, nil)
	c := client("FR")
	ip := netip.MustParseAddr("203.0.113.9")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := s.Acquire(tbl, nil, "myapp", ip, c, nil)
		if d.Backend == nil {
			b.Fatal("no backend")
		}
		d.Backend.Load.Release()
	}
}

// A decision for a French client among 1,000 backends of one app spread over
// eight countries: the common shape of a global app.
func BenchmarkDecision1000Backends(b *testing.B) {
	benchmarkAcquire(b, []string{"FR", "DE", "BR", "US", "JP", "AU", "ZA", "IN"})
}

// The worst case: all 1,000 backends in the client's country.
func BenchmarkDecision1000BackendsOneCountry(b *testing.B) {
	benchmarkAcquire(b, []string{"FR"})
}

// Large groups are answered from chunks that remember their least loaded
// backend. After every change of load or health made through Load, the
// answer must equal the plain scan of v1's formula.
func TestChunkedPickEqualsScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	countries := []string{"FR", "DE", "BR", "US"}
	regions := DefaultRegions()
	list := make([]*Backend, 400)
	for i := range list {
		cc := countries[rng.IntN(len(countries))]
		list[i] = backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1+rng.IntN(3), 1+rng.IntN(20), rng.IntN(6))
	}
	tbl := NewTable(1, time.Now(), list, nil)
	ix := tbl.apps.get("myapp").index
	if len(ix.all.chunks) == 0 || len(ix.byCountry["FR"].chunks) == 0 {
		t.Fatal("the test table should have chunked groups")
	}
	for step := range 5000 {
		stir(rng, list)
		s := Scorer{LocalRegion: []string{"eu", "sa", "us"}[rng.IntN(3)]}
		c := client(countries[rng.IntN(len(countries))])
		want, wantTier := s.Pick(list, c, nil)
		got, gotTier := s.pick(ix, c, nil)
		if got != want || (want != nil && gotTier != wantTier) {
			t.Fatalf("step %d: chunked %s/%v, scan %s/%v", step, idOf(got), gotTier, idOf(want), wantTier)
		}
	}
}

// stir changes the live state of a random backend of list: a connection
// taken or given back, an ejection started or ended.
func stir(rng *rand.Rand, list []*Backend) {
	b := list[rng.IntN(len(list))]
	switch rng.IntN(5) {
	case 0, 1:
		b.Load.TryAcquire(b.HardLimit)
	case 2, 3:
		if b.Load.Active() > 0 {
			b.Load.Release()
		}
	case 4:
		b.Load.SetDown(DownEjected, !b.Load.Down())
	}
}
