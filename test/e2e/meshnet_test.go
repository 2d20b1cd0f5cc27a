package e2e

// A network of POPs in namespaces for the 6PN mesh tests: each POP is the
// built Caddy binary in its own namespace, on a shared "internet" segment
// (a bridge in a hub namespace) with a documentation address, clustered
// with a key, running the wg6pn app on a WireGuard interface named
// uniquely on the host.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/netns"
)

type meshNet struct {
	t   *testing.T
	net *netns.Net
	hub *netns.NS
	key string
	all []*meshPOP
}

type meshPOP struct {
	m       *meshNet
	ns      *netns.NS
	name    string
	ip      string // on the internet segment
	subnet  string
	iface   string
	dir     string
	port    int    // WireGuard listen port
	extra   string // lines in the edgeroute block
	wgExtra string // lines in the wg6pn block
	global  string // more global options (a layer4 app)
	mu      sync.Mutex
	log     bytes.Buffer
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Time
}

func needNamespaces(t *testing.T) {
	t.Helper()
	if err := netns.Root(); err != nil {
		t.Skip("skipping the namespace test:", err)
	}
	for _, tool := range []string{"wg", "ping", "sqlite3", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (apt-get install wireguard-tools iputils-ping sqlite3 nftables)", tool)
		}
	}
}

func newMeshNet(t *testing.T) *meshNet {
	needNamespaces(t)
	n := netns.New("e2emesh")
	t.Cleanup(n.Close)
	hub, err := n.Add("ix")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Bridge(hub, "ix0"); err != nil {
		t.Fatal(err)
	}
	return &meshNet{t: t, net: n, hub: hub, key: newKey(t)}
}

// addPOP makes the namespace of POP name with address 198.51.100.<i> on
// the segment and 6PN subnet <subnet>; it does not start it.
func (m *meshNet) addPOP(name string, i int, subnet string) *meshPOP {
	m.t.Helper()
	ns, err := m.net.Add(name)
	if err != nil {
		m.t.Fatal(err)
	}
	ip := fmt.Sprintf("198.51.100.%d", i)
	if err := m.net.Attach(m.hub, "ix0", ns, []string{ip + "/24"}); err != nil {
		m.t.Fatal(err)
	}
	p := &meshPOP{m: m, ns: ns, name: name, ip: ip, subnet: subnet, iface: m.net.IfName("wg"), dir: filepath.Join(m.t.TempDir(), name), port: 51820}
	os.MkdirAll(p.dir, 0o700)
	m.all = append(m.all, p)
	m.t.Cleanup(p.stop)
	return p
}

func (p *meshPOP) addr6() string { return "fdaa:0:1:" + p.subnet + "::1" }

