package internal

import (
	"context"
	"fmt"
	"testing"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

// soa is the SOA every negative answer carries; test.Section compares its
// MNAME only (the serial is the table's generation).
func soa(origin string) dns.RR {
	return test.SOA(origin + " 30 IN SOA ns.dns.internal. hostmaster.dns.internal. 1 60 10 86400 30")
}

// tcase is a test.Case asked from a client subnet ("" for none) or a source
// address. Sections are compared in order, unsorted: best first is what the
// plugin promises.
type tcase struct {
	test.Case
	subnet, from string
	scope        int // the ECS scope the reply must carry when subnet is set
}

func run(t *testing.T, in *Internal, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_%s_%s%s", tc.Qname, dns.TypeToString[tc.Qtype], tc.subnet, tc.from), func(t *testing.T) {
			resp, rcode, err := serve(t, in, query(tc.Qname, tc.Qtype, tc.subnet), tc.from)
			if err != nil {
				t.Fatalf("ServeDNS error: %v", err)
			}
			if resp == nil {
				t.Fatalf("no reply written (rcode %d)", rcode)
			}
			check(t, tc, resp)
		})
	}
}

func check(t *testing.T, tc tcase, resp *dns.Msg) {
	t.Helper()
	if !resp.Authoritative {
		t.Errorf("reply is not authoritative")
	}
	if resp.Question[0].Name != tc.Qname {
		t.Errorf("question %q, want the client's %q", resp.Question[0].Name, tc.Qname)
	}
	ecs := replySubnet(resp)
	switch {
	case tc.subnet == "" && ecs != nil:
		t.Errorf("reply carries a client subnet the query did not have: %v", ecs)
	case tc.subnet != "" && ecs == nil:
		t.Errorf("query had client subnet %s, the reply has none", tc.subnet)
	case ecs != nil:
		if got := fmt.Sprintf("%s/%d", ecs.Address, ecs.SourceNetmask); got != tc.subnet {
			t.Errorf("reply subnet %s, want the query's %s", got, tc.subnet)
		}
		if int(ecs.SourceScope) != tc.scope {
			t.Errorf("reply subnet scope %d, want %d", ecs.SourceScope, tc.scope)
		}
	}
	// The OPT record is checked above; compare the rest.
	var extra []dns.RR
	for _, rr := range resp.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			extra = append(extra, rr)
		}
	}
	resp.Extra = extra
	if err := test.Header(tc.Case, resp); err != nil {
		t.Fatalf("%v\n%v", err, resp)
	}
	if err := test.Section(tc.Case, test.Answer, resp.Answer); err != nil {
		t.Errorf("answer: %v\n%v", err, resp)
	}
	if err := test.Section(tc.Case, test.Ns, resp.Ns); err != nil {
		t.Errorf("authority: %v\n%v", err, resp)
	}
	if err := test.Section(tc.Case, test.Extra, resp.Extra); err != nil {
		t.Errorf("additional: %v\n%v", err, resp)
	}
}

func q(name string, qtype uint16, rcode int, answer, ns, extra []dns.RR) tcase {
	return tcase{Case: test.Case{Qname: name, Qtype: qtype, Rcode: rcode, Answer: answer, Ns: ns, Extra: extra}}
}

func (tc tcase) fromSubnet(s string, scope int) tcase { tc.subnet, tc.scope = s, scope; return tc }
func (tc tcase) fromAddr(a string) tcase              { tc.from = a; return tc }

var (
	ok   = dns.RcodeSuccess
	nx   = dns.RcodeNameError
	none []dns.RR
)

func rrs(lines ...string) []dns.RR {
	out := make([]dns.RR, len(lines))
	for i, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", l, err))
		}
		out[i] = rr
	}
	return out
}

