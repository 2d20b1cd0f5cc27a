package pop

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Signals counted after each edit from the signal before say what a whole
// count of the same table says, app by app, through rows added to new and
// existing apps, apps emptied, rows moved between apps and health flipped,
// past the point where the apps' index is built again with more shards.
// Each new signal shares with the one before every app the edit did not
// touch.
func TestAppSignalsFollowEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	now := time.Unix(1000, 0)
	row := func(id, app string) *routing.Backend {
		return &routing.Backend{ID: id, App: app, Healthy: true, Addr: netip.MustParseAddrPort("192.0.2.1:80")}
	}
	order := map[*routing.Backend]int64{}
	rowid := func(b *routing.Backend) int64 { return order[b] }
	rows := []*routing.Backend{row("b0", "app0")}
	tbl := routing.NewTable(1, now, slices.Clone(rows), nil)
	sig := appSignals(tbl, nil, AppSignals{})
	for step := 1; step <= 600; step++ {
		someApp := fmt.Sprintf("app%d", rng.IntN(step/2+2))
		var c routing.Change
		switch k := rng.IntN(6); {
		case k <= 2 || len(rows) < 3:
			c.New = row(fmt.Sprintf("b%d", step), someApp)
			order[c.New] = int64(step)
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
				edited.Healthy = !edited.Healthy
			}
			c.Old, c.New, order[&edited] = rows[i], &edited, order[rows[i]]
			rows[i] = &edited
		}
		prev, prevSig := tbl, sig
		tbl = prev.Derive(uint64(step+1), now, routing.RowsOf(slices.Clone(rows)), nil, []routing.Change{c}, rowid)
		sig = appSignals(tbl, prev, prevSig)
		whole := appSignals(tbl, nil, AppSignals{})
		if !sig.Equal(whole) || !whole.Equal(sig) {
			t.Fatalf("step %d: signals after the edit %v, a whole count %v", step, sig.Names(), whole.Names())
		}
		if got, want := sig.Names(), tbl.Apps(); !slices.Equal(got, want) {
			t.Fatalf("step %d: signals name %v, the table has %v", step, got, want)
		}
		for _, app := range tbl.Apps() {
			got, _ := sig.Get(app)
			want, _ := whole.Get(app)
			if got != want {
				t.Fatalf("step %d: %s after the edit %+v, a whole count %+v", step, app, got, want)
			}
		}
		var edited []string
		sig.EditedSince(prevSig, func(app string) { edited = append(edited, app) })
		for _, b := range []*routing.Backend{c.Old, c.New} {
			if b != nil && !slices.Contains(edited, b.App) {
				t.Fatalf("step %d: the edit touched %s, EditedSince named %v", step, b.App, edited)
			}
		}
		if prevSig.idx.Shards() == sig.idx.Shards() && len(edited) > 2*4*appSignalsPerShard {
			t.Fatalf("step %d: a one-row edit of %d apps named %d as edited: the signals share too little", step, sig.Len(), len(edited))
		}
	}
	if sig.idx.Shards() < 4 {
		t.Fatalf("the signals of %d apps kept %d shards: the test should see them built again", sig.Len(), sig.idx.Shards())
	}
}

// In JSON the signals are the object of apps they always were: the bytes
// a map of the same apps gives, read back to the same signals. What is not
// such an object is refused, naming the apps.
func TestAppSignalsJSON(t *testing.T) {
	m := map[string]AppSignal{
		"web": {Routable: 1, Backends: 2, Reason: "1 of 2 routable: 1 marked unhealthy in the table"},
		"db":  {Routable: 3, Backends: 3},
		`"q"`: {},
	}
	got, err := json.Marshal(Signal{Apps: NewAppSignals(m)})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(map[string]any{"apps": m})
	if !strings.Contains(string(got), string(want[1:len(want)-1])) {
		t.Fatalf("signal JSON %s, want its apps as %s", got, want)
	}
	empty, _ := json.Marshal(Signal{})
	if !strings.Contains(string(empty), `"apps":{}`) {
		t.Fatalf("signal without apps: %s", empty)
	}
	var back Signal
	if err := json.Unmarshal(got, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Apps.Equal(NewAppSignals(m)) {
		t.Fatalf("read back %v", back.Apps.Names())
	}
	err = json.Unmarshal([]byte(`{"apps":["web"]}`), &back)
	if err == nil || !strings.Contains(err.Error(), "apps") {
		t.Fatalf("a list for the apps: %v", err)
	}
}

// A signal recounted after a one-row edit, compared with the one before:
// what every snapshot costs the POP, by the number of apps (100 backends
// an app).
func BenchmarkSignalAfterEdit(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		rows := benchRows(n)
		before := routing.NewTable(1, time.Now(), rows, nil)
		edited := *rows[n/2]
		edited.Healthy = false
		after := slices.Clone(rows)
		after[n/2] = &edited
		tbl := before.Derive(2, time.Now(), routing.RowsOf(after), nil, []routing.Change{{Old: rows[n/2], New: &edited}}, nil)
		b.Run(fmt.Sprintf("apps=%d", n/100), func(b *testing.B) {
			var s signalState
			beforeApps := s.appsFor(before)
			for b.Loop() {
				s.appsOf, s.apps = before, beforeApps
				apps := s.appsFor(tbl)
				if sameContent(Signal{Apps: apps}, Signal{Apps: beforeApps}) {
					b.Fatal("the edit changed no app's signal")
				}
			}
		})
	}
}

