package geo_test

import (
	"regexp"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo"
)

func TestDefault(t *testing.T) {
	r, err := geo.Default()
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := geo.Default(); again != r {
		t.Error("Default() parsed the database twice")
	}
	if viaOpen, err := geo.Open(""); err != nil || viaOpen != r {
		t.Errorf(`Open("") = %p, %v; want the Default() resolver %p`, viaOpen, err, r)
	}
	if src := r.Source(); !regexp.MustCompile(`^embedded DB-IP Country Lite \(20\d\d-\d\d-\d\d\)$`).MatchString(src) {
		t.Errorf("Source() = %q", src)
	}

	// Addresses of long-lived infrastructure whose registration country has
	// not moved in years: public DNS, root servers, registries.
	for ip, want := range map[string]string{
		"8.8.8.8":         "US", // Google Public DNS
		"::ffff:8.8.8.8":  "US",
		"193.0.14.129":    "NL", // k.root-servers.net, RIPE NCC Amsterdam
		"2001:67c:2e8::1": "NL", // RIPE NCC
		"202.12.27.33":    "JP", // m.root-servers.net, WIDE Tokyo
		"200.160.0.8":     "BR", // NIC.br
		"2001:12ff::1":    "BR", // NIC.br
		"10.0.0.1":        "",   // private: DB-IP has no entry
		"127.0.0.1":       "",
		"2001:db8::1":     "", // documentation prefix
	} {
		if got := r.Country(addr(ip)); got != want {
			t.Errorf("Country(%s) = %q, want %q", ip, got, want)
		}
	}
	// Anycast: the country may move between DB-IP releases, but it is known.
	if got := r.Country(addr("1.1.1.1")); !regexp.MustCompile(`^[A-Z]{2}$`).MatchString(got) {
		t.Errorf("Country(1.1.1.1) = %q, want a country code", got)
	}

	// Closing the shared resolver must not break other users.
	r.Close()
	if got := r.Country(addr("8.8.8.8")); got != "US" {
		t.Errorf("after Close on the default resolver, Country(8.8.8.8) = %q, want US", got)
	}
}
