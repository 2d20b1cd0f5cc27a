package anycast

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/pop"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func sig(state pop.State, routable int) pop.Signal {
	return pop.Signal{Node: "gru-1", State: state, Seq: 1,
		Apps: pop.NewAppSignals(map[string]pop.AppSignal{"myapp": {Routable: routable, Backends: 2}})}
}

func testConfig() *Config {
	d := DefaultConfig()
	return &Config{
		ASN: 65101, RouterID: netip.MustParseAddr("198.51.100.2"),
		Announces: []Announce{{
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")},
			When:     "myapp", Min: 1, Rise: 2, Fall: 1, AnnounceDelay: 2 * time.Second,
		}},
		Drain: Drain{Communities: []Community{d.DrainCommunity}, Wait: 10 * time.Second},
	}
}

func phase(t *testing.T, m *Machine) Phase {
	t.Helper()
	st := m.States()
	if len(st) != 1 {
		t.Fatalf("%d prefixes, want 1", len(st))
	}
	return st[0].Phase
}

func expect(t *testing.T, m *Machine, want Phase, when string) {
	t.Helper()
	if got := phase(t, m); got != want {
		t.Fatalf("%s: %s (%s), want %s", when, got, m.States()[0].Reason, want)
	}
}

func TestMachineRiseDelayFall(t *testing.T) {
	m := NewMachine()
	m.Configure(t0, testConfig())
	m.Observe(t0, sig(pop.Serving, 2))
	expect(t, m, Withdrawn, "first observation (rise 2)")
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 2))
	expect(t, m, Withdrawn, "healthy, inside announce_delay")
	if next := m.Next(); !next.Equal(t0.Add(2 * time.Second)) {
		t.Fatalf("next decision at %v, want the end of announce_delay", next)
	}
	m.Advance(t0.Add(2 * time.Second))
	expect(t, m, Announced, "after announce_delay")
	m.Observe(t0.Add(3*time.Second), sig(pop.Serving, 0))
	expect(t, m, Withdrawn, "0 routable with fall 1")
	if r := m.States()[0].Reason; r != "myapp: 0 routable (min 1)" {
		t.Fatalf("reason %q", r)
	}
	m.Observe(t0.Add(4*time.Second), sig(pop.Serving, 1))
	expect(t, m, Withdrawn, "one good observation of rise 2")
	m.Observe(t0.Add(5*time.Second), sig(pop.Serving, 1))
	expect(t, m, Announced, "rise 2 reached")
}

func TestMachineFallTwoAndMin(t *testing.T) {
	cfg := testConfig()
	cfg.Announces[0].Fall, cfg.Announces[0].Min, cfg.Announces[0].AnnounceDelay = 2, 2, 0
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 2))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 2))
	expect(t, m, Announced, "2 routable, min 2")
	m.Observe(t0.Add(2*time.Second), sig(pop.Serving, 1))
	expect(t, m, Announced, "one bad observation of fall 2")
	m.Observe(t0.Add(3*time.Second), sig(pop.Serving, 1))
	expect(t, m, Withdrawn, "fall 2 reached")
}

func TestMachineStaleHolds(t *testing.T) {
	cfg := testConfig()
	cfg.Announces[0].AnnounceDelay = 0
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 1))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 1))
	expect(t, m, Announced, "healthy")
	stale := sig(pop.Serving, 0)
	stale.Stale = true
	for i := range 5 {
		m.Observe(t0.Add(time.Duration(2+i)*time.Second), stale)
	}
	expect(t, m, Announced, "stale table (holds the last state)")
}

