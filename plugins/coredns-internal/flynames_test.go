package internal

import (
	"testing"

	"github.com/miekg/dns"
)

// The names users know from Fly.io's .internal, on the fixture table:
//
//	web: fr1 (eu, FR, 10.50.3.1), de1 (eu, DE, 10.50.3.2),
//	     br1 (sa, BR, 10.50.1.1), us6 (us, US, fd00::6), flaky (us, 10.50.2.7)
//	api: api1 (sa, BR, 10.50.1.5), "bad.id" (sa, BR, 10.50.1.6)
func TestFlyStyleNames(t *testing.T) {
	in := newFixture(t)
	neg := []dns.RR{soa("internal.")}
	fr := "198.51.100.0/24" // a client in France
	run(t, in, []tcase{
		// <region>.<app>: the app's backends in one region, best first.
		q("eu.web.internal.", dns.TypeA, ok, rrs("eu.web.internal. 30 IN A 10.50.3.1", "eu.web.internal. 30 IN A 10.50.3.2"), none, none),
		q("eu.web.internal.", dns.TypeA, ok, rrs("eu.web.internal. 30 IN A 10.50.3.2", "eu.web.internal. 30 IN A 10.50.3.1"), none, none).fromSubnet("192.0.2.0/24", 24),
		q("us.web.internal.", dns.TypeAAAA, ok, rrs("us.web.internal. 30 IN AAAA fd00::6"), none, none),
		q("sa.api.internal.", dns.TypeA, ok, rrs("sa.api.internal. 30 IN A 10.50.1.5", "sa.api.internal. 30 IN A 10.50.1.6"), none, none),
		q("xx.web.internal.", dns.TypeA, nx, none, neg, none),
		// top<n>.nearest.of.<app>: the n best for the client.
		q("top1.nearest.of.web.internal.", dns.TypeA, ok, rrs("top1.nearest.of.web.internal. 30 IN A 10.50.3.1"), none, none).fromSubnet(fr, 24),
		q("top2.nearest.of.web.internal.", dns.TypeA, ok, rrs("top2.nearest.of.web.internal. 30 IN A 10.50.3.1", "top2.nearest.of.web.internal. 30 IN A 10.50.3.2"), none, none).fromSubnet(fr, 24),
		// Unknown client: the POP's own region (sa) first, as the proxy.
		q("top1.nearest.of.web.internal.", dns.TypeA, ok, rrs("top1.nearest.of.web.internal. 30 IN A 10.50.1.1"), none, none),
		// More than the app has: all of them.
		q("top10.nearest.of.api.internal.", dns.TypeA, ok, rrs("top10.nearest.of.api.internal. 30 IN A 10.50.1.5", "top10.nearest.of.api.internal. 30 IN A 10.50.1.6"), none, none),
		q("top11.nearest.of.web.internal.", dns.TypeA, nx, none, neg, none),
		q("nearest.of.web.internal.", dns.TypeA, ok, none, neg, none),
		q("of.web.internal.", dns.TypeA, ok, none, neg, none),
		// TXT: the app's regions, and every app.
		q("regions.web.internal.", dns.TypeTXT, ok, rrs(`regions.web.internal. 30 IN TXT "eu,sa,us"`), none, none),
		q("regions.api.internal.", dns.TypeTXT, ok, rrs(`regions.api.internal. 30 IN TXT "sa"`), none, none),
		q("regions.web.internal.", dns.TypeA, ok, none, neg, none),
		q("_apps.internal.", dns.TypeTXT, ok, rrs(`_apps.internal. 30 IN TXT "api,web"`), none, none),
	})
}

func TestNSAddressFromSixPNAndCorefile(t *testing.T) {
	table := `INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('m1', 'myapp', 'sa', 'BR', 'fdaa:0:1:a::10', 80);
INSERT INTO pops (node, region, country, addr, prefix6) VALUES ('a', 'sa', 'BR', '192.0.2.1:7946', 'fdaa:0:1:a::/64,10.50.1.0/24'), ('b', 'eu', 'DE', '192.0.2.2:7946', 'fdaa:0:1:b::/64');`
	in := newTest(t, []string{"internal."}, fixtureBlock, table)
	run(t, in, []tcase{
		q("ns.dns.internal.", dns.TypeAAAA, ok, rrs("ns.dns.internal. 30 IN AAAA fdaa:0:1:a::1", "ns.dns.internal. 30 IN AAAA fdaa:0:1:b::1"), none, none),
		q("myapp.internal.", dns.TypeAAAA, ok, rrs("myapp.internal. 30 IN AAAA fdaa:0:1:a::10"), none, none),
	})
	in = newTest(t, []string{"internal."}, "internal {\n db @db\n ttl 30\n ns 198.51.100.53 2001:db8::53\n}", table)
	run(t, in, []tcase{
		q("internal.", dns.TypeNS, ok, rrs("internal. 30 IN NS ns.dns.internal."), none,
			rrs("ns.dns.internal. 30 IN A 198.51.100.53", "ns.dns.internal. 30 IN AAAA 2001:db8::53")),
	})
}
