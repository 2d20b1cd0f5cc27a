package internal

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Records written at the first query for a name are written once, whoever
// asks first: queries from clients in several countries arriving together
// at a fresh snapshot get the answers the same queries get one at a time.
func TestFirstQueriesTogetherAgree(t *testing.T) {
	in := newFixture(t)
	reload := func() {
		t.Helper()
		tbl, warnings, err := in.store.Snapshot(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := in.load(context.Background(), tbl, warnings); err != nil {
			t.Fatal(err)
		}
	}
	type ask struct {
		name   string
		qtype  uint16
		subnet string
	}
	var asks []ask
	for _, name := range []string{"web.internal.", "eu.web.internal.", "web.eu.services.internal.", "top2.nearest.of.web.internal.", "eu.backends.internal.", "sa.backends.internal."} {
		for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV} {
			for _, subnet := range []string{"", "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "100.64.0.0/24"} {
				asks = append(asks, ask{name, qtype, subnet})
			}
		}
	}
	answer := func(a ask) string {
		resp, _, err := serve(t, in, query(a.name, a.qtype, a.subnet), "")
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprint(resp.Rcode, resp.Answer, resp.Extra)
	}
	reload()
	want := make([]string, len(asks))
	records := 0
	for i, a := range asks {
		want[i] = answer(a)
		if want[i] != fmt.Sprint(dns.RcodeSuccess, []dns.RR(nil), []dns.RR(nil)) {
			records++
		}
	}
	if records < len(asks)/2 {
		t.Fatalf("only %d of %d questions have records: the fixture does not exercise the names", records, len(asks))
	}
	for round := range 5 {
		reload()
		var wg sync.WaitGroup
		got := make([][]string, 8)
		for g := range got {
			got[g] = make([]string, len(asks))
			wg.Go(func() {
				for k := range asks {
					i := (k + g*7) % len(asks) // each goroutine starts elsewhere
					got[g][i] = answer(asks[i])
				}
			})
		}
		wg.Wait()
		for g := range got {
			for i := range asks {
				if got[g][i] != want[i] {
					t.Fatalf("round %d, client %d: %+v answered\n%s\nwant\n%s", round, g, asks[i], got[g][i], want[i])
				}
			}
		}
	}
}