func TestMachineDrainAndUndrain(t *testing.T) {
	cfg := testConfig()
	cfg.Announces[0].AnnounceDelay = 0
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 1))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 1))
	expect(t, m, Announced, "healthy")

	m.Observe(t0.Add(2*time.Second), sig(pop.Draining, 1))
	expect(t, m, Draining, "drain")
	if until := m.States()[0].DrainUntil; !until.Equal(t0.Add(12 * time.Second)) {
		t.Fatalf("drain until %v, want start + wait", until)
	}
	m.Advance(t0.Add(5 * time.Second))
	expect(t, m, Draining, "inside the wait")
	m.Observe(t0.Add(6*time.Second), sig(pop.Serving, 1))
	expect(t, m, Announced, "undrain before the withdraw cancels the drain")

	m.Observe(t0.Add(7*time.Second), sig(pop.Stopping, 1))
	expect(t, m, Draining, "stopping drains too")
	if next := m.Next(); !next.Equal(t0.Add(17 * time.Second)) {
		t.Fatalf("next decision %v, want the end of the new wait", next)
	}
	m.Advance(t0.Add(17 * time.Second))
	expect(t, m, Withdrawn, "after the wait")
	if !m.AllWithdrawn() {
		t.Fatal("AllWithdrawn false after the drain")
	}
	m.Observe(t0.Add(18*time.Second), sig(pop.Stopping, 1))
	expect(t, m, Withdrawn, "still stopping")
}

func TestMachineUnhealthyDuringDrainWithdrawsAtOnce(t *testing.T) {
	cfg := testConfig()
	cfg.Announces[0].AnnounceDelay = 0
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 1))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 1))
	m.Observe(t0.Add(2*time.Second), sig(pop.Draining, 1))
	expect(t, m, Draining, "drain")
	m.Observe(t0.Add(3*time.Second), sig(pop.Draining, 0))
	expect(t, m, Withdrawn, "no backend left while draining")
}

func TestMachineWithdrawnPrefixNotDrainedOut(t *testing.T) {
	m := NewMachine()
	m.Configure(t0, testConfig())
	m.Observe(t0, sig(pop.Draining, 1))
	m.Observe(t0.Add(5*time.Second), sig(pop.Draining, 1))
	expect(t, m, Withdrawn, "a POP draining from the start announces nothing")
}

func TestMachineSourceClosedDrains(t *testing.T) {
	cfg := testConfig()
	cfg.Announces[0].AnnounceDelay = 0
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 1))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 1))
	m.SourceClosed(t0.Add(2 * time.Second))
	expect(t, m, Draining, "the POP's signal ended")
}

func TestMachineReconfigureKeepsState(t *testing.T) {
	cfg := testConfig()
	m := NewMachine()
	m.Configure(t0, cfg)
	m.Observe(t0, sig(pop.Serving, 1))
	m.Observe(t0.Add(time.Second), sig(pop.Serving, 1))
	m.Advance(t0.Add(3 * time.Second))
	expect(t, m, Announced, "before the reload")
	since := m.States()[0].Since

	again := testConfig()
	again.Announces = append(again.Announces, Announce{
		Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:100::1/128")},
		When:     "myapp", Min: 1, Rise: 2, Fall: 1, AnnounceDelay: 2 * time.Second,
	})
	m.Configure(t0.Add(4*time.Second), again)
	st := m.States()
	if len(st) != 2 {
		t.Fatalf("%d prefixes", len(st))
	}
	for _, s := range st {
		switch s.Prefix.String() {
		case "192.0.2.1/32":
			if s.Phase != Announced || !s.Since.Equal(since) {
				t.Fatalf("kept prefix after reload: %+v", s)
			}
		default:
			if s.Phase != Withdrawn || s.Healthy {
				t.Fatalf("new prefix after reload: %+v", s)
			}
		}
	}
}

func ParseMust(s string) netip.Addr { return netip.MustParseAddr(s) }

func validConfig() *Config {
	c := testConfig()
	d := DefaultConfig()
	c.Peers = []Peer{{Address: ParseMust("198.51.100.1"), RemoteAS: 65000, Port: d.Port, Hold: 9 * time.Second,
		ConnectRetry: d.ConnectRetry, Families: []Family{IPv4}}}
	c.Announces[0].Prefixes = append(c.Announces[0].Prefixes, netip.MustParsePrefix("2001:db8:100::1/128"))
	return c
}
