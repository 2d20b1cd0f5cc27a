package anycast

// The speaker against a real BIRD 2 in a sibling network namespace. The
// test process itself runs in a namespace of its own (birdtest.Main), so
// GoBGP's sockets never touch the host's network.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
	"github.com/edgeproxy/edgeproxy/pop"
)

func TestMain(m *testing.M) { os.Exit(birdtest.Main(m, "bgpcore")) }

// source is a POP signal a test sets by hand: the signal is the input of
// the speaker, and the real POP is exercised by the plugin's binary tests.
type source struct {
	mu   sync.Mutex
	sig  pop.Signal
	subs []chan pop.Signal
}

func newSource(s pop.Signal) *source { return &source{sig: s} }

func (s *source) Signal() pop.Signal {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sig
}

func (s *source) Watch() (<-chan pop.Signal, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan pop.Signal, 1)
	ch <- s.sig
	s.subs = append(s.subs, ch)
	return ch, func() {}
}

func (s *source) set(state pop.State, routable int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sig.Seq++
	s.sig.State = state
	s.sig.Apps = pop.NewAppSignals(map[string]pop.AppSignal{"myapp": {Routable: routable, Backends: 2}})
	for _, ch := range s.subs {
		select {
		case <-ch:
		default:
		}
		ch <- s.sig
	}
}

const routerConf = `
router id 198.51.100.1;
timeformat protocol iso long;
protocol device { scan time 1; }
filter from_pop {
	if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
	accept;
}
protocol static s4 { ipv4; route 203.0.113.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:ffff::/48 blackhole; }
protocol bgp pop4 {
	local 198.51.100.1 as 65000;
	neighbor 198.51.100.2 as 65101;
	hold time 9;
	%s
	ipv4 { import filter from_pop; export where proto = "s4"; };
}
protocol bgp pop6 {
	local 2001:db8:1::1 as 65000;
	neighbor 2001:db8:1::2 as 65101;
	hold time 9;
	ipv6 { import filter from_pop; export where proto = "s6"; };
}
`

type rig struct {
	t    *testing.T
	bird *birdtest.Bird
	m    *Manager
	src  *source
	cfg  Config
}

// newRig joins this process's namespace to a router namespace running
// BIRD and starts a manager with cfg (peers filled in).
func newRig(t *testing.T, birdExtra string, mutate func(c *Config), more ...any) *rig {
	var protocols string
	var popAddrs []string
	if len(more) == 2 {
		protocols, popAddrs = more[0].(string), more[1].([]string)
	}
	birdtest.Skip(t)
	if birdtest.Inside() == "" {
		t.Skip("needs the test namespace that TestMain creates when run as root")
	}
	rtr := birdtest.NS(t, fmt.Sprintf("bgpcore%d-r", os.Getpid()))
	birdtest.Veth(t, "", "vp0", append([]string{"198.51.100.2/24", "2001:db8:1::2/64"}, popAddrs...),
		rtr, "vr0", []string{"198.51.100.1/24", "2001:db8:1::1/64"})
	bird := birdtest.StartBird(t, rtr, fmt.Sprintf(routerConf, birdExtra)+protocols)
	d := DefaultConfig()
	peer := func(addr string, f Family) Peer {
		return Peer{Address: netip.MustParseAddr(addr), RemoteAS: 65000, Port: d.Port, Hold: 9 * time.Second,
			ConnectRetry: time.Second, Families: []Family{f}}
	}
	cfg := Config{
		ASN: 65101, RouterID: netip.MustParseAddr("198.51.100.2"),
		Peers: []Peer{peer("198.51.100.1", IPv4), peer("2001:db8:1::1", IPv6)},
		Announces: []Announce{{
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("2001:db8:100::1/128")},
			When:     "myapp", Min: 1, Rise: 1, Fall: 1,
			MED: 50, HasMED: true,
			Communities:      []Community{65101<<16 | 100},
			LargeCommunities: []LargeCommunity{{65101, 1, 2}},
			Assign:           "lo",
		}},
		Drain: Drain{Communities: []Community{GracefulShutdown}, Wait: 2 * time.Second},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r := &rig{t: t, bird: bird, m: NewManager(d), src: newSource(pop.Signal{Node: "gru-1", State: pop.Serving, Seq: 1,
		Apps: pop.NewAppSignals(map[string]pop.AppSignal{"myapp": {Routable: 2, Backends: 2}})}), cfg: cfg}
	r.apply()
	t.Cleanup(func() { r.m.Shutdown(context.Background()) })
	return r
}

