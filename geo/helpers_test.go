package geo_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/geo/geotest"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// testPrefixes is mapped to countries in both shapes by the tests.
var testPrefixes = map[string]string{
	"127.0.0.2":          "FR",
	"127.0.0.3/32":       "BR",
	"10.0.0.0/8":         "DE",
	"10.1.0.0/16":        "JP", // inside 10/8: the longer prefix wins
	"192.168.1.0/24":     "us", // lower case in, upper case out
	"2001:db8::/32":      "CA",
	"2001:db8:1::/48":    "AU",
	"::ffff:1.2.3.0/120": "XK", // a user-assigned code; mapped form of 1.2.3.0/24
}

// writeShape writes testPrefixes in shape and returns the file's path.
func writeShape(t testing.TB, shape string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), shape+".mmdb")
	if err := geotest.Write(path, shape, testPrefixes); err != nil {
		t.Fatal(err)
	}
	return path
}

func openShape(t testing.TB, shape string) *geo.Resolver {
	t.Helper()
	r, err := geo.Open(writeShape(t, shape))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// writeRecords writes a database with arbitrary records, for shapes that
// geotest does not produce (registered_country only, wrong types, ASN data).
func writeRecords(t testing.TB, dbType string, records map[string]mmdbtype.DataType) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, rec := range records {
		p := netip.MustParsePrefix(cidr)
		n := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := tree.Insert(n, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "records.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
