package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// A derived table routes like a table built from scratch on the same rows,
// and a list table lists the same backends but routes nothing, before and
// after a change.
func TestDerivedTablesRouteAndListTablesDoNot(t *testing.T) {
	now := time.Unix(1000, 0)
	s := Scorer{LocalRegion: "eu"}
	ip := netip.MustParseAddr("203.0.113.7")
	a := backend("a", "eu", "FR", 1, 100, 200)
	b := backend("b", "us", "US", 1, 100, 200)
	order := map[*Backend]int64{a: 1, b: 2}
	rowid := func(x *Backend) int64 { return order[x] }

	// a goes down: its row is a new value.
	a2 := *a
	a2.Healthy = false
	order[&a2] = 1
	changes := []Change{{Old: a, New: &a2}}
	after := []*Backend{&a2, b}

	for _, list := range []bool{false, true} {
		newTable := NewTable
		if list {
			newTable = NewListTable
		}
		before := newTable(1, now, []*Backend{a, b}, nil)
		derived := before.Derive(2, now, RowsOf(after), nil, changes, rowid)
		if got := derived.App("myapp"); !slices.Equal(got, after) {
			t.Fatalf("list=%v: derived app lists %v, want %v", list, ids(got), ids(after))
		}
		if derived.Backend("a") != &a2 {
			t.Fatalf("list=%v: derived table finds the old row of a", list)
		}
		for _, tbl := range []*Table{before, derived} {
			d := s.Acquire(tbl, nil, "myapp", ip, client("FR"), nil)
			switch {
			case list && d.Backend != nil:
				t.Fatalf("generation %d of a list table routed to %s", tbl.Generation, d.Backend.ID)
			case !list && d.Backend == nil:
				t.Fatalf("generation %d of a routing table found no backend", tbl.Generation)
			case !list && tbl == derived && d.Backend != b:
				t.Fatalf("derived table routed to %s after a went down, want b", d.Backend.ID)
			}
			if d.Backend != nil {
				d.Backend.Load.Release()
			}
		}
	}
}

func ids(l []*Backend) []string {
	out := make([]string, len(l))
	for i, b := range l {
		out[i] = b.ID
	}
	return out
}

// A derived table names the apps its changes touched, and those it no
// longer has; every app, when asked against no table.
func TestAppsEditedSince(t *testing.T) {
	now := time.Unix(1000, 0)
	web1, web2, db1, api1 := backend("w1", "eu", "FR", 1, 100, 200), backend("w2", "eu", "FR", 1, 100, 200),
		backend("d1", "eu", "FR", 1, 100, 200), backend("a1", "eu", "FR", 1, 100, 200)
	web1.App, web2.App, db1.App, api1.App = "web", "web", "db", "api"
	before := NewTable(1, now, []*Backend{web1, web2, db1, api1}, nil)
	edited := *web2
	edited.Weight = 7
	derived := before.Derive(2, now, RowsOf([]*Backend{web1, &edited, db1}), nil,
		[]Change{{Old: web2, New: &edited}, {Old: api1}}, nil)
	got := derived.AppsEditedSince(before)
	slices.Sort(got)
	if !slices.Equal(got, []string{"api", "web"}) {
		t.Fatalf("apps edited: %v, want the edited web and the removed api", got)
	}
	if got := derived.AppsEditedSince(derived); len(got) != 0 {
		t.Fatalf("apps edited since the same table: %v", got)
	}
	all := derived.AppsEditedSince(nil)
	slices.Sort(all)
	if !slices.Equal(all, []string{"db", "web"}) {
		t.Fatalf("apps edited since no table: %v", all)
	}
}