func (r *rig) apply() {
	r.t.Helper()
	if _, err := r.m.Apply(context.Background(), r.cfg, r.src, Options{Logger: zaptest.NewLogger(r.t, zaptest.Level(zap.WarnLevel))}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) routes() map[string]birdtest.Route {
	r.t.Helper()
	routes, err := r.bird.Routes()
	if err != nil {
		r.t.Fatal(err)
	}
	return routes
}

func (r *rig) waitRoute(net string, present bool, timeout time.Duration) time.Duration {
	r.t.Helper()
	took, ok := birdtest.Wait(timeout, func() bool {
		_, has := r.routes()[net]
		return has == present
	})
	if !ok {
		r.t.Fatalf("BIRD: %s present=%v not reached in %v:\n%s", net, present, timeout, r.bird.MustC("show", "route", "all"))
	}
	return took
}

func TestBirdSessionsRoutesAndImportRejected(t *testing.T) {
	r := newRig(t, "", nil)
	r.bird.WaitEstablished(15*time.Second, "pop4", "pop6")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	r.waitRoute("2001:db8:100::1/128", true, 5*time.Second)
	routes := r.routes()
	for net, nh := range map[string]string{"192.0.2.1/32": "198.51.100.2", "2001:db8:100::1/128": "2001:db8:1::2"} {
		rt := routes[net]
		if !strings.HasPrefix(rt.Attrs["BGP.next_hop"], nh) {
			t.Errorf("%s: next hop %q, want %s", net, rt.Attrs["BGP.next_hop"], nh)
		}
		if rt.Attrs["BGP.med"] != "50" {
			t.Errorf("%s: med %q, want 50", net, rt.Attrs["BGP.med"])
		}
		if rt.Attrs["BGP.community"] != "(65101,100)" {
			t.Errorf("%s: communities %q", net, rt.Attrs["BGP.community"])
		}
		if rt.Attrs["BGP.large_community"] != "(65101, 1, 2)" {
			t.Errorf("%s: large communities %q", net, rt.Attrs["BGP.large_community"])
		}
		if rt.Attrs["BGP.as_path"] != "65101" {
			t.Errorf("%s: as path %q", net, rt.Attrs["BGP.as_path"])
		}
	}

	// BIRD sends its static routes; the POP receives them and installs none.
	ctx := context.Background()
	for _, fam := range []Family{IPv4, IPv6} {
		var adjIn, global []string
		birdtest.Wait(5*time.Second, func() bool {
			adjIn = nil
			r.m.spk.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Family: apiFamily(fam),
				Name: map[Family]string{IPv4: "198.51.100.1", IPv6: "2001:db8:1::1"}[fam], EnableFiltered: true},
				func(d *api.Destination) { adjIn = append(adjIn, d.Prefix) })
			return len(adjIn) > 0
		})
		r.m.spk.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: apiFamily(fam)},
			func(d *api.Destination) { global = append(global, d.Prefix) })
		sort.Strings(global)
		want := map[Family]string{IPv4: "203.0.113.0/24", IPv6: "2001:db8:ffff::/48"}[fam]
		if len(adjIn) != 1 || adjIn[0] != want {
			t.Errorf("%s: adj-rib-in %v, want BIRD's %s received", fam, adjIn, want)
		}
		for _, p := range global {
			if p == want {
				t.Errorf("%s: BIRD's %s is in the POP's global table %v", fam, want, global)
			}
		}
		if len(global) != 1 {
			t.Errorf("%s: global table %v, want only the POP's own prefix", fam, global)
		}
	}
	st := r.m.Status(ctx)
	for _, p := range st.Peers {
		if p.State != "established" || p.Received != 1 || p.Installed != 0 || p.Advertised != 1 {
			t.Errorf("peer status %+v: want established, 1 received, 0 installed, 1 sent", p)
		}
	}
	// assign put the addresses on lo.
	if out := ipOut(t, "addr", "show", "dev", "lo"); !strings.Contains(out, "192.0.2.1/32") || !strings.Contains(out, "2001:db8:100::1/128") {
		t.Errorf("lo lacks the anycast addresses:\n%s", out)
	}
}

func TestBirdDisableEnableReconnects(t *testing.T) {
	r := newRig(t, "", nil)
	r.bird.WaitEstablished(15*time.Second, "pop4")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	r.bird.MustC("disable", "pop4")
	r.waitRoute("192.0.2.1/32", false, 3*time.Second)
	time.Sleep(time.Second)
	start := time.Now()
	r.bird.MustC("enable", "pop4")
	r.bird.WaitEstablished(30*time.Second, "pop4")
	t.Logf("BIRD's protocol enabled -> session Established after %v", time.Since(start).Round(time.Millisecond))
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
}

