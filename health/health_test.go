package health

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestRiseFall(t *testing.T) {
	s := Status{Healthy: true}
	fail, now := errors.New("refused"), time.Now()
	seq := []struct {
		err     error
		healthy bool
		changed bool
	}{
		{nil, true, false}, {fail, true, false}, {nil, true, false}, // one failure is forgiven
		{fail, true, false}, {fail, false, true}, // fall 2
		{nil, false, false}, {fail, false, false}, {nil, false, false}, {nil, false, false}, {nil, true, true}, // rise 3
	}
	for i, step := range seq {
		st, changed := s.apply(now, time.Millisecond, step.err, 3, 2)
		if st.Healthy != step.healthy || changed != step.changed {
			t.Fatalf("step %d: healthy=%v changed=%v, want %v %v", i, st.Healthy, changed, step.healthy, step.changed)
		}
	}
	if s.Checks != uint64(len(seq)) || s.Failures != 4 {
		t.Fatalf("counts %d %d", s.Checks, s.Failures)
	}
}

func TestRTTSmoothing(t *testing.T) {
	var s Status
	s.Healthy = true
	s.apply(time.Now(), 100*time.Microsecond, nil, 2, 2)
	if s.RTT != 100*time.Microsecond {
		t.Fatalf("first sample: %v", s.RTT)
	}
	for range 50 {
		s.apply(time.Now(), 500*time.Microsecond, nil, 2, 2)
	}
	if s.RTT < 490*time.Microsecond || s.RTT > 500*time.Microsecond {
		t.Fatalf("converged to %v", s.RTT)
	}
	s.apply(time.Now(), 10*time.Millisecond, nil, 2, 2)
	if s.RTT > 3*time.Millisecond || s.LastRTT != 10*time.Millisecond {
		t.Fatalf("one outlier sample moved the smoothed RTT to %v", s.RTT)
	}
	s.apply(time.Now(), 0, errors.New("x"), 2, 2)
	if s.LastRTT != 10*time.Millisecond {
		t.Fatal("a failed check must not count as an RTT sample")
	}
}

func TestOutlierBackoff(t *testing.T) {
	o := NewOutliers(OutlierConfig{Failures: 3, Base: time.Second, Max: 4 * time.Second})
	now := time.Unix(1000, 0)
	if a, _ := o.Observe("b", 2, true, now); a != Keep {
		t.Fatal("ejected below the threshold")
	}
	if a, _ := o.Observe("b", 3, false, now); a != Keep {
		t.Fatal("ejected the last backend of an app")
	}
	var lengths []time.Duration
	for range 4 {
		a, until := o.Observe("b", 3, true, now)
		if a != Eject {
			t.Fatalf("action %v, want eject", a)
		}
		lengths = append(lengths, until.Sub(now))
		if a, _ := o.Observe("b", 9, true, until.Add(-time.Millisecond)); a != Keep {
			t.Fatal("readmitted early")
		}
		now = until
		if a, _ := o.Observe("b", 3, true, now); a != Readmit {
			t.Fatalf("action %v, want readmit", a)
		}
	}
	if fmt.Sprint(lengths) != "[1s 2s 4s 4s]" {
		t.Fatalf("ejection lengths %v", lengths)
	}
	// Good behaviour for longer than Max resets the backoff.
	o.Observe("b", 0, true, now.Add(5*time.Second))
	if _, until := o.Observe("b", 3, true, now.Add(6*time.Second)); until.Sub(now.Add(6*time.Second)) != time.Second {
		t.Fatalf("backoff not reset: %v", until.Sub(now.Add(6*time.Second)))
	}
}

// server is a real backend of one kind that can be killed and revived on
// the same port.
type server struct {
	kind string
	addr netip.AddrPort
	mu   sync.Mutex
	stop func()
}

func startServer(t *testing.T, kind string) *server {
	s := &server{kind: kind}
	s.start(t, "127.0.0.1:0")
	t.Cleanup(s.kill)
	return s
}

func (s *server) start(t *testing.T, at string) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port of a killed server may take a moment to free
		if ln, err = net.Listen("tcp", at); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = netip.MustParseAddrPort(ln.Addr().String())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.kind {
	case "tcp":
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		s.stop = func() { ln.Close() }
	case "http":
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(200)
		})}
		go srv.Serve(ln)
		s.stop = func() { srv.Close() }
	case "grpc":
		g := grpc.NewServer()
		hs := grpchealth.NewServer()
		hs.SetServingStatus("myapp.Echo", healthpb.HealthCheckResponse_SERVING)
		hs.SetServingStatus("myapp.Broken", healthpb.HealthCheckResponse_NOT_SERVING)
		healthpb.RegisterHealthServer(g, hs)
		go g.Serve(ln)
		s.stop = g.Stop
	}
}

func (s *server) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}

