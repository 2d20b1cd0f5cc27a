package geo_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/geo/geotest"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func TestCountryBothShapes(t *testing.T) {
	cases := []struct {
		ip, want string
	}{
		{"127.0.0.2", "FR"}, // loopback is not special when the database maps it
		{"127.0.0.3", "BR"},
		{"127.0.0.1", ""},
		{"127.0.0.4", ""},
		{"10.200.0.1", "DE"},
		{"10.1.2.3", "JP"},
		{"192.168.1.77", "US"},
		{"192.168.2.1", ""},
		{"1.2.3.4", "XK"},
		{"8.8.8.8", ""},
		{"::ffff:127.0.0.2", "FR"}, // IPv4-mapped IPv6
		{"::ffff:10.1.2.3", "JP"},
		{"::ffff:1.2.3.255", "XK"},
		{"2001:db8::1", "CA"},
		{"2001:db8:1:2::3", "AU"},
		{"2001:db9::1", ""},
		{"::1", ""},
		{"fe80::1%eth0", ""},
	}
	for _, shape := range []string{geotest.ShapeGeoIP2, geotest.ShapeDBIP} {
		t.Run(shape, func(t *testing.T) {
			path := writeShape(t, shape)
			r, err := geo.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if got := r.Source(); got != path {
				t.Errorf("Source() = %q, want %q", got, path)
			}
			for _, c := range cases {
				if got := r.Country(addr(c.ip)); got != c.want {
					t.Errorf("Country(%s) = %q, want %q", c.ip, got, c.want)
				}
			}
		})
	}
}

func TestCountryInvalidAddr(t *testing.T) {
	r := openShape(t, geotest.ShapeDBIP)
	if got := r.Country(netip.Addr{}); got != "" {
		t.Errorf("Country(zero Addr) = %q, want \"\"", got)
	}
}

