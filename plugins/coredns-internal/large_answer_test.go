package internal

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var msgSizeRE = regexp.MustCompile(`;; MSG SIZE  rcvd: (\d+)`)

// A name that lists thousands of backends answers over UDP with as many as
// fit the client's buffer and TC set, so the client asks again over TCP,
// where it gets every one of them (3,000 A records fit 64 KB); its SRV
// answer over TCP, which does not fit, is cut to what does, with TC.
func TestLargeAnswersFitTheClientsSize(t *testing.T) {
	s := startServer(t)
	sqlite(t, s.db, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
		INSERT INTO backends (id, app, region, country, wg_ip, port)
		SELECT printf('many%04d', i), 'many', 'eu', 'FR', printf('10.70.%d.%d', i / 256, i % 256), 8080 FROM n`)
	for start := time.Now(); len(s.dig("+tcp", "many.internal", "A").answer) != 3000; time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > 5*time.Second {
			t.Fatal("the 3,000 backends of app many were not served within 5 s")
		}
	}
	for _, c := range []struct {
		name    string
		args    []string
		size    int // the most the message may take
		atLeast int // answers
		tc      bool
	}{
		{"udp, 1232-byte buffer", []string{"+ignore", "+bufsize=1232", "many.internal", "A"}, 1232, 50, true},
		{"udp, no EDNS", []string{"+ignore", "+noedns", "many.internal", "A"}, 512, 20, true},
		{"tcp", []string{"+tcp", "many.internal", "A"}, 65535, 3000, false},
		{"tcp, SRV", []string{"+tcp", "many.internal", "SRV"}, 65535, 500, true},
	} {
		r := s.dig(c.args...)
		m := msgSizeRE.FindStringSubmatch(r.raw)
		if m == nil {
			t.Fatalf("%s: dig printed no size:\n%s", c.name, r.raw)
		}
		size, _ := strconv.Atoi(m[1])
		tc := strings.Contains(" "+r.flags+" ", " tc ")
		if size > c.size || len(r.answer) < c.atLeast || tc != c.tc || r.status != "NOERROR" {
			t.Errorf("%s: %s, %d answers in %d bytes, flags %q; want at least %d answers within %d bytes, TC %v",
				c.name, r.status, len(r.answer), size, r.flags, c.atLeast, c.size, c.tc)
		}
	}
}