// The signal's counts follow edits in place (health, limits), backends
// registered, and the loads' own changes (verdicts, ejections, backends reaching and leaving
// their hard limit) in any order: after each, the apps' signals say what
// a whole count of the table, with the loads as they are, says.
func TestAppCountsFollowEditsAndLoads(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	now := time.Unix(1000, 0)
	order := map[*routing.Backend]int64{}
	rowid := func(b *routing.Backend) int64 { return order[b] }
	var rows []*routing.Backend
	for i := range 60 {
		b := &routing.Backend{ID: fmt.Sprintf("b%d", i), App: fmt.Sprintf("app%d", i%3), Healthy: true,
			Addr: netip.MustParseAddrPort("192.0.2.1:80"), HardLimit: 1 + rng.IntN(3), Load: new(routing.Load)}
		order[b] = int64(i)
		rows = append(rows, b)
	}
	tbl := routing.NewTable(1, now, slices.Clone(rows), nil)
	var s signalState
	s.appsFor(tbl)
	patched, appended := 0, 0
	for step := range 2000 {
		i := rng.IntN(len(rows))
		b := rows[i]
		switch rng.IntN(7) {
		case 6: // a backend registered: its row comes last
			nb := &routing.Backend{ID: fmt.Sprintf("n%d", step), App: fmt.Sprintf("app%d", rng.IntN(3)), Healthy: rng.IntN(3) > 0,
				Addr: netip.MustParseAddrPort("192.0.2.1:80"), HardLimit: 1 + rng.IntN(3), Load: new(routing.Load)}
			order[nb] = int64(1000 + step)
			rows = append(rows, nb)
			prev := tbl
			tbl = prev.Derive(uint64(step+2), now, routing.RowsOf(slices.Clone(rows)), nil, []routing.Change{{New: nb}}, rowid)
			if was, ok := s.apps.idx.Get(nb.App); ok && was.tally.counted {
				if _, ok := was.tally.patched(prev.App(nb.App), tbl.App(nb.App)); ok {
					appended++
				}
			}
		case 0, 1: // an edit in place
			edited := *b
			switch rng.IntN(3) {
			case 0:
				edited.Healthy = !edited.Healthy
			case 1:
				edited.HardLimit = 1 + rng.IntN(3)
			default:
				edited.Weight = rng.IntN(4)
			}
			order[&edited] = order[b]
			rows[i] = &edited
			prev := tbl
			tbl = prev.Derive(uint64(step+2), now, routing.RowsOf(slices.Clone(rows)), nil, []routing.Change{{Old: b, New: &edited}}, rowid)
			if was, ok := s.apps.idx.Get(b.App); ok && was.tally.counted {
				if _, ok := was.tally.patched(prev.App(b.App), tbl.App(b.App)); ok {
					patched++
				}
			}
		case 2:
			b.Load.TryAcquire(b.HardLimit)
		case 3:
			if b.Load.Active() > 0 {
				b.Load.Release()
			}
		case 4:
			b.Load.SetDown(routing.DownActive, !b.Load.Down())
		default:
			b.Load.SetDown(routing.DownEjected, b.Load.DownReasons()&routing.DownEjected == 0)
		}
		got := s.appsFor(tbl)
		want := appSignals(tbl, nil, AppSignals{})
		for _, app := range tbl.Apps() {
			g, _ := got.Get(app)
			w, _ := want.Get(app)
			if g != w {
				t.Fatalf("step %d: %s counted %+v, a whole count %+v", step, app, g, w)
			}
		}
	}
	if patched < 100 || appended < 50 {
		t.Fatalf("%d edits in place and %d registrations patched a count: the test should see many of each", patched, appended)
	}
}
