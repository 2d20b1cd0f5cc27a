package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "routing.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRegisterHeartbeatExpireDeregister(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	now := time.Unix(1_700_000_000, 0)
	reg := Registration{ID: "eu-1", App: "myapp", Region: "eu", Country: "DE", IP: "10.50.1.1", Port: 8080, Weight: 2, SoftLimit: 100, HardLimit: 150}
	created, err := s.Register(ctx, reg, time.Minute, now)
	if err != nil || !created {
		t.Fatalf("register: created=%v err=%v", created, err)
	}
	reg.Port = 9090
	if created, err := s.Register(ctx, reg, time.Minute, now); err != nil || created {
		t.Fatalf("re-register: created=%v err=%v", created, err)
	}
	// A permanent backend written with SQL, never expired.
	if _, err := s.DB().Exec(`INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('manual', 'myapp', 'sa', '10.0.0.9', 80)`); err != nil {
		t.Fatal(err)
	}
	tbl, _, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b := tbl.Backend("eu-1")
	if b == nil || b.Addr.String() != "10.50.1.1:9090" || !b.Healthy || b.Weight != 2 || b.HardLimit != 150 || b.Country != "DE" {
		t.Fatalf("registered row: %+v", b)
	}
	r, ok, err := s.GetRegistered(ctx, "eu-1")
	if err != nil || !ok || !r.HasHeartbeat || !r.ExpiresAt.Equal(now.Add(time.Minute)) {
		t.Fatalf("get: %+v %v %v", r, ok, err)
	}
	if ok, err := s.Heartbeat(ctx, "nope", time.Minute, now); ok || err != nil {
		t.Fatalf("heartbeat of an unknown id: %v %v", ok, err)
	}
	if ok, err := s.Heartbeat(ctx, "eu-1", time.Minute, now.Add(50*time.Second)); !ok || err != nil {
		t.Fatalf("heartbeat: %v %v", ok, err)
	}
	if ids, err := s.ExpireHeartbeats(ctx, now.Add(70*time.Second)); len(ids) != 0 || err != nil {
		t.Fatalf("expired too early: %v %v", ids, err)
	}
	ids, err := s.ExpireHeartbeats(ctx, now.Add(111*time.Second))
	if len(ids) != 1 || ids[0] != "eu-1" || err != nil {
		t.Fatalf("expire: %v %v", ids, err)
	}
	list, err := s.ListRegistered(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "manual" || list[0].HasHeartbeat {
		t.Fatalf("list after expiry: %+v %v", list, err)
	}
	if ok, _ := s.Heartbeat(ctx, "eu-1", time.Minute, now); ok {
		t.Fatal("heartbeat revived an expired backend")
	}
	if ok, err := s.Deregister(ctx, "manual"); !ok || err != nil {
		t.Fatalf("deregister: %v %v", ok, err)
	}
	if ok, _ := s.Deregister(ctx, "manual"); ok {
		t.Fatal("deregistered twice")
	}
}

func TestRegisterOnV1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, path, v1SchemaNoCountry+`INSERT INTO backends (id, app, region, wg_ip, port, healthy, weight, soft_limit, hard_limit) VALUES ('old','myapp','sa','10.50.1.1',8080,1,1,100,200);`)
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Register(ctx, Registration{ID: "new", App: "myapp", Region: "eu", IP: "10.0.0.1", Port: 80, Weight: 2, SoftLimit: 100, HardLimit: 150}, time.Minute, time.Now()); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListRegistered(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "old" || list[1].ID != "new" {
		t.Fatalf("%+v %v", list, err)
	}
	if err := s.WriteHealth(ctx, "pop-1", []HealthRow{{BackendID: "new", Healthy: false, RTT: 1500 * time.Microsecond, CheckedAt: time.Now()}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := sqlite(t, path, "SELECT healthy, rtt_us FROM health WHERE backend_id='new' AND observer='pop-1'"); got != "0|1500" {
		t.Fatalf("health row %q", got)
	}
	if err := s.WriteHealth(ctx, "pop-1", nil, []string{"new"}); err != nil {
		t.Fatal(err)
	}
	if got := sqlite(t, path, "SELECT count(*) FROM health"); got != "0" {
		t.Fatalf("health rows left: %s", got)
	}
}

// Concurrent registrations are committed in groups and each caller gets
// its own answer.
func TestConcurrentRegistrations(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	errs := make(chan error, 200)
	for i := range 200 {
		go func() {
			id := fmt.Sprintf("b%d", i%150) // some IDs twice: updates
			_, err := s.Register(ctx, Registration{ID: id, App: "myapp", Region: "eu", IP: "10.0.0.1", Port: 1 + i, Weight: 2}, time.Minute, time.Now())
			errs <- err
		}()
	}
	for range 200 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.ListRegistered(ctx)
	if err != nil || len(list) != 150 {
		t.Fatalf("%d rows, %v", len(list), err)
	}
}
