package edgeroute_test

// Through the built binary: v1's Auto-Discovery API on a Caddy site,
// the admin API's write side, heartbeat expiry, the register CLI.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const apiToken = "t0ken-for-tests"

// discoveryPOP is a POP whose Caddyfile also has an HTTP site serving the
// API at p.api.
type discoveryPOP struct {
	*pop
	api string
}

func startDiscoveryPOP(t *testing.T, c popConfig, ttl string) *discoveryPOP {
	t.Helper()
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	site := fmt.Sprintf(`
http://%s {
	edgeroute_api {
		token {env.EDGE_API_TOKEN}
		heartbeat_ttl %s
	}
	respond "not the API" 200
}
`, apiAddr, ttl)
	return &discoveryPOP{pop: startPOPWith(t, c, site, "EDGE_API_TOKEN="+apiToken), api: "http://" + apiAddr}
}

// curl runs the real curl, as v1's documentation does, and returns the
// status code and body.
func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-s", "-w", "\n%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	s := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(s, "\n")
	var code int
	fmt.Sscan(s[i+1:], &code)
	return code, s[:max(i, 0)]
}

func jsonObj(t *testing.T, s string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("not JSON: %v: %q", err, s)
	}
	return v
}

func (p *discoveryPOP) rows() string {
	out, err := exec.Command("sqlite3", p.db, "SELECT id FROM backends ORDER BY id").CombinedOutput()
	if err != nil {
		p.t.Fatalf("sqlite3: %v %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// v1's documented curl commands, verbatim plus the token header, against
// the binary; the registered backend receives connections within a second
// and stops at once when deregistered.
func TestV1DiscoveryCurlCommands(t *testing.T) {
	p := startDiscoveryPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: "affinity off"}, "60s")
	be := startBackend(t, "backend-eu-1")
	auth := "Authorization: Bearer " + apiToken
	api := p.api

	code, body := curl(t, api+"/health")
	if h := jsonObj(t, body); code != 200 || h["status"] != "ok" || h["backends"] != 0.0 || h["version"] == "" || h["uptime_secs"] == nil {
		t.Fatalf("GET /health: %d %s", code, body)
	}
	// The documented registration, with the backend's real port.
	registered := time.Now()
	code, body = curl(t, "-X", "POST", api+"/api/v1/register",
		"-H", "Content-Type: application/json", "-H", auth,
		"-d", fmt.Sprintf(`{
    "id": "backend-eu-1",
    "app": "myapp",
    "region": "eu",
    "ip": "127.0.0.1",
    "port": %d,
    "weight": 2,
    "soft_limit": 100,
    "hard_limit": 150
  }`, be.port()))
	if r := jsonObj(t, body); code != 201 || r["id"] != "backend-eu-1" || r["registered"] != true || r["message"] != "Backend registered successfully" {
		t.Fatalf("register: %d %s", code, body)
	}
	took := eventually(t, time.Second, func() string {
		if got := p.via(clientFR); got != "backend-eu-1" {
			return "connection went to " + fmt.Sprintf("%q", got)
		}
		return ""
	})
	t.Logf("registered backend received a connection %v after the registration answer (%v after the request)", took.Round(time.Millisecond), time.Since(registered).Round(time.Millisecond))

	code, body = curl(t, "-X", "POST", api+"/api/v1/heartbeat/backend-eu-1", "-H", auth)
	if r := jsonObj(t, body); code != 200 || r["id"] != "backend-eu-1" || r["status"] != "ok" {
		t.Fatalf("heartbeat: %d %s", code, body)
	}
	code, body = curl(t, api+"/api/v1/backends", "-H", auth)
	list := jsonObj(t, body)
	if code != 200 || list["total"] != 1.0 {
		t.Fatalf("list: %d %s", code, body)
	}
	b := list["backends"].([]any)[0].(map[string]any)
	for k, want := range map[string]any{"id": "backend-eu-1", "app": "myapp", "region": "eu", "ip": "127.0.0.1", "port": float64(be.port()), "healthy": true, "last_heartbeat_secs": 0.0} {
		if b[k] != want {
			t.Errorf("list: %s = %v, want %v", k, b[k], want)
		}
	}
	code, body = curl(t, api+"/api/v1/backends/backend-eu-1", "-H", auth)
	if r := jsonObj(t, body); code != 200 || r["id"] != "backend-eu-1" || r["country"] != "DE" || r["registered_secs"] == nil {
		t.Fatalf("get: %d %s", code, body)
	}
	// Paths outside the API reach the rest of the site.
	if code, body = curl(t, api+"/index.html"); code != 200 || body != "not the API" {
		t.Fatalf("other path: %d %q", code, body)
	}
	code, body = curl(t, "-X", "DELETE", api+"/api/v1/backends/backend-eu-1", "-H", auth)
	deleted := time.Now()
	if r := jsonObj(t, body); code != 200 || r["id"] != "backend-eu-1" || r["deregistered"] != true {
		t.Fatalf("delete: %d %s", code, body)
	}
	eventually(t, 300*time.Millisecond, func() string {
		if got := p.via(clientFR); got != "" {
			return "still routed to " + got
		}
		return ""
	})
	t.Logf("deregistered backend out of rotation %v after the answer", time.Since(deleted).Round(time.Millisecond))
	if code, body = curl(t, api+"/api/v1/backends/backend-eu-1", "-H", auth); code != 404 {
		t.Fatalf("get after delete: %d %s", code, body)
	}
	if code, _ = curl(t, "-X", "POST", api+"/api/v1/heartbeat/backend-eu-1", "-H", auth); code != 404 {
		t.Fatalf("heartbeat after delete: %d", code)
	}
	if code, body = curl(t, api+"/health"); jsonObj(t, body)["backends"] != 0.0 {
		t.Fatalf("health after delete: %s", body)
	}
}

// A backend that stops heartbeating stops receiving connections after the
// TTL and is removed from the table; one that keeps heartbeating stays.
func TestHeartbeatExpiryThroughBinary(t *testing.T) {
	p := startDiscoveryPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: "affinity off"}, "1500ms")
	fr, de := startBackend(t, "fr-1"), startBackend(t, "de-1")
	auth := "Authorization: Bearer " + apiToken
	reg := func(id, cc string, port int) {
		code, body := curl(t, "-X", "POST", p.api+"/api/v1/register", "-H", auth,
			"-d", fmt.Sprintf(`{"id":%q,"app":"myapp","region":"eu","country":%q,"ip":"127.0.0.1","port":%d}`, id, cc, port))
		if code != 201 {
			t.Fatalf("register %s: %d %s", id, code, body)
		}
	}
	reg("fr-1", "FR", fr.port())
	reg("de-1", "DE", de.port())
	start := time.Now()
	eventually(t, time.Second, func() string {
		if got := p.via(clientFR); got != "fr-1" {
			return "got " + got
		}
		return ""
	})
	// de-1 keeps heartbeating; fr-1 goes silent.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(400 * time.Millisecond):
				exec.Command("curl", "-s", "-X", "POST", p.api+"/api/v1/heartbeat/de-1", "-H", auth).Run()
			}
		}
	}()
	for time.Since(start) < 1200*time.Millisecond {
		if got := p.via(clientFR); got != "fr-1" {
			t.Fatalf("fr-1 lost traffic %v after registering, before its TTL: got %q", time.Since(start), got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	eventually(t, 2*time.Second, func() string {
		if got := p.via(clientFR); got != "de-1" {
			return "still got " + got
		}
		return ""
	})
	t.Logf("silent backend out of rotation %v after its last heartbeat (TTL 1.5s)", time.Since(start).Round(time.Millisecond))
	if rows := p.rows(); rows != "de-1" {
		t.Fatalf("rows after expiry: %q", rows)
	}
	time.Sleep(2 * time.Second)
	if got := p.via(clientFR); got != "de-1" {
		t.Fatalf("heartbeating backend expired: got %q", got)
	}
	if v := p.metric("edgeroute_heartbeat_expirations_total"); v != "1" {
		t.Fatalf("expiration metric %q", v)
	}
}

// Bad input through the binary: nothing is written.
func TestDiscoveryBadInputThroughBinary(t *testing.T) {
	p := startDiscoveryPOP(t, popConfig{}, "60s")
	auth := "Authorization: Bearer " + apiToken
	good := `{"id":"x","app":"myapp","region":"eu","ip":"10.0.0.1","port":80}`
	big := filepath.Join(t.TempDir(), "big.json")
	os.WriteFile(big, []byte(`{"id":"x","app":"myapp","region":"eu","ip":"10.0.0.1","port":80,"pad":"`+strings.Repeat("x", 1<<20)+`"}`), 0o644)
	cases := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no token", []string{"-d", good}, 401, "token"},
		{"wrong token", []string{"-H", "Authorization: Bearer nope", "-d", good}, 401, "token"},
		{"port 0", []string{"-H", auth, "-d", strings.Replace(good, "80", "0", 1)}, 400, "field port"},
		{"port 65536", []string{"-H", auth, "-d", strings.Replace(good, "80", "65536", 1)}, 400, "field port"},
		{"not an IP", []string{"-H", auth, "-d", strings.Replace(good, "10.0.0.1", "db.internal", 1)}, 400, "field ip"},
		{"missing app", []string{"-H", auth, "-d", strings.Replace(good, `"app":"myapp",`, "", 1)}, 400, "missing required field: app"},
		{"malformed", []string{"-H", auth, "-d", `{"id":"x","app":`}, 400, "malformed JSON"},
		{"wrong type", []string{"-H", auth, "-d", strings.Replace(good, `"myapp"`, `["myapp"]`, 1)}, 400, "field app"},
		{"1 MiB", []string{"-H", auth, "--data-binary", "@" + big}, 413, "1 MiB"},
		{"long id", []string{"-H", auth, "-d", strings.Replace(good, `"x"`, `"`+strings.Repeat("i", 256)+`"`, 1)}, 400, "field id"},
		{"control id", []string{"-H", auth, "-d", strings.Replace(good, `"x"`, `"a\u0007b"`, 1)}, 400, "control character"},
	}
	for _, c := range cases {
		code, body := curl(t, append([]string{"-X", "POST", p.api + "/api/v1/register"}, c.args...)...)
		if code != c.code || !strings.Contains(body, c.msg) {
			t.Errorf("%s: %d %s, want %d with %q", c.name, code, body, c.code, c.msg)
		}
	}
	for _, m := range [][]string{{"GET", "/api/v1/backends"}, {"GET", "/api/v1/backends/x"}, {"DELETE", "/api/v1/backends/x"}, {"POST", "/api/v1/heartbeat/x"}} {
		if code, _ := curl(t, "-X", m[0], p.api+m[1]); code != 401 {
			t.Errorf("%s %s without a token: %d", m[0], m[1], code)
		}
	}
	if rows := p.rows(); rows != "" {
		t.Fatalf("rows written by bad requests: %q", rows)
	}
	if strings.Contains(p.logs(), apiToken) {
		t.Fatal("the token appears in Caddy's log")
	}
}

// The admin API's write side.
func TestAdminBackendsWriteAPI(t *testing.T) {
	p := startPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: "affinity off"})
	be := startBackend(t, "adm-1")
	do := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequest(method, "http://"+p.admin+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v map[string]any
		json.Unmarshal(b, &v)
		return resp.StatusCode, v
	}
	code, v := do("POST", "/edgeroute/backends", fmt.Sprintf(`{"id":"adm-1","app":"myapp","region":"eu","ip":"127.0.0.1","port":%d}`, be.port()))
	if code != 201 || v["registered"] != true {
		t.Fatalf("admin register: %d %v", code, v)
	}
	eventually(t, time.Second, func() string {
		if got := p.via(clientFR); got != "adm-1" {
			return "got " + got
		}
		return ""
	})
	if code, v = do("GET", "/edgeroute/backends/adm-1", ""); code != 200 || v["heartbeat"] != false || v["weight"] != 2.0 {
		t.Fatalf("admin get: %d %v", code, v)
	}
	if code, v = do("POST", "/edgeroute/backends", `{"id":"adm-2","app":"myapp","region":"eu","ip":"10.0.0.1","port":99999}`); code != 400 || !strings.Contains(fmt.Sprint(v["error"]), "field port") {
		t.Fatalf("admin bad port: %d %v", code, v)
	}
	if code, _ = do("POST", "/edgeroute/backends/adm-1/heartbeat?ttl=30s", ""); code != 200 {
		t.Fatalf("admin heartbeat: %d", code)
	}
	if code, v = do("GET", "/edgeroute/health", ""); code != 200 || len(v["apps"].([]any)) != 1 {
		t.Fatalf("admin health: %d %v", code, v)
	}
	if code, _ = do("DELETE", "/edgeroute/backends/adm-1", ""); code != 200 {
		t.Fatalf("admin delete: %d", code)
	}
	eventually(t, 300*time.Millisecond, func() string {
		if got := p.via(clientFR); got != "" {
			return "still routed to " + got
		}
		return ""
	})
	if code, _ = do("DELETE", "/edgeroute/backends/adm-1", ""); code != 404 {
		t.Fatalf("admin delete twice: %d", code)
	}
}