// Tables derived through a run of edits (rows added to new and existing
// apps, rows removed until apps are gone, rows moved between apps, new
// weights), past the point where the index of apps outgrows its shards
// and is built again, list the apps and their backends as a whole build of
// the same rows does, route to every app, and name exactly the apps each
// edit changed.
func TestDerivedTablesKeepEveryAppThroughEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	now := time.Unix(1000, 0)
	s := Scorer{LocalRegion: "eu"}
	ip := netip.MustParseAddr("203.0.113.7")
	var rows []*Backend
	order := map[*Backend]int64{}
	rowid := func(b *Backend) int64 { return order[b] }
	first := backend("b0", "eu", "FR", 1, 100, 0)
	first.App, order[first] = "app0", 0
	rows = append(rows, first)
	tbl := NewTable(1, now, slices.Clone(rows), nil)
	for step := 1; step <= 400; step++ {
		someApp := fmt.Sprintf("app%d", rng.IntN(step/2+2))
		var c Change
		switch k := rng.IntN(6); {
		case k <= 2 || len(rows) < 3:
			c.New = backend(fmt.Sprintf("b%d", step), "eu", "FR", 1, 100, 0)
			c.New.App, order[c.New] = someApp, int64(step)
			rows = append(rows, c.New)
		case k == 3:
			i := rng.IntN(len(rows))
			c.Old = rows[i]
			rows = slices.Delete(rows, i, i+1)
		default:
			i := rng.IntN(len(rows))
			edited := *rows[i]
			if k == 4 {
				edited.App = someApp
			} else {
				edited.Weight = 1 + rng.IntN(5)
			}
			c.Old, c.New, order[&edited] = rows[i], &edited, order[rows[i]]
			rows[i] = &edited
		}
		prev := tbl
		tbl = prev.Derive(uint64(step+1), now, RowsOf(slices.Clone(rows)), nil, []Change{c}, rowid)
		whole := NewTable(uint64(step+1), now, slices.Clone(rows), nil)
		if got, want := tbl.Apps(), whole.Apps(); !slices.Equal(got, want) {
			t.Fatalf("step %d: derived table lists apps %v, a whole build %v", step, got, want)
		}
		for _, app := range whole.Apps() {
			if got, want := tbl.App(app), whole.App(app); !slices.Equal(got, want) {
				t.Fatalf("step %d: derived table lists %s as %v, a whole build as %v", step, app, ids(got), ids(want))
			}
			d := s.Acquire(tbl, nil, app, ip, client("FR"), nil)
			if d.Backend == nil || d.Backend.App != app {
				t.Fatalf("step %d: derived table routed %s to %v", step, app, d.Backend)
			}
			d.Backend.Load.Release()
		}
		var want []string
		for _, b := range []*Backend{c.Old, c.New} {
			if b != nil && !slices.Contains(want, b.App) {
				want = append(want, b.App)
			}
		}
		got := tbl.AppsEditedSince(prev)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("step %d: apps edited %v, want %v", step, got, want)
		}
	}
	if tbl.apps.Shards() < 4 {
		t.Fatalf("the index of %d apps kept %d shards: the test should see it built again", tbl.apps.Len(), tbl.apps.Shards())
	}
}

// An app's index patched for edits that keep each backend in its place
// picks like the plain scan of the app's list, through loads and health
// moving between the edits; edits that move a backend between groups
// (its country, its health) build the index again, and also pick alike.
func TestPatchedIndexPicksLikeTheScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	countries := []string{"FR", "DE", "BR", "US"}
	regions := DefaultRegions()
	list, rowid := spreadApp(rng, 300, countries, func() int { return rng.IntN(6) })
	tbl := NewTable(1, time.Now(), list, nil)
	patched, built := 0, 0
	for step := range 400 {
		i := rng.IntN(len(list))
		old := list[i]
		nb := *old
		switch rng.IntN(8) {
		case 0:
			nb.Healthy = !nb.Healthy
		case 1:
			nb.Country = countries[rng.IntN(len(countries))]
			nb.Region = regions.Region(nb.Country)
		case 2:
			nb.HardLimit = rng.IntN(6)
		case 3:
			nb.SoftLimit = 1 + rng.IntN(20)
		default:
			nb.Weight = 1 + rng.IntN(5)
		}
		list = slices.Clone(list)
		list[i] = &nb
		// The store reports an edited row as its removal and its
		// addition, in either order.
		changes := []Change{{Old: old, New: &nb}}
		switch rng.IntN(3) {
		case 1:
			changes = []Change{{Old: old}, {New: &nb}}
		case 2:
			changes = []Change{{New: &nb}, {Old: old}}
		}
		if _, ok := tbl.patchable("myapp", list, changes); ok != (old.Country == nb.Country) {
			t.Fatalf("step %d: %s edited from %s to %s: patchable %v", step, old.ID, old.Country, nb.Country, ok)
		} else if ok {
			patched++
		} else {
			built++
		}
		tbl = tbl.Derive(uint64(step+2), time.Now(), RowsOf(list), nil, changes, rowid)
		for range 5 {
			stir(rng, list)
		}
		for _, cc := range countries {
			s := Scorer{LocalRegion: []string{"eu", "sa", "us"}[rng.IntN(3)]}
			c := client(cc)
			want, wantTier := s.Pick(list, c, nil)
			got, gotTier := s.pick(tbl.apps.get("myapp").index, c, nil)
			if got != want || (want != nil && gotTier != wantTier) {
				t.Fatalf("step %d (%s edited): index %s/%v, scan %s/%v", step, old.ID, idOf(got), gotTier, idOf(want), wantTier)
			}
		}
	}
	if patched == 0 || built == 0 {
		t.Fatalf("%d edits patched the index and %d built it: the test should see both", patched, built)
	}
}

