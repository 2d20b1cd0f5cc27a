package bgp_test

// These tests drive the Caddy binary built from ./builds/caddy (or
// $EDGEPROXY_CADDY) with the real edgeroute app and a real BIRD 2 peer in
// a sibling network namespace. The test process and the Caddy it starts
// run in a namespace of their own (birdtest.Main), joined to the router's
// by a veth pair with documentation addresses and no route out.

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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/anycast"
	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/store"
)

var caddyBin string

func TestMain(m *testing.M) {
	if b := os.Getenv(envBackend); b != "" {
		// Re-executed as a backend inside a POP's namespace.
		serveBackend(b)
		return
	}
	caddyBin = os.Getenv("EDGEPROXY_CADDY")
	cleanup := func() {}
	if caddyBin == "" && birdtest.Inside() == "" && os.Geteuid() == 0 {
		// Built before entering the namespace: the module proxy is not
		// reachable from in there.
		bin, done, err := popctl.CaddyBinary("../..")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		caddyBin, cleanup = bin, done
		os.Setenv("EDGEPROXY_CADDY", caddyBin)
	}
	code := birdtest.Main(m, "bgpplug")
	cleanup()
	os.Exit(code)
}

// routerConf is the BIRD side: eBGP sessions to the POP over IPv4 and
// IPv6, an MD5 session, one with the wrong password, and static routes it
// sends (which the POP must not install). Its import filter gives routes
// carrying GRACEFUL_SHUTDOWN local preference 0, as RFC 8326 asks.
const routerConf = `
router id 198.51.100.1;
timeformat protocol iso long;
timeformat route iso long;
protocol device { scan time 1; }
filter from_pop {
	if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
	accept;
}
protocol static s4 { ipv4; route 203.0.113.0/24 blackhole; }
protocol static s6 { ipv6; route 2001:db8:ffff::/48 blackhole; }
# BIRD locks a neighbour address to one protocol at a time, so each
# session has its own address on the POP's side too.
# The POP dials (listen off): the router waits for it, and a session that
# went down may come back without BIRD's default minute of error wait.
template bgp popv4 {
	local as 65000;
	hold time 9;
	passive on;
	error wait time 1, 5;
	ipv4 { import filter from_pop; export where proto = "s4"; };
}
protocol bgp pop4 from popv4 { local 198.51.100.1; neighbor 198.51.100.2 as 65101; }
protocol bgp withmd5 from popv4 { local 198.51.100.11; neighbor 198.51.100.3 as 65101; password "md5-s3cret"; }
protocol bgp badpw from popv4 { local 198.51.100.12; neighbor 198.51.100.4 as 65101; password "right"; }
protocol bgp pop6 {
	local 2001:db8:1::1 as 65000;
	neighbor 2001:db8:1::2 as 65101;
	hold time 9;
	passive on;
	error wait time 1, 5;
	ipv6 { import filter from_pop; export where proto = "s6"; };
}
`

type net1 struct {
	bird *birdtest.Bird
}

// network makes the router namespace, the link and BIRD.
func network(t *testing.T) *net1 {
	birdtest.Skip(t)
	if birdtest.Inside() == "" {
		t.Skip("needs the test namespace that TestMain creates when run as root")
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Skip("needs the sqlite3 CLI (apt-get install sqlite3)")
	}
	rtr := birdtest.NS(t, fmt.Sprintf("bgpplug%d-r", os.Getpid()))
	birdtest.Veth(t, "", "vp0", []string{"198.51.100.2/24", "198.51.100.3/24", "198.51.100.4/24", "2001:db8:1::2/64"},
		rtr, "vr0", []string{"198.51.100.1/24", "198.51.100.11/24", "198.51.100.12/24", "2001:db8:1::1/64"})
	return &net1{bird: birdtest.StartBird(t, rtr, routerConf)}
}

// popProc is one POP: the Caddy binary with edgeroute and bgp.
type popProc struct {
	t *testing.T
	// edge goes into the edgeroute block (health checks, listeners).
	edge   string
	dir    string
	db     string
	admin  string
	conf   string
	cmd    *exec.Cmd
	logMu  sync.Mutex
	log    bytes.Buffer
	exited chan struct{}
}

var adminPorts = 30100

