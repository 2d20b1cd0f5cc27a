package discovery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

const token = "s3cret-token"

func newAPI(t *testing.T) (*API, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "routing.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	a := &API{Store: st, Token: token, TTL: time.Minute, Version: "2.0.0-test",
		Country: func(ip netip.Addr) string {
			if ip == netip.MustParseAddr("203.0.113.5") {
				return "FR"
			}
			return ""
		}}
	if err := a.Init(); err != nil {
		t.Fatal(err)
	}
	return a, st
}

func do(t *testing.T, a *API, method, path, body, tok string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, req)
	var v map[string]any
	json.Unmarshal(rec.Body.Bytes(), &v)
	return rec.Code, v
}

func count(t *testing.T, st *store.Store) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRow("SELECT count(*) FROM backends").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestV1Flow(t *testing.T) {
	a, st := newAPI(t)
	code, v := do(t, a, "POST", "/api/v1/register", `{"id":"backend-eu-1","app":"myapp","region":"eu","ip":"10.50.1.1","port":8080,"weight":2,"soft_limit":100,"hard_limit":150}`, token)
	if code != 201 || v["registered"] != true || v["id"] != "backend-eu-1" || v["message"] != "Backend registered successfully" {
		t.Fatalf("register: %d %v", code, v)
	}
	code, v = do(t, a, "POST", "/api/v1/register", `{"id":"fr-1","app":"myapp","region":"eu","ip":"203.0.113.5","port":80}`, token)
	if code != 201 {
		t.Fatalf("register: %d %v", code, v)
	}
	code, v = do(t, a, "GET", "/api/v1/backends/fr-1", "", token)
	if code != 200 || v["country"] != "FR" || v["weight"] != 2.0 || v["soft_limit"] != 100.0 || v["hard_limit"] != 150.0 || v["healthy"] != true {
		t.Fatalf("defaults and GeoIP country: %d %v", code, v)
	}
	code, v = do(t, a, "GET", "/api/v1/backends/backend-eu-1", "", token)
	if code != 200 || v["country"] != "DE" || v["ip"] != "10.50.1.1" || v["port"] != 8080.0 {
		t.Fatalf("v1 region default country: %d %v", code, v)
	}
	if code, v = do(t, a, "POST", "/api/v1/heartbeat/backend-eu-1", "", token); code != 200 || v["status"] != "ok" {
		t.Fatalf("heartbeat: %d %v", code, v)
	}
	if code, v = do(t, a, "POST", "/api/v1/heartbeat/nope", "", token); code != 404 || v["error"] != "backend not registered" {
		t.Fatalf("heartbeat unknown: %d %v", code, v)
	}
	code, v = do(t, a, "GET", "/api/v1/backends", "", token)
	if code != 200 || v["total"] != 2.0 || len(v["backends"].([]any)) != 2 {
		t.Fatalf("list: %d %v", code, v)
	}
	code, v = do(t, a, "GET", "/health", "", "")
	if code != 200 || v["status"] != "ok" || v["backends"] != 2.0 || v["version"] != "2.0.0-test" {
		t.Fatalf("health: %d %v", code, v)
	}
	if code, v = do(t, a, "DELETE", "/api/v1/backends/backend-eu-1", "", token); code != 200 || v["deregistered"] != true {
		t.Fatalf("delete: %d %v", code, v)
	}
	if code, _ = do(t, a, "DELETE", "/api/v1/backends/backend-eu-1", "", token); code != 404 {
		t.Fatalf("delete twice: %d", code)
	}
	if code, _ = do(t, a, "GET", "/api/v1/backends/backend-eu-1", "", token); code != 404 {
		t.Fatalf("get deleted: %d", code)
	}
	if n := count(t, st); n != 1 {
		t.Fatalf("%d rows", n)
	}
}

func TestTokenRequired(t *testing.T) {
	a, st := newAPI(t)
	body := `{"id":"x","app":"myapp","region":"eu","ip":"10.0.0.1","port":80}`
	for _, tok := range []string{"", "wrong", token + "x", strings.ToUpper(token)} {
		for _, req := range [][2]string{{"POST", "/api/v1/register"}, {"POST", "/api/v1/heartbeat/x"}, {"GET", "/api/v1/backends"}, {"GET", "/api/v1/backends/x"}, {"DELETE", "/api/v1/backends/x"}} {
			if code, _ := do(t, a, req[0], req[1], body, tok); code != 401 {
				t.Fatalf("%s %s with token %q: %d, want 401", req[0], req[1], tok, code)
			}
		}
	}
	// Basic auth or a bare token is not a bearer token.
	r := httptest.NewRequest("GET", "/api/v1/backends", nil)
	r.Header.Set("Authorization", token)
	rec := httptest.NewRecorder()
	a.ServeHTTP(rec, r)
	if rec.Code != 401 || rec.Header().Get("WWW-Authenticate") == "" {
		t.Fatalf("bare token: %d", rec.Code)
	}
	if strings.Contains(rec.Body.String(), token) {
		t.Fatal("the token appears in a response")
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d rows written without a token", n)
	}
	if code, _ := do(t, a, "GET", "/health", "", ""); code != 200 {
		t.Fatalf("/health needs no token: %d", code)
	}
	if err := (&API{Store: st, Token: "  "}).Init(); err == nil {
		t.Fatal("an empty token was accepted")
	}
}

