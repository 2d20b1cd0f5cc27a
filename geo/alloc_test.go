package geo_test

import (
	"net/netip"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/geo/geotest"
)

// lookups mixes hits and misses, IPv4, IPv6 and IPv4-mapped addresses.
var lookups = []netip.Addr{
	addr("127.0.0.2"), addr("10.1.2.3"), addr("::ffff:10.2.3.4"), addr("2001:db8:1::1"),
	addr("8.8.8.8"), addr("2a01:e0a::1"), addr("193.0.14.129"), addr("::1"),
}

func resolvers(t testing.TB) map[string]*geo.Resolver {
	def, err := geo.Default()
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*geo.Resolver{
		"embedded": def,
		"geoip2":   openShape(t, geotest.ShapeGeoIP2),
		"dbip":     openShape(t, geotest.ShapeDBIP),
	}
}

func TestCountryAllocatesNothing(t *testing.T) {
	for name, r := range resolvers(t) {
		found := 0
		allocs := testing.AllocsPerRun(200, func() {
			for _, ip := range lookups {
				if r.Country(ip) != "" {
					found++
				}
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per %d lookups, want 0", name, allocs, len(lookups))
		}
		if found == 0 { // guard against measuring a path that finds nothing
			t.Errorf("%s: no lookup found a country", name)
		}
	}
}

var sink string

func BenchmarkCountry(b *testing.B) {
	rs := resolvers(b)
	for _, bc := range []struct{ db, ip string }{
		{"embedded", "8.8.8.8"},
		{"embedded", "2a01:e0a::1"},
		{"embedded", "::ffff:193.0.14.129"},
		{"embedded", "10.0.0.1"}, // miss
		{"geoip2", "127.0.0.2"},
		{"dbip", "127.0.0.2"},
	} {
		r, ip := rs[bc.db], addr(bc.ip)
		if bc.ip != "10.0.0.1" && r.Country(ip) == "" {
			b.Fatalf("%s: no country for %s", bc.db, bc.ip)
		}
		b.Run(bc.db+"/"+bc.ip, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				sink = r.Country(ip)
			}
		})
	}
	b.Run("embedded/parallel", func(b *testing.B) {
		r := rs["embedded"]
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				_ = r.Country(lookups[i%len(lookups)])
				i++
			}
		})
	})
}
