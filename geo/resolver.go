package geo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sync/atomic"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Resolver maps client IPs to ISO 3166-1 alpha-2 country codes.
// All methods are safe for concurrent use, Close included.
type Resolver struct {
	// reader is nil once closed. Close drops the pointer instead of closing
	// the maxminddb.Reader: lookups already holding it finish on memory the
	// garbage collector keeps alive, and later ones see nil.
	reader atomic.Pointer[maxminddb.Reader]
	source string
	shared bool // the embedded default: Close leaves it open for other users
}

// metadataMarker starts the metadata section at the end of every MaxMind DB.
var metadataMarker = []byte("\xAB\xCD\xEFMaxMind.com")

// scanLimit bounds the networks examined by Open when it checks that the
// database holds country data. A country or city database has a country in
// its first few networks; the bound keeps a hostile or corrupt search tree
// from making Open walk an exponential number of paths.
const scanLimit = 1 << 14

// Open reads the database at path. An empty path means the embedded default
// database (see Default).
func Open(path string) (*Resolver, error) {
	if path == "" {
		return Default()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the path is already in our prefix
		}
		return nil, fmt.Errorf("geoip %s: cannot read: %w", path, err)
	}
	return OpenBytes(path, b)
}

// OpenBytes parses a database held in memory; name stands for it in errors
// and in Source. The Resolver keeps b: the caller must not modify it.
func OpenBytes(name string, b []byte) (*Resolver, error) {
	rd, err := openReader(b)
	if err != nil {
		return nil, fmt.Errorf("geoip %s: %w", name, err)
	}
	r := &Resolver{source: name}
	r.reader.Store(rd)
	return r, nil
}

// openReader parses b and checks, before anyone routes on it, that it
// answers country questions: a valid database of the wrong kind (an ASN
// database, say) would otherwise send every client to the "unknown" bucket.
func openReader(b []byte) (*maxminddb.Reader, error) {
	if len(b) == 0 {
		return nil, errors.New("empty file")
	}
	if !bytes.Contains(b, metadataMarker) {
		return nil, errors.New("not a MaxMind DB file: no metadata section (truncated, or another format)")
	}
	rd, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("corrupt MaxMind DB file: %w", err)
	}
	if err := checkCountryData(rd); err != nil {
		return nil, err
	}
	return rd, nil
}

func checkCountryData(rd *maxminddb.Reader) error {
	networks, withData := 0, 0
	// IncludeNetworksWithoutData makes empty leaves count against scanLimit
	// too, which is what bounds the walk.
	for res := range rd.Networks(maxminddb.IncludeNetworksWithoutData()) {
		if err := res.Err(); err != nil {
			return fmt.Errorf("corrupt MaxMind DB file: search tree: %w", err)
		}
		networks++
		if res.Found() {
			withData++
			code, err := countryOf(res)
			if err != nil {
				return fmt.Errorf("corrupt MaxMind DB file: record for %s: %w", res.Prefix(), err)
			}
			if code != "" {
				return nil
			}
		}
		if networks == scanLimit {
			break
		}
	}
	if withData == 0 {
		return errors.New("database holds no networks with data")
	}
	return fmt.Errorf("no country data (database type %q): none of the first %d records has country.iso_code, registered_country.iso_code or country_code",
		rd.Metadata.DatabaseType, withData)
}

// Country returns the upper-case ISO 3166-1 alpha-2 code of the country the
// database gives for ip, or "" when it has none (address not in the
// database, record without a country, closed Resolver). IPv4-mapped IPv6
// addresses are looked up as IPv4. Loopback and private addresses are not
// special: whatever the database maps them to is returned, which is what
// test databases rely on.
//
// Country takes no lock and allocates nothing.
func (r *Resolver) Country(ip netip.Addr) string {
	rd := r.reader.Load()
	if rd == nil || !ip.IsValid() {
		return ""
	}
	// Unmap: the IPv4 data of an IPv6 database sits under ::/96, and only
	// writers that add aliases also place it under ::ffff:0:0/96.
	code, _ := countryOf(rd.Lookup(ip.Unmap()))
	return code
}

// Source describes where the data came from: the file path, the name given
// to OpenBytes, or the embedded database and its build date.
func (r *Resolver) Source() string { return r.source }

// Close releases the database; Country returns "" afterwards. Closing the
// shared default Resolver does nothing, as other users may hold it.
func (r *Resolver) Close() error {
	if !r.shared {
		r.reader.Store(nil)
	}
	return nil
}
