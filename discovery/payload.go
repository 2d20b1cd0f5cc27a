// Package discovery serves edgeProxy v1's Auto-Discovery API: backends
// register, heartbeat and deregister themselves over HTTP, and the rows land
// in the routing table the proxy follows. It is plain net/http over the
// store, with no Caddy import; the Caddy handler `edgeroute_api` and the
// admin API are thin adapters over it.
package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/edgeproxy/edgeproxy/store"
)

// Limits of a registration.
const (
	MaxBodyBytes = 1 << 20 // larger bodies are refused with 413
	MaxIDBytes   = 255
)

// v1's defaults for the optional fields.
const (
	DefaultWeight    = 2
	DefaultSoftLimit = 100
	DefaultHardLimit = 150
)

// InputError is a request the client must fix; its message names the field.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

// regionCountry is v1's representative country of each of its regions,
// used when a registration gives no country and GeoIP knows none for the
// address (always the case for private WireGuard addresses).
var regionCountry = map[string]string{"sa": "BR", "us": "US", "eu": "DE", "ap": "JP"}

// ParseRegistration decodes and validates v1's registration payload:
//
//	{"id", "app", "region", "ip", "port"} required;
//	"country" optional (from country(ip), then v1's region default);
//	"weight" (2), "soft_limit" (100), "hard_limit" (150) optional.
//
// Unknown fields are ignored, as v1 did. Every error is an *InputError
// naming the offending field. country may be nil.
func ParseRegistration(body []byte, country func(netip.Addr) string) (store.Registration, error) {
	var r store.Registration
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return r, inputErr("empty body: expected a JSON object with id, app, region, ip and port")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return r, inputErr("malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return r, inputErr("malformed JSON: the body must be an object, not %s", te.Value)
		default:
			return r, inputErr("malformed JSON: %v", err)
		}
	}
	if fields == nil {
		return r, inputErr("malformed JSON: the body must be an object, not null")
	}
	var err error
	if r.ID, err = text(fields, "id", true); err != nil {
		return r, err
	}
	if r.App, err = text(fields, "app", true); err != nil {
		return r, err
	}
	if r.Region, err = text(fields, "region", true); err != nil {
		return r, err
	}
	r.Region = strings.ToLower(r.Region)
	ipText, err := text(fields, "ip", true)
	if err != nil {
		return r, err
	}
	ip, perr := netip.ParseAddr(ipText)
	if perr != nil || ip.Zone() != "" {
		return r, inputErr("field ip: %q is not an IP address", ipText)
	}
	ip = ip.Unmap()
	if ip.IsUnspecified() || ip.IsMulticast() {
		return r, inputErr("field ip: %s cannot be a backend address", ip)
	}
	r.IP = ip.String()
	port, err := integer(fields, "port", true, 0, 1, 65535)
	if err != nil {
		return r, err
	}
	r.Port = int(port)
	cc, err := text(fields, "country", false)
	if err != nil {
		return r, err
	}
	if cc != "" {
		if len(cc) != 2 || !isLetter(cc[0]) || !isLetter(cc[1]) {
			return r, inputErr("field country: %q is not an ISO 3166-1 two-letter code", cc)
		}
		r.Country = strings.ToUpper(cc)
	} else {
		if country != nil {
			r.Country = country(ip)
		}
		if r.Country == "" {
			r.Country = regionCountry[r.Region]
		}
	}
	w, err := integer(fields, "weight", false, DefaultWeight, 0, 255)
	if err != nil {
		return r, err
	}
	soft, err := integer(fields, "soft_limit", false, DefaultSoftLimit, 0, math.MaxUint32)
	if err != nil {
		return r, err
	}
	hard, err := integer(fields, "hard_limit", false, DefaultHardLimit, 0, math.MaxUint32)
	if err != nil {
		return r, err
	}
	r.Weight, r.SoftLimit, r.HardLimit = int(w), int(soft), int(hard)
	return r, nil
}

func isLetter(c byte) bool { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') }

func present(fields map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := fields[name]
	if !ok || string(raw) == "null" {
		return nil, false
	}
	return raw, true
}

// text reads a string field; required ones must be non-empty.
func text(fields map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := present(fields, name)
	if !ok {
		if required {
			return "", inputErr("missing required field: %s", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", inputErr("field %s: expected a string, got %s", name, describeJSON(raw))
	}
	s = strings.TrimSpace(s)
	if required && s == "" {
		return "", inputErr("missing required field: %s (it is empty)", name)
	}
	if err := CheckName(name, s); err != nil {
		return "", err
	}
	return s, nil
}

// CheckName checks an identifier: at most 255 bytes of valid UTF-8 without
// control characters.
func CheckName(field, s string) error {
	if len(s) > MaxIDBytes {
		return inputErr("field %s: %d bytes long; the limit is %d", field, len(s), MaxIDBytes)
	}
	if !utf8.ValidString(s) {
		return inputErr("field %s: not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return inputErr("field %s: contains the control character %U", field, r)
		}
	}
	return nil
}

// integer reads a whole-number field within [lo, hi].
func integer(fields map[string]json.RawMessage, name string, required bool, def, lo, hi int64) (int64, error) {
	raw, ok := present(fields, name)
	if !ok {
		if required {
			return 0, inputErr("missing required field: %s", name)
		}
		return def, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil || strings.HasPrefix(string(raw), `"`) {
		return 0, inputErr("field %s: expected a number, got %s", name, describeJSON(raw))
	}
	v, err := n.Int64()
	if err != nil {
		return 0, inputErr("field %s: %s is not a whole number in range %d..%d", name, n, lo, hi)
	}
	if v < lo || v > hi {
		return 0, inputErr("field %s: %d is outside %d..%d", name, v, lo, hi)
	}
	return v, nil
}

func describeJSON(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	if !utf8.ValidString(s) {
		return "invalid text"
	}
	return s
}