// A one-row edit that keeps the backend in its place (a new weight): in
// an app of 1,000 backends, the snapshot's cost for that app; among 100
// and 10,000 apps, what the apps it does not touch add.
func BenchmarkDeriveWeightEdit(b *testing.B) {
	countries := []string{"FR", "DE", "BR", "US", "JP"}
	regions := DefaultRegions()
	for _, c := range []struct{ backends, apps int }{{1000, 1}, {10000, 100}, {100000, 10000}} {
		b.Run(fmt.Sprintf("backends=%d/apps=%d", c.backends, c.apps), func(b *testing.B) {
			list := make([]*Backend, c.backends)
			order := map[*Backend]int64{}
			for i := range list {
				cc := countries[i%len(countries)]
				list[i] = backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1, 100, 0)
				list[i].App = fmt.Sprintf("app%d", i%c.apps)
				order[list[i]] = int64(i)
			}
			tbl := NewTable(1, time.Now(), list, nil)
			edit := c.backends / 2
			nb := *list[edit]
			nb.Weight = 7
			order[&nb] = int64(edit)
			after := slices.Clone(list)
			after[edit] = &nb
			rows := RowsOf(after)
			changes := []Change{{Old: list[edit], New: &nb}}
			rowid := func(x *Backend) int64 { return order[x] }
			b.ReportAllocs()
			for b.Loop() {
				tbl.Derive(2, time.Now(), rows, nil, changes, rowid)
			}
		})
	}
}

// A patch makes again only the chunks that hold an edited backend: the
// edit costs a chunk per group, whatever the app's size. The loads of that
// chunk's backends refresh the new chunk, so it still answers for them.
func TestPatchSharesTheChunksItDoesNotTouch(t *testing.T) {
	list, _, rowid := frenchApp(1000)
	tbl := NewTable(1, time.Now(), list, nil)
	before := tbl.apps.get("myapp").index

	const edited = 500
	old := list[edited]
	nb := *old
	nb.Weight = 3
	list = slices.Clone(list)
	list[edited] = &nb
	tbl = tbl.Derive(2, time.Now(), RowsOf(list), nil, []Change{{Old: old, New: &nb}}, rowid)
	after := tbl.apps.get("myapp").index
	if after == before {
		t.Fatal("the edit kept the index before it")
	}
	for name, pair := range map[string][2]*group{
		"all":    {before.all, after.all},
		"FR":     {before.byCountry["FR"], after.byCountry["FR"]},
		"region": {before.byRegion["eu"], after.byRegion["eu"]},
	} {
		was, now := pair[0], pair[1]
		if len(was.chunks) != len(now.chunks) || len(now.chunks) < 20 {
			t.Fatalf("%s: %d chunks before, %d after", name, len(was.chunks), len(now.chunks))
		}
		made := 0
		for k := range now.chunks {
			if now.chunks[k] != was.chunks[k] {
				made++
				if now.cells[k].c.Load() != now.chunks[k] {
					t.Fatalf("%s: the loads of chunk %d still refresh the chunk before", name, k)
				}
			}
		}
		if made != 1 {
			t.Fatalf("%s: the edit made %d chunks again, want 1", name, made)
		}
	}

	// Every backend busy but the edited one's neighbour: the new chunk,
	// refreshed through its loads, names that neighbour.
	for _, b := range list {
		setActive(b, 1)
	}
	free := list[edited+1]
	free.Load.Release()
	got, _ := Scorer{LocalRegion: "eu"}.pick(after, client("FR"), nil)
	if got != free {
		t.Fatalf("picked %s, want %s, the only idle backend", idOf(got), free.ID)
	}
}

