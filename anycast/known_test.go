package anycast

import (
	"slices"
	"testing"

	"github.com/edgeproxy/edgeproxy/pop"
)

// KnownApps keeps every app any signal had: those of the first signal, an
// app a later signal adds, and an app a later signal no longer has.
func TestKnownAppsGatherEverySignalsApps(t *testing.T) {
	m := NewManager(Defaults{})
	signal := func(seq uint64, apps ...string) pop.Signal {
		as := map[string]pop.AppSignal{}
		for _, a := range apps {
			as[a] = pop.AppSignal{Routable: 1, Backends: 1}
		}
		return pop.Signal{Node: "gru-1", State: pop.Serving, Seq: seq, Apps: pop.NewAppSignals(as)}
	}
	first := signal(1, "web", "db")
	m.learn(pop.Signal{}, first)
	second := signal(2, "web", "db", "api")
	m.learn(first, second)
	third := signal(3, "api")
	m.learn(second, third)
	got := m.KnownApps()
	slices.Sort(got)
	if want := []string{"api", "db", "web"}; !slices.Equal(got, want) {
		t.Fatalf("known apps %v, want %v", got, want)
	}
}
