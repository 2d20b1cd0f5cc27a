package geo

import (
	"github.com/oschwald/maxminddb-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2/mmdbdata"
)

// The two record shapes, recognised per record so that no database type
// string has to be trusted (ip-location-db files say "country ipvAll"
// where MaxMind's say "GeoLite2-Country"):
//
//	MaxMind GeoIP2/GeoLite2: {"country": {"iso_code": "FR", ...},
//	                          "registered_country": {"iso_code": "FR", ...},
//	                          "continent": {...}, ...}
//	DB-IP Lite (ip-location-db): {"country_code": "FR"}
//
// country.iso_code and country_code win as soon as they are seen;
// registered_country.iso_code (the country of the ISP that registered the
// block) is only a fallback for MaxMind records that lack a located country,
// such as some anycast and satellite ranges.
const (
	keyCountryCode       = "country_code"
	keyCountry           = "country"
	keyRegisteredCountry = "registered_country"
	keyISOCode           = "iso_code"
)

// countryOf decodes the country code of a lookup result: "" with a nil error
// when the record has none or res found nothing, an error when the data
// cannot be read.
//
// Result.Decode's only output is an error and its destination is an `any`:
// a per-call destination would escape to the heap, one allocation per
// lookup. So the destination is the stateless package-level walker, and the
// answer travels back as a preallocated *found error. Nothing is allocated
// and nothing shared is written.
func countryOf(res maxminddb.Result) (string, error) {
	err := res.Decode(&walker)
	switch e := err.(type) { // Decode passes the walker's error through unwrapped
	case nil:
		return "", nil // not found: Decode never called the walker
	case *found:
		return e.code, nil
	default:
		return "", err
	}
}

// found carries a decoded code out of Result.Decode. It is not an error in
// the usual sense; see countryOf.
type found struct{ code string }

func (f *found) Error() string { return "geo: record country is " + f.code }

var (
	foundCodes = func() (t [len(codeTable)]found) {
		for i, c := range codeTable {
			t[i].code = c
		}
		return t
	}()
	foundNone found
)

func foundFor(code string) *found {
	if code == "" {
		return &foundNone
	}
	hi, _ := letterIndex(code[0])
	lo, _ := letterIndex(code[1])
	return &foundCodes[hi*26+lo]
}

// recordWalker is the mmdbdata.CursorUnmarshaler handed to Result.Decode.
type recordWalker struct{}

var walker recordWalker

// UnmarshalMaxMindDBCursor walks one record. It always returns an error
// (the *found answer or a decoding failure), so it may stop as soon as it
// has the code: a successor cursor is only required on success.
func (*recordWalker) UnmarshalMaxMindDBCursor(c mmdbdata.Cursor) (mmdbdata.Cursor, error) {
	code, err := recordCountry(c)
	if err != nil {
		return mmdbdata.Cursor{}, err
	}
	return mmdbdata.Cursor{}, foundFor(code)
}

func recordCountry(c mmdbdata.Cursor) (string, error) {
	if kind, err := c.Kind(); err != nil || kind != mmdbdata.KindMap {
		return "", err // a record that is not a map has no country
	}
	m, err := c.Map()
	if err != nil {
		return "", err
	}
	var (
		next     mmdbdata.Cursor
		fallback string
		code     string
	)
	for {
		key, val, ok := m.Next(next)
		if !ok {
			break
		}
		switch string(key) { // compared, not converted: no allocation
		case keyCountryCode:
			code, next, err = readCode(val)
			if code != "" || err != nil {
				return code, err
			}
		case keyCountry:
			code, next, err = nestedISOCode(val)
			if code != "" || err != nil {
				return code, err
			}
		case keyRegisteredCountry:
			fallback, next, err = nestedISOCode(val)
		default:
			next, err = val.Skip()
		}
		if err != nil {
			return "", err
		}
	}
	if err := m.Err(); err != nil {
		return "", err
	}
	return fallback, nil
}

// nestedISOCode reads map["iso_code"] from a MaxMind country object and
// returns the map's successor so the caller can carry on.
func nestedISOCode(c mmdbdata.Cursor) (string, mmdbdata.Cursor, error) {
	kind, err := c.Kind()
	if err != nil {
		return "", mmdbdata.Cursor{}, err
	}
	if kind != mmdbdata.KindMap {
		next, err := c.Skip()
		return "", next, err
	}
	m, err := c.Map()
	if err != nil {
		return "", mmdbdata.Cursor{}, err
	}
	var (
		next mmdbdata.Cursor
		code string
	)
	for {
		key, val, ok := m.Next(next)
		if !ok {
			break
		}
		if string(key) == keyISOCode {
			code, next, err = readCode(val)
		} else {
			next, err = val.Skip()
		}
		if err != nil {
			return "", mmdbdata.Cursor{}, err
		}
	}
	next, err = m.End()
	return code, next, err
}

// readCode reads a string value as an interned code and returns the value's
// successor. Cursor.ReadString would copy the bytes into a new string, so
// the bytes are read with ReadMapKey instead: map keys are MMDB strings, and
// ReadMapKey returns them as a slice aliasing the database, which internCode
// only compares.
func readCode(c mmdbdata.Cursor) (string, mmdbdata.Cursor, error) {
	kind, err := c.Kind()
	if err != nil {
		return "", mmdbdata.Cursor{}, err
	}
	var code string
	if kind == mmdbdata.KindString {
		b, _, err := c.ReadMapKey()
		if err != nil {
			return "", mmdbdata.Cursor{}, err
		}
		code = internCode(b)
	}
	next, err := c.Skip() // ReadMapKey's cursor is not a proven successor
	return code, next, err
}
