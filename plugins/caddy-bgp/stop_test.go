package bgp_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
)

// TestStopDrainsBeforeClosing: `caddy stop` re-announces every prefix with
// GRACEFUL_SHUTDOWN, withdraws it after the drain wait, and only then
// closes the BGP sessions; the addresses leave lo, also one a crashed run
// left there.
func TestStopDrainsBeforeClosing(t *testing.T) {
	n := network(t)
	p := newPOP(t)
	if out, err := exec.Command("ip", "addr", "add", "192.0.2.1/32", "dev", "lo").CombinedOutput(); err != nil {
		t.Fatalf("a crash's leftover address: %v %s", err, out)
	}
	p.start(p.caddyfile(""))
	n.bird.WaitEstablished(20*time.Second, "pop4", "pop6")
	n.waitRoute(t, "192.0.2.1/32", true, 10*time.Second)
	n.waitRoute(t, "2001:db8:100::1/128", true, 10*time.Second)

	start := time.Now()
	// caddy stop returns once the process has stopped its apps: watch BIRD
	// meanwhile.
	stopped := make(chan string, 1)
	go func() {
		out, _ := exec.Command(caddyBin, "stop", "--address", p.admin).CombinedOutput()
		stopped <- string(out)
	}()
	var gshut, gone, down time.Duration
	birdtest.Wait(15*time.Second, func() bool {
		r, ok := n.routes(t)["192.0.2.1/32"]
		switch {
		case ok && gshut == 0 && strings.Contains(r.Attrs["BGP.community"], "(65535,0)"):
			gshut = time.Since(start)
		case !ok && gone == 0:
			gone = time.Since(start)
		}
		if down == 0 && !n.protocol(t, "pop4").Established() {
			down = time.Since(start)
		}
		return gone != 0 && down != 0
	})
	t.Logf("caddy stop timeline at BIRD: 65535:0 after %v, withdrawn after %v, session closed after %v (drain wait 3s)",
		gshut.Round(time.Millisecond), gone.Round(time.Millisecond), down.Round(time.Millisecond))
	if gshut == 0 || gone == 0 || down == 0 {
		t.Fatalf("GRACEFUL_SHUTDOWN at %v, withdrawn at %v, session down at %v: want all three", gshut, gone, down)
	}
	if gone-gshut < 2500*time.Millisecond {
		t.Errorf("withdrawn %v after GRACEFUL_SHUTDOWN, want the 3s wait", gone-gshut)
	}
	if down < gone {
		t.Errorf("session closed at %v, before the withdrawal at %v", down, gone)
	}
	<-stopped
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("caddy did not exit")
	}
	if down-gone > 2*time.Second {
		t.Errorf("session closed %v after the withdrawal", down-gone)
	}
	out, _ := exec.Command("ip", "addr", "show", "dev", "lo").CombinedOutput()
	if strings.Contains(string(out), "192.0.2.1") || strings.Contains(string(out), "2001:db8:100::1") {
		t.Errorf("anycast addresses left on lo after stop:\n%s", out)
	}
}

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