// TestBirdIPv6OverIPv4AndPassive: one IPv4 session carries both families,
// the IPv6 prefix with its explicit next hop; and a passive peer is
// accepted on the speaker's listener when BIRD dials.
func TestBirdIPv6OverIPv4AndPassive(t *testing.T) {
	extra := `
protocol bgp dual {
	local 198.51.100.1 as 65000;
	neighbor 198.51.100.3 port 1790 as 65101;
	hold time 9;
	ipv4 { import filter from_pop; export none; };
	ipv6 { import filter from_pop; export none; };
}`
	r := newRig(t, "", func(c *Config) {
		c.ListenPort = 1790
		c.ListenAddrs = []netip.Addr{netip.MustParseAddr("198.51.100.3")}
		c.Peers = []Peer{{Address: netip.MustParseAddr("198.51.100.1"), RemoteAS: 65000, Port: 179, Hold: 9 * time.Second,
			ConnectRetry: time.Second, Families: []Family{IPv4, IPv6}, Passive: true, LocalAddress: netip.MustParseAddr("198.51.100.3")}}
		c.Announces = []Announce{
			{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}, When: "myapp", Min: 1, Rise: 1, Fall: 1},
			{Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::1/128")}, When: "myapp", Min: 1, Rise: 1, Fall: 1,
				NextHop: netip.MustParseAddr("2001:db8:1::2")},
		}
	}, extra, []string{"198.51.100.3/24"})
	r.bird.WaitEstablished(20*time.Second, "dual")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	r.waitRoute("2001:db8:100::1/128", true, 5*time.Second)
	routes := r.routes()
	if nh := routes["2001:db8:100::1/128"].Attrs["BGP.next_hop"]; !strings.HasPrefix(nh, "2001:db8:1::2") {
		t.Errorf("IPv6 prefix over the IPv4 session: next hop %q, want 2001:db8:1::2", nh)
	}
	if nh := routes["192.0.2.1/32"].Attrs["BGP.next_hop"]; nh != "198.51.100.3" {
		t.Errorf("IPv4 prefix: next hop %q, want the session's local address 198.51.100.3", nh)
	}
}

// TestBirdRemovedAndAddedBack: the app removed from the config closes the
// sessions and withdraws; added back, the same process's speaker starts
// again. A changed router ID restarts every session and re-announces.
func TestBirdRemovedAndAddedBack(t *testing.T) {
	r := newRig(t, "", func(c *Config) { c.Announces[0].AnnounceDelay = 0 })
	r.bird.WaitEstablished(15*time.Second, "pop4", "pop6")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)

	r.m.Shutdown(context.Background())
	r.waitRoute("192.0.2.1/32", false, 3*time.Second)
	if _, ok := birdtest.Wait(3*time.Second, func() bool {
		p, _ := r.bird.Protocol("pop4")
		return !p.Established()
	}); !ok {
		t.Fatal("session still up after the shutdown")
	}
	if out := ipOut(t, "addr", "show", "dev", "lo"); strings.Contains(out, "192.0.2.1/32") {
		t.Errorf("address left on lo after the shutdown:\n%s", out)
	}

	r.apply()
	r.bird.WaitEstablished(20*time.Second, "pop4", "pop6")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	since := func() string { p, _ := r.bird.Protocol("pop6"); return p.Since }
	before := since()

	time.Sleep(1100 * time.Millisecond) // BIRD's times have a resolution of a second
	r.cfg.RouterID = netip.MustParseAddr("198.51.100.9")
	r.apply()
	if _, ok := birdtest.Wait(20*time.Second, func() bool {
		p, _ := r.bird.Protocol("pop6")
		return p.Established() && p.Since != before && strings.Contains(p.All, "198.51.100.9")
	}); !ok {
		p, _ := r.bird.Protocol("pop6")
		t.Fatalf("pop6 not re-established with the new router ID: %s", p.All)
	}
	r.waitRoute("2001:db8:100::1/128", true, 5*time.Second)
}

// TestBirdFailedApplyKeepsThePrevious: a config whose listener cannot bind
// fails to apply, and the speaker goes back to the running config.
func TestBirdFailedApplyKeepsThePrevious(t *testing.T) {
	r := newRig(t, "", func(c *Config) { c.Announces[0].AnnounceDelay = 0 })
	r.bird.WaitEstablished(15*time.Second, "pop4")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	bad := r.cfg
	bad.ListenPort = 1790
	bad.ListenAddrs = []netip.Addr{netip.MustParseAddr("203.0.113.99")} // on no interface
	if _, err := r.m.Apply(context.Background(), bad, r.src, Options{}); err == nil {
		t.Fatal("a listener on an absent address was applied")
	}
	r.bird.WaitEstablished(20*time.Second, "pop4")
	r.waitRoute("192.0.2.1/32", true, 5*time.Second)
	if st := r.m.Status(context.Background()); st.Listen != "off" || len(st.Peers) != 2 {
		t.Errorf("after the failed apply: listen %s, %d peers", st.Listen, len(st.Peers))
	}
}