// TestRecordVariants covers records geotest does not write: the MaxMind
// registered_country fallback, and country fields of the wrong type or form,
// which must read as unknown rather than fail or leak garbage.
func TestRecordVariants(t *testing.T) {
	str := func(s string) mmdbtype.String { return mmdbtype.String(s) }
	iso := func(s string) mmdbtype.Map { return mmdbtype.Map{"iso_code": str(s)} }
	path := writeRecords(t, "GeoIP2-City", map[string]mmdbtype.DataType{
		// registered_country only (MaxMind's satellite and anycast ranges)
		"11.0.0.0/8": mmdbtype.Map{"registered_country": iso("SE"), "continent": mmdbtype.Map{"code": str("EU")}},
		// country wins over registered_country
		"12.0.0.0/8": mmdbtype.Map{"registered_country": iso("SE"), "country": iso("NO")},
		// a country object without iso_code falls back
		"13.0.0.0/8": mmdbtype.Map{
			"country":            mmdbtype.Map{"names": mmdbtype.Map{"en": str("Somewhere")}},
			"registered_country": iso("FI"),
		},
		// City-style record: many keys to skip, nested slices and maps
		"14.0.0.0/8": mmdbtype.Map{
			"city":         mmdbtype.Map{"names": mmdbtype.Map{"en": str("Lyon"), "fr": str("Lyon")}},
			"location":     mmdbtype.Map{"latitude": mmdbtype.Float64(45.75), "longitude": mmdbtype.Float64(4.85)},
			"subdivisions": mmdbtype.Slice{mmdbtype.Map{"iso_code": str("ARA")}},
			"country":      mmdbtype.Map{"iso_code": str("FR"), "is_in_european_union": mmdbtype.Bool(true)},
		},
		"15.0.0.0/8": mmdbtype.Map{"country_code": mmdbtype.Uint32(42)},           // not a string
		"16.0.0.0/8": mmdbtype.Map{"country_code": str("USA")},                    // not two letters
		"17.0.0.0/8": mmdbtype.Map{"country_code": str("1A")},                     // not letters
		"18.0.0.0/8": mmdbtype.Map{"country": str("DE")},                          // not a map
		"19.0.0.0/8": str("GB"),                                                   // record not a map
		"20.0.0.0/8": mmdbtype.Map{"country_code": str("gb")},                     // lower case
		"21.0.0.0/8": mmdbtype.Map{"country_code": str(""), "country": iso("IE")}, // empty, then MaxMind
	})
	r, err := geo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for ip, want := range map[string]string{
		"11.1.1.1": "SE", "12.1.1.1": "NO", "13.1.1.1": "FI", "14.1.1.1": "FR",
		"15.1.1.1": "", "16.1.1.1": "", "17.1.1.1": "", "18.1.1.1": "", "19.1.1.1": "",
		"20.1.1.1": "GB", "21.1.1.1": "IE",
	} {
		if got := r.Country(addr(ip)); got != want {
			t.Errorf("Country(%s) = %q, want %q", ip, got, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	valid, err := os.ReadFile(writeShape(t, geotest.ShapeDBIP))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	marker := []byte("\xAB\xCD\xEFMaxMind.com")
	metaAt := strings.LastIndex(string(valid), string(marker))
	if metaAt < 0 {
		t.Fatal("test database has no metadata marker")
	}
	// The search tree and data cut out, the metadata kept: the metadata now
	// describes bytes that are not there.
	gutted := append([]byte{}, valid[metaAt:]...)
	// The metadata map cut short after its marker.
	shortMeta := append([]byte{}, valid[:metaAt+len(marker)+5]...)

	asn := writeRecords(t, "GeoLite2-ASN", map[string]mmdbtype.DataType{
		"1.0.0.0/24": mmdbtype.Map{
			"autonomous_system_number":       mmdbtype.Uint32(13335),
			"autonomous_system_organization": mmdbtype.String("CLOUDFLARENET"),
		},
	})
	empty := filepath.Join(dir, "no-networks.mmdb")
	if err := geotest.Write(empty, geotest.ShapeDBIP, nil); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, path, want string
		is               error
	}{
		{"missing", filepath.Join(dir, "nope.mmdb"), "cannot read: no such file or directory", fs.ErrNotExist},
		{"directory", dir, "cannot read: is a directory", nil},
		{"empty", write("empty.mmdb", nil), "empty file", nil},
		{"text", write("text.mmdb", []byte("country,code\n1.0.0.0/24,AU\n")), "not a MaxMind DB file", nil},
		{"truncated", write("half.mmdb", valid[:len(valid)/2]), "not a MaxMind DB file", nil},
		{"truncated metadata", write("short.mmdb", shortMeta), "corrupt MaxMind DB file", nil},
		{"gutted", write("gutted.mmdb", gutted), "corrupt MaxMind DB file", nil},
		{"asn database", asn, `no country data (database type "GeoLite2-ASN")`, nil},
		{"no networks", empty, "database holds no networks with data", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := geo.Open(c.path)
			if err == nil {
				r.Close()
				t.Fatalf("Open(%s) succeeded, want an error containing %q", c.path, c.want)
			}
			msg := err.Error()
			if prefix := "geoip " + c.path + ": "; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not contain %q", msg, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.is)
			}
		})
	}
}

func TestOpenBytesNamesSource(t *testing.T) {
	b, err := os.ReadFile(writeShape(t, geotest.ShapeGeoIP2))
	if err != nil {
		t.Fatal(err)
	}
	r, err := geo.OpenBytes("from-config", b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Source() != "from-config" || r.Country(addr("127.0.0.2")) != "FR" {
		t.Errorf("Source() = %q, Country(127.0.0.2) = %q", r.Source(), r.Country(addr("127.0.0.2")))
	}
	if _, err := geo.OpenBytes("junk", []byte("junk")); err == nil || !strings.HasPrefix(err.Error(), "geoip junk: ") {
		t.Errorf("OpenBytes(junk) error = %v, want one naming junk", err)
	}
}

func TestClose(t *testing.T) {
	r := openShape(t, geotest.ShapeDBIP)
	if r.Country(addr("127.0.0.2")) != "FR" {
		t.Fatal("lookup before Close failed")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.Country(addr("127.0.0.2")); got != "" {
		t.Errorf("Country after Close = %q, want \"\"", got)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestConcurrentLookupsAndClose is for the race detector: lookups from many
// goroutines, one of which closes the Resolver half way.
func TestConcurrentLookupsAndClose(t *testing.T) {
	r := openShape(t, geotest.ShapeGeoIP2)
	ips := []string{"127.0.0.2", "10.1.2.3", "2001:db8::1", "::ffff:1.2.3.4", "8.8.8.8"}
	want := []string{"FR", "JP", "CA", "XK", ""}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				if g == 0 && i == 1000 {
					r.Close()
				}
				k := i % len(ips)
				if got := r.Country(addr(ips[k])); got != want[k] && got != "" {
					t.Errorf("Country(%s) = %q, want %q (or \"\" once closed)", ips[k], got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
}
