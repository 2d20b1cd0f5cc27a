// Package geotest writes small MaxMind-format databases for tests of
// packages that resolve client countries (the proxy maps 127.0.0.2 to FR,
// 127.0.0.3 to BR, and so on).
package geotest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Shapes accepted by Write.
const (
	// ShapeGeoIP2 is MaxMind's GeoIP2/GeoLite2 layout: country.iso_code,
	// registered_country.iso_code and continent.code (omitted for codes
	// that are not assigned countries, such as ZZ).
	ShapeGeoIP2 = "geoip2"
	// ShapeDBIP is the DB-IP Lite layout republished by ip-location-db:
	// a top-level country_code.
	ShapeDBIP = "dbip"
)

// Write writes a small MaxMind-format database to path mapping each CIDR
// prefix to a country code. shape selects "geoip2" (country.iso_code +
// continent.code) or "dbip" (country_code).
//
// A key may also be a bare address, meaning a single-address prefix. IPv4
// prefixes are reachable from IPv4 and IPv4-mapped lookups. Loopback,
// private and other reserved networks are accepted (mmdbwriter refuses them
// by default) because tests map 127.0.0.x clients to countries. When
// prefixes overlap, the longer one wins for the addresses it covers.
func Write(path string, shape string, prefixes map[string]string) error {
	if err := write(path, shape, prefixes); err != nil {
		return fmt.Errorf("geotest: write %s: %w", path, err)
	}
	return nil
}

func write(path, shape string, prefixes map[string]string) error {
	var record func(code string) mmdbtype.Map
	dbType := ""
	switch shape {
	case ShapeGeoIP2:
		record, dbType = geoip2Record, "GeoIP2-Country"
	case ShapeDBIP:
		record, dbType = dbipRecord, "dbip-country-lite"
	default:
		return fmt.Errorf("unknown shape %q (want %q or %q)", shape, ShapeGeoIP2, ShapeDBIP)
	}
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "edgeproxy test database"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		return err
	}

	// Insert shortest prefixes first so that a longer, overlapping prefix
	// replaces part of a shorter one and never the reverse; map order is
	// random and the result must not be.
	nets := make([]netip.Prefix, 0, len(prefixes))
	codes := make(map[netip.Prefix]string, len(prefixes))
	for key, code := range prefixes {
		p, err := parsePrefix(key)
		if err != nil {
			return err
		}
		if len(code) != 2 {
			return fmt.Errorf("%s: country code %q is not two letters", key, code)
		}
		if _, dup := codes[p]; dup {
			return fmt.Errorf("%s: prefix given twice", key)
		}
		nets = append(nets, p)
		codes[p] = strings.ToUpper(code)
	}
	sort.Slice(nets, func(i, j int) bool {
		if nets[i].Bits() != nets[j].Bits() {
			return nets[i].Bits() < nets[j].Bits()
		}
		return nets[i].Addr().Less(nets[j].Addr())
	})
	for _, p := range nets {
		if err := tree.Insert(ipNet(p), record(codes[p])); err != nil {
			return fmt.Errorf("insert %s: %w", p, err)
		}
	}

	// Write to a temporary file and rename, so that a reader never sees a
	// half-written database.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".geotest-*.mmdb")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tree.WriteTo(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// parsePrefix accepts "10.0.0.0/8", "2001:db8::/32" or a bare address, and
// stores IPv4-mapped IPv6 prefixes as the IPv4 prefix they stand for.
func parsePrefix(s string) (netip.Prefix, error) {
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, err
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, err
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Addr().Zone() != "" {
		return p, fmt.Errorf("%s: zoned addresses have no place in a database", s)
	}
	return p.Masked(), nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	// A 4-byte IP with a 32-bit mask is how mmdbwriter recognises IPv4 and
	// places it in the IPv4 subtree of its IPv6 tree.
	return &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}
}

func dbipRecord(code string) mmdbtype.Map {
	return mmdbtype.Map{"country_code": mmdbtype.String(code)}
}

// geoip2Record mimics a GeoLite2-Country record closely enough that readers
// must skip keys they do not need (continent, geoname_id, names) to find
// country.iso_code.
func geoip2Record(code string) mmdbtype.Map {
	country := mmdbtype.Map{
		"iso_code":   mmdbtype.String(code),
		"geoname_id": mmdbtype.Uint32(geonameID(code)),
		"names":      mmdbtype.Map{"en": mmdbtype.String(code)},
	}
	rec := mmdbtype.Map{
		"country":            country,
		"registered_country": country,
	}
	if cont, ok := continents[code]; ok {
		rec["continent"] = mmdbtype.Map{
			"code":  mmdbtype.String(cont),
			"names": mmdbtype.Map{"en": mmdbtype.String(continentNames[cont])},
		}
	}
	return rec
}

// geonameID is a stand-in value derived from the code, not GeoNames' id.
func geonameID(code string) uint32 {
	return 1_000_000 + uint32(code[0])<<8 + uint32(code[1])
}

var continentNames = map[string]string{
	"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe",
	"NA": "North America", "OC": "Oceania", "SA": "South America",
}