func TestBadInputWritesNothing(t *testing.T) {
	a, st := newAPI(t)
	long := strings.Repeat("a", 256)
	cases := []struct {
		body, wantErr string
		code          int
	}{
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":0}`, "field port", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":65536}`, "field port", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":-1}`, "field port", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":80.5}`, "field port", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":"80"}`, "field port", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"backend.example","port":80}`, "field ip", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.256","port":80}`, "field ip", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"fe80::1%eth0","port":80}`, "field ip", 400},
		{`{"app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "missing required field: id", 400},
		{`{"id":"x","region":"eu","ip":"10.0.0.1","port":80}`, "missing required field: app", 400},
		{`{"id":"x","app":"a","ip":"10.0.0.1","port":80}`, "missing required field: region", 400},
		{`{"id":"x","app":"a","region":"eu","port":80}`, "missing required field: ip", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1"}`, "missing required field: port", 400},
		{`{"id":"","app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "missing required field: id", 400},
		{`{"id":null,"app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "missing required field: id", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":80,"weight":"heavy"}`, "field weight", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":80,"hard_limit":-5}`, "field hard_limit", 400},
		{`{"id":"x","app":"a","region":"eu","country":"DEU","ip":"10.0.0.1","port":80}`, "field country", 400},
		{`{"id":42,"app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "field id", 400},
		{`{"id":"` + long + `","app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "field id: 256 bytes", 400},
		{`{"id":"a\u0000b","app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "field id: contains the control character", 400},
		{`{"id":"a\nb","app":"a","region":"eu","ip":"10.0.0.1","port":80}`, "field id: contains the control character", 400},
		{`{"id":"x","app":"a\u007f","region":"eu","ip":"10.0.0.1","port":80}`, "field app", 400},
		{`{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":80`, "malformed JSON", 400},
		{`[1,2]`, "malformed JSON", 400},
		{`null`, "malformed JSON", 400},
		{``, "empty body", 400},
		{`{"id":"x","pad":"` + strings.Repeat("p", MaxBodyBytes) + `"}`, "1 MiB", 413},
	}
	for _, c := range cases {
		code, v := do(t, a, "POST", "/api/v1/register", c.body, token)
		msg, _ := v["error"].(string)
		if code != c.code || !strings.Contains(msg, c.wantErr) {
			b := c.body
			if len(b) > 80 {
				b = b[:80]
			}
			t.Errorf("%s: %d %q, want %d with %q", b, code, msg, c.code, c.wantErr)
		}
	}
	for _, path := range []string{"/api/v1/heartbeat/" + long, "/api/v1/heartbeat/a%00b", "/api/v1/backends/a%0Ab"} {
		if code, _ := do(t, a, "POST", path, "", token); code != 400 {
			t.Errorf("POST %s: %d, want 400", path, code)
		}
	}
	if n := count(t, st); n != 0 {
		t.Fatalf("%d rows written by bad requests", n)
	}
	var hb int
	st.DB().QueryRow("SELECT count(*) FROM heartbeats").Scan(&hb)
	if hb != 0 {
		t.Fatalf("%d heartbeat rows written by bad requests", hb)
	}
}

func TestHeartbeatExpiry(t *testing.T) {
	a, st := newAPI(t)
	now := time.Unix(1_800_000_000, 0)
	a.Now = func() time.Time { return now }
	do(t, a, "POST", "/api/v1/register", `{"id":"x","app":"a","region":"eu","ip":"10.0.0.1","port":80}`, token)
	now = now.Add(61 * time.Second)
	if _, v := do(t, a, "GET", "/api/v1/backends/x", "", token); v["healthy"] != false || v["last_heartbeat_secs"] != 61.0 {
		t.Fatalf("after the TTL: %v", v)
	}
	ids, err := st.ExpireHeartbeats(context.Background(), now)
	if err != nil || len(ids) != 1 {
		t.Fatalf("expire: %v %v", ids, err)
	}
	if code, _ := do(t, a, "POST", "/api/v1/heartbeat/x", "", token); code != 404 {
		t.Fatalf("heartbeat after expiry: %d", code)
	}
}

func TestOtherPathsAndMethods(t *testing.T) {
	a, _ := newAPI(t)
	if code, _ := do(t, a, "GET", "/api/v1/register", "", token); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET register: %d", code)
	}
	if code, _ := do(t, a, "PUT", "/api/v1/backends/x", "", token); code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT backend: %d", code)
	}
	if Handles("/index.html") || !Handles("/api/v1/backends/x") {
		t.Fatal("Handles")
	}
}
