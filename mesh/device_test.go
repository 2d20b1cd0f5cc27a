package mesh

import (
	"encoding/binary"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun/tuntest"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// memLink records what a device asks of its link, for the tests that run
// the embedded device on an in-memory TUN without privileges.
type memLink struct {
	mtu    int
	addrs  map[netip.Addr]bool
	routes map[netip.Prefix]netip.Addr
	isUp   bool
}

func newMemLink() *memLink {
	return &memLink{addrs: map[netip.Addr]bool{}, routes: map[netip.Prefix]netip.Addr{}}
}
func (m *memLink) setMTU(n int) error                          { m.mtu = n; return nil }
func (m *memLink) addAddr(a netip.Addr) error                  { m.addrs[a] = true; return nil }
func (m *memLink) delAddr(a netip.Addr)                        { delete(m.addrs, a) }
func (m *memLink) addRoute(p netip.Prefix, s netip.Addr) error { m.routes[p] = s; return nil }
func (m *memLink) delRoute(p netip.Prefix)                     { delete(m.routes, p) }
func (m *memLink) up() error                                   { m.isUp = true; return nil }
func (m *memLink) remove() error                               { return nil }

type memPOP struct {
	dev  *Device
	tun  *tuntest.ChannelTUN
	link *memLink
	key  wgtypes.Key
	addr netip.Addr
	pfx  netip.Prefix
	port int
}

func newMemPOP(t *testing.T, name, subnet string) *memPOP {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	ct := tuntest.NewChannelTUN()
	u, err := newUserspace(ct.TUN(), name, slog.Default(), false)
	if err != nil {
		t.Fatal(err)
	}
	l := newMemLink()
	pfx := netip.MustParsePrefix("fdaa:0:1:" + subnet + "::/64")
	addr := pfx.Addr().Next()
	d := &Device{name: name, mode: ModeUserspace, log: slog.Default(), wg: u, link: l,
		routes: map[netip.Prefix]bool{}, peers: map[wgtypes.Key]Peer{}}
	if _, err := d.start(Config{Interface: name, MTU: 1420, PrivateKey: key, Address: addr, Keepalive: 25 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	port, err := d.ListenPort()
	if err != nil || port == 0 {
		t.Fatalf("listen port %d: %v", port, err)
	}
	return &memPOP{dev: d, tun: ct, link: l, key: key, addr: addr, pfx: pfx, port: port}
}

func (p *memPOP) peer(node string) Peer {
	return Peer{Node: node, PublicKey: p.key.PublicKey(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p.port)).String(),
		AllowedIPs: []netip.Prefix{p.pfx}}
}

// udp6 builds an IPv6 UDP packet from src to dst.
func udp6(src, dst netip.Addr, payload string) []byte {
	b := make([]byte, 48+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:6], uint16(8+len(payload)))
	b[6] = 17
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:24], s[:])
	copy(b[24:40], d[:])
	binary.BigEndian.PutUint16(b[40:42], 4000)
	binary.BigEndian.PutUint16(b[42:44], 5000)
	binary.BigEndian.PutUint16(b[44:46], uint16(8+len(payload)))
	copy(b[48:], payload)
	return b
}

