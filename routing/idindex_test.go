package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// The ID index finds what a map from ID to backend would, built from rows
// in table order (of two rows with one ID, the later) and after random
// changes.
func TestIDIndexAgreesWithAMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var rows []*Backend
	want := map[string]*Backend{}
	for range 3000 {
		b := &Backend{ID: fmt.Sprintf("b%d", rng.IntN(2500))} // some IDs twice
		rows = append(rows, b)
		want[b.ID] = b
	}
	x := newIDIndex(rows)
	check := func(step string) {
		t.Helper()
		for id, b := range want {
			if got := x.get(id); got != b {
				t.Fatalf("%s: get(%s) found another row", step, id)
			}
		}
		for i := range 50 {
			if id := fmt.Sprintf("none%d", i); x.get(id) != nil {
				t.Fatalf("%s: found %s, which no row has", step, id)
			}
		}
	}
	check("built")
	for step := range 200 {
		var changes []Change
		for range 1 + rng.IntN(4) {
			id := fmt.Sprintf("b%d", rng.IntN(2600))
			old := want[id]
			var nw *Backend
			if rng.IntN(4) > 0 {
				nw = &Backend{ID: id}
			}
			if old == nil && nw == nil {
				continue
			}
			changes = append(changes, Change{Old: old, New: nw})
			if nw != nil {
				want[id] = nw
			} else {
				delete(want, id)
			}
		}
		x = x.with(changes)
		check(fmt.Sprintf("step %d", step))
	}
}
