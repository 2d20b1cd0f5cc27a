package anycast

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
	"github.com/edgeproxy/edgeproxy/pop"
)

const multihopRouter = `
router id 198.51.100.66;
protocol device { scan time 1; }
protocol static { ipv4; route 198.51.100.0/26 via 198.51.100.65; }
protocol bgp hop2 {
	local 198.51.100.66 as 65000;
	neighbor 198.51.100.2 as 65101;
	multihop 2;
	hold time 9;
	passive on;
	ipv4 { import all; export none; igp table master4; };
}
`

// TestBirdMultihop: BIRD two hops away, through a router namespace. With
// the default TTL of 1 the session cannot come up; `multihop 2` brings it
// up and the prefix arrives.
func TestBirdMultihop(t *testing.T) {
	birdtest.Skip(t)
	if birdtest.Inside() == "" {
		t.Skip("needs the test namespace that TestMain creates when run as root")
	}
	mid := birdtest.NS(t, fmt.Sprintf("bgpcore%d-m", os.Getpid()))
	rtr := birdtest.NS(t, fmt.Sprintf("bgpcore%d-h", os.Getpid()))
	birdtest.Veth(t, "", "vm0", []string{"198.51.100.2/26"}, mid, "m0", []string{"198.51.100.1/26"})
	birdtest.Veth(t, mid, "m1", []string{"198.51.100.65/26"}, rtr, "h0", []string{"198.51.100.66/26"})
	birdtest.IP(t, "route", "add", "198.51.100.64/26", "via", "198.51.100.1")
	t.Cleanup(func() { exec.Command("ip", "route", "del", "198.51.100.64/26").Run() })
	birdtest.IP(t, "-n", rtr, "route", "add", "198.51.100.0/26", "via", "198.51.100.65")
	if out, err := exec.Command("ip", "netns", "exec", mid, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	bird := birdtest.StartBird(t, rtr, multihopRouter)

	d := DefaultConfig()
	cfg := Config{
		ASN: 65101, RouterID: netip.MustParseAddr("198.51.100.2"),
		Peers: []Peer{{Address: netip.MustParseAddr("198.51.100.66"), RemoteAS: 65000, Port: d.Port, Hold: 9 * time.Second,
			ConnectRetry: time.Second, Families: []Family{IPv4}}},
		Announces: []Announce{{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, Rise: 1, Fall: 1}},
		Drain:     Drain{Wait: time.Second},
	}
	m := NewManager(d)
	src := newSource(pop.Signal{Node: "gru-1", State: pop.Serving, Seq: 1, Apps: pop.NewAppSignals(nil)})
	opts := Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))}
	if _, err := m.Apply(context.Background(), cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	time.Sleep(5 * time.Second)
	if p, _ := bird.Protocol("hop2"); p.Established() {
		t.Fatalf("session two hops away came up with TTL 1: %s", p.Info)
	}

	cfg.Peers[0].Multihop = 2
	if _, err := m.Apply(context.Background(), cfg, src, opts); err != nil {
		t.Fatal(err)
	}
	bird.WaitEstablished(20*time.Second, "hop2")
	if _, ok := birdtest.Wait(5*time.Second, func() bool {
		r, err := bird.Routes()
		_, ok := r["192.0.2.1/32"]
		return err == nil && ok
	}); !ok {
		t.Fatalf("prefix not at BIRD over the multihop session:\n%s", bird.MustC("show", "route", "all"))
	}
}
