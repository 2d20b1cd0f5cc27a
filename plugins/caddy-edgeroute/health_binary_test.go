package edgeroute_test

// Active and passive health through the built binary, against real TCP,
// HTTP and gRPC backends that are killed and revived on the same port.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// killable is a backend of one kind that names itself to clients and can
// be killed (listener and connections closed) and revived on its port.
type killable struct {
	t    *testing.T
	kind string
	name string
	port int
	mu   sync.Mutex
	stop func()
}

func startKillable(t *testing.T, kind, name string) *killable {
	k := &killable{t: t, kind: kind, name: name}
	k.revive()
	t.Cleanup(k.kill)
	return k
}

func (k *killable) revive() {
	k.t.Helper()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", k.port)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		k.t.Fatal(err)
	}
	k.port = ln.Addr().(*net.TCPAddr).Port
	k.mu.Lock()
	defer k.mu.Unlock()
	switch k.kind {
	case "tcp":
		var conns sync.Map
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Store(c, true)
				go func() {
					defer c.Close()
					fmt.Fprintf(c, "%s\n", k.name)
					io.Copy(io.Discard, c)
					conns.Delete(c)
				}()
			}
		}()
		k.stop = func() {
			ln.Close()
			conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		}
	case "http":
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				w.WriteHeader(200)
				return
			}
			io.WriteString(w, k.name)
		})}
		go srv.Serve(ln)
		k.stop = func() { srv.Close() }
	case "grpc":
		g := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			grpc.SetHeader(ctx, metadata.Pairs("backend", k.name))
			return h(ctx, req)
		}))
		hs := grpchealth.NewServer()
		hs.SetServingStatus("myapp.Echo", healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(g, hs)
		go g.Serve(ln)
		k.stop = g.Stop
	}
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.stop != nil {
		k.stop()
		k.stop = nil
	}
}

// ask makes one request of the kind through the proxy from a client
// address and returns the backend that answered, or "".
func ask(p *pop, kind, from string) string {
	dial := func(ctx context.Context, _ string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 3 * time.Second}
		return d.DialContext(ctx, "tcp", p.listen)
	}
	switch kind {
	case "tcp":
		return p.via(from)
	case "http":
		c := http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx, "") }}}
		resp, err := c.Get("http://backend/")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	default:
		cc, err := grpc.NewClient("passthrough:///backend", grpc.WithContextDialer(dial),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return ""
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var md metadata.MD
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "myapp.Echo"}, grpc.Header(&md)); err != nil {
			return ""
		}
		if v := md.Get("backend"); len(v) > 0 {
			return v[0]
		}
		return ""
	}
}

// checkHealthy reads the POP's active verdict on a backend.
func checkHealthy(p *pop, id string) (checked, healthy bool) {
	var v struct {
		Apps []struct {
			Backends []struct {
				ID      string
				Checked bool
				Healthy bool
			}
		}
	}
	p.adminGet("/edgeroute/health", &v)
	for _, a := range v.Apps {
		for _, b := range a.Backends {
			if b.ID == id {
				return b.Checked, b.Healthy
			}
		}
	}
	return false, false
}

func TestActiveHealthKillAndRevive(t *testing.T) {
	const interval, rise, fall = 300 * time.Millisecond, 2, 2
	checks := map[string]string{"tcp": "tcp", "http": "http /healthz 200", "grpc": "grpc myapp.Echo"}
	for _, kind := range []string{"tcp", "http", "grpc"} {
		t.Run(kind, func(t *testing.T) {
			a := startKillable(t, kind, "fr-a")
			b := startKillable(t, kind, "de-b")
			p := startPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: fmt.Sprintf(`affinity off
		health myapp {
			%s
			interval %v
			timeout 200ms
			rise %d
			fall %d
		}`, checks[kind], interval, rise, fall)})
			p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
				('fr-a','myapp','eu','FR','127.0.0.1',%d), ('de-b','myapp','eu','DE','127.0.0.1',%d)`, a.port, b.port))
			eventually(t, 2*time.Second, func() string {
				if got := ask(p, kind, clientFR); got != "fr-a" {
					return "got " + got
				}
				if c, h := checkHealthy(p, "fr-a"); !c || !h {
					return "fr-a not checked healthy yet"
				}
				return ""
			})
			a.kill()
			killed := time.Now()
			// A client arriving before the checks notice: retried on
			// the next backend, not failed.
			if got := ask(p, kind, clientFR); got != "de-b" {
				t.Fatalf("request right after the kill: got %q, want de-b (retried)", got)
			}
			eventually(t, interval*fall+500*time.Millisecond, func() string {
				if _, h := checkHealthy(p, "fr-a"); h {
					return "fr-a still healthy"
				}
				return ""
			})
			took := time.Since(killed)
			t.Logf("%s: killed backend out of rotation %v after the kill (interval x fall = %v)", kind, took.Round(time.Millisecond), interval*fall)
			if took > interval*fall+200*time.Millisecond {
				t.Errorf("took longer than interval x fall + 200ms")
			}
			for range 3 {
				if got := ask(p, kind, clientFR); got != "de-b" {
					t.Fatalf("while fr-a is down: got %q", got)
				}
			}
			a.revive()
			revived := time.Now()
			eventually(t, interval*rise+interval+time.Second, func() string {
				if got := ask(p, kind, clientFR); got != "fr-a" {
					return "got " + got
				}
				return ""
			})
			t.Logf("%s: revived backend back in rotation %v after the revival (interval x rise = %v)", kind, time.Since(revived).Round(time.Millisecond), interval*rise)
			if v := p.metric(`edgeroute_health_check_healthy{app="myapp",backend="fr-a"}`); v != "1" {
				t.Errorf("health metric %q", v)
			}
			out, _ := execSQL(p, "SELECT observer, healthy FROM health WHERE backend_id='fr-a'")
			t.Logf("health row of fr-a: %s", out)
		})
	}
}

func execSQL(p *pop, q string) (string, error) {
	out, err := execCommand("sqlite3", p.db, q)
	return strings.TrimSpace(out), err
}

// The POP writes its verdict to the replicated health table when it
// changes.
func TestHealthRowWritten(t *testing.T) {
	a := startKillable(t, "tcp", "fr-a")
	b := startKillable(t, "tcp", "de-b")
	p := startPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: `affinity off
		health myapp {
			tcp
			interval 200ms
			timeout 100ms
		}`})
	p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('fr-a','myapp','eu','FR','127.0.0.1',%d), ('de-b','myapp','eu','DE','127.0.0.1',%d)`, a.port, b.port))
	time.Sleep(300 * time.Millisecond)
	a.kill()
	eventually(t, 2*time.Second, func() string {
		out, _ := execSQL(p, "SELECT observer || '|' || healthy FROM health WHERE backend_id='fr-a'")
		if out != "test-pop|0" {
			return "health row: " + out
		}
		return ""
	})
	a.revive()
	eventually(t, 2*time.Second, func() string {
		out, _ := execSQL(p, "SELECT healthy FROM health WHERE backend_id='fr-a'")
		if out != "1" {
			return "health row: " + out
		}
		return ""
	})
}

