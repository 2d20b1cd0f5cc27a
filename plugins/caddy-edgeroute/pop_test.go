package edgeroute_test

// Tests in this package drive the real Caddy binary built from
// ./builds/caddy, with real SQLite files edited by the sqlite3 CLI, real TCP
// sockets and GeoIP databases written for the test. Clients get their
// country from their source address on 127.0.0.0/8.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/geo/geotest"
	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

var caddyBin string

func TestMain(m *testing.M) {
	bin, cleanup, err := popctl.CaddyBinary("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// Client addresses and the countries the test GeoIP database gives them.
const (
	clientFR      = "127.0.0.2"
	clientBR      = "127.0.0.3"
	clientDE      = "127.0.0.4"
	clientJP      = "127.0.0.5"
	clientFR2     = "127.0.0.6"
	clientUnknown = "127.0.0.99"
)

func writeGeoIP(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "country.mmdb")
	err := geotest.Write(path, "geoip2", map[string]string{
		clientFR + "/32": "FR", clientBR + "/32": "BR", clientDE + "/32": "DE",
		clientJP + "/32": "JP", clientFR2 + "/32": "FR",
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort returns a port free on every interface, below the kernel's
// ephemeral range, never handed out twice in this process.
func freePort(t *testing.T) int {
	t.Helper()
	port, err := popctl.FreePort("")
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// backend is a TCP server that greets each connection with its name and then
// echoes; it counts the connections it holds.
type backend struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	open int
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b.mu.Lock()
				b.open++
				b.mu.Unlock()
				defer func() { b.mu.Lock(); b.open--; b.mu.Unlock() }()
				fmt.Fprintf(c, "%s\n", name)
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *backend) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

// pop is a POP started by the shared harness (internal/popctl) for one
// test: its calls fail the test instead of returning errors, and it is
// killed when the test ends, its log shown when the test failed.
type pop struct {
	*popctl.POP
	t      *testing.T
	dir    string
	db     string
	admin  string
	listen string
	cmd    *exec.Cmd
}

type popConfig struct {
	region, country string
	db              string // existing file to use
	extraGlobal     string // lines inside edgeroute { }
	handlerOpts     string // lines inside edgeroute <app> { }
	app             string
	// listener serves the POP's port with the app's own `listen` block
	// instead of the layer4 handler.
	listener bool
}

// frontends runs a test once through the layer4 handler and once through
// the app's own listener: both must route, count and relay alike.
func frontends(t *testing.T, test func(t *testing.T, listener bool)) {
	t.Run("layer4", func(t *testing.T) { test(t, false) })
	t.Run("listener", func(t *testing.T) { test(t, true) })
}

func startPOP(t *testing.T, c popConfig) *pop {
	t.Helper()
	return startPOPWith(t, c, "")
}

// startPOPWith is startPOP with extra Caddyfile text after the global
// options (a site, say) and extra environment variables.
func startPOPWith(t *testing.T, c popConfig, extra string, env ...string) *pop {
	t.Helper()
	dir := t.TempDir()
	pp, err := popctl.New(popctl.Options{Bin: caddyBin, Dir: dir, Name: "test-pop", NoCluster: true,
		Region: c.region, Country: c.country, DB: c.db, GeoIP: writeGeoIP(t, dir),
		App: c.app, Listener: c.listener, Handler: c.handlerOpts, Extra: c.extraGlobal,
		Sites: extra, Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if err := pp.Start(); err != nil {
		pp.Kill()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pp.Kill()
		if t.Failed() {
			t.Logf("caddy log:\n%s", pp.Logs())
		}
	})
	return &pop{POP: pp, t: t, dir: dir, db: pp.DB, admin: pp.Admin, listen: pp.Listen, cmd: pp.Cmd()}
}

func (p *pop) logs() string { return p.Logs() }

// sql runs the sqlite3 CLI on the POP's table, as an operator would.
func (p *pop) sql(stmt string) {
	p.t.Helper()
	if _, err := p.SQL(stmt); err != nil {
		p.t.Fatal(err)
	}
}

func (p *pop) addBackend(b *backend, app, region, country string, soft, hard int) {
	p.t.Helper()
	p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit)
		VALUES ('%s','%s','%s','%s','127.0.0.1',%d,1,1,%d,%d)`, b.name, app, region, country, b.port(), soft, hard))
}

// conn is a client connection through the proxy that has read its
// backend's greeting.
type conn struct {
	net.Conn
	backend string
	r       *bufio.Reader
}

// connect dials the proxy from the given source address and returns the
// name of the backend that answered, or "" when the proxy closed the
// connection without one.
func (p *pop) connect(from string) *conn {
	p.t.Helper()
	c, err := p.Dial(from)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return &conn{Conn: c.Conn, backend: c.Backend, r: c.R}
}

// via connects, notes the backend and closes.
func (p *pop) via(from string) string {
	c := p.connect(from)
	c.Close()
	return c.backend
}

// eventually retries f until it returns "" or the deadline passes.
func eventually(t *testing.T, within time.Duration, f func() string) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < within {
		if last = f(); last == "" {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s", within, last)
	return 0
}

// adminGet reads an admin API path into v (when not nil) and returns the
// status code.
func (p *pop) adminGet(path string, v any) int {
	p.t.Helper()
	code, err := p.AdminGet(path, v)
	if err != nil {
		p.t.Fatal(err)
	}
	return code
}

// metric returns the value of one sample of the POP's Prometheus scrape.
func (p *pop) metric(name string) string {
	p.t.Helper()
	v, err := p.Metric(name)
	if err != nil {
		p.t.Fatal(err)
	}
	return v
}

// waitBackends waits until the running table holds n backends.
func (p *pop) waitBackends(n int) {
	p.t.Helper()
	if err := p.WaitBackends(n, 2*time.Second); err != nil {
		p.t.Fatal(err)
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}
