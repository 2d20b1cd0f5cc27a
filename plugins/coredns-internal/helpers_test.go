package internal

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo/geotest"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fixture is the routing table most tests serve. The POP is in region sa.
//
//	web: fr1 (eu, FR), de1 (eu, DE), br1 (sa, BR), us6 (us, US, IPv6),
//	     sick (unhealthy), gone (deleted), down (health rows all down),
//	     flaky (one observer down, one up: still served)
//	api: api1 (sa, BR) and "bad.id", whose ID is not a DNS label
//	"my app" (not a label) and "backends" (reserved) in region sa
//	pops: gru-1 and gru-2 in sa; fra-1 has a host name, not an address
const fixture = `
INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, deleted) VALUES
	('fr1',   'web', 'eu', 'FR', '10.50.3.1', 8080, 1, 2, 0),
	('de1',   'web', 'eu', 'DE', '10.50.3.2', 8080, 1, 3, 0),
	('br1',   'web', 'sa', 'BR', '10.50.1.1', 8080, 1, 2, 0),
	('us6',   'web', 'us', 'US', 'fd00::6',   9090, 1, 2, 0),
	('sick',  'web', 'eu', 'FR', '10.50.3.9', 8080, 0, 2, 0),
	('gone',  'web', 'eu', 'FR', '10.50.3.8', 8080, 1, 2, 1),
	('down',  'web', 'eu', 'FR', '10.50.3.7', 8080, 1, 2, 0),
	('flaky', 'web', 'us', 'US', '10.50.2.7', 8080, 1, 2, 0),
	('api1',  'api', 'sa', 'BR', '10.50.1.5', 7000, 1, 2, 0),
	('bad.id','api', 'sa', 'BR', '10.50.1.6', 7000, 1, 2, 0),
	('odd1',  'my app', 'sa', 'BR', '10.50.1.7', 7000, 1, 2, 0),
	('rsv1',  'backends', 'sa', 'BR', '10.50.1.8', 7000, 1, 2, 0);
INSERT INTO health (backend_id, observer, healthy) VALUES
	('down', 'gru-1', 0), ('down', 'fra-1', 0),
	('flaky', 'gru-1', 0), ('flaky', 'fra-1', 1);
INSERT INTO pops (node, region, country, addr) VALUES
	('gru-1', 'sa', 'BR', '192.0.2.10:4001'),
	('gru-2', 'sa', 'BR', '[2001:db8::10]:4001'),
	('fra-1', 'eu', 'FR', 'fra-1.example.net:4001');
`

// Client networks of the test GeoIP database.
var geoNets = map[string]string{
	"198.51.100.0/24": "FR",
	"203.0.113.0/24":  "BR",
	"192.0.2.0/24":    "DE",
	"100.64.0.0/24":   "PT", // no backend in PT; one in its region, eu
	"2001:db8:f::/48": "BR",
}

// writeTable creates a routing table as the proxy would (schema and
// migrations from the store package) and runs sql on it.
func writeTable(t testing.TB, path, sql string) {
	t.Helper()
	s, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if sql != "" {
		if _, err := s.DB().Exec(sql); err != nil {
			t.Fatalf("writing the table: %v", err)
		}
	}
}

// newFollower is the plugin over the table at path, read as the server
// reads it (read-only, the list without a routing index), building the
// given zones; it has no snapshot until it follows one.
func newFollower(t testing.TB, path string, zones ...string) *Internal {
	t.Helper()
	r, err := store.Open(context.Background(), path, store.Options{ReadOnly: true, ListOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	in := &Internal{store: r, db: path, warned: map[string]bool{}, regions: routing.DefaultRegions()}
	in.build = buildConfig{zones: zones, ttl: 10, scorer: routing.Scorer{LocalRegion: "sa"}, regions: in.regions, published: &in.snap}
	return in
}

func writeGeo(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "country.mmdb")
	if err := geotest.Write(path, geotest.ShapeGeoIP2, geoNets); err != nil {
		t.Fatal(err)
	}
	return path
}

// newTest parses a Corefile block for the server block keys given and loads
// the fixture (or sql when not empty). @db and @geoip in the block stand for
// the files written. The instance does not watch the table; call start.
func newTest(t testing.TB, keys []string, block, sql string) *Internal {
	t.Helper()
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	if sql == "" {
		sql = fixture
	}
	writeTable(t, db, sql)
	block = strings.NewReplacer("@db", db, "@geoip", writeGeo(t, dir)).Replace(block)
	c := caddy.NewTestController("dns", block)
	c.ServerBlockKeys = keys
	cfg, err := parse(c)
	if err != nil {
		t.Fatalf("parse %q: %v", block, err)
	}
	in, err := newInternal(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.stop() })
	return in
}

const fixtureBlock = `internal {
	db @db
	geoip @geoip
	region sa
	ttl 30
}`

func newFixture(t testing.TB) *Internal {
	return newTest(t, []string{"internal."}, fixtureBlock, "")
}

// query is a question with an optional client subnet ("198.51.100.0/24").
func query(name string, qtype uint16, subnet string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if subnet != "" {
		_, n, err := net.ParseCIDR(subnet)
		if err != nil {
			panic(err)
		}
		ones, _ := n.Mask.Size()
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(ones), Address: n.IP}
		if n.IP.To4() == nil {
			e.Family = 2
		}
		m.SetEdns0(1232, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, e)
	}
	return m
}

// serve runs one query through the handler from the given client address
// ("" for test.ResponseWriter's default, 10.240.0.1, which GeoIP does not
// know).
func serve(t testing.TB, in *Internal, m *dns.Msg, from string) (*dns.Msg, int, error) {
	t.Helper()
	rec := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: from})
	rcode, err := in.ServeDNS(context.Background(), rec, m)
	return rec.Msg, rcode, err
}

// replySubnet returns the client subnet option of a reply, or nil.
func replySubnet(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if e, ok := opt.(*dns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// sqlite runs the sqlite3 CLI on the file, as an operator would. It waits
// up to 5 s (.timeout) where another connection holds a lock for a moment,
// instead of failing with "database is locked" at once.
func sqlite(t testing.TB, path, sql string) {
	t.Helper()
	if out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, sql).CombinedOutput(); err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", sql, err, out)
	}
}