// The app name lists healthy backends best first for the client, located
// by its subnet when it sends one, else by its address; the POP is in sa.
func TestAppOrderFollowsTheClient(t *testing.T) {
	in := newFixture(t)
	unknown := rrs(
		"web.internal. 30 IN A 10.50.1.1", // br1: the POP's region
		"web.internal. 30 IN A 10.50.3.1", // then table order
		"web.internal. 30 IN A 10.50.3.2",
		"web.internal. 30 IN A 10.50.2.7", // flaky: one observer still reaches it
	)
	fr := rrs(
		"web.internal. 30 IN A 10.50.3.1", // fr1: same country
		"web.internal. 30 IN A 10.50.3.2", // de1: same region
		"web.internal. 30 IN A 10.50.1.1", // br1: the POP's region
		"web.internal. 30 IN A 10.50.2.7",
	)
	de := rrs(
		"web.internal. 30 IN A 10.50.3.2",
		"web.internal. 30 IN A 10.50.3.1",
		"web.internal. 30 IN A 10.50.1.1",
		"web.internal. 30 IN A 10.50.2.7",
	)
	pt := rrs( // Portugal: no backend there, two in its region
		"web.internal. 30 IN A 10.50.3.1",
		"web.internal. 30 IN A 10.50.3.2",
		"web.internal. 30 IN A 10.50.1.1",
		"web.internal. 30 IN A 10.50.2.7",
	)
	run(t, in, []tcase{
		q("web.internal.", dns.TypeA, ok, unknown, none, none),
		q("web.internal.", dns.TypeA, ok, fr, none, none).fromSubnet("198.51.100.0/24", 24),
		q("web.internal.", dns.TypeA, ok, unknown, none, none).fromSubnet("203.0.113.0/24", 24),
		q("web.internal.", dns.TypeA, ok, de, none, none).fromSubnet("192.0.2.0/25", 25),
		q("web.internal.", dns.TypeA, ok, pt, none, none).fromSubnet("100.64.0.0/24", 24),
		q("web.internal.", dns.TypeA, ok, fr, none, none).fromSubnet("198.51.100.0/24", 24).fromAddr("192.0.2.1"),
		q("web.internal.", dns.TypeA, ok, unknown, none, none).fromSubnet("2001:db8:f::/48", 48),
		// Prefix 0: the client asked not to be located; the answer holds for everyone.
		q("web.internal.", dns.TypeA, ok, unknown, none, none).fromSubnet("0.0.0.0/0", 0),
		// No subnet: the source address locates the client.
		q("web.internal.", dns.TypeA, ok, fr, none, none).fromAddr("198.51.100.7"),
		q("web.internal.", dns.TypeA, ok, de, none, none).fromAddr("192.0.2.200"),
		q("web.internal.", dns.TypeAAAA, ok, rrs("web.internal. 30 IN AAAA fd00::6"), none, none),
	})
}

// SRV records carry the port, the backend's weight and, as priority, the
// geo tier for this client; the targets' addresses come as glue.
func TestSRV(t *testing.T) {
	in := newFixture(t)
	glue := rrs(
		"fr1.eu.backends.internal. 30 IN A 10.50.3.1",
		"de1.eu.backends.internal. 30 IN A 10.50.3.2",
		"br1.sa.backends.internal. 30 IN A 10.50.1.1",
		"us6.us.backends.internal. 30 IN AAAA fd00::6",
		"flaky.us.backends.internal. 30 IN A 10.50.2.7",
	)
	run(t, in, []tcase{
		q("web.internal.", dns.TypeSRV, ok, rrs(
			"web.internal. 30 IN SRV 0 2 8080 fr1.eu.backends.internal.",
			"web.internal. 30 IN SRV 1 3 8080 de1.eu.backends.internal.",
			"web.internal. 30 IN SRV 2 2 8080 br1.sa.backends.internal.",
			"web.internal. 30 IN SRV 3 2 9090 us6.us.backends.internal.",
			"web.internal. 30 IN SRV 3 2 8080 flaky.us.backends.internal.",
		), none, glue).fromSubnet("198.51.100.0/24", 24),
		// bad.id has no name of its own, so no SRV target: A only.
		q("api.internal.", dns.TypeSRV, ok, rrs("api.internal. 30 IN SRV 2 2 7000 api1.sa.backends.internal."), none,
			rrs("api1.sa.backends.internal. 30 IN A 10.50.1.5")),
		q("api.internal.", dns.TypeA, ok, rrs("api.internal. 30 IN A 10.50.1.5", "api.internal. 30 IN A 10.50.1.6"), none, none),
		q("fr1.eu.backends.internal.", dns.TypeSRV, ok, rrs("fr1.eu.backends.internal. 30 IN SRV 0 2 8080 fr1.eu.backends.internal."), none,
			rrs("fr1.eu.backends.internal. 30 IN A 10.50.3.1")),
		q("web.us.services.internal.", dns.TypeSRV, ok, rrs(
			"web.us.services.internal. 30 IN SRV 3 2 9090 us6.us.backends.internal.",
			"web.us.services.internal. 30 IN SRV 3 2 8080 flaky.us.backends.internal.",
		), none, rrs("us6.us.backends.internal. 30 IN AAAA fd00::6", "flaky.us.backends.internal. 30 IN A 10.50.2.7")),
		q("sa.pops.internal.", dns.TypeSRV, ok, none, []dns.RR{soa("internal.")}, none),
	})
}

