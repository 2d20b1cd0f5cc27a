package edgeroute_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/chromium"
	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

// statusCluster starts three POPs replicating on loopback, gru (sa), iad
// (us) and fra (eu); gru serves the status page on an open site and on one
// behind basic_auth (user admin, password secret).
func statusCluster(t *testing.T) (pops map[string]*popctl.POP, page, protected string) {
	t.Helper()
	hash, err := exec.Command(caddyBin, "hash-password", "--plaintext", "secret").Output()
	if err != nil {
		t.Fatalf("caddy hash-password: %v", err)
	}
	open, locked := freePort(t), freePort(t)
	sites := fmt.Sprintf(`http://127.0.0.1:%d {
	edgeroute_status {
		refresh 250ms
	}
}

http://127.0.0.1:%d {
	basic_auth {
		admin %s
	}
	edgeroute_status
}
`, open, locked, strings.TrimSpace(string(hash)))
	pops = map[string]*popctl.POP{}
	var seed string
	for _, c := range []struct{ name, region, country string }{{"gru", "sa", "BR"}, {"iad", "us", "US"}, {"fra", "eu", "DE"}} {
		o := popctl.Options{Bin: caddyBin, Dir: filepath.Join(t.TempDir(), c.name), Name: c.name, Region: c.region,
			Country: c.country, App: "demo", ClusterExtra: "sync_interval 200ms"}
		if seed != "" {
			o.Join = []string{seed}
		}
		if c.name == "gru" {
			o.Sites = sites
		}
		p, err := popctl.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			p.Kill()
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.Kill()
			if t.Failed() {
				t.Logf("%s log:\n%s", c.name, lastLines(p.Logs(), 40))
			}
		})
		if seed == "" {
			seed = p.ClusterAddr
		}
		pops[c.name] = p
	}
	// Backends of app demo, written at fra as an operator would; each POP
	// gets them by replication.
	if _, err := pops["fra"].SQL(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('demo-fra-1','demo','eu','DE','127.0.0.1',9),('demo-iad-1','demo','us','US','127.0.0.1',9)`); err != nil {
		t.Fatal(err)
	}
	for name, p := range pops {
		if err := p.WaitBackends(2, 10*time.Second); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return pops, fmt.Sprintf("http://127.0.0.1:%d/", open), fmt.Sprintf("http://127.0.0.1:%d/", locked)
}

// rowState finds the data-state of a POP's row in the rendered page.
func rowState(dom, node string) string {
	m := regexp.MustCompile(`<tr data-node="` + regexp.QuoteMeta(node) + `" data-state="([^"]*)"`).FindStringSubmatch(dom)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestStatusPageInBrowser loads the status page of gru in headless
// Chromium: the three POPs with their regions and states in the picture
// and the table, the app's backends; then, with the page open, drains gru
// and undrains it, and kills iad, reading the page as it changes.
func TestStatusPageInBrowser(t *testing.T) {
	bin, err := chromium.Path()
	if err != nil {
		t.Skip(err)
	}
	pops, page, protected := statusCluster(t)

	// basic_auth protects the page like any Caddy site.
	resp, err := http.Get(protected)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the protected status page answered %d without credentials, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", protected+"?format=json", nil)
	req.SetBasicAuth("admin", "secret")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"self": "gru"`) {
		t.Fatalf("with credentials: %d %s", resp.StatusCode, body)
	}

	// Wait until gru has every POP's row and sees both others serving: the
	// signal each POP publishes in its replicated row.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(page + "?format=fragment")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			dom := string(b)
			if rowState(dom, "gru") == "serving" && rowState(dom, "iad") == "serving" && rowState(dom, "fra") == "serving" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("gru does not see the three POPs serving within 15s:\n%s", dom)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	profile := t.TempDir()
	dom, err := chromium.DumpDOM(bin, profile, page, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for node, want := range map[string]string{"gru": "serving", "iad": "serving", "fra": "serving"} {
		if got := rowState(dom, node); got != want {
			t.Errorf("rendered page: %s is %q, want %q", node, got, want)
		}
		if !strings.Contains(dom, `<g class="pop ok" data-node="`+node+`"`) {
			t.Errorf("the picture has no healthy POP %s", node)
		}
	}
	for _, want := range []string{`data-backend="demo-fra-1"`, `data-backend="demo-iad-1"`, "this POP is <b", ">US<", ">EU<", ">SA<"} {
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %s", want)
		}
	}
	if strings.Contains(dom, "disconnected") {
		t.Errorf("the page's refresh failed in the browser:\n%s", dom)
	}
	png := filepath.Join(t.TempDir(), "status.png")
	if err := chromium.Screenshot(bin, profile, page, png, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if dst := os.Getenv("EDGEPROXY_STATUS_PNG"); dst != "" {
		b, _ := os.ReadFile(png)
		os.WriteFile(dst, b, 0o644)
	}
	if t.Failed() {
		return
	}

	// The page stays open while the POP changes.
	s, err := chromium.Open(bin, t.TempDir(), page)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	state := func(node string) string {
		v, err := s.Eval(`(function(){var r=document.querySelector('tr[data-node="` + node + `"]');return r?r.getAttribute('data-state'):'';})()`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitState := func(node string, within time.Duration, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			got := state(node)
			for _, w := range want {
				if got == w {
					return time.Since(start)
				}
			}
			if time.Since(start) > within {
				t.Fatalf("the open page shows %s as %q after %v, want %v", node, got, within, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitState("gru", 10*time.Second, "serving")
	loadedAt, _ := s.Eval(`document.body.getAttribute('data-loaded')`)

	if code, out, err := pops["gru"].AdminPost("/edgeroute/drain", `{"reason":"status page test"}`); err != nil || code != http.StatusOK {
		t.Fatalf("drain: %d %s %v", code, out, err)
	}
	took := waitState("gru", 2*time.Second, "draining")
	if again, _ := s.Eval(`document.body.getAttribute('data-loaded')`); again != loadedAt {
		t.Fatalf("the page was reloaded (%s, then %s) instead of refreshed in place", loadedAt, again)
	}
	t.Logf("a drained POP shows as draining on its open status page after %v", took.Round(time.Millisecond))
	if code, out, err := pops["gru"].AdminPost("/edgeroute/undrain", ""); err != nil || code != http.StatusOK {
		t.Fatalf("undrain: %d %s %v", code, out, err)
	}
	t.Logf("undrained: serving again after %v", waitState("gru", 2*time.Second, "serving").Round(time.Millisecond))

	// Another POP drained: its published signal replicates to this page,
	// with no anycast app involved.
	if code, out, err := pops["fra"].AdminPost("/edgeroute/drain", `{"reason":"status page test"}`); err != nil || code != http.StatusOK {
		t.Fatalf("drain fra: %d %s %v", code, out, err)
	}
	t.Logf("fra drained: gru's open page shows it draining after %v", waitState("fra", 2*time.Second, "draining").Round(time.Millisecond))
	if code, out, err := pops["fra"].AdminPost("/edgeroute/undrain", ""); err != nil || code != http.StatusOK {
		t.Fatalf("undrain fra: %d %s %v", code, out, err)
	}
	waitState("fra", 2*time.Second, "serving")

	pops["iad"].Kill()
	took = waitState("iad", 30*time.Second, "suspect", "dead")
	t.Logf("iad killed: the page shows it %s after %v", state("iad"), took.Round(time.Millisecond))
	if got := state("fra"); got != "serving" {
		t.Errorf("fra shows %q after iad was killed, want serving", got)
	}
}
