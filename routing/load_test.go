package routing

import (
	"fmt"
	"testing"
)

// The tracker keeps every load of a table's backends, drops those of
// backends gone once enough new ones came, and so never holds much more
// than the table, however its IDs churn. Its first Forget, after the first
// table, sweeps nothing.
func TestLoadTrackerForgetsGoneBackendsAndStaysBounded(t *testing.T) {
	tr := NewLoadTracker()
	live := map[string]bool{}
	for i := range 1000 {
		id := fmt.Sprintf("b%d", i)
		tr.For(id)
		live[id] = true
	}
	looked := 0
	keep := func(id string) bool { looked++; return live[id] }
	tr.Forget(keep)
	if looked != 0 || len(tr.loads) != 1000 {
		t.Fatalf("the first Forget looked up %d IDs and left %d loads; want 0 and 1,000", looked, len(tr.loads))
	}
	busy := tr.For("b0")
	busy.TryAcquire(0)
	next := 1000
	for round := range 40 {
		// 100 backends go and 100 come, each round.
		for k := range 100 {
			delete(live, fmt.Sprintf("b%d", round*100+k))
			id := fmt.Sprintf("b%d", next)
			next++
			tr.For(id)
			live[id] = true
		}
		tr.Forget(keep)
		if n := len(tr.loads); n > 1000+1000/4+100 {
			t.Fatalf("round %d: %d loads for a table of 1,000", round, n)
		}
	}
	if looked == 0 {
		t.Fatal("the churn never made the tracker sweep")
	}
	for id := range live {
		if tr.loads[id] == nil {
			t.Fatalf("live backend %s lost its load", id)
		}
	}
	if tr.loads["b0"] != busy {
		t.Fatal("a gone backend with a connection open lost its load")
	}
}
