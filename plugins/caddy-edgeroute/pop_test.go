package edgeroute_test

// Tests in this package drive the real Caddy binary built from
// ./builds/caddy, with real SQLite files edited by the sqlite3 CLI, real TCP
// sockets and GeoIP databases written for the test. Clients get their
// country from their source address on 127.0.0.0/8.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/geo/geotest"
)

var caddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgeroute-bin")
	if err != nil {
		panic(err)
	}
	caddyBin = filepath.Join(dir, "caddy")
	if env := os.Getenv("EDGEPROXY_CADDY"); env != "" {
		caddyBin = env
	} else {
		build := exec.Command("go", "build", "-o", caddyBin, "./builds/caddy")
		build.Dir = "../.."
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building caddy:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
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
// ephemeral range (32768 and up): a port from that range can be taken as the
// source port of some outgoing connection before the POP binds it.
func freePort(t *testing.T) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if portsGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		portsGiven[port] = true
		return port
	}
	t.Fatal("no free port below the ephemeral range")
	return 0
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

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

type pop struct {
	t      *testing.T
	dir    string
	db     string
	admin  string
	listen string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	logMu  *sync.Mutex
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

func caddyfile(p *pop, c popConfig, geoip string) string {
	app := c.app
	if app == "" {
		app = "myapp"
	}
	// The POP's port: a listen block of the app, or a layer4 route.
	listen, layer4 := "", ""
	if c.listener {
		listen = fmt.Sprintf("listen %s {\n\t\t\tapp %s\n\t\t\t%s\n\t\t}", p.listen, app, c.handlerOpts)
	} else {
		opts := ""
		if c.handlerOpts != "" {
			opts = " {\n" + c.handlerOpts + "\n}"
		}
		layer4 = fmt.Sprintf("layer4 {\n\t\t%s {\n\t\t\troute {\n\t\t\t\tedgeroute %s%s\n\t\t\t}\n\t\t}\n\t}", p.listen, app, opts)
	}
	return fmt.Sprintf(`{
	admin %s
	edgeroute {
		db %s
		node test-pop
		region %s
		country %s
		geoip %s
		%s
		%s
	}
	%s
}
`, p.admin, p.db, c.region, c.country, geoip, c.extraGlobal, listen, layer4)
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
	p := &pop{t: t, dir: dir, db: filepath.Join(dir, "routing.db"),
		admin:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		listen: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		log:    new(bytes.Buffer), logMu: new(sync.Mutex)}
	if c.db != "" {
		p.db = c.db
	}
	if c.region == "" {
		c.region = "sa"
	}
	if c.country == "" {
		c.country = "BR"
	}
	cfg := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfg, []byte(caddyfile(p, c, writeGeoIP(t, dir))+extra), 0o644)
	p.cmd = exec.Command(caddyBin, "run", "--config", cfg, "--adapter", "caddyfile")
	p.cmd.Env = append(append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir), env...)
	w := &lockedWriter{mu: p.logMu, w: p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", p.logs())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("tcp", p.listen); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || p.cmd.ProcessState != nil {
			t.Fatalf("caddy did not start listening on %s:\n%s", p.listen, p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
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

func (p *pop) logs() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	return p.log.String()
}

// sql runs the sqlite3 CLI on the POP's table, as an operator would.
func (p *pop) sql(stmt string) {
	p.t.Helper()
	out, err := exec.Command("sqlite3", p.db, stmt).CombinedOutput()
	if err != nil {
		p.t.Fatalf("sqlite3: %v: %s", err, out)
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
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", p.listen)
	if err != nil {
		p.t.Fatalf("dial from %s: %v", from, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	p.t.Cleanup(func() { c.Close() })
	return &conn{Conn: c, backend: strings.TrimSpace(line), r: r}
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

func (p *pop) adminGet(path string, v any) int {
	p.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://"+p.admin+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		body, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(body, v); err != nil && resp.StatusCode == 200 {
			p.t.Fatalf("GET %s: %v: %s", path, err, body)
		}
	}
	return resp.StatusCode
}

func (p *pop) metric(name string) string {
	p.t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+" ") {
			return strings.TrimPrefix(line, name+" ")
		}
	}
	return ""
}

// waitBackends waits until the running table holds n backends.
func (p *pop) waitBackends(n int) {
	p.t.Helper()
	eventually(p.t, 2*time.Second, func() string {
		var table struct{ Backends []struct{ ID string } }
		p.adminGet("/edgeroute/backends", &table)
		if len(table.Backends) != n {
			return fmt.Sprintf("table has %d backends, want %d", len(table.Backends), n)
		}
		return ""
	})
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}