func TestNameKinds(t *testing.T) {
	in := newFixture(t)
	neg := []dns.RR{soa("internal.")}
	run(t, in, []tcase{
		q("eu.backends.internal.", dns.TypeA, ok, rrs(
			"eu.backends.internal. 30 IN A 10.50.3.1",
			"eu.backends.internal. 30 IN A 10.50.3.2",
		), none, none),
		// Region and backend names do not depend on the client: scope 0.
		q("eu.backends.internal.", dns.TypeA, ok, rrs(
			"eu.backends.internal. 30 IN A 10.50.3.1",
			"eu.backends.internal. 30 IN A 10.50.3.2",
		), none, none).fromSubnet("203.0.113.0/24", 0),
		q("us.backends.internal.", dns.TypeAAAA, ok, rrs("us.backends.internal. 30 IN AAAA fd00::6"), none, none),
		q("fr1.eu.backends.internal.", dns.TypeA, ok, rrs("fr1.eu.backends.internal. 30 IN A 10.50.3.1"), none, none),
		q("us6.us.backends.internal.", dns.TypeAAAA, ok, rrs("us6.us.backends.internal. 30 IN AAAA fd00::6"), none, none),
		q("us6.us.backends.internal.", dns.TypeA, ok, none, neg, none),
		q("web.sa.services.internal.", dns.TypeA, ok, rrs("web.sa.services.internal. 30 IN A 10.50.1.1"), none, none),
		q("web.eu.services.internal.", dns.TypeA, ok, rrs(
			"web.eu.services.internal. 30 IN A 10.50.3.2",
			"web.eu.services.internal. 30 IN A 10.50.3.1",
		), none, none).fromSubnet("192.0.2.0/24", 24),
		q("sa.pops.internal.", dns.TypeA, ok, rrs("sa.pops.internal. 30 IN A 192.0.2.10"), none, none),
		q("sa.pops.internal.", dns.TypeAAAA, ok, rrs("sa.pops.internal. 30 IN AAAA 2001:db8::10"), none, none),
		// A reserved app name keeps its services names.
		q("backends.sa.services.internal.", dns.TypeA, ok, rrs("backends.sa.services.internal. 30 IN A 10.50.1.8"), none, none),
	})
}

func TestApexNegativeAnswersAndEmptyNonTerminals(t *testing.T) {
	in := newFixture(t)
	neg := []dns.RR{soa("internal.")}
	run(t, in, []tcase{
		q("internal.", dns.TypeSOA, ok, []dns.RR{soa("internal.")}, none, none),
		// The NS is in the zone, so it comes with its addresses (here the
		// POPs' host addresses: the fixture's POPs have no 6PN prefix).
		q("internal.", dns.TypeNS, ok, rrs("internal. 30 IN NS ns.dns.internal."), none,
			rrs("ns.dns.internal. 30 IN A 192.0.2.10", "ns.dns.internal. 30 IN AAAA 2001:db8::10")),
		q("internal.", dns.TypeA, ok, none, neg, none),
		// Empty non-terminals and fixed parts of the namespace: NODATA.
		q("backends.internal.", dns.TypeA, ok, none, neg, none),
		q("services.internal.", dns.TypeA, ok, none, neg, none),
		q("pops.internal.", dns.TypeA, ok, none, neg, none),
		q("sa.services.internal.", dns.TypeA, ok, none, neg, none),
		q("dns.internal.", dns.TypeA, ok, none, neg, none),
		q("ns.dns.internal.", dns.TypeA, ok, rrs("ns.dns.internal. 30 IN A 192.0.2.10"), none, none),
		q("ns.dns.internal.", dns.TypeTXT, ok, none, neg, none),
		// Missing types: NODATA.
		q("web.internal.", dns.TypeTXT, ok, none, neg, none),
		q("web.internal.", dns.TypeMX, ok, none, neg, none),
		q("web.internal.", dns.TypeSOA, ok, none, neg, none),
		// A backend that exists but is unhealthy, or down for every
		// observer: the name stays, without addresses.
		q("sick.eu.backends.internal.", dns.TypeA, ok, none, neg, none),
		q("down.eu.backends.internal.", dns.TypeA, ok, none, neg, none),
		// Names that do not exist: NXDOMAIN, with the SOA.
		q("nope.internal.", dns.TypeA, nx, none, neg, none),
		q("gone.eu.backends.internal.", dns.TypeA, nx, none, neg, none),
		q("x.web.internal.", dns.TypeA, nx, none, neg, none),
		q("fr1.sa.backends.internal.", dns.TypeA, nx, none, neg, none),
		q("eu.pops.internal.", dns.TypeA, nx, none, neg, none), // fra-1's addr is a host name
		q("web.xx.services.internal.", dns.TypeA, nx, none, neg, none),
		q("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.internal.", dns.TypeA, nx, none, neg, none),
		// Names that are not labels are not served at all.
		q("bad.id.sa.backends.internal.", dns.TypeA, nx, none, neg, none),
		q("id.sa.backends.internal.", dns.TypeA, nx, none, neg, none),
		q(`my\032app.internal.`, dns.TypeA, nx, none, neg, none),
	})
}

