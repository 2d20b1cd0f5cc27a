package bgp_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/anycast/birdtest"
	"github.com/edgeproxy/edgeproxy/store"
)

// Two POPs announce 192.0.2.1/32 to one BIRD router, which installs the
// best route in its kernel and forwards clients to it. This test process
// is the client, on the router's other side. While the preferred POP
// drains and stops, a client loop opening a connection every 20 ms sees
// no failure: GRACEFUL_SHUTDOWN moves the route before the POP withdraws,
// and its listener stays open until then.

const twoPopRouter = `
router id 198.51.100.1;
protocol device { scan time 1; }
protocol kernel { ipv4 { export all; }; }
filter from_pop {
	if (65535, 0) ~ bgp_community then bgp_local_pref = 0;
	accept;
}
template bgp pops {
	local as 65000;
	hold time 9;
	passive on;
	error wait time 1, 5;
	ipv4 { import filter from_pop; export none; };
}
protocol bgp pop1 from pops { local 198.51.100.1; neighbor 198.51.100.2 as 65101; }
protocol bgp pop2 from pops { local 198.51.100.65; neighbor 198.51.100.66 as 65101; }
`

// nsPOP is a POP's Caddy running in a namespace of its own, its admin API
// on a unix socket.
type nsPOP struct {
	t      *testing.T
	name   string
	dir    string
	sock   string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

func startNsPOP(t *testing.T, ns, name, addr, routerAddr string, med int) *nsPOP {
	p := &nsPOP{t: t, name: name, dir: t.TempDir()}
	p.sock = filepath.Join(p.dir, "admin.sock")
	db := filepath.Join(p.dir, "routing.db")
	conf := fmt.Sprintf(`{
	admin unix/%s
	edgeroute {
		db %s
		node %s
		region sa
		country BR
		listen :8080 {
			app myapp
		}
	}
	bgp {
		asn       65101
		router_id %s
		peer %s {
			remote_as     65000
			hold          9s
			connect_retry 1s
		}
		announce 192.0.2.1/32 {
			when           myapp
			assign         lo
			med            %d
			rise           1
			announce_delay 0s
		}
		drain {
			wait 3s
		}
	}
}
`, p.sock, db, name, addr, routerAddr, med)
	cf := filepath.Join(p.dir, "Caddyfile")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	p.log, err = os.Create(filepath.Join(p.dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command("ip", "netns", "exec", ns, caddyBin, "run", "--config", cf, "--adapter", "caddyfile")
	p.cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+p.dir, "XDG_CONFIG_HOME="+p.dir, "HOME="+p.dir)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// The table with the app's backend, the Caddy of this POP itself.
	seedTable(t, db)
	// The POP's backend is a process of its own in the POP's namespace:
	// this test binary, re-executed (see TestMain).
	self, _ := os.Executable()
	backend := exec.Command("ip", "netns", "exec", ns, self)
	backend.Env = append(os.Environ(), envBackend+"="+name)
	backend.Stdout, backend.Stderr = p.log, p.log
	if err := backend.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Process.Kill(); backend.Wait() })
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			out, _ := os.ReadFile(p.log.Name())
			t.Logf("%s log:\n%s", name, out)
		}
	})
	if _, ok := birdtest.Wait(15*time.Second, func() bool { return p.get("/bgp/") == 200 }); !ok {
		out, _ := os.ReadFile(p.log.Name())
		t.Fatalf("%s did not start:\n%s", name, out)
	}
	return p
}

// envBackend makes the test binary a backend that answers every request
// with an HTTP response naming its POP.
const envBackend = "EDGEPROXY_BGP_BACKEND"

func serveBackend(name string) {
	ln, err := net.Listen("tcp", "127.0.0.1:9001")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			// Read the request before answering: closing with unread
			// data would reset the connection.
			buf := make([]byte, 0, 512)
			tmp := make([]byte, 512)
			for !strings.Contains(string(buf), "\r\n\r\n") {
				n, err := c.Read(tmp)
				if err != nil {
					return
				}
				buf = append(buf, tmp[:n]...)
			}
			fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(name), name)
		}()
	}
}

func seedTable(t *testing.T, db string) {
	t.Helper()
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	p := &popProc{t: t, db: db}
	p.sql(`INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit)
		VALUES ('self','myapp','sa','BR','127.0.0.1',9001,1,1,100,200)`)
}

func (p *nsPOP) client() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", p.sock)
		}}}
}