// Connections come and go on every backend while edits patch the app's
// index: once they stop, the newest index picks like the plain scan, so no
// change of load was lost on a chunk a patch replaced. (Run with -race.)
func TestPatchesUnderLoadPickLikeTheScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	countries := []string{"FR", "DE", "BR", "US"}
	list, rowid := spreadApp(rng, 400, countries, func() int { return 0 })
	loads := make([]*Load, len(list))
	for i, b := range list {
		loads[i] = b.Load
	}
	tbl := NewTable(1, time.Now(), list, nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			var held []*Load
			for {
				select {
				case <-stop:
					for _, l := range held {
						l.Release()
					}
					return
				default:
				}
				if len(held) < 50 && r.IntN(2) == 0 {
					l := loads[r.IntN(len(loads))]
					l.TryAcquire(0)
					held = append(held, l)
				} else if len(held) > 0 {
					k := r.IntN(len(held))
					held[k].Release()
					held = slices.Delete(held, k, k+1)
				}
			}
		}()
	}
	patched := 0
	for step := range 300 {
		i := rng.IntN(len(list))
		old := list[i]
		nb := *old
		if rng.IntN(2) == 0 {
			nb.Healthy = !nb.Healthy
		} else {
			nb.Weight = 1 + rng.IntN(5)
		}
		list = slices.Clone(list)
		list[i] = &nb
		changes := []Change{{Old: old, New: &nb}}
		if _, ok := tbl.patchable("myapp", list, changes); ok {
			patched++
		}
		tbl = tbl.Derive(uint64(step+2), time.Now(), RowsOf(list), nil, changes, rowid)
	}
	close(stop)
	wg.Wait()
	if patched == 0 {
		t.Fatal("no edit patched the index")
	}
	// Every connection is given back; hold a few again so the loads differ.
	for range 60 {
		list[rng.IntN(len(list))].Load.TryAcquire(0)
	}
	ix := tbl.apps.get("myapp").index
	for _, cc := range countries {
		for _, local := range []string{"eu", "sa", "us"} {
			s := Scorer{LocalRegion: local}
			want, wantTier := s.Pick(list, client(cc), nil)
			got, gotTier := s.pick(ix, client(cc), nil)
			if got != want || (want != nil && gotTier != wantTier) {
				t.Fatalf("client %s, POP %s: index %s/%v, scan %s/%v", cc, local, idOf(got), gotTier, idOf(want), wantTier)
			}
		}
	}
}

// spreadApp is an app of n backends in random countries of the list, with
// random weights and soft limits and hard limits from hard, and each
// backend's place in table order.
func spreadApp(rng *rand.Rand, n int, countries []string, hard func() int) ([]*Backend, func(*Backend) int64) {
	regions := DefaultRegions()
	list := make([]*Backend, n)
	order := map[string]int64{}
	for i := range list {
		cc := countries[rng.IntN(len(countries))]
		list[i] = backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1+rng.IntN(3), 1+rng.IntN(20), hard())
		order[list[i].ID] = int64(i)
	}
	return list, func(b *Backend) int64 { return order[b.ID] }
}

// Backends added after all the others (registrations) are patched into
// the app's index: its groups grow at their end, a group that grows large
// starts remembering its chunks' best, and a new country or region gets a
// group. Through adds, edits in place and loads moving, the index picks
// like the plain scan of the app's list.
func TestAppendedBackendsPickLikeTheScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	countries := []string{"FR", "DE", "BR", "US", "JP", "ZA"}
	regions := DefaultRegions()
	list, rowid0 := spreadApp(rng, 40, countries[:3], func() int { return rng.IntN(4) })
	order := map[string]int64{}
	for _, b := range list {
		order[b.ID] = rowid0(b)
	}
	rowid := func(b *Backend) int64 { return order[b.ID] }
	tbl := NewTable(1, time.Now(), list, nil)
	appended, grewLarge := 0, false
	for step := range 400 {
		var changes []Change
		before := slices.Clone(list)
		if rng.IntN(2) == 0 {
			for range 1 + rng.IntN(3) {
				cc := countries[rng.IntN(len(countries))]
				b := backend(fmt.Sprintf("n%d-%d", step, len(list)), regions.Region(cc), cc, 1+rng.IntN(3), 1+rng.IntN(20), rng.IntN(4))
				order[b.ID] = int64(1000 + len(list))
				list = append(slices.Clip(list), b)
				changes = append(changes, Change{New: b})
			}
		} else {
			i := rng.IntN(len(list))
			nb := *list[i]
			nb.Weight = 1 + rng.IntN(5)
			nb.Healthy = rng.IntN(4) > 0
			changes = []Change{{Old: list[i], New: &nb}}
			list = slices.Clone(list)
			list[i] = &nb
		}
		p, ok := tbl.patchable("myapp", list, changes)
		if !ok {
			t.Fatalf("step %d: %d changes after %d backends: not patchable", step, len(changes), len(before))
		}
		if len(p.adds) > 0 {
			appended++
		}
		tbl = tbl.Derive(uint64(step+2), time.Now(), RowsOf(list), nil, changes, rowid)
		ix := tbl.apps.get("myapp").index
		grewLarge = grewLarge || ix.all.cells != nil
		for range 5 {
			stir(rng, list)
		}
		// New backends take connections at once.
		for _, c := range changes {
			if c.Old == nil {
				for range rng.IntN(3) {
					stir(rng, []*Backend{c.New})
				}
			}
		}
		for _, cc := range countries {
			s := Scorer{LocalRegion: []string{"eu", "sa", "us"}[rng.IntN(3)]}
			want, wantTier := s.Pick(list, client(cc), nil)
			got, gotTier := s.pick(ix, client(cc), nil)
			if got != want || (want != nil && gotTier != wantTier) {
				t.Fatalf("step %d: client %s: index %s/%v, scan %s/%v", step, cc, idOf(got), gotTier, idOf(want), wantTier)
			}
		}
	}
	if appended == 0 || !grewLarge {
		t.Fatalf("%d steps appended, the whole app's group grew large %v: the test should see both", appended, grewLarge)
	}
}