// Names match in any case, and answers keep the client's spelling.
func TestCaseIsKept(t *testing.T) {
	in := newFixture(t)
	run(t, in, []tcase{
		q("WeB.InTeRnAl.", dns.TypeA, ok, rrs(
			"WeB.InTeRnAl. 30 IN A 10.50.3.1",
			"WeB.InTeRnAl. 30 IN A 10.50.3.2",
			"WeB.InTeRnAl. 30 IN A 10.50.1.1",
			"WeB.InTeRnAl. 30 IN A 10.50.2.7",
		), none, none).fromSubnet("198.51.100.0/24", 24),
		q("FR1.EU.Backends.internal.", dns.TypeSRV, ok, rrs("FR1.EU.Backends.internal. 30 IN SRV 0 2 8080 fr1.eu.backends.internal."), none,
			rrs("fr1.eu.backends.internal. 30 IN A 10.50.3.1")),
		q("NoPe.INTERNAL.", dns.TypeA, nx, none, []dns.RR{soa("INTERNAL.")}, none),
		q("Internal.", dns.TypeSOA, ok, []dns.RR{soa("Internal.")}, none, none),
	})
	// The shared records are left as they were built.
	resp, _, _ := serve(t, in, query("web.internal.", dns.TypeA, "198.51.100.0/24"), "")
	if resp.Answer[0].Header().Name != "web.internal." {
		t.Fatalf("a mixed-case query changed the shared records: %v", resp.Answer[0])
	}
}

// Two zones in one block: the same names under each origin.
func TestSeveralZones(t *testing.T) {
	in := newTest(t, []string{"internal."}, "internal internal. edge.example.org {\n db @db\n region sa\n}", "")
	resp, _, _ := serve(t, in, query("br1.sa.backends.edge.example.org.", dns.TypeSRV, ""), "")
	if resp == nil || resp.Rcode != ok || len(resp.Answer) != 1 {
		t.Fatalf("second zone: %v", resp)
	}
	if srv := resp.Answer[0].(*dns.SRV); srv.Target != "br1.sa.backends.edge.example.org." || srv.Port != 8080 {
		t.Fatalf("SRV under the second zone points at %s:%d", srv.Target, srv.Port)
	}
	resp, _, _ = serve(t, in, query("nope.edge.example.org.", dns.TypeA, ""), "")
	if resp.Rcode != nx || resp.Ns[0].Header().Name != "edge.example.org." {
		t.Fatalf("NXDOMAIN under the second zone: %v", resp)
	}
}

