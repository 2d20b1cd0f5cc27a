package internal

import (
	"context"
	"net"
	"testing"

	"github.com/coredns/coredns/plugin/test"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// benchTable is the shape bench/dns/run.sh serves: 1,000 backends, one
// app each, spread over four regions; plus one app of 20 backends in five
// countries, for the cost of a long ranked answer.
const benchTable = `
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
INSERT INTO backends (id, app, region, country, wg_ip, port)
SELECT printf('b%04d', i), printf('app%04d', i),
	CASE i % 4 WHEN 0 THEN 'sa' WHEN 1 THEN 'eu' WHEN 2 THEN 'us' ELSE 'ap' END,
	CASE i % 4 WHEN 0 THEN 'BR' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' ELSE 'JP' END,
	printf('10.%d.%d.%d', 50 + i / 65536, (i / 256) % 256, i % 256), 8080
FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
INSERT INTO backends (id, app, region, country, wg_ip, port)
SELECT printf('big%02d', i), 'big',
	CASE i % 5 WHEN 0 THEN 'sa' WHEN 1 THEN 'eu' WHEN 2 THEN 'eu' WHEN 3 THEN 'us' ELSE 'ap' END,
	CASE i % 5 WHEN 0 THEN 'BR' WHEN 1 THEN 'FR' WHEN 2 THEN 'DE' WHEN 3 THEN 'US' ELSE 'JP' END,
	printf('10.60.0.%d', i), 9000
FROM n;
`

// BenchmarkServeDNS measures the handler alone, reply building included
// and packing excluded (the server packs every plugin's reply alike).
func BenchmarkServeDNS(b *testing.B) {
	in := newTest(b, []string{"internal."}, "internal {\n db @db\n geoip @geoip\n region sa\n}", benchTable)
	for _, c := range []struct {
		name, qname string
		qtype       uint16
		subnet      string
	}{
		{"app", "app0421.internal.", dns.TypeA, ""},
		{"app-ecs", "app0421.internal.", dns.TypeA, "198.51.100.0/24"},
		{"app-20-backends-ecs", "big.internal.", dns.TypeA, "198.51.100.0/24"},
		{"srv-20-backends", "big.internal.", dns.TypeSRV, ""},
		{"backend", "b0421.eu.backends.internal.", dns.TypeA, ""},
		{"mixed-case", "App0421.Internal.", dns.TypeA, ""},
		{"nxdomain", "nope.internal.", dns.TypeA, ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := query(c.qname, c.qtype, c.subnet)
			w := &benchWriter{remote: &net.UDPAddr{IP: net.IPv4(10, 240, 0, 1), Port: 40212}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				in.ServeDNS(ctx, w, m)
			}
		})
	}
}

// benchWriter is test.ResponseWriter without its per-call address parsing,
// so that allocations reported are the plugin's own. A real server hands
// the plugin an address it already holds.
type benchWriter struct {
	test.ResponseWriter
	remote net.Addr
}

func (w *benchWriter) RemoteAddr() net.Addr { return w.remote }

// BenchmarkLargeAnswer asks for a name that lists 20,000 backends
// (<region>.backends), over UDP with a 1,232-byte EDNS buffer and over
// TCP, as the server answers it: the reply truncated to the client's size
// (CoreDNS's ScrubWriter) and packed.
func BenchmarkLargeAnswer(b *testing.B) {
	in := newTest(b, []string{"internal."}, "internal {\n db @db\n region sa\n}", `
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
INSERT INTO backends (id, app, region, country, wg_ip, port)
SELECT printf('b%05d', i), printf('app%02d', i % 20), 'sa', 'BR', printf('10.%d.%d.%d', 50 + i / 65536, (i / 256) % 256, i % 256), 8080
FROM n;`)
	for _, c := range []struct {
		name   string
		remote net.Addr
	}{
		{"udp", &net.UDPAddr{IP: net.IPv4(10, 240, 0, 1), Port: 40212}},
		{"tcp", &net.TCPAddr{IP: net.IPv4(10, 240, 0, 1), Port: 40212}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := query("sa.backends.internal.", dns.TypeA, "")
			m.SetEdns0(1232, false)
			w := &packWriter{benchWriter: benchWriter{remote: c.remote}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				in.ServeDNS(ctx, request.NewScrubWriter(m, w), m)
			}
			b.ReportMetric(float64(w.answers), "answers")
			if !w.truncated {
				b.Fatal("an answer of 20,000 records was not truncated")
			}
		})
	}
}

// packWriter packs each reply as the server sends it, noting its answer
// count and TC bit.
type packWriter struct {
	benchWriter
	answers   int
	truncated bool
}

func (w *packWriter) WriteMsg(m *dns.Msg) error {
	if _, err := m.Pack(); err != nil {
		return err
	}
	w.answers, w.truncated = len(m.Answer), m.Truncated
	return nil
}