// Killing a real backend takes it out within interval x fall; reviving it
// brings it back after rise.
func TestKillAndReviveRealBackends(t *testing.T) {
	for _, kind := range []string{"tcp", "http", "grpc"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			const interval = 100 * time.Millisecond
			var checker Checker
			switch kind {
			case "tcp":
				checker = TCP{}
			case "http":
				checker = NewHTTP("/healthz", 200, "", false)
			case "grpc":
				checker = GRPC{Service: "myapp.Echo", Reconnect: interval}
			}
			srv := startServer(t, kind)
			changes := make(chan Status, 16)
			m := NewMonitor(Config{Checker: checker, Interval: interval, Timeout: 50 * time.Millisecond, Rise: 2, Fall: 2},
				func(st Status, changed bool) {
					if changed {
						changes <- st
					}
				})
			defer m.Stop()
			m.Sync([]Target{{ID: "b1", Addr: srv.addr}})
			time.Sleep(3 * interval)
			st := m.Statuses()[0]
			if !st.Healthy || st.Checks < 2 || st.RTT <= 0 {
				t.Fatalf("healthy backend: %+v", st)
			}
			srv.kill()
			killed := time.Now()
			select {
			case st := <-changes:
				took := time.Since(killed)
				if st.Healthy || took > 2*interval+150*time.Millisecond {
					t.Fatalf("down after %v (limit interval x fall = %v): %+v", took, 2*interval, st)
				}
				t.Logf("%s: down %v after the kill (%s)", kind, took.Round(time.Millisecond), st.LastError)
			case <-time.After(2 * time.Second):
				t.Fatal("never marked down")
			}
			srv.start(t, srv.addr.String())
			revived := time.Now()
			select {
			case st := <-changes:
				took := time.Since(revived)
				if !st.Healthy || took > 2*interval+300*time.Millisecond {
					t.Fatalf("up after %v: %+v", took, st)
				}
				t.Logf("%s: up %v after the revival", kind, took.Round(time.Millisecond))
			case <-time.After(3 * time.Second):
				t.Fatal("never marked up again")
			}
		})
	}
}

func TestCheckerVerdicts(t *testing.T) {
	httpSrv := startServer(t, "http")
	grpcSrv := startServer(t, "grpc")
	ctx := t.Context()
	cases := []struct {
		c    Checker
		addr netip.AddrPort
		ok   bool
	}{
		{NewHTTP("/healthz", 200, "", false), httpSrv.addr, true},
		{NewHTTP("/healthz", 204, "", false), httpSrv.addr, false},
		{NewHTTP("/missing", 0, "", false), httpSrv.addr, false},
		{GRPC{Service: "myapp.Echo"}, grpcSrv.addr, true},
		{GRPC{Service: ""}, grpcSrv.addr, true},
		{GRPC{Service: "myapp.Broken"}, grpcSrv.addr, false},
		{GRPC{Service: "myapp.Unknown"}, grpcSrv.addr, false},
		{TCP{}, netip.MustParseAddrPort("127.0.0.1:1"), false},
	}
	for _, c := range cases {
		p := c.c.Probe(c.addr)
		err := p.Check(ctx)
		p.Close()
		if (err == nil) != c.ok {
			t.Errorf("%s against %s: %v, want ok=%v", c.c, c.addr, err, c.ok)
		}
	}
}

func TestSyncAddsRemovesAndRestarts(t *testing.T) {
	srv := startServer(t, "tcp")
	m := NewMonitor(Config{Interval: 50 * time.Millisecond}, nil)
	defer m.Stop()
	m.Sync([]Target{{ID: "a", Addr: srv.addr}, {ID: "b", Addr: srv.addr, Down: true}})
	if m.Len() != 2 {
		t.Fatal(m.Len())
	}
	if st := m.Statuses(); st[0].Healthy != true || st[1].Healthy != false {
		t.Fatalf("initial states %+v", st)
	}
	m.Sync([]Target{{ID: "b", Addr: srv.addr}})
	if st := m.Statuses(); len(st) != 1 || st[0].ID != "b" || st[0].Healthy {
		t.Fatalf("after sync %+v", st)
	}
}

// The TCP check over IPv6, and a refused connection named as such.
func TestTCPCheckIPv6AndRefused(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	}
	addr := ln.Addr().(*net.TCPAddr).AddrPort()
	p := TCP{}.Probe(addr)
	if err := p.Check(t.Context()); err != nil {
		t.Fatalf("check of a listening [::1] port: %v", err)
	}
	ln.Close()
	err = p.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr.String()) {
		t.Fatalf("check of a closed port: %v, want connection refused naming %s", err, addr)
	}
}

// Checks keep their period over many rounds, and checks falling due close
// together start together: 200 backends checked every 200 ms need far
// fewer wake-ups than checks.
func TestScheduleKeepsPeriodAndBatches(t *testing.T) {
	srv := startServer(t, "tcp")
	const n, interval, run = 200, 200 * time.Millisecond, 2 * time.Second
	var mu sync.Mutex
	starts := map[int64]bool{} // check start times, to 5 ms
	m := NewMonitor(Config{Interval: interval, Timeout: 100 * time.Millisecond}, func(st Status, _ bool) {
		mu.Lock()
		starts[st.LastCheck.UnixMilli()/5] = true
		mu.Unlock()
	})
	defer m.Stop()
	targets := make([]Target, n)
	for i := range targets {
		targets[i] = Target{ID: fmt.Sprintf("b%03d", i), Addr: srv.addr}
	}
	m.Sync(targets)
	time.Sleep(run)
	total := uint64(0)
	for _, st := range m.Statuses() {
		// 10 periods in the run, less the first check's random offset,
		// plus at most one check started a tenth of an interval early.
		if st.Checks < 8 || st.Checks > 11 || !st.Healthy {
			t.Fatalf("%s: %d checks in %v at %v intervals (healthy %v, %s)", st.ID, st.Checks, run, interval, st.Healthy, st.LastError)
		}
		total += st.Checks
	}
	mu.Lock()
	moments := len(starts)
	mu.Unlock()
	t.Logf("%d checks started at %d distinct moments (5 ms resolution)", total, moments)
	if moments > int(total)/10 {
		t.Fatalf("%d checks started at %d distinct moments: not batched", total, moments)
	}
}
