package bgp_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
)

// TestUnknownAppRefused: a condition on an app the table has never had is
// a config error, not a prefix silently never announced; and bad values
// fail `caddy validate` naming the option.
func TestUnknownAppRefused(t *testing.T) {
	birdtest.Skip(t)
	if birdtest.Inside() == "" {
		t.Skip("needs the test namespace that TestMain creates when run as root")
	}
	p := newPOP(t)
	for _, c := range []struct{ from, to, want string }{
		{"when           myapp min 1", "when           nosuchapp", `when nosuchapp: the routing table has no app "nosuchapp" (it has [myapp])`},
		{"asn       65101", "asn       0", "bgp: asn: AS 0 is reserved"},
		{"router_id 198.51.100.2", "router_id 2001:db8::2", "bgp: router_id: "},
		{"remote_as     65000\n\t\t\tlocal_address", "local_address", "peer 198.51.100.1: remote_as is required"},
		{"hold          9s\n\t\t\tconnect_retry 1s\n\t\t\tfamilies", "passive\n\t\t\tfamilies", "peer 198.51.100.1: passive needs a listener, but listen is off"},
		{"communities    65101:100", "communities    65101:100000", `communities: "65101:100000" is not a community`},
		{"wait        3s", "wait        3 s", "drain: wait takes exactly one value"},
	} {
		conf := p.caddyfile("")
		if !strings.Contains(conf, c.from) {
			t.Fatalf("test config lacks %q", c.from)
		}
		p.write(strings.Replace(conf, c.from, c.to, 1))
		out, err := exec.Command(caddyBin, "validate", "--config", p.conf, "--adapter", "caddyfile").CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.want) {
			t.Errorf("caddy validate with %q: %v, want an error containing %q\n%s", c.to, err, c.want, out)
		}
	}
}
