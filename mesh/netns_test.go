//go:build linux

package mesh

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgeproxy/edgeproxy/internal/netns"
)

// The namespace tests run this test binary again inside a namespace as a
// helper that owns one real device (TUN, UAPI socket, netlink), driven by
// JSON lines on stdin: each line is the full peer list to apply.

const helperEnv = "MESH_TEST_HELPER"

type helperConfig struct {
	Interface string
	Key       string
	Address   string
	Port      int
}

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelper(cfg))
	}
	os.Exit(m.Run())
}

func runHelper(cfgJSON string) int {
	var hc helperConfig
	if err := json.Unmarshal([]byte(cfgJSON), &hc); err != nil {
		fmt.Println("error", err)
		return 1
	}
	key, _ := wgtypes.ParseKey(hc.Key)
	d, err := Open(Config{Interface: hc.Interface, Mode: ModeAuto, MTU: 1420, ListenPort: hc.Port, PrivateKey: key,
		Address: netip.MustParseAddr(hc.Address), Keepalive: 25 * time.Second, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	defer d.Close()
	fmt.Println("ready", d.Mode())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var peers []Peer
		if err := json.Unmarshal(sc.Bytes(), &peers); err != nil {
			fmt.Println("error", err)
			continue
		}
		ch, err := d.SetPeers(peers)
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		b, _ := json.Marshal(ch)
		fmt.Println("ok", string(b))
	}
	return 0
}

type helper struct {
	ns    *netns.NS
	iface string
	key   wgtypes.Key
	addr  netip.Addr
	pfx   netip.Prefix
	ep    string
	in    io.WriteCloser
	out   *bufio.Scanner
}

func startHelper(t *testing.T, ns *netns.NS, iface, subnet, endpoint string) *helper {
	t.Helper()
	key, _ := wgtypes.GeneratePrivateKey()
	pfx := netip.MustParsePrefix("fdaa:0:1:" + subnet + "::/64")
	h := &helper{ns: ns, iface: iface, key: key, addr: pfx.Addr().Next(), pfx: pfx, ep: endpoint}
	_, port, _ := strings.Cut(endpoint, ":")
	p, _ := strconv.Atoi(port)
	cfg, _ := json.Marshal(helperConfig{Interface: iface, Key: key.String(), Address: h.addr.String(), Port: p})
	exe, _ := os.Executable()
	c := ns.Cmd(exe, "-test.run=^$")
	c.Env = append(os.Environ(), helperEnv+"="+string(cfg))
	c.Stderr = os.Stderr
	h.in, _ = c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	h.out = bufio.NewScanner(stdout)
	if err := ns.Start(c); err != nil {
		t.Fatal(err)
	}
	if !h.out.Scan() || !strings.HasPrefix(h.out.Text(), "ready ") {
		t.Fatalf("helper in %s: %q", ns.Name, h.out.Text())
	}
	return h
}

func (h *helper) peer(node string) Peer {
	return Peer{Node: node, PublicKey: h.key.PublicKey(), Endpoint: h.ep, AllowedIPs: []netip.Prefix{h.pfx}}
}

func (h *helper) set(t *testing.T, peers ...Peer) Change {
	t.Helper()
	b, _ := json.Marshal(peers)
	fmt.Fprintf(h.in, "%s\n", b)
	if !h.out.Scan() {
		t.Fatal("helper gone")
	}
	line := h.out.Text()
	rest, ok := strings.CutPrefix(line, "ok ")
	if !ok {
		t.Fatalf("SetPeers in %s: %s", h.ns.Name, line)
	}
	var ch Change
	json.Unmarshal([]byte(rest), &ch)
	return ch
}

// handshakes reads `wg show <if> latest-handshakes` with the real wg tool
// through the device's UAPI socket.
func (h *helper) handshakes(t *testing.T) map[string]int64 {
	t.Helper()
	out, err := h.ns.Run("wg", "show", h.iface, "latest-handshakes")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return m
}

func needNetns(t *testing.T) {
	t.Helper()
	if err := netns.Root(); err != nil {
		t.Skip("skipping the namespace test:", err)
	}
	for _, tool := range []string{"wg", "ping"} {
		if _, err := execLookPath(tool); err != nil {
			t.Fatalf("%s is required (apt-get install wireguard-tools iputils-ping)", tool)
		}
	}
}

func TestTwoNamespacesHandshakeAndPingOverTheMesh(t *testing.T) {
	needNetns(t)
	n := netns.New("meshT")
	t.Cleanup(n.Close)
	nsA, err := n.Add("a")
	if err != nil {
		t.Fatal(err)
	}
	nsB, err := n.Add("b")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Link(nsA, []string{"198.51.100.1/24"}, nsB, []string{"198.51.100.2/24"}); err != nil {
		t.Fatal(err)
	}
	a := startHelper(t, nsA, n.IfName("wgA"), "a", "198.51.100.1:51820")
	b := startHelper(t, nsB, n.IfName("wgB"), "b", "198.51.100.2:51820")
	if ch := a.set(t, b.peer("b")); strings.Join(ch.Added, ",") != "b" {
		t.Fatalf("A added %v", ch.Added)
	}
	b.set(t, a.peer("a"))

	// The real wg tool sees each peer with a handshake, within seconds and
	// without traffic.
	deadline := time.Now().Add(5 * time.Second)
	for a.handshakes(t)[b.key.PublicKey().String()] == 0 || b.handshakes(t)[a.key.PublicKey().String()] == 0 {
		if time.Now().After(deadline) {
			out, _ := nsA.Run("wg", "show")
			t.Fatalf("no handshake within 5s:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, err := nsA.Run("ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", b.addr.String()); err != nil {
		t.Fatalf("ping over the mesh: %v\n%s", err, out)
	}
	link, _ := nsA.Run("ip", "-o", "link", "show", a.iface)
	if !strings.Contains(link, "mtu 1420") || !strings.Contains(link, "UP") {
		t.Fatalf("link: %s", link)
	}
	routes, _ := nsA.Run("ip", "-6", "route", "show", "dev", a.iface)
	if !strings.Contains(routes, "fdaa:0:1:b::/64") || !strings.Contains(routes, "src "+a.addr.String()) {
		t.Fatalf("routes: %s", routes)
	}
	// An unchanged peer list is no change and costs no handshake.
	before := a.handshakes(t)[b.key.PublicKey().String()]
	if ch := a.set(t, b.peer("b")); !ch.Empty() {
		t.Fatalf("unchanged list changed %+v", ch)
	}
	if after := a.handshakes(t)[b.key.PublicKey().String()]; after != before {
		t.Fatalf("handshake moved from %d to %d on an unchanged list", before, after)
	}
	// Peer removed: the route goes, ping fails.
	a.set(t)
	if routes, _ := nsA.Run("ip", "-6", "route", "show", "dev", a.iface); strings.Contains(routes, "fdaa:0:1:b::/64") {
		t.Fatalf("route kept after the peer left: %s", routes)
	}
	if _, err := nsA.Run("ping", "-6", "-c", "1", "-W", "1", b.addr.String()); err == nil {
		t.Fatal("ping works after the peer was removed")
	}
}
