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
