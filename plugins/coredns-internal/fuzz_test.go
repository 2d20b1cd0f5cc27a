package internal

import (
	"context"
	"testing"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds the handler any message the server could hand it (any
// wire bytes that unpack) from a few client addresses. The handler must not
// panic, and must either return an error rcode for the server to write, pass
// the query on, or write one reply that answers the question and packs.
func FuzzServeDNS(f *testing.F) {
	in := newFixture(f)
	const passed = dns.RcodeBadCookie // what the next handler returns
	in.Next = test.NextHandler(passed, nil)
	froms := []string{"", "198.51.100.7", "192.0.2.1", "2001:db8:f::1", "::1"}

	seed := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	for _, c := range []struct {
		name   string
		qtype  uint16
		subnet string
	}{
		{"web.internal.", dns.TypeA, ""},
		{"web.internal.", dns.TypeSRV, "198.51.100.0/24"},
		{"WEB.internal.", dns.TypeAAAA, "2001:db8:f::/48"},
		{"eu.backends.internal.", dns.TypeA, "0.0.0.0/0"},
		{"fr1.eu.backends.internal.", dns.TypeSRV, ""},
		{"web.sa.services.internal.", dns.TypeANY, ""},
		{"sa.pops.internal.", dns.TypeAAAA, ""},
		{"internal.", dns.TypeSOA, ""},
		{"internal.", dns.TypeAXFR, ""},
		{"nope.internal.", dns.TypeA, ""},
		{"example.org.", dns.TypeA, ""},
	} {
		seed(query(c.name, c.qtype, c.subnet))
	}
	chaos := query("web.internal.", dns.TypeTXT, "")
	chaos.Question[0].Qclass = dns.ClassCHAOS
	seed(chaos)
	update := query("internal.", dns.TypeSOA, "")
	update.Opcode = dns.OpcodeUpdate
	seed(update)
	seed(new(dns.Msg)) // no question

	f.Fuzz(func(t *testing.T, wire []byte, from uint8) {
		m := new(dns.Msg)
		if err := m.Unpack(wire); err != nil {
			return // the server never hands over what does not unpack
		}
		rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: froms[int(from)%len(froms)]})
		rcode, err := in.ServeDNS(context.Background(), rec, m)
		if err != nil {
			t.Fatalf("ServeDNS error: %v", err)
		}
		if rec.Msg == nil {
			if rcode != passed && plugin.ClientWrite(rcode) {
				t.Fatalf("rcode %s returned without a reply written", dns.RcodeToString[rcode])
			}
			return
		}
		if !plugin.ClientWrite(rcode) {
			t.Fatalf("wrote a reply and returned %s, which makes the server write another", dns.RcodeToString[rcode])
		}
		r := rec.Msg
		if !r.Response || !r.Authoritative || r.Id != m.Id || len(r.Question) != 1 || r.Question[0] != m.Question[0] {
			t.Fatalf("reply does not answer the query:\n%v\nquery:\n%v", r, m)
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			t.Fatalf("reply with rcode %s", dns.RcodeToString[r.Rcode])
		}
		if len(r.Answer) == 0 && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
			t.Fatalf("negative reply without the SOA:\n%v", r)
		}
		for _, rr := range r.Answer {
			if rr.Header().Name != m.Question[0].Name {
				t.Fatalf("answer owner %q, question %q", rr.Header().Name, m.Question[0].Name)
			}
		}
		b, err := r.Pack()
		if err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, r)
		}
		if err := new(dns.Msg).Unpack(b); err != nil {
			t.Fatalf("reply does not unpack: %v", err)
		}
	})
}