func (p *nsPOP) get(path string) int {
	resp, err := p.client().Get("http://127.0.0.1" + path)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestTwoPopsClientSeesNoFailureWhileOneDrainsAndStops(t *testing.T) {
	birdtest.Skip(t)
	if birdtest.Inside() == "" {
		t.Skip("needs the test namespace that TestMain creates when run as root")
	}
	pid := os.Getpid()
	rtr := birdtest.NS(t, fmt.Sprintf("bgpplug%d-r2", pid))
	ns1 := birdtest.NS(t, fmt.Sprintf("bgpplug%d-p1", pid))
	ns2 := birdtest.NS(t, fmt.Sprintf("bgpplug%d-p2", pid))
	birdtest.Veth(t, "", "vc0", []string{"203.0.113.2/24"}, rtr, "rc0", []string{"203.0.113.1/24"})
	birdtest.Veth(t, rtr, "r1", []string{"198.51.100.1/26"}, ns1, "p1", []string{"198.51.100.2/26"})
	birdtest.Veth(t, rtr, "r2", []string{"198.51.100.65/26"}, ns2, "p2", []string{"198.51.100.66/26"})
	birdtest.IP(t, "route", "add", "192.0.2.0/24", "via", "203.0.113.1")
	t.Cleanup(func() { exec.Command("ip", "route", "del", "192.0.2.0/24").Run() })
	birdtest.IP(t, "-n", ns1, "route", "add", "203.0.113.0/24", "via", "198.51.100.1")
	birdtest.IP(t, "-n", ns2, "route", "add", "203.0.113.0/24", "via", "198.51.100.65")
	if out, err := exec.Command("ip", "netns", "exec", rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	bird := birdtest.StartBird(t, rtr, twoPopRouter)

	pop1 := startNsPOP(t, ns1, "pop1", "198.51.100.2", "198.51.100.1", 10)
	pop2 := startNsPOP(t, ns2, "pop2", "198.51.100.66", "198.51.100.65", 20)
	bird.WaitEstablished(20*time.Second, "pop1", "pop2")

	ask := func() (string, error) {
		c, err := net.DialTimeout("tcp", "192.0.2.1:8080", 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
		b, err := io.ReadAll(c)
		if err != nil {
			return "", err
		}
		for _, n := range []string{"pop1", "pop2"} {
			if strings.HasSuffix(string(b), n) {
				return n, nil
			}
		}
		return "", fmt.Errorf("unexpected answer %q", b)
	}
	if _, ok := birdtest.Wait(15*time.Second, func() bool { who, _ := ask(); return who == "pop1" }); !ok {
		out, _ := exec.Command("ip", "-n", rtr, "route").CombinedOutput()
		who, err := ask()
		t.Fatalf("clients do not reach pop1 (lower MED): %q %v\nrouter:\n%s\n%s", who, err, out, bird.MustC("show", "route", "all"))
	}

	var mu sync.Mutex
	counts := map[string]int{}
	var failures []string
	var order []string
	var start time.Time
	var switched time.Duration // first answer from pop2 after the stop began
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			who, err := ask()
			mu.Lock()
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
			} else {
				counts[who]++
				if len(order) == 0 || order[len(order)-1] != who {
					order = append(order, who)
					if who == "pop2" && !start.IsZero() {
						switched = time.Since(start)
					}
				}
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	mu.Lock()
	start = time.Now()
	mu.Unlock()
	stopped := make(chan struct{})
	go func() {
		exec.Command(caddyBin, "stop", "--address", "unix/"+pop1.sock).Run()
		close(stopped)
	}()
	select {
	case <-pop1.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("pop1 did not exit")
	}
	exitedAfter := time.Since(start)
	<-stopped
	time.Sleep(time.Second)
	close(stop)
	<-done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("pop1 stopped (drain wait 3s): clients on pop2 from %v, pop1 exited after %v; client connections: %v, order %v, failures %d",
		switched.Round(time.Millisecond), exitedAfter.Round(time.Millisecond), counts, order, len(failures))
	if len(failures) > 0 {
		t.Errorf("client failures while pop1 drained and stopped: %v", failures)
	}
	if len(order) != 2 || order[0] != "pop1" || order[1] != "pop2" || counts["pop2"] < 10 {
		t.Errorf("clients went %v (%v), want pop1 then pop2 only", order, counts)
	}
	if exitedAfter < 3*time.Second {
		t.Errorf("pop1 exited after %v, before its drain wait", exitedAfter)
	}
	_ = pop2
}
