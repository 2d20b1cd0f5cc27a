package geotest_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/geo/geotest"
	"github.com/oschwald/maxminddb-golang/v2"
)

// TestGeoIP2Record reads a written record back field by field, with the
// plain maxminddb reader, to check the layout other readers expect.
func TestGeoIP2Record(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.mmdb")
	if err := geotest.Write(path, geotest.ShapeGeoIP2, map[string]string{"127.0.0.2": "fr", "192.0.2.0/24": "ZZ"}); err != nil {
		t.Fatal(err)
	}
	rd, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var rec struct {
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
		RegisteredCountry struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"registered_country"`
		Continent *struct {
			Code string `maxminddb:"code"`
		} `maxminddb:"continent"`
	}
	if err := rd.Lookup(netip.MustParseAddr("127.0.0.2")).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if rec.Country.ISOCode != "FR" || rec.RegisteredCountry.ISOCode != "FR" || rec.Continent == nil || rec.Continent.Code != "EU" {
		t.Errorf("record for 127.0.0.2 = %+v (continent %+v), want FR/FR/EU", rec, rec.Continent)
	}
	rec.Continent = nil
	if err := rd.Lookup(netip.MustParseAddr("192.0.2.1")).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if rec.Country.ISOCode != "ZZ" || rec.Continent != nil {
		t.Errorf("record for 192.0.2.1 = %+v (continent %+v), want ZZ without continent", rec, rec.Continent)
	}
}

func TestDBIPRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.mmdb")
	if err := geotest.Write(path, geotest.ShapeDBIP, map[string]string{"2001:db8::/32": "BR"}); err != nil {
		t.Fatal(err)
	}
	rd, err := maxminddb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var rec map[string]any
	if err := rd.Lookup(netip.MustParseAddr("2001:db8::5")).Decode(&rec); err != nil {
		t.Fatal(err)
	}
	if len(rec) != 1 || rec["country_code"] != "BR" {
		t.Errorf("record = %v, want only country_code BR", rec)
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct {
		shape    string
		prefixes map[string]string
		want     string
	}{
		"shape":     {"maxmind", nil, `unknown shape "maxmind"`},
		"prefix":    {geotest.ShapeDBIP, map[string]string{"10.0.0.0/33": "FR"}, "10.0.0.0/33"},
		"address":   {geotest.ShapeDBIP, map[string]string{"localhost": "FR"}, "localhost"},
		"code":      {geotest.ShapeDBIP, map[string]string{"10.0.0.0/8": "FRA"}, `country code "FRA"`},
		"duplicate": {geotest.ShapeDBIP, map[string]string{"10.0.0.1": "FR", "10.0.0.1/32": "DE"}, "prefix given twice"},
	} {
		path := filepath.Join(dir, name+".mmdb")
		err := geotest.Write(path, c.shape, c.prefixes)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: Write error = %v, want one naming %s and containing %q", name, err, path, c.want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("failed writes left files behind: %v", left)
	}
}
