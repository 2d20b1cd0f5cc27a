package e2e

// The whole edge in one story, as `make run-cluster` starts it: the demo
// program (builds/cluster-demo) with the built Caddy and CoreDNS, three
// POPs in namespaces, BIRD as the internet, WireGuard between the POPs.
// Each step asserts what a user would notice and logs how long it took.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/chromium"
	"github.com/edgeproxy/edgeproxy/internal/netns"
	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

// edgeDemo is a running cluster-demo.
type edgeDemo struct {
	t      *testing.T
	prefix string // of the demo's namespace names, this test's own
	dir    string
	demo   string // the demo binary (its backend mode too)
	status string // host:port of the forwarded status page
	cmd    *exec.Cmd
	out    *syncBuf
	client *http.Client
	admin  map[string]*http.Client
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// inNS is an HTTP client whose connections start inside a namespace the
// demo made, one new connection per request.
func inNS(name string) *http.Client {
	ns := &netns.NS{Name: name}
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DialContext: ns.DialContext, DisableKeepAlives: true}}
}

func buildInto(t *testing.T, dir, pkg, env string) string {
	t.Helper()
	if p := os.Getenv(env); env != "" && p != "" {
		return p
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", out, "./"+pkg)
	build.Dir = "../.."
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./%s: %v\n%s", pkg, err, b)
	}
	return out
}

func startEdge(t *testing.T) *edgeDemo {
	t.Helper()
	if err := netns.Root(); err != nil {
		t.Skip("skipping the edge story:", err)
	}
	for _, tool := range []string{"bird", "birdc", "curl", "dig", "wg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (apt-get install bird2 curl dnsutils wireguard-tools)", tool)
		}
	}
	bins := t.TempDir()
	coredns := buildInto(t, bins, "builds/coredns", "EDGEPROXY_COREDNS")
	demo := buildInto(t, bins, "builds/cluster-demo", "")
	port, err := popctl.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cleanStaleEdges()
	e := &edgeDemo{t: t, prefix: fmt.Sprintf("ee%d-", os.Getpid()), dir: filepath.Join(t.TempDir(), "run"), demo: demo,
		status: fmt.Sprintf("127.0.0.1:%d", port), out: &syncBuf{}, admin: map[string]*http.Client{}}
	e.client = inNS(e.ns("client"))
	for _, p := range []string{"gru", "iad", "fra"} {
		e.admin[p] = inNS(e.ns(p))
	}
	e.cmd = exec.Command(demo, "-dir", e.dir, "-caddy", caddyBin, "-coredns", coredns, "-status", e.status, "-prefix", e.prefix)
	e.cmd.Stdout, e.cmd.Stderr = e.out, e.out
	start := time.Now()
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { e.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Ctrl-C, as a user stops it: everything it made goes.
		e.cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			e.cmd.Process.Kill()
			<-exited
			t.Error("the demo did not stop within 30s of Ctrl-C")
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, e.prefix) {
				t.Errorf("namespace %s left after Ctrl-C", l)
				netns.Remove(strings.Fields(l)[0])
			}
		}
		if t.Failed() {
			t.Logf("demo output:\n%s", e.out.String())
			for _, p := range []string{"gru", "iad", "fra"} {
				b, _ := os.ReadFile(filepath.Join(e.dir, p, "caddy.log"))
				t.Logf("%s caddy.log (end):\n%s", p, tailText(string(b), 3000))
			}
		}
	})
	for !strings.Contains(e.out.String(), "The edge is up") {
		select {
		case <-exited:
			t.Fatalf("the demo exited:\n%s", e.out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("the edge was not up within 3 minutes:\n%s", e.out.String())
		}
	}
	t.Logf("make run-cluster's edge up in %v", time.Since(start).Round(100*time.Millisecond))
	return e
}

// ns is the name of one of the demo's namespaces.
func (e *edgeDemo) ns(name string) string { return e.prefix + name }

