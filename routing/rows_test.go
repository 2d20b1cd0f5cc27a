package routing

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Random edits of Rows (drops and adds anywhere, the table growing past
// several chunks and shrinking to nothing) give the same list as the same
// edits of a plain slice, share the chunks they do not touch, and find
// rows by order.
func TestRowsEditLikeASlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	next := 0
	fresh := func() *Backend { next++; return &Backend{ID: fmt.Sprint(next)} }
	var want []*Backend
	var rows Rows
	for step := range 400 {
		n := len(want)
		var drop, places []int
		var adds []*Backend
		switch {
		case step < 40: // grow past a few chunks
			for range 1 + rng.IntN(100) {
				places = append(places, rng.IntN(n+1))
			}
		case step > 380 && n > 0: // shrink to nothing
			for i := range n {
				if rng.IntN(3) > 0 || step == 399 {
					drop = append(drop, i)
				}
			}
		default:
			for range rng.IntN(4) {
				drop = append(drop, rng.IntN(max(n, 1)))
			}
			for range rng.IntN(4) {
				places = append(places, rng.IntN(n+1))
			}
		}
		if n == 0 {
			drop = nil
		}
		slices.Sort(drop)
		drop = slices.Compact(drop)
		slices.Sort(places)
		for range places {
			adds = append(adds, fresh())
		}
		// The same edit on a slice: adds before the old row at their
		// place, drops gone.
		var next []*Backend
		a := 0
		for i := 0; i <= n; i++ {
			for a < len(places) && places[a] == i {
				next = append(next, adds[a])
				a++
			}
			if i < n && !slices.Contains(drop, i) {
				next = append(next, want[i])
			}
		}
		before := rows
		rows = rows.Edit(drop, adds, places)
		want = next
		if got := rows.Slice(); !slices.Equal(got, want) || rows.Len() != len(want) {
			t.Fatalf("step %d: edit gave %d rows %v, want %d %v", step, rows.Len(), ids(got), len(want), ids(want))
		}
		for i, b := range want {
			if rows.At(i) != b {
				t.Fatalf("step %d: At(%d) = %s, want %s", step, i, rows.At(i).ID, b.ID)
			}
		}
		if len(drop) == 0 && len(adds) == 1 && len(before.chunks) > 2 {
			shared := 0
			for _, c := range rows.chunks {
				for _, o := range before.chunks {
					if &c[0] == &o[0] {
						shared++
					}
				}
			}
			if shared < len(before.chunks)-1 {
				t.Fatalf("step %d: one add shared %d of %d chunks", step, shared, len(before.chunks))
			}
		}
	}
	// Search finds rows by an order that grows along them.
	list := make([]*Backend, 2000)
	rank := map[*Backend]int{}
	for i := range list {
		list[i] = &Backend{ID: fmt.Sprint(i)}
		rank[list[i]] = 2 * i
	}
	r := RowsOf(list)
	for _, k := range []int{0, 1, 2, 1023, 1024, 1025, 3998, 3999, 4000, -1} {
		i, found := r.Search(func(b *Backend) int { return rank[b] - k })
		wantI := max(0, (k+1)/2)
		if i != wantI || found != (k >= 0 && k%2 == 0 && k < 4000) {
			t.Fatalf("Search(%d) = %d, %v; want %d, %v", k, i, found, wantI, k%2 == 0)
		}
	}
}
