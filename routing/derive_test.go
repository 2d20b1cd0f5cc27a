package routing

import (
	"net/netip"
	"slices"
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