// An added backend's load refreshes the chunk it was added to, and when
// an addition makes a group large, every backend's load refreshes its
// chunk from then on.
func TestAppendedBackendsRefreshTheirChunks(t *testing.T) {
	for _, n := range []int{100, 60} { // a large group already; one the addition makes large
		list, order, rowid := frenchApp(n)
		tbl := NewTable(1, time.Now(), list, nil)
		var changes []Change
		for k := range 10 {
			b := backend(fmt.Sprintf("new%d", k), "eu", "FR", 1, 10, 0)
			order[b.ID] = int64(n + k)
			list = append(slices.Clip(list), b)
			changes = append(changes, Change{New: b})
		}
		if _, ok := tbl.patchable("myapp", list, changes); !ok {
			t.Fatalf("%d backends: ten added at the end are not patchable", n)
		}
		tbl = tbl.Derive(2, time.Now(), RowsOf(list), nil, changes, rowid)
		ix := tbl.apps.get("myapp").index
		if ix.all.cells == nil {
			t.Fatalf("%d backends and ten added: the group does not remember its chunks' best", n)
		}
		s := Scorer{LocalRegion: "eu"}
		pick := func() string {
			got, _ := s.pick(ix, client("FR"), nil)
			want, _ := s.Pick(list, client("FR"), nil)
			if got != want {
				t.Fatalf("%d backends: index picked %s, scan %s", n, idOf(got), idOf(want))
			}
			return idOf(got)
		}
		// Every backend busy but the last two added, then the first of
		// those busy too: only the loads' refreshes tell the chunk.
		for _, b := range list[:len(list)-2] {
			setActive(b, 1)
		}
		if got := pick(); got != "new8" {
			t.Fatalf("%d backends: picked %s, want new8", n, got)
		}
		setActive(list[len(list)-2], 1)
		if got := pick(); got != "new9" {
			t.Fatalf("%d backends: picked %s, want new9", n, got)
		}
		// An old backend freed: its load refreshes its chunk too.
		list[3].Load.Release()
		if got := pick(); got != "b3" {
			t.Fatalf("%d backends: picked %s, want b3", n, got)
		}
	}
}

// A backend registered into an app of 1,000 or 10,000 (its row comes
// last): the snapshot's cost for that app.
func BenchmarkDeriveAppend(b *testing.B) {
	countries := []string{"FR", "DE", "BR", "US", "JP"}
	regions := DefaultRegions()
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			list := make([]*Backend, n)
			order := map[*Backend]int64{}
			for i := range list {
				cc := countries[i%len(countries)]
				list[i] = backend(fmt.Sprintf("b%d", i), regions.Region(cc), cc, 1, 100, 0)
				order[list[i]] = int64(i)
			}
			tbl := NewTable(1, time.Now(), list, nil)
			added := backend("new", regions.Region("FR"), "FR", 1, 100, 0)
			order[added] = int64(n)
			rows := RowsOf(append(slices.Clip(list), added))
			changes := []Change{{New: added}}
			rowid := func(x *Backend) int64 { return order[x] }
			b.ReportAllocs()
			for b.Loop() {
				tbl.Derive(2, time.Now(), rows, nil, changes, rowid)
			}
		})
	}
}

// frenchApp is an app of n like backends in France, their places in table
// order (the caller may add to them), and the order's function.
func frenchApp(n int) ([]*Backend, map[string]int64, func(*Backend) int64) {
	list := make([]*Backend, n)
	order := map[string]int64{}
	for i := range list {
		list[i] = backend(fmt.Sprintf("b%d", i), "eu", "FR", 1, 10, 0)
		order[list[i].ID] = int64(i)
	}
	return list, order, func(b *Backend) int64 { return order[b.ID] }
}
