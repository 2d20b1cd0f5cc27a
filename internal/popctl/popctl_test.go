package popctl

// These tests start the Caddy binary built from ./builds/caddy (or
// $EDGEPROXY_CADDY) through the harness, as the tests that use it do.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

var caddyBin string

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) != "" {
		os.Exit(runParent()) // a parent for TestDieWithParent, not the tests
	}
	if _, err := exec.LookPath("sqlite3"); err != nil {
		fmt.Fprintln(os.Stderr, "popctl: the sqlite3 CLI is required (apt-get install sqlite3)")
		os.Exit(1)
	}
	bin, cleanup, err := CaddyBinary("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// A POP on its own, served by a layer4 route or by the app's listen
// block, with handler options, extra edgeroute lines, a site and extra
// environment: the harness starts it, edits its table, routes through it,
// reads its admin API and metrics, and stops it with SIGTERM.
func TestStandalonePOP(t *testing.T) {
	for _, listener := range []bool{false, true} {
		t.Run(fmt.Sprintf("listener=%v", listener), func(t *testing.T) {
			sitePort, err := FreePort("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			site := fmt.Sprintf("http://127.0.0.1:%d", sitePort)
			p, err := New(Options{Bin: caddyBin, Dir: t.TempDir(), Name: "solo", NoCluster: true,
				Listener: listener, Handler: "tries 2", Extra: "affinity off",
				Sites: fmt.Sprintf("\n%s {\n\trespond {env.POPCTL_SITE_TEXT} 200\n}\n", site),
				Env:   []string{"POPCTL_SITE_TEXT=served-by-the-site"}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			if p.ClusterAddr != "" || strings.Contains(p.Caddyfile(), "cluster {") {
				t.Fatalf("a POP without a cluster got one:\n%s", p.Caddyfile())
			}

			// The frontend asked for is the one Caddy runs.
			var cfg struct {
				Apps map[string]any `json:"apps"`
			}
			if code, err := p.AdminGet("/config/", &cfg); err != nil || code != 200 {
				t.Fatalf("GET /config/: %d %v", code, err)
			}
			if _, layer4 := cfg.Apps["layer4"]; layer4 == listener {
				t.Fatalf("listener=%v but layer4 app present=%v:\n%s", listener, layer4, p.Caddyfile())
			}

			g, err := Greeter("be-1")
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			if _, err := p.SQL(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('be-1','myapp','sa','BR','127.0.0.1',%d)`,
				g.Addr().(*net.TCPAddr).Port)); err != nil {
				t.Fatal(err)
			}
			if err := p.WaitBackends(1, 2*time.Second); err != nil {
				t.Fatal(err)
			}
			c, err := p.Dial("127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if c.Backend != "be-1" {
				t.Fatalf("routed to %q, want be-1", c.Backend)
			}
			if got, err := p.SQL(`SELECT id FROM backends`); err != nil || got != "be-1" {
				t.Fatalf("sqlite3 read back %q %v", got, err)
			}
			if v, err := p.Metric("edgeroute_table_stale"); err != nil || v != "0" {
				t.Fatalf("edgeroute_table_stale = %q %v", v, err)
			}

			// The site and the environment reached the process.
			resp, err := http.Get(site)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "served-by-the-site" {
				t.Fatalf("site answered %q", body)
			}

			if err := p.Terminate(); err != nil {
				t.Fatal(err)
			}
			if err := p.Wait(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if !p.Exited() || p.Cmd().ProcessState == nil {
				t.Fatal("the process is not reported as exited")
			}
			if got := p.Via(); got != "" {
				t.Fatalf("a stopped POP still routes to %q", got)
			}
		})
	}
}

// A POP whose configuration Caddy refuses: Launch returns at once, and
// waiting for it reports the exit with the process's own words.
func TestStartFailureCarriesTheLog(t *testing.T) {
	p, err := New(Options{Bin: caddyBin, Dir: t.TempDir(), NoCluster: true, Extra: "no_such_option 1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.Launch(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.WaitReady(StartTimeout)
	if err == nil || !strings.Contains(err.Error(), "exited during start") || !strings.Contains(err.Error(), "no_such_option") {
		t.Fatalf("start of a refused config: %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("the exit was reported only after %v", time.Since(start))
	}
}

// A POP killed with SIGKILL is gone when Kill returns, and starts again on
// the same directory and ports.
func TestKillAndRestart(t *testing.T) {
	p, err := New(Options{Bin: caddyBin, Dir: t.TempDir(), NoCluster: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	pid := p.PID()
	p.Kill()
	if !p.Exited() || syscall.Kill(pid, 0) == nil {
		t.Fatalf("process %d still there after Kill", pid)
	}
	if ws := p.Cmd().ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process ended with %v, want SIGKILL", p.Cmd().ProcessState)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if p.PID() == pid {
		t.Fatal("restart reused the old process")
	}
	if code, err := p.AdminGet("/edgeroute/backends", nil); err != nil || code != 200 {
		t.Fatalf("admin after restart: %d %v", code, err)
	}
}