// Queries the plugin must refuse or pass on, without writing a reply of its
// own: the server writes the error for the rcode returned.
func TestBadQueries(t *testing.T) {
	in := newFixture(t)
	next := test.NextHandler(dns.RcodeBadCookie, nil) // a marker no real path returns
	in.Next = next

	chaos := query("web.internal.", dns.TypeA, "")
	chaos.Question[0].Qclass = dns.ClassCHAOS
	anyClass := query("web.internal.", dns.TypeA, "")
	anyClass.Question[0].Qclass = dns.ClassANY
	empty := new(dns.Msg)
	two := query("web.internal.", dns.TypeA, "")
	two.Question = append(two.Question, two.Question[0])
	update := query("web.internal.", dns.TypeA, "")
	update.Opcode = dns.OpcodeUpdate
	notify := query("internal.", dns.TypeSOA, "")
	notify.Opcode = dns.OpcodeNotify
	// Address bits set beyond the source prefix: RFC 7871 asks for FORMERR.
	sloppy := query("web.internal.", dns.TypeA, "198.51.100.0/24")
	sloppy.IsEdns0().Option[0].(*dns.EDNS0_SUBNET).SourceNetmask = 16

	for name, c := range map[string]struct {
		m     *dns.Msg
		rcode int
	}{
		"class CH":          {chaos, dns.RcodeRefused},
		"class ANY":         {anyClass, dns.RcodeRefused},
		"empty question":    {empty, dns.RcodeFormatError},
		"two questions":     {two, dns.RcodeFormatError},
		"update":            {update, dns.RcodeNotImplemented},
		"notify":            {notify, dns.RcodeNotImplemented},
		"AXFR outside xfr":  {query("internal.", dns.TypeAXFR, ""), dns.RcodeRefused},
		"IXFR outside xfr":  {query("internal.", dns.TypeIXFR, ""), dns.RcodeRefused},
		"malformed subnet":  {sloppy, dns.RcodeFormatError},
		"outside the zones": {query("example.org.", dns.TypeA, ""), dns.RcodeBadCookie},
		"zone name suffix":  {query("notinternal.", dns.TypeA, ""), dns.RcodeBadCookie},
	} {
		t.Run(name, func(t *testing.T) {
			resp, rcode, err := serve(t, in, c.m, "")
			if rcode != c.rcode || err != nil {
				t.Fatalf("rcode %s (%v), want %s", dns.RcodeToString[rcode], err, dns.RcodeToString[c.rcode])
			}
			if resp != nil {
				t.Fatalf("the plugin wrote a reply for an error the server writes: %v", resp)
			}
		})
	}
}

func TestFallthrough(t *testing.T) {
	in := newTest(t, []string{"internal."}, "internal {\n db @db\n fallthrough\n}", "")
	in.Next = test.NextHandler(dns.RcodeBadCookie, nil)
	if _, rcode, _ := serve(t, in, query("nope.internal.", dns.TypeA, ""), ""); rcode != dns.RcodeBadCookie {
		t.Fatalf("NXDOMAIN did not fall through: rcode %d", rcode)
	}
	// Only names that do not exist fall through: NODATA is an answer.
	if resp, _, _ := serve(t, in, query("web.internal.", dns.TypeTXT, ""), ""); resp == nil || resp.Rcode != ok || len(resp.Ns) != 1 {
		t.Fatalf("NODATA fell through or was wrong: %v", resp)
	}
	// With zones, only names under them fall through.
	in = newTest(t, []string{"internal."}, "internal {\n db @db\n fallthrough legacy.internal.\n}", "")
	in.Next = test.NextHandler(dns.RcodeBadCookie, nil)
	if _, rcode, _ := serve(t, in, query("x.legacy.internal.", dns.TypeA, ""), ""); rcode != dns.RcodeBadCookie {
		t.Fatalf("NXDOMAIN under the fallthrough zone did not fall through: rcode %d", rcode)
	}
	if resp, _, _ := serve(t, in, query("nope.internal.", dns.TypeA, ""), ""); resp == nil || resp.Rcode != nx {
		t.Fatalf("NXDOMAIN outside the fallthrough zone: %v", resp)
	}
}

// The serial follows the table's generation, and a newer table is served
// once loaded.
func TestSerialFollowsTheTable(t *testing.T) {
	in := newFixture(t)
	first := in.snap.Load().serial
	resp, _, _ := serve(t, in, query("internal.", dns.TypeSOA, ""), "")
	if got := resp.Answer[0].(*dns.SOA).Serial; got != first || first == 0 {
		t.Fatalf("SOA serial %d, snapshot %d", got, first)
	}
	if _, err := in.store.DB().Exec(`UPDATE backends SET deleted = 1 WHERE id = 'br1'`); err == nil {
		t.Fatal("the plugin's store handle accepted a write: it must be read-only")
	}
	tbl, warnings, err := in.store.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := in.load(context.Background(), tbl, warnings); err != nil {
		t.Fatal(err)
	}
	resp, _, _ = serve(t, in, query("internal.", dns.TypeSOA, ""), "")
	if got := resp.Answer[0].(*dns.SOA).Serial; got <= first {
		t.Fatalf("serial %d after a reload, want more than %d", got, first)
	}
}

// The records-served counter follows answers, by kind of name.
func TestRecordsServedMetric(t *testing.T) {
	in := newFixture(t)
	c := recordsServed.WithLabelValues("", "app")
	before := counterValue(t, c)
	rec := dnstest.NewRecorder(&test.ResponseWriter{})
	in.ServeDNS(context.Background(), rec, query("web.internal.", dns.TypeA, ""))
	if got := counterValue(t, c) - before; got != 4 {
		t.Fatalf("records served for an answer of 4: counter moved by %v", got)
	}
}