func (p *meshPOP) caddyfile() string {
	var join []string
	for _, q := range p.m.all {
		if q != p {
			join = append(join, q.ip+":7946")
		}
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:2019
	edgeroute {
		db %s/routing.db
		node %s
		region sa
		country BR
		cluster {
			bind %s:7946
			join %s
			key %s
		}
		%s
	}
	wg6pn {
		network     fdaa:0:1::/48
		subnet      %s
		listen_port %d
		endpoint    %s:%d
		interface   %s
		private_key_file %s/wg.key
		%s
	}
	%s
}
`, p.dir, p.name, p.ip, strings.Join(join, " "), p.m.key, p.extra, p.subnet, p.port, p.ip, p.port, p.iface, p.dir, p.wgExtra, p.global)
}

func (p *meshPOP) start() {
	p.m.t.Helper()
	cfg := filepath.Join(p.dir, "Caddyfile")
	os.WriteFile(cfg, []byte(p.caddyfile()), 0o600)
	cmd := p.ns.Cmd(caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+p.dir, "XDG_DATA_HOME="+p.dir, "XDG_CONFIG_HOME="+p.dir)
	w := writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.log.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		p.m.t.Fatal(err)
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); close(p.exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v meshView
		if err := p.get("/wg6pn/", &v); err == nil && v.Address != "" {
			return
		}
		select {
		case <-p.exited:
			p.m.t.Fatalf("%s exited during start:\n%s", p.name, p.logs())
		default:
		}
		if time.Now().After(deadline) {
			p.m.t.Fatalf("%s did not start:\n%s", p.name, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// stop ends the POP as an operator would (SIGINT: apps stop, the device
// is removed), killing it if it does not exit within 10 s.
func (p *meshPOP) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
		p.cmd = nil
	}
}

func (p *meshPOP) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// http is a client whose connections start inside the POP's namespace.
func (p *meshPOP) http() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.ns.DialContext, DisableKeepAlives: true}}
}

func (p *meshPOP) get(path string, v any) error {
	resp, err := p.http().Get("http://127.0.0.1:2019" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// reload loads the POP's Caddyfile again through the admin API.
func (p *meshPOP) reload() error {
	resp, err := p.http().Post("http://127.0.0.1:2019/load", "text/caddyfile", strings.NewReader(p.caddyfile()))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("reload: %s: %s", resp.Status, body)
	}
	return nil
}

func (p *meshPOP) sql(stmt string) string {
	p.m.t.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", filepath.Join(p.dir, "routing.db"), stmt).CombinedOutput()
	if err != nil {
		p.m.t.Fatalf("sqlite3 %s: %v: %s", stmt, err, out)
	}
	return strings.TrimSpace(string(out))
}

// caddy runs the binary's own CLI inside the namespace.
func (p *meshPOP) caddy(args ...string) (string, error) {
	return p.ns.Run(caddyBin, append(args, "--address", "127.0.0.1:2019")...)
}

type meshView struct {
	Node      string `json:"node"`
	PublicKey string `json:"public_key"`
	Prefix    string `json:"prefix"`
	Address   string `json:"address"`
	Peers     []struct {
		Node          string    `json:"node"`
		PublicKey     string    `json:"public_key"`
		Endpoint      string    `json:"endpoint"`
		AllowedIPs    []string  `json:"allowed_ips"`
		LastHandshake time.Time `json:"last_handshake"`
		RxBytes       int64     `json:"rx_bytes"`
		TxBytes       int64     `json:"tx_bytes"`
	} `json:"peers"`
	Refused []string `json:"refused"`
}

func (p *meshPOP) view() meshView {
	p.m.t.Helper()
	var v meshView
	if err := p.get("/wg6pn/", &v); err != nil {
		p.m.t.Fatal(err)
	}
	return v
}

// wgHandshakes reads `wg show <if> latest-handshakes` with the real wg
// tool: public key -> unix seconds.
func (p *meshPOP) wgHandshakes() map[string]int64 {
	p.m.t.Helper()
	out, err := p.ns.Run("wg", "show", p.iface, "latest-handshakes")
	if err != nil {
		p.m.t.Fatal(err)
	}
	m := map[string]int64{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 {
			m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	return m
}

// handshakeWith is the time of the last handshake with peer node per the
// admin API (nanosecond precision), zero if none or no such peer.
func (p *meshPOP) handshakeWith(node string) time.Time {
	for _, q := range p.view().Peers {
		if q.Node == node {
			return q.LastHandshake
		}
	}
	return time.Time{}
}

// waitMeshed waits until every POP's `wg show` lists every other running
// POP with a handshake.
func (m *meshNet) waitMeshed(pops []*meshPOP, within time.Duration) {
	m.t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, p := range pops {
			hs := p.wgHandshakes()
			for _, q := range pops {
				if q != p && hs[q.view().PublicKey] == 0 {
					ok = false
				}
			}
			if len(hs) != len(pops)-1 {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range pops {
				out, _ := p.ns.Run("wg", "show")
				m.t.Logf("%s:\n%s", p.name, out)
			}
			m.t.Fatalf("not meshed within %s", within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ctxTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
