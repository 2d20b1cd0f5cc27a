package geo

import (
	_ "embed"
	"fmt"
	"sync"
	"time"
)

// embeddedDB is DB-IP's "IP to Country Lite" database (IPv4 and IPv6 in one
// file), CC BY 4.0: see data/README.md for attribution and refreshing.
//
//go:embed data/dbip-country.mmdb
var embeddedDB []byte

const embeddedName = "embedded DB-IP Country Lite"

// Default returns the Resolver of the embedded database. It is parsed once,
// on first use, and shared: safe for concurrent use, and Close on it is a
// no-op.
func Default() (*Resolver, error) { return defaultResolver() }

var defaultResolver = sync.OnceValues(func() (*Resolver, error) {
	rd, err := openReader(embeddedDB)
	if err != nil {
		return nil, fmt.Errorf("geoip %s: %w", embeddedName, err)
	}
	built := time.Unix(int64(rd.Metadata.BuildEpoch), 0).UTC().Format(time.DateOnly)
	r := &Resolver{source: fmt.Sprintf("%s (%s)", embeddedName, built), shared: true}
	r.reader.Store(rd)
	return r, nil
})
