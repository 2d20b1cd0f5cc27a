package pop

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// openPOP opens a runtime on a new table file with the given backends,
// written through a second connection as another process would.
func openPOP(t *testing.T, rows ...string) (*Runtime, *sql.DB) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "routing.db")
	rt, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Destruct() })
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, r := range rows {
		if _, err := db.Exec(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ` + r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rt.Apply(Config{Identity: Identity{Node: "gru-1", Region: "sa", Country: "BR"}}); err != nil {
		t.Fatal(err)
	}
	return rt, db
}

func next(t *testing.T, ch <-chan Signal, what string, ok func(Signal) bool) Signal {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("%s: subscription closed", what)
			}
			if ok(s) {
				return s
			}
		case <-deadline:
			t.Fatalf("%s: no such signal within 3s", what)
		}
	}
}

func TestSignalFollowsTableVerdictsAndOperator(t *testing.T) {
	rt, db := openPOP(t, `('a1','web','sa','BR','127.0.0.1',1)`, `('a2','web','sa','BR','127.0.0.1',2)`, `('d1','db','eu','DE','127.0.0.1',3)`)
	ch, stop := rt.Watch()
	defer stop()
	s := next(t, ch, "initial", func(s Signal) bool { return appOf(s, "web").Routable == 2 })
	if s.State != Serving || s.Node != "gru-1" || appOf(s, "db").Routable != 1 {
		t.Fatalf("initial signal %+v", s)
	}
	if n, ok := s.Routable("nope"); ok || n != 0 {
		t.Fatal("an unknown app reads as known")
	}

	// A table edit.
	if _, err := db.Exec(`UPDATE backends SET healthy = 0 WHERE id = 'a1'`); err != nil {
		t.Fatal(err)
	}
	s = next(t, ch, "a1 unhealthy", func(s Signal) bool { return appOf(s, "web").Routable == 1 })
	if appOf(s, "web").Reason != "1 of 2 routable: 1 marked unhealthy in the table" {
		t.Errorf("reason %q", appOf(s, "web").Reason)
	}

	// A health verdict, as the health manager sets it, and a kick.
	b := rt.Table().Backend("a2")
	b.Load.SetDown(routing.DownActive, true)
	rt.signal.kick()
	s = next(t, ch, "a2 failing checks", func(s Signal) bool { return appOf(s, "web").Routable == 0 })
	if appOf(s, "web").Reason != "0 of 2 routable: 1 failing active health checks, 1 marked unhealthy in the table" {
		t.Errorf("reason %q", appOf(s, "web").Reason)
	}
	b.Load.SetDown(routing.DownActive, false)

	// The operator.
	rt.Drain("maintenance")
	s = next(t, ch, "drained", func(s Signal) bool { return s.State == Draining })
	if s.StateReason != "maintenance" || s.Since.IsZero() {
		t.Errorf("drained signal %+v", s)
	}
	if !rt.Undrain() || rt.Undrain() {
		t.Error("Undrain does not report whether a drain was in effect")
	}
	next(t, ch, "undrained", func(s Signal) bool { return s.State == Serving })
}

func TestSubscribersGetTheNewestSignalNeverABacklog(t *testing.T) {
	rt, _ := openPOP(t, `('a1','web','sa','BR','127.0.0.1',1)`)
	ch, stop := rt.Watch()
	for i := range 50 {
		if i%2 == 0 {
			rt.Drain("flap")
		} else {
			rt.Undrain()
		}
	}
	rt.Drain("final")
	// A reader that did not read meanwhile finds one signal: the newest.
	s := <-ch
	if s.State != Draining || s.StateReason != "final" {
		t.Fatalf("got %+v, want the newest signal", s)
	}
	select {
	case s := <-ch:
		t.Fatalf("a backlog: %+v", s)
	default:
	}
	stop()
	if _, open := <-ch; open {
		t.Fatal("stop did not close the channel")
	}
	stop() // idempotent
}

func TestStoppingWaitsForHoldsAndTheDelay(t *testing.T) {
	rt, _ := openPOP(t)
	rt.Apply(Config{Identity: Identity{Node: "gru-1"}, StopDelay: 100 * time.Millisecond})
	release := rt.Hold("bgp", time.Minute)
	short := rt.Hold("slow", 300*time.Millisecond)
	defer short()

	start := time.Now()
	rt.BeginStop("test exit")
	rt.BeginStop("second reason")
	if s := rt.Signal(); s.State != Stopping || s.StateReason != "test exit" {
		t.Fatalf("signal %+v", s)
	}
	rt.Drain("ignored while stopping")
	if s := rt.Signal(); s.State != Stopping {
		t.Fatalf("a drain overrode stopping: %+v", s)
	}
	go func() { time.Sleep(400 * time.Millisecond); release() }()
	done := make(chan time.Duration)
	go func() { rt.WaitStop(); done <- time.Since(start) }()
	select {
	case d := <-done:
		if d < 400*time.Millisecond {
			t.Fatalf("WaitStop returned after %v, before the bgp hold was released", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitStop did not return after every hold ended")
	}
}

func TestWaitStopReturnsAtOnceWhenNotStopping(t *testing.T) {
	rt, _ := openPOP(t)
	rt.Hold("bgp", time.Minute)
	start := time.Now()
	rt.WaitStop()
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Fatalf("WaitStop waited %v on a POP that is not stopping", d)
	}
}

func TestSetPopWritesThisPOPsRow(t *testing.T) {
	rt, _ := openPOP(t)
	if err := rt.SetPop(context.Background(), store.PopUpdate{Anycast: store.Str("192.0.2.1/32=announced")}); err != nil {
		t.Fatal(err)
	}
	pops, err := rt.Store().Pops(context.Background())
	if err != nil || len(pops) != 1 || pops[0].Node != "gru-1" || pops[0].Anycast != "192.0.2.1/32=announced" {
		t.Fatalf("pops %+v, %v", pops, err)
	}
}

// TestClusteredPOPPublishesItsState: a POP in a cluster writes its signal
// into its own pops row, which replicates; a POP alone writes nothing.
func TestClusteredPOPPublishesItsState(t *testing.T) {
	rt, _ := openPOP(t)
	published := func() string {
		pops, err := rt.Store().Pops(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pops {
			if p.Node == "gru-1" {
				return p.State
			}
		}
		return ""
	}
	rt.Drain("alone")
	time.Sleep(300 * time.Millisecond)
	if got := published(); got != "" {
		t.Fatalf("a POP running alone wrote its state: %q", got)
	}
	rt.Undrain()

	if err := rt.Apply(Config{Identity: Identity{Node: "gru-1", Region: "sa"}, Cluster: &ClusterConfig{Bind: "127.0.0.1:0"}}); err != nil {
		t.Fatal(err)
	}
	waitPublished := func(want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Second)
		for published() != want {
			if time.Now().After(deadline) {
				t.Fatalf("pops row state %q, want %q", published(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitPublished("serving")
	rt.Drain("maintenance")
	waitPublished("draining")
	rt.Undrain()
	waitPublished("serving")
	rt.BeginStop("exit")
	waitPublished("stopping")
}

// A backend at its hard limit is counted out of the signal without any
// event of its own, within a periodic recompute, and back in when a
// connection ends; apps without one keep their counts meanwhile.
func TestSignalFollowsBackendsAtTheirHardLimit(t *testing.T) {
	rt, db := openPOP(t, `('a1','web','sa','BR','127.0.0.1',1)`, `('d1','db','eu','DE','127.0.0.1',3)`)
	if _, err := db.Exec(`UPDATE backends SET hard_limit = 1 WHERE id = 'a1'`); err != nil {
		t.Fatal(err)
	}
	ch, stop := rt.Watch()
	defer stop()
	next(t, ch, "a1 with a hard limit of 1", func(s Signal) bool {
		b := rt.Table().Backend("a1")
		return b != nil && b.HardLimit == 1 && appOf(s, "web").Routable == 1
	})
	l := rt.Table().Backend("a1").Load
	if !l.TryAcquire(1) {
		t.Fatal("the first connection was refused")
	}
	s := next(t, ch, "a1 at its hard limit", func(s Signal) bool { return appOf(s, "web").Routable == 0 })
	if appOf(s, "web").Reason != "0 of 1 routable: 1 at hard limit" || appOf(s, "db").Routable != 1 {
		t.Errorf("signal at the limit: %+v", s.Apps.Names())
	}
	l.Release()
	next(t, ch, "a1 below its hard limit", func(s Signal) bool { return appOf(s, "web").Routable == 1 })
}

// appOf is app's signal in s, the zero signal if s has no such app.
func appOf(s Signal, app string) AppSignal {
	a, _ := s.Apps.Get(app)
	return a
}