// send writes a packet into from's TUN and says whether to's TUN delivers
// one carrying payload within wait.
func send(t *testing.T, from, to *memPOP, src netip.Addr, payload string, wait time.Duration) bool {
	t.Helper()
	select {
	case from.tun.Outbound <- udp6(src, to.addr, payload):
	case <-time.After(wait):
		t.Fatal("the device does not read its TUN")
	}
	deadline := time.After(wait)
	for {
		select {
		case got := <-to.tun.Inbound:
			if strings.HasSuffix(string(got), payload) {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func handshake(t *testing.T, p *memPOP, peer wgtypes.Key) time.Time {
	t.Helper()
	s, err := p.dev.State()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range s.Peers {
		if x.PublicKey == peer {
			return x.LastHandshakeTime
		}
	}
	t.Fatalf("no peer %s", peer)
	return time.Time{}
}

func TestEmbeddedDeviceCarriesPacketsAndChangesPeersByDifference(t *testing.T) {
	a, b, c := newMemPOP(t, "memA", "a"), newMemPOP(t, "memB", "b"), newMemPOP(t, "memC", "c")
	if !a.link.isUp || !a.link.addrs[a.addr] || a.link.mtu != 1420 {
		t.Fatalf("link not set up: %+v", a.link)
	}
	set := func(p *memPOP, peers ...Peer) Change {
		t.Helper()
		ch, err := p.dev.SetPeers(peers)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	if ch := set(a, b.peer("b"), c.peer("c")); strings.Join(ch.Added, ",") != "b,c" {
		t.Fatalf("added %v", ch.Added)
	}
	set(b, a.peer("a"), c.peer("c"))
	set(c, a.peer("a"), b.peer("b"))
	if a.link.routes[b.pfx] != a.addr || a.link.routes[c.pfx] != a.addr {
		t.Fatalf("routes %v", a.link.routes)
	}
	// Every pair handshakes by itself, without traffic, within a moment.
	waitHandshake := func(p *memPOP, peers ...*memPOP) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		for _, q := range peers {
			for handshake(t, p, q.key.PublicKey()).IsZero() {
				if time.Now().After(deadline) {
					t.Fatalf("%s: no handshake with %s within 3s", p.dev.Name(), q.dev.Name())
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitHandshake(a, b, c)
	waitHandshake(b, a, c)
	waitHandshake(c, a, b)
	if !send(t, a, b, a.addr, "hello b", 5*time.Second) {
		t.Fatal("a packet from A's address did not reach B")
	}
	if !send(t, a, c, a.addr, "hello c", 5*time.Second) {
		t.Fatal("a packet from A's address did not reach C")
	}
	hsB, hsC := handshake(t, a, b.key.PublicKey()), handshake(t, a, c.key.PublicKey())
	if hsB.IsZero() || hsC.IsZero() {
		t.Fatal("no handshake recorded")
	}

	// The same peers again: nothing changes, no session restarts.
	if ch := set(a, b.peer("b"), c.peer("c")); !ch.Empty() {
		t.Fatalf("an unchanged peer list changed %+v", ch)
	}

	// A source outside A's allowed IPs is dropped by B.
	if send(t, a, b, netip.MustParseAddr("fdaa:0:1:99::1"), "spoofed", time.Second) {
		t.Fatal("B delivered a packet whose source lies outside A's allowed IPs")
	}

	// B moves to a new port: A puts B again and handshakes at once, and
	// A's session with C is untouched.
	time.Sleep(1100 * time.Millisecond) // handshake times have second resolution on some paths
	newPort := b.port + 1
	if err := b.dev.Reconfigure(Config{Interface: "memB", MTU: 1420, PrivateKey: b.key, Address: b.addr, ListenPort: newPort, Keepalive: 25 * time.Second}); err != nil {
		t.Fatal(err)
	}
	b.port = newPort
	moved := time.Now()
	if ch := set(a, b.peer("b"), c.peer("c")); strings.Join(ch.Updated, ",") != "b" || len(ch.Added)+len(ch.Removed) != 0 {
		t.Fatalf("endpoint change: %+v", ch)
	}
	deadline := time.Now().Add(5 * time.Second)
	for handshake(t, a, b.key.PublicKey()).Before(moved) {
		if time.Now().After(deadline) {
			t.Fatal("no new handshake with B within 5s of its endpoint change")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := handshake(t, a, c.key.PublicKey()); !got.Equal(hsC) {
		t.Fatalf("C's session restarted (%v, was %v)", got, hsC)
	}
	if !send(t, a, b, a.addr, "after move", 5*time.Second) {
		t.Fatal("B unreachable after its move")
	}

	// C's row disappears: its peer and route go.
	if ch := set(a, b.peer("b")); strings.Join(ch.Removed, ",") != "c" {
		t.Fatalf("removed %v", ch.Removed)
	}
	if _, ok := a.link.routes[c.pfx]; ok {
		t.Fatal("route to C's prefix kept")
	}
	if s, _ := a.dev.State(); len(s.Peers) != 1 {
		t.Fatalf("peers after removal: %d", len(s.Peers))
	}
}
