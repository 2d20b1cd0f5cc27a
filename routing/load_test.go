package routing

import (
	"fmt"
	"testing"
	"time"
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

// A backend whose hard limit an edit lowers under its connections is at
// its limit until enough of them end, and leaving it then is a crossing
// the POP signal sees; raising the limit above them takes it off.
func TestEditedLimitIsLeftWhenConnectionsFallBelowIt(t *testing.T) {
	b := backend("b1", "eu", "FR", 1, 10, 3)
	tbl := NewTable(1, time.Now(), []*Backend{b}, nil)
	b.Load.TryAcquire(b.HardLimit)
	b.Load.TryAcquire(b.HardLimit)
	edit := func(limit int) {
		old := tbl.Backend("b1")
		nb := *old
		nb.HardLimit = limit
		tbl = tbl.Derive(tbl.Generation+1, time.Now(), RowsOf([]*Backend{&nb}), nil, []Change{{Old: old, New: &nb}}, nil)
	}
	edit(1)
	if !tbl.Backend("b1").AtHardLimit() {
		t.Fatal("two connections over a limit of 1: not at the limit")
	}
	before := LimitCrossings()
	b.Load.Release()
	if LimitCrossings() != before {
		t.Fatal("one connection left of a limit of 1 counted as leaving the limit")
	}
	b.Load.Release()
	if LimitCrossings() == before {
		t.Fatal("the last connection ended and the backend left its limit unseen")
	}
	b.Load.TryAcquire(1)
	edit(5)
	before = LimitCrossings()
	b.Load.Release()
	if LimitCrossings() != before {
		t.Fatal("a backend its edit took off its limit left the limit again")
	}
}