// wg is the WireGuard interface of a POP, named as the demo names it: its
// namespace name and -wg, or a checksum of the prefix when that is longer
// than an interface name may be.
func (e *edgeDemo) wg(pop string) string {
	if n := e.prefix + pop + "-wg"; len(n) <= 15 {
		return n
	}
	return fmt.Sprintf("w%x-%s", crc32.ChecksumIEEE([]byte(e.prefix))&0xffffff, pop)
}

// cleanStaleEdges removes the namespaces of an earlier run of this test
// that crashed (named ee<pid>- with that process gone).
func cleanStaleEdges() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		m := regexp.MustCompile(`^ee(\d+)-`).FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if pid, err := strconv.Atoi(m[1]); err == nil && syscall.Kill(pid, 0) != nil {
			netns.Remove(name)
		}
	}
}

func tailText(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// ask sends one request to the anycast address as the client and returns
// the backend and the POP of the answer ("hello from B (r), through POP P").
func (e *edgeDemo) ask() (backend, pop string, err error) {
	resp, err := e.client.Get("http://192.0.2.1/")
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	b, p := resp.Header.Get("X-Backend"), resp.Header.Get("X-Pop")
	if b == "" || p == "" {
		return "", "", fmt.Errorf("answer without backend or POP: %q", body)
	}
	return b, p, nil
}

// preferred is the POP whose route BIRD installed for the anycast address.
func (e *edgeDemo) preferred() string {
	out, _ := exec.Command("ip", "netns", "exec", e.ns("inet"), "ip", "route", "show", "192.0.2.1/32").Output()
	for p, ip := range map[string]string{"gru": "198.51.100.11", "iad": "198.51.100.12", "fra": "198.51.100.13"} {
		if strings.Contains(string(out), "via "+ip+" ") {
			return p
		}
	}
	return ""
}

type backendRow struct {
	ID       string `json:"id"`
	Routable bool   `json:"routable"`
	Deleted  bool   `json:"deleted"`
}

// backends is a POP's running table (app demo), through its admin API.
func (e *edgeDemo) backends(pop string) map[string]backendRow {
	out := map[string]backendRow{}
	resp, err := e.admin[pop].Get("http://127.0.0.1:2019/edgeroute/backends?app=demo")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	var v struct {
		Backends []backendRow `json:"backends"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	for _, b := range v.Backends {
		if !b.Deleted {
			out[b.ID] = b
		}
	}
	return out
}

func (e *edgeDemo) run(ns string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	return string(out), err
}

func waitFor(t *testing.T, within time.Duration, what string, f func() bool) time.Duration {
	t.Helper()
	return waitForShow(t, within, what, f, nil)
}

// waitForShow is waitFor that shows what show returns when it fails.
func waitForShow(t *testing.T, within time.Duration, what string, f func() bool, show func() string) time.Duration {
	t.Helper()
	start := time.Now()
	for !f() {
		if time.Since(start) > within {
			if show != nil {
				t.Fatalf("%s: not within %v: %s", what, within, show())
			}
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// loop asks every 50 ms until stop, counting failures and where answers
// came from.
type loop struct {
	mu       sync.Mutex
	failures []failure
	byPOP    map[string]int
	first    string    // the POP of the first answer
	last     string    // the POP of the last request; empty when it failed
	changed  time.Time // when an answer first came through another POP than the first answer's
	stop     chan struct{}
	done     chan struct{}
}

// failure is a request of the loop that failed, and when.
type failure struct {
	at  time.Time
	err string
}

func (f failure) String() string { return f.at.Format("15:04:05.000") + " " + f.err }

func (e *edgeDemo) loop() *loop {
	l := &loop{byPOP: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			_, p, err := e.ask()
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, failure{time.Now(), err.Error()})
				l.last = ""
			} else {
				if l.first == "" {
					l.first = p
				}
				if p != l.first && l.changed.IsZero() {
					l.changed = time.Now()
				}
				l.byPOP[p]++
				l.last = p
			}
			l.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
		}
	}()
	return l
}

func (l *loop) lastPOP() string { l.mu.Lock(); defer l.mu.Unlock(); return l.last }
func (l *loop) changedAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}
func (l *loop) end() ([]failure, map[string]int) {
	close(l.stop)
	<-l.done
	return l.failures, l.byPOP
}

func TestEdgeStory(t *testing.T) {
	e := startEdge(t)

	// 1. The client reaches 192.0.2.1 and is served, by the POP BIRD
	// prefers; over TLS too, verified against the POPs' shared local CA.
	backend, pop, err := e.ask()
	if err != nil {
		t.Fatal(err)
	}
	first := e.preferred()
	if pop != first {
		t.Fatalf("step 1: served through POP %s, but BIRD prefers %s", pop, first)
	}
	routes, _ := e.run(e.ns("inet"), "birdc", "-s", filepath.Join(e.dir, "bird.ctl"), "show", "route", "192.0.2.1/32")
	if n := strings.Count(routes, "unicast ["); n != 3 {
		t.Fatalf("step 1: BIRD has %d routes to 192.0.2.1/32, want one from each POP:\n%s", n, routes)
	}
	tlsOut, err := e.run(e.ns("client"), "curl", "-sS", "-m", "3", "--cacert", filepath.Join(e.dir, "caddy/pki/authorities/local/root.crt"), "https://192.0.2.1/")
	if err != nil || !strings.HasPrefix(tlsOut, "hello from ") {
		t.Fatalf("step 1: https://192.0.2.1/: %v %s", err, tlsOut)
	}
	t.Logf("step 1: served by %s through %s, the POP BIRD prefers; HTTPS verified: %s", backend, pop, strings.TrimSpace(tlsOut))

	// The status page, as a browser shows it.
	if bin, err := chromium.Path(); err == nil {
		dom, err := chromium.DumpDOM(bin, t.TempDir(), "http://admin:edge@"+e.status+"/", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for _, node := range []string{"gru", "iad", "fra"} {
			if !strings.Contains(dom, `<tr data-node="`+node+`"`) {
				t.Errorf("the status page in Chromium lacks POP %s", node)
			}
		}
		if !strings.Contains(dom, "192.0.2.1/32") || !strings.Contains(dom, `data-backend="demo-fra-1"`) {
			t.Errorf("the status page in Chromium lacks the anycast prefix or the backends")
		}
		if strings.Contains(dom, "disconnected") {
			t.Errorf("the status page's refresh failed in Chromium")
		}
		// What the bgp and wg6pn apps report to the POP: the session to
		// the router and the mesh peers with their handshakes.
		if !strings.Contains(dom, `data-report="bgp"`) || !strings.Contains(dom, "<td>established</td>") {
			t.Errorf("the status page in Chromium lacks the BGP session")
		}
		if !strings.Contains(dom, `data-report="wg6pn"`) || !strings.Contains(dom, "seconds_since_handshake") {
			t.Errorf("the status page in Chromium lacks the mesh peers and their handshakes")
		}
		if dst := os.Getenv("EDGEPROXY_STATUS_PNG"); dst != "" {
			if err := chromium.Screenshot(bin, t.TempDir(), "http://admin:edge@"+e.status+"/", dst, 3*time.Second); err != nil {
				t.Error(err)
			}
		}
	} else {
		t.Fatal(err)
	}

	// 2. A backend registered at fra is routable at gru within 1 s, and a
	// client entering at gru is served by a fra backend over the mesh.
	if _, err := e.run(e.ns("be-fra"), "ip", "addr", "add", "fdaa:0:1:3::11/64", "dev", linkOf(t, e, e.ns("be-fra"), "fdaa:0:1:3::10"), "nodad"); err != nil {
		t.Fatal(err)
	}
	be2 := exec.Command("ip", "netns", "exec", e.ns("be-fra"), e.demo, "backend", "-listen", "[fdaa:0:1:3::11]:8080", "-id", "demo-fra-2", "-region", "eu")
	if err := be2.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be2.Process.Kill(); be2.Wait() })
	waitFor(t, 5*time.Second, "step 2: demo-fra-2 serving", func() bool {
		out, err := e.run(e.ns("be-fra"), "curl", "-s", "-m", "1", "http://[fdaa:0:1:3::11]:8080/")
		return err == nil && strings.HasPrefix(out, "hello from demo-fra-2")
	})
	token, _ := os.ReadFile(filepath.Join(e.dir, "api.token"))
	reg := exec.Command("ip", "netns", "exec", e.ns("be-fra"), caddyBin, "edgeroute", "register", "--api", "http://[fdaa:0:1:3::fe]:8081",
		"--id", "demo-fra-2", "--app", "demo", "--region", "eu", "--country", "DE", "--ip", "fdaa:0:1:3::11", "--port", "8080", "--ttl", "6s")
	reg.Env = append(os.Environ(), "EDGE_API_TOKEN="+strings.TrimSpace(string(token)))
	if err := reg.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Process.Kill(); reg.Wait() })
	var atFra, atGru time.Time
	regStart := time.Now()
	waitFor(t, 10*time.Second, "step 2: demo-fra-2 routable at fra and gru", func() bool {
		if atFra.IsZero() && e.backends("fra")["demo-fra-2"].Routable {
			atFra = time.Now()
		}
		if atGru.IsZero() && e.backends("gru")["demo-fra-2"].Routable {
			atGru = time.Now()
		}
		return !atFra.IsZero() && !atGru.IsZero()
	})
	if lag := atGru.Sub(atFra); lag > time.Second {
		t.Fatalf("step 2: demo-fra-2 routable at gru %v after fra, want within 1s", lag)
	}
	t.Logf("step 2: demo-fra-2 registered at fra after %v, routable at gru %v later", atFra.Sub(regStart).Round(time.Millisecond), atGru.Sub(atFra).Round(time.Millisecond))
	// Clients entering at the first POP, each from an address of its own
	// and holding its connection open, are spread over the backends by
	// load: one of them lands on a fra backend, through the mesh unless
	// the first POP is fra itself.
	link := linkOf(t, e, e.ns("client"), "203.0.113.2")
	held := map[string]string{}
	for i := 3; i <= 5; i++ {
		src := fmt.Sprintf("203.0.113.%d", i)
		if _, err := e.run(e.ns("client"), "ip", "addr", "add", src+"/24", "dev", link); err != nil {
			t.Fatal(err)
		}
		b, p, c := e.askHeld(src)
		t.Cleanup(func() { c.Close() })
		if p != first {
			t.Fatalf("step 2: a client from %s was served through %s, not %s", src, p, first)
		}
		held[b] = src
	}
	fraBackend := ""
	for b := range held {
		if strings.HasPrefix(b, "demo-fra-") {
			fraBackend = b
		}
	}
	if fraBackend == "" {
		t.Fatalf("step 2: no client entering at %s was served by a fra backend: %v", first, held)
	}
	t.Logf("step 2: a client entering at %s was served by %s over the mesh (clients holding connections: %v)", first, fraBackend, held)

	// 3. The preferred POP drained: the client moves to another POP, and
	// no request of a loop fails but the one in flight as the route
	// moves.
	// The status page of the first POP stays open in Chromium meanwhile.
	bin, _ := chromium.Path()
	page, err := chromium.Open(bin, t.TempDir(), "http://admin:edge@"+e.status+"/")
	if err != nil {
		t.Fatal(err)
	}
	defer page.Close()
	pageState := func(node string) string {
		v, _ := page.Eval(`(function(){var r=document.querySelector('tr[data-node="` + node + `"]');return r?r.getAttribute('data-state'):'';})()`)
		return v
	}
	waitFor(t, 10*time.Second, "the status page shows "+first+" serving", func() bool { return pageState(first) == "serving" })
	l := e.loop()
	time.Sleep(300 * time.Millisecond)
	drained := time.Now() // the drain takes effect while the command runs
	if out, err := e.run(e.ns(first), caddyBin, "edgeroute", "drain"); err != nil {
		t.Fatalf("drain: %v %s", err, out)
	}
	shown := waitFor(t, 2*time.Second, "step 3: the open status page shows "+first+" draining", func() bool { return pageState(first) == "draining" })
	t.Logf("step 3: the open status page in Chromium shows %s draining %v after the drain", first, shown.Round(time.Millisecond))
	waitFor(t, 15*time.Second, "step 3: the client moves off the drained POP", func() bool {
		p := l.lastPOP()
		return p != "" && p != first
	})
	moved := l.changedAt().Sub(drained)
	time.Sleep(time.Second)
	failures, byPOP := l.end()
	// Routers move packets, not connections: the one request in flight
	// when BIRD moves the route (the loop asks one at a time) reaches
	// the next POP mid-connection and is reset by it. Any other failure
	// is the drained POP's.
	var moving []failure
	for _, f := range failures {
		if f.at.After(drained) && f.at.Before(l.changedAt()) && strings.Contains(f.err, "connection reset") && len(moving) == 0 {
			moving = append(moving, f)
			continue
		}
		t.Fatalf("step 3: %d failed requests while %s drained: %v", len(failures), first, failures)
	}
	second := e.preferred()
	t.Logf("step 3: %s drained; the client moved to %s %v after the drain; requests reset in flight as the route moved: %d %v, others failed: none (%v)",
		first, second, moved.Round(time.Millisecond), len(moving), moving, byPOP)

	// 4. That POP killed with kill -9: clients are served again within
	// 2 s, and its registrations expire at the other POPs.
	pid, err := os.ReadFile(filepath.Join(e.dir, second, "caddy.pid"))
	if err != nil {
		t.Fatal(err)
	}
	l = e.loop()
	time.Sleep(300 * time.Millisecond)
	if out, err := exec.Command("kill", "-9", strings.TrimSpace(string(pid))).CombinedOutput(); err != nil {
		t.Fatalf("kill -9: %v %s", err, out)
	}
	killed := time.Now()
	var servedAgain time.Duration
	waitFor(t, 10*time.Second, "step 4: served again after kill -9", func() bool {
		p := l.lastPOP()
		if p != "" && p != second && time.Since(killed) > 50*time.Millisecond {
			servedAgain = time.Since(killed)
			return true
		}
		return false
	})
	failures, byPOP = l.end()
	if servedAgain > 2*time.Second {
		t.Fatalf("step 4: served again %v after kill -9 of %s, want within 2s", servedAgain, second)
	}
	third := e.preferred()
	t.Logf("step 4: %s killed; served again through %s after %v (%d failed requests meanwhile, %v)", second, third, servedAgain.Round(time.Millisecond), len(failures), byPOP)
	theirs := "demo-" + second + "-1"
	var expired time.Duration
	if second == "iad" || second == "fra" {
		expired = waitFor(t, 60*time.Second, "step 4: "+theirs+" expires at the other POPs", func() bool {
			for _, p := range []string{"gru", "iad", "fra"} {
				if p == second {
					continue
				}
				if _, ok := e.backends(p)[theirs]; ok {
					return false
				}
			}
			return true
		})
		t.Logf("step 4: %s, registered at the killed POP, expired everywhere after %v", theirs, expired.Round(100*time.Millisecond))
	}

	// 5. The POP restarted as printed: it catches up with the table,
	// re-meshes and announces again.
	restart := exec.Command("ip", "netns", "exec", e.ns(second), caddyBin, "start", "--config", filepath.Join(e.dir, second, "Caddyfile"),
		"--pidfile", filepath.Join(e.dir, second, "caddy.pid"))
	restarted := time.Now()
	// caddy start returns once the new process has loaded its config;
	// the process keeps no pipe of this test open.
	restart.Stdout, restart.Stderr = nil, nil
	if err := restart.Run(); err != nil {
		t.Fatalf("step 5: caddy start: %v", err)
	}
	started := time.Since(restarted)
	caughtUp := waitFor(t, 20*time.Second, "step 5: the restarted POP has demo-fra-2", func() bool {
		return e.backends(second)["demo-fra-2"].Routable
	})
	meshed := waitFor(t, 30*time.Second, "step 5: the restarted POP has a handshake with both others", func() bool {
		out, err := e.run(e.ns(second), "wg", "show", e.wg(second), "latest-handshakes")
		if err != nil {
			return false
		}
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] != "0" {
				n++
			}
		}
		return n == 2
	})
	announced := waitFor(t, 30*time.Second, "step 5: BIRD has the restarted POP's route again", func() bool {
		out, _ := e.run(e.ns("inet"), "birdc", "-s", filepath.Join(e.dir, "bird.ctl"), "show", "route", "192.0.2.1/32", "protocol", second)
		return strings.Contains(out, "unicast [")
	})
	waitFor(t, 30*time.Second, "step 5: "+theirs+" registers again", func() bool {
		_, ok := e.backends("gru")[theirs]
		return ok
	})
	back := time.Since(restarted)
	// The waits ran one after the other: each figure is the first time the
	// condition was seen, counted from the end of the wait before it.
	t.Logf("step 5: %s restarted (caddy start returned after %v); then caught up with the table in %v, meshed in %v more, announced in %v more; its backend registered again %v after the restart",
		second, started.Round(time.Millisecond), caughtUp.Round(time.Millisecond), meshed.Round(time.Millisecond), announced.Round(time.Millisecond), back.Round(100*time.Millisecond))
	if out, err := e.run(e.ns(first), caddyBin, "edgeroute", "undrain"); err != nil {
		t.Fatalf("undrain: %v %s", err, out)
	}

	// 6. dig at every POP returns the same backends, ordered for the
	// asking client: one in Germany gets fra's first, one in the US iad's.
	for subnet, wantFirst := range map[string]string{"193.99.144.80/32": "fdaa:0:1:3::", "8.8.8.8/32": "fdaa:0:1:2::"} {
		var answers []string
		for _, ip := range []string{"198.51.100.11", "198.51.100.12", "198.51.100.13"} {
			var got string
			waitForShow(t, 20*time.Second, "step 6: dig at "+ip+" answering the three backends", func() bool {
				out, err := e.run(e.ns("client"), "dig", "@"+ip, "demo.internal", "AAAA", "+short", "+subnet="+subnet)
				got = strings.TrimSpace(out)
				return err == nil && strings.Count(got, "\n") == 2 // three backends
			}, func() string {
				health, _ := e.run(e.ns("gru"), "curl", "-s", "http://127.0.0.1:2019/edgeroute/health")
				return fmt.Sprintf("last answer %q; gru's health view: %s", got, health)
			})
			if !strings.HasPrefix(got, wantFirst) {
				t.Errorf("step 6: dig @%s for a client in %s: %q, want %s... first", ip, subnet, got, wantFirst)
			}
			answers = append(answers, got)
		}
		if answers[0] != answers[1] || answers[1] != answers[2] {
			t.Errorf("step 6: the POPs answer differently for %s: %q", subnet, answers)
		}
		t.Logf("step 6: every POP answers demo.internal for %s with %q", subnet, strings.ReplaceAll(answers[0], "\n", " "))
	}
}

// linkOf is the name of the link that holds addr in namespace ns.
func linkOf(t *testing.T, e *edgeDemo, ns, addr string) string {
	t.Helper()
	out, err := e.run(ns, "ip", "-o", "addr", "show", "to", addr)
	f := strings.Fields(out)
	if err != nil || len(f) < 2 {
		t.Fatalf("the link of %s in %s: %v %s", addr, ns, err, out)
	}
	return f[1]
}

// askHeld sends one request to the anycast address from the client's
// address src and keeps the connection open (the backend keeps it alive),
// so it counts as an active connection at the POP.
func (e *edgeDemo) askHeld(src string) (backend, pop string, c net.Conn) {
	e.t.Helper()
	ns := &netns.NS{Name: e.ns("client")}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := ns.DialFrom(ctx, "tcp", src, "192.0.2.1:80")
	if err != nil {
		e.t.Fatalf("from %s: %v", src, err)
	}
	c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		c.Close()
		e.t.Fatalf("from %s: %v", src, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return resp.Header.Get("X-Backend"), resp.Header.Get("X-Pop"), c
}
