package geo_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/geo/geotest"
)

// fuzzLookups reach the IPv4 subtree, the IPv6 tree and both ends of each.
var fuzzLookups = []string{
	"0.0.0.0", "1.2.3.4", "10.1.2.3", "127.0.0.2", "255.255.255.255",
	"::", "::1", "::ffff:127.0.0.2", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
}

func FuzzOpenBytes(f *testing.F) {
	dir := f.TempDir()
	for _, shape := range []string{geotest.ShapeGeoIP2, geotest.ShapeDBIP} {
		path := filepath.Join(dir, shape+".mmdb")
		if err := geotest.Write(path, shape, testPrefixes); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[len(b)/2:])
	}
	f.Add([]byte{})
	f.Add([]byte("\xAB\xCD\xEFMaxMind.com"))

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := geo.OpenBytes("fuzz", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "geoip fuzz: ") {
				t.Fatalf("error %q does not name its input", err)
			}
			return
		}
		defer r.Close()
		for _, s := range fuzzLookups {
			code := r.Country(addr(s))
			if code != "" && (len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z') {
				t.Fatalf("Country(%s) = %q, not an upper-case two-letter code", s, code)
			}
		}
	})
}
