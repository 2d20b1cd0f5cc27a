package pop

import (
	"testing"
)

// Reports come back sorted by name; a registration under a taken name
// replaces the older one, whose remove then leaves the newer in place.
func TestReports(t *testing.T) {
	var rt Runtime
	rt.Report("wg6pn", func() any { return "mesh" })
	removeOld := rt.Report("bgp", func() any { return 1 })
	removeNew := rt.Report("bgp", func() any { return 2 })
	got := rt.Reports()
	if len(got) != 2 || got[0].Name != "bgp" || got[0].Value != 2 || got[1].Name != "wg6pn" || got[1].Value != "mesh" {
		t.Fatalf("reports %+v", got)
	}
	removeOld()
	if got := rt.Reports(); len(got) != 2 || got[0].Value != 2 {
		t.Fatalf("the old registration's remove took the new one: %+v", got)
	}
	removeNew()
	if got := rt.Reports(); len(got) != 1 || got[0].Name != "wg6pn" {
		t.Fatalf("after remove: %+v", got)
	}
}
