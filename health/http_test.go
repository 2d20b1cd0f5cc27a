package health

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The HTTP check keeps one connection per backend across checks, sends the
// configured Host, and survives the backend closing idle connections.
func TestHTTPCheckKeepsItsConnection(t *testing.T) {
	var conns, requests atomic.Int64
	var lastHost atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		lastHost.Store(r.Host)
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := netip.MustParseAddrPort(srv.Listener.Addr().String())

	p := NewHTTP("/healthz", 200, "api.internal", false).Probe(addr)
	defer p.Close()
	for i := range 20 {
		if err := p.Check(t.Context()); err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
	}
	if requests.Load() != 20 || conns.Load() != 1 {
		t.Fatalf("20 checks made %d requests over %d connections, want 20 over 1", requests.Load(), conns.Load())
	}
	if h := lastHost.Load(); h != "api.internal" {
		t.Fatalf("Host %q, want api.internal", h)
	}

	// The backend drops its idle connections (a restart of a keep-alive
	// timeout): the next check opens a new one and still passes.
	srv.CloseClientConnections()
	time.Sleep(20 * time.Millisecond)
	if err := p.Check(t.Context()); err != nil {
		t.Fatalf("check after the backend closed the idle connection: %v", err)
	}
	if conns.Load() != 2 {
		t.Fatalf("%d connections after a reconnect, want 2", conns.Load())
	}
}

// A backend answering "Connection: close", a large body, a wrong status
// and HTTPS: each gets the verdict it deserves.
func TestHTTPCheckResponses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Write([]byte("bye"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 1<<20)))
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "draining", http.StatusServiceUnavailable)
	})
	for _, useTLS := range []bool{false, true} {
		var srv *httptest.Server
		if useTLS {
			srv = httptest.NewTLSServer(mux)
		} else {
			srv = httptest.NewServer(mux)
		}
		addr := netip.MustParseAddrPort(srv.Listener.Addr().String())
		cases := []struct {
			path   string
			status int
			want   string // "" for a pass, else part of the error
		}{
			{"/close", 200, ""},
			{"/close", 200, ""},
			{"/big", 0, ""},
			{"/big", 200, ""},
			{"/down", 0, "status 503, want 2xx or 3xx"},
			{"/down", 200, "status 503, want 200"},
			{"/missing", 404, ""},
		}
		for _, c := range cases {
			p := NewHTTP(c.path, c.status, "", useTLS).Probe(addr)
			for range 2 {
				err := p.Check(t.Context())
				if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
					t.Errorf("tls=%v GET %s expecting %d: %v, want %q", useTLS, c.path, c.status, err, c.want)
				}
			}
			p.Close()
		}
		srv.Close()
	}
}
