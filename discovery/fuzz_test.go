package discovery

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseRegistration: the parser never panics, and whatever it accepts
// is within the documented limits.
func FuzzParseRegistration(f *testing.F) {
	for _, s := range []string{
		`{"id":"backend-eu-1","app":"myapp","region":"eu","country":"DE","ip":"10.50.1.1","port":8080,"weight":2,"soft_limit":100,"hard_limit":150}`,
		`{"id":"pop-gru","app":"gru.pop","region":"sa","ip":"10.50.1.1","port":80}`,
		`{"id":"x","app":"a","region":"eu","ip":"::ffff:10.0.0.1","port":65535,"weight":null}`,
		`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":1e2}`,
		`{"id":"\u0000"}`, `[]`, `null`, `"x"`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	country := func(netip.Addr) string { return "FR" }
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRegistration(body, country)
		if err != nil {
			if _, ok := err.(*InputError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		for name, v := range map[string]string{"id": r.ID, "app": r.App, "region": r.Region} {
			if v == "" || len(v) > MaxIDBytes || !utf8.ValidString(v) || strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
				t.Fatalf("accepted %s %q", name, v)
			}
		}
		if ip, err := netip.ParseAddr(r.IP); err != nil || ip.Zone() != "" {
			t.Fatalf("accepted ip %q", r.IP)
		}
		if r.Port < 1 || r.Port > 65535 || r.Weight < 0 || r.Weight > 255 || r.SoftLimit < 0 || r.HardLimit < 0 {
			t.Fatalf("accepted numbers %+v", r)
		}
		if r.Country != "" && len(r.Country) != 2 {
			t.Fatalf("accepted country %q", r.Country)
		}
		// The accepted payload round-trips.
		again, _ := json.Marshal(map[string]any{"id": r.ID, "app": r.App, "region": r.Region, "ip": r.IP, "port": r.Port,
			"country": r.Country, "weight": r.Weight, "soft_limit": r.SoftLimit, "hard_limit": r.HardLimit})
		r2, err := ParseRegistration(again, country)
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v (%v)", r, r2, err)
		}
	})
}