// The register client registers, heartbeats, and deregisters on SIGTERM.
func TestRegisterCLIDeregistersOnSIGTERM(t *testing.T) {
	p := startDiscoveryPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: "affinity off"}, "1500ms")
	be := startBackend(t, "cli-1")
	cmd := exec.Command(caddyBin, "edgeroute", "register", "--api", p.api, "--id", "cli-1", "--app", "myapp",
		"--region", "eu", "--country", "FR", "--ip", "127.0.0.1", "--port", fmt.Sprint(be.port()), "--ttl", "1500ms")
	cmd.Env = append(os.Environ(), "EDGE_API_TOKEN="+apiToken)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	eventually(t, 3*time.Second, func() string {
		if got := p.via(clientFR); got != "cli-1" {
			return "got " + got
		}
		return ""
	})
	// Heartbeats keep it past several TTLs.
	time.Sleep(4 * time.Second)
	if got := p.via(clientFR); got != "cli-1" {
		t.Fatalf("registered backend lost after 4s of heartbeats: %q\n%s", got, out.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	stopped := time.Now()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("register client exited with %v:\n%s", err, out.String())
	}
	eventually(t, 300*time.Millisecond, func() string {
		if rows := p.rows(); rows != "" {
			return "rows left: " + rows
		}
		if got := p.via(clientFR); got != "" {
			return "still routed to " + got
		}
		return ""
	})
	t.Logf("deregistered %v after SIGTERM; client said:\n%s", time.Since(stopped).Round(time.Millisecond), out.String())
	if !strings.Contains(out.String(), "deregistered cli-1") {
		t.Fatalf("client output:\n%s", out.String())
	}
}

func execCommand(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
