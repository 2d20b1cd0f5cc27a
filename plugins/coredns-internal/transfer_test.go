package internal

import (
	"strings"
	"testing"

	"github.com/coredns/coredns/plugin/transfer"

	"github.com/miekg/dns"
)

func TestTransfer(t *testing.T) {
	in := newFixture(t)
	ch, err := in.Transfer("internal.", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []dns.RR
	for rrs := range ch {
		got = append(got, rrs...)
	}
	if len(got) < 3 {
		t.Fatalf("AXFR of %d records", len(got))
	}
	first, okFirst := got[0].(*dns.SOA)
	last, okLast := got[len(got)-1].(*dns.SOA)
	if !okFirst || !okLast || first.Serial != in.snap.Load().serial || last.Serial != first.Serial {
		t.Fatalf("AXFR must start and end with the SOA: %v ... %v", got[0], got[len(got)-1])
	}
	if ns, ok := got[1].(*dns.NS); !ok || ns.Ns != "ns.dns.internal." {
		t.Fatalf("second record %v, want the apex NS", got[1])
	}
	text := map[string]bool{}
	for _, rr := range got {
		text[strings.ReplaceAll(rr.String(), "\t", " ")] = true
	}
	for _, want := range []string{
		"web.internal. 30 IN A 10.50.1.1",
		"web.internal. 30 IN AAAA fd00::6",
		"web.internal. 30 IN SRV 2 2 8080 br1.sa.backends.internal.",
		"fr1.eu.backends.internal. 30 IN A 10.50.3.1",
		"web.eu.services.internal. 30 IN SRV 3 2 8080 fr1.eu.backends.internal.",
		"sa.pops.internal. 30 IN AAAA 2001:db8::10",
		"top1.nearest.of.web.internal. 30 IN A 10.50.1.1",
	} {
		if !text[want] {
			t.Errorf("AXFR lacks %s", want)
		}
	}
	for _, absent := range []string{"10.50.3.9", "10.50.3.8", "10.50.3.7"} { // sick, gone, down
		for rr := range text {
			if strings.Contains(rr, absent) {
				t.Errorf("AXFR serves a backend that is not healthy: %s", rr)
			}
		}
	}

	// IXFR from the current serial: the SOA alone.
	ch, err = in.Transfer("internal.", in.snap.Load().serial)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range ch {
		n++
	}
	if n != 1 {
		t.Fatalf("IXFR at the current serial sent %d batches, want the SOA alone", n)
	}
	if _, err := in.Transfer("example.org.", 0); err != transfer.ErrNotAuthoritative {
		t.Fatalf("transfer of another zone: %v, want ErrNotAuthoritative", err)
	}
	if _, err := in.Transfer("web.internal.", 0); err != transfer.ErrNotAuthoritative {
		t.Fatalf("transfer of a name inside the zone: %v, want ErrNotAuthoritative", err)
	}
}