// Without any health block, repeated dial failures eject a backend for a
// backoff; it comes back when the ejection ends.
func TestPassiveEjection(t *testing.T) { frontends(t, testPassiveEjection) }

func testPassiveEjection(t *testing.T, listener bool) {
	a := startKillable(t, "tcp", "fr-a")
	b := startKillable(t, "tcp", "de-b")
	p := startPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: "affinity off", listener: listener})
	p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('fr-a','myapp','eu','FR','127.0.0.1',%d), ('de-b','myapp','eu','DE','127.0.0.1',%d)`, a.port, b.port))
	p.waitBackends(2)
	a.kill()
	for i := range 3 {
		if got := p.via(clientFR); got != "de-b" {
			t.Fatalf("attempt %d: got %q, want de-b (retried)", i, got)
		}
	}
	eventually(t, time.Second, func() string {
		if v := p.metric(`edgeroute_backend_ejected{app="myapp",backend="fr-a"}`); v != "1" {
			return "ejected gauge " + v
		}
		return ""
	})
	failures := p.metric(`edgeroute_backend_dial_failures_total{app="myapp",backend="fr-a"}`)
	a.revive()
	for range 5 {
		p.via(clientFR)
	}
	if f := p.metric(`edgeroute_backend_dial_failures_total{app="myapp",backend="fr-a"}`); f != failures {
		t.Fatalf("an ejected backend was dialled: failures %s -> %s", failures, f)
	}
	took := eventually(t, 7*time.Second, func() string {
		if got := p.via(clientFR); got != "fr-a" {
			return "got " + got
		}
		return ""
	})
	t.Logf("readmitted %v after the revival (first ejection lasts 5s)", took.Round(time.Millisecond))
	if v := p.metric(`edgeroute_backend_ejections_total{app="myapp",backend="fr-a"}`); v != "1" {
		t.Fatalf("ejections metric %q", v)
	}
}

// prefer_rtt: between two idle backends in the client's country, the one
// whose health checks answer faster wins, whatever the table order; without
// it, table order decides as in v1.
func TestPreferRTT(t *testing.T) {
	start := func(name string, delay time.Duration) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				time.Sleep(delay)
			}
			io.WriteString(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().(*net.TCPAddr).Port
	}
	slow, fast := start("slow", 30*time.Millisecond), start("fast", 0)
	for _, prefer := range []bool{false, true} {
		opt := ""
		if prefer {
			opt = "prefer_rtt"
		}
		p := startPOP(t, popConfig{region: "eu", country: "DE", extraGlobal: fmt.Sprintf(`affinity off
		health myapp {
			http /healthz 200
			interval 100ms
			timeout 90ms
			%s
		}`, opt)})
		p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
			('slow','myapp','eu','FR','127.0.0.1',%d), ('fast','myapp','eu','FR','127.0.0.1',%d)`, slow, fast))
		time.Sleep(600 * time.Millisecond) // a few RTT samples
		want := "slow"                     // table order
		if prefer {
			want = "fast"
		}
		for i := range 5 {
			if got := ask(p, "http", clientFR); got != want {
				var route any
				p.adminGet("/edgeroute/route?app=myapp&client="+clientFR, &route)
				t.Fatalf("prefer_rtt=%v, request %d: got %q, want %q; route now: %v", prefer, i, got, want, route)
			}
			time.Sleep(50 * time.Millisecond) // the last connection's slot is released
		}
		// The explanation names the backend the connections went to.
		var route struct{ Chosen string }
		p.adminGet("/edgeroute/route?app=myapp&client="+clientFR, &route)
		if route.Chosen != want {
			t.Errorf("prefer_rtt=%v: /edgeroute/route chose %q, connections went to %q", prefer, route.Chosen, want)
		}
		if prefer {
			if v := p.metric(`edgeroute_health_rtt_seconds{app="myapp",backend="slow"}`); !strings.HasPrefix(v, "0.03") {
				t.Errorf("smoothed RTT of the slow backend: %s", v)
			}
		}
	}
}