func newPOP(t *testing.T) *popProc {
	dir := t.TempDir()
	adminPorts++
	p := &popProc{t: t, dir: dir, db: filepath.Join(dir, "routing.db"), admin: fmt.Sprintf("127.0.0.1:%d", adminPorts),
		conf: filepath.Join(dir, "Caddyfile")}
	// The table's schema, as the app itself would create it; backends are
	// then written by the sqlite3 CLI as an operator would.
	st, err := store.Open(context.Background(), p.db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// A POP killed by a test leaves its anycast addresses on this
	// namespace's lo, where a later test's client would reach them.
	t.Cleanup(func() {
		for _, a := range []string{"192.0.2.1/32", "192.0.2.2/32", "192.0.2.3/32", "2001:db8:100::1/128"} {
			exec.Command("ip", "addr", "del", a, "dev", "lo").Run()
		}
	})
	p.sql(`INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit)
		VALUES ('b1','myapp','sa','BR','127.0.0.1',9001,1,1,100,200), ('b2','myapp','sa','BR','127.0.0.1',9002,1,1,100,200)`)
	return p
}

// bgpBlock is the bgp global option the tests run with; extra goes into
// the block (more announce blocks, peers).
func (p *popProc) caddyfile(bgpExtra string) string {
	return fmt.Sprintf(`{
	admin %s
	edgeroute {
		db %s
		node gru-1
		region sa
		country BR
%s
	}
	bgp {
		asn       65101
		router_id 198.51.100.2
		listen    off
		peer 198.51.100.1 {
			remote_as     65000
			local_address 198.51.100.2
			hold          9s
			connect_retry 1s
			families      ipv4
		}
		peer 2001:db8:1::1 {
			remote_as     65000
			hold          9s
			connect_retry 1s
		}
		announce 192.0.2.1/32 2001:db8:100::1/128 {
			when           myapp min 1
			assign         lo
			med            50
			communities    65101:100
			large_communities 65101:1:2
			rise           2
			fall           1
			announce_delay 1s
		}
		drain {
			communities 65535:0
			wait        3s
		}
%s
	}
}
`, p.admin, p.db, p.edge, bgpExtra)
}

func (p *popProc) write(conf string) {
	p.t.Helper()
	if err := os.WriteFile(p.conf, []byte(conf), 0o600); err != nil {
		p.t.Fatal(err)
	}
}

func (p *popProc) start(conf string) {
	p.t.Helper()
	p.write(conf)
	p.cmd = exec.Command(caddyBin, "run", "--config", p.conf, "--adapter", "caddyfile")
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+p.dir, "XDG_CONFIG_HOME="+p.dir, "HOME="+p.dir,
		"BGP_PASSWORD=md5-s3cret")
	w := &lockedWriter{mu: &p.logMu, w: &p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	p.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if p.t.Failed() {
			p.t.Logf("caddy log:\n%s", p.logs())
		}
	})
	if _, ok := birdtest.Wait(15*time.Second, func() bool {
		var st anycast.Status
		return p.get("/bgp/", &st) == 200
	}); !ok {
		p.t.Fatalf("caddy did not start:\n%s", p.logs())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *popProc) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

func (p *popProc) sql(stmt string) {
	p.t.Helper()
	if out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", p.db, stmt).CombinedOutput(); err != nil {
		p.t.Fatalf("sqlite3: %v: %s", err, out)
	}
}

func (p *popProc) sqlOut(stmt string) string {
	p.t.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", p.db, stmt).CombinedOutput()
	if err != nil {
		p.t.Fatalf("sqlite3: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func (p *popProc) get(path string, v any) int {
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			p.t.Errorf("%s: %v", path, err)
		}
	}
	return resp.StatusCode
}

func (p *popProc) status() anycast.Status {
	p.t.Helper()
	var st anycast.Status
	if code := p.get("/bgp/", &st); code != 200 {
		p.t.Fatalf("GET /bgp/: %d", code)
	}
	return st
}

// caddy runs a caddy subcommand against this POP's admin endpoint.
func (p *popProc) caddy(args ...string) string {
	p.t.Helper()
	out, err := exec.Command(caddyBin, append(args, "--address", p.admin)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("caddy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (p *popProc) reload(conf string) {
	p.t.Helper()
	p.write(conf)
	p.caddy("reload", "--config", p.conf, "--adapter", "caddyfile", "--force")
}

func (n *net1) routes(t *testing.T) map[string]birdtest.Route {
	t.Helper()
	r, err := n.bird.Routes()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (n *net1) waitRoute(t *testing.T, prefix string, present bool, timeout time.Duration) time.Duration {
	t.Helper()
	took, ok := birdtest.Wait(timeout, func() bool {
		_, has := n.routes(t)[prefix]
		return has == present
	})
	if !ok {
		t.Fatalf("BIRD: %s present=%v not reached in %v:\n%s", prefix, present, timeout, n.bird.MustC("show", "route", "all"))
	}
	return took
}

func (n *net1) protocol(t *testing.T, name string) birdtest.Protocol {
	t.Helper()
	pr, err := n.bird.Protocol(name)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func (p *popProc) raw(path string) string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
