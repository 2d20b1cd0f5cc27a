package store

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// pull brings dst up to date with every change src holds, as the cluster's
// anti-entropy does.
func pull(t *testing.T, dst, src *Store) {
	t.Helper()
	ctx := context.Background()
	vec, err := dst.Vector(ctx)
	if err != nil {
		t.Fatal(err)
	}
	segs, err := src.Missing(ctx, vec, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := dst.Apply(ctx, segs, time.Now())
	if err != nil || len(res.Refused) > 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
}

func backendIDs(t *testing.T, s *Store) []string {
	t.Helper()
	tbl, _, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, b := range tbl.Backends() {
		ids = append(ids, b.ID)
	}
	slices.Sort(ids)
	return ids
}

func expire(t *testing.T, s *Store, at time.Time) []string {
	t.Helper()
	ids, err := s.ExpireHeartbeats(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// A backend registered at a POP that then dies is removed by the others
// once its lease ran out; a backend that heartbeats to another POP stays
// everywhere, and costs a replicated write per TTL/2, not per heartbeat.
func TestLeasesExpireBackendsOfADeadPOP(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pop1 := openT(t, filepath.Join(dir, "pop1.db"))
	pop2 := openT(t, filepath.Join(dir, "pop2.db"))
	ttl := 3 * time.Second
	base := time.Unix(1_800_000_000, 0)
	at := func(d time.Duration) time.Time { return base.Add(d) }
	reg := func(id string) Registration {
		return Registration{ID: id, App: "myapp", Region: "eu", IP: "10.0.0.1", Port: 80, Weight: 2, SoftLimit: 100, HardLimit: 150}
	}
	if _, err := pop1.Register(ctx, reg("silent"), ttl, base); err != nil {
		t.Fatal(err)
	}
	if _, err := pop1.Register(ctx, reg("alive"), ttl, base); err != nil {
		t.Fatal(err)
	}
	pull(t, pop2, pop1)
	// pop2 reports the lease it got: the backend expires at the lease's
	// end (TTL*3/2) plus the grace.
	r, ok, err := pop2.GetRegistered(ctx, "silent")
	if err != nil || !ok || !r.HasHeartbeat || !r.RegisteredAt.Equal(base) || !r.ExpiresAt.Equal(at(ttl*3/2+LeaseGrace)) {
		t.Fatalf("pop2's view of a backend registered at pop1: %+v %v %v", r, ok, err)
	}
	// pop1 is gone from here on; "alive" heartbeats to pop2 every second.
	v0, _ := pop2.DBVersion(ctx)
	for s := 1; s <= 10; s++ {
		now := at(time.Duration(s) * time.Second)
		if ok, err := pop2.Heartbeat(ctx, "alive", ttl, now); !ok || err != nil {
			t.Fatalf("heartbeat at +%ds: %v %v", s, ok, err)
		}
		gone := expire(t, pop2, now)
		switch {
		case s < 6 && len(gone) > 0:
			// The lease of "silent" ends at +4.5 s, and with the grace
			// no POP removes it before +5 s: a clock up to half a second
			// ahead of pop1's does not cut a backend short.
			t.Fatalf("+%ds: pop2 removed %v", s, gone)
		case s == 6 && !slices.Equal(gone, []string{"silent"}):
			t.Fatalf("+6s: pop2 removed %v, want the silent backend of the dead POP", gone)
		case s > 6 && len(gone) > 0:
			t.Fatalf("+%ds: pop2 removed %v", s, gone)
		}
	}
	if got := backendIDs(t, pop2); !slices.Equal(got, []string{"alive"}) {
		t.Fatalf("pop2's table: %v", got)
	}
	// One lease write when pop2 took the lease over (+1 s), then one per
	// TTL/2 (+3, +5, +7, +9 s); the other heartbeats replicate nothing.
	// The removal of "silent" is two more (backend and lease).
	v1, _ := pop2.DBVersion(ctx)
	if n := v1 - v0; n != 5+2 {
		t.Fatalf("%d replicated writes for 10 heartbeats and one removal, want 7", n)
	}
	// pop1 comes back and hears of it all: "alive" was renewed elsewhere,
	// so pop1, whose own record of it ran out at +3 s, keeps it.
	pull(t, pop1, pop2)
	if gone := expire(t, pop1, at(10*time.Second)); len(gone) > 0 {
		t.Fatalf("pop1 removed %v, which heartbeats to pop2", gone)
	}
	if got := backendIDs(t, pop1); !slices.Equal(got, []string{"alive"}) {
		t.Fatalf("pop1's table: %v", got)
	}
	// "alive" goes silent after its heartbeat at +10 s. pop2 took that
	// heartbeat and removes it exactly one TTL later, as v1 did; pop1
	// only knows the lease (renewed at +9 s, to +13.5 s) and waits for
	// its end and the grace.
	if gone := expire(t, pop2, at(13*time.Second)); len(gone) > 0 {
		t.Fatalf("pop2 removed %v at the TTL's last instant", gone)
	}
	leaseEnd := at(13*time.Second + 500*time.Millisecond)
	if gone := expire(t, pop1, leaseEnd.Add(LeaseGrace)); len(gone) > 0 {
		t.Fatalf("pop1 removed %v before the lease and grace ran out", gone)
	}
	if gone := expire(t, pop2, at(13*time.Second+time.Millisecond)); !slices.Equal(gone, []string{"alive"}) {
		t.Fatalf("pop2 removed %v one TTL after the last heartbeat", gone)
	}
	if gone := expire(t, pop1, leaseEnd.Add(LeaseGrace+time.Millisecond)); !slices.Equal(gone, []string{"alive"}) {
		t.Fatalf("pop1 removed %v after the lease and grace", gone)
	}
	// Both removed it; the two deletions merge to one.
	pull(t, pop1, pop2)
	pull(t, pop2, pop1)
	for _, s := range []*Store{pop1, pop2} {
		if got := backendIDs(t, s); len(got) != 0 {
			t.Fatalf("%s: %v", s.Path(), got)
		}
		if n := sqlite(t, s.Path(), "SELECT count(*) FROM leases"); n != "0" {
			t.Fatalf("%s: %s leases left", s.Path(), n)
		}
	}
}

// A heartbeat at another POP takes the lease over at once, so the POP the
// backend left does not remove it when its own record runs out, even
// before the lease would need renewing.
func TestHeartbeatElsewhereTakesTheLeaseOver(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pop1 := openT(t, filepath.Join(dir, "pop1.db"))
	pop2 := openT(t, filepath.Join(dir, "pop2.db"))
	base := time.Unix(1_800_000_000, 0)
	ttl := time.Minute
	if _, err := pop1.Register(ctx, Registration{ID: "b", App: "myapp", IP: "10.0.0.1", Port: 80}, ttl, base); err != nil {
		t.Fatal(err)
	}
	pull(t, pop2, pop1)
	// Ten seconds later the backend's heartbeats go to pop2; the lease
	// (to +90 s) would not need renewing yet.
	if ok, err := pop2.Heartbeat(ctx, "b", ttl, base.Add(10*time.Second)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if got := sqlite(t, pop2.Path(), "SELECT holder FROM leases"); got != pop2.SiteID() {
		t.Fatalf("lease holder %q, want pop2 (%s)", got, pop2.SiteID())
	}
	pull(t, pop1, pop2)
	// pop1's own record ends at +60 s; the backend is on time at pop2.
	if gone := expire(t, pop1, base.Add(61*time.Second)); len(gone) > 0 {
		t.Fatalf("pop1 removed %v", gone)
	}
	// pop1's API view follows the lease now.
	r, ok, err := pop1.GetRegistered(ctx, "b")
	if err != nil || !ok || !r.LastSeen.Equal(base.Add(10*time.Second)) || !r.ExpiresAt.Equal(base.Add(10*time.Second+90*time.Second+LeaseGrace)) {
		t.Fatalf("pop1's view: %+v %v %v", r, ok, err)
	}
	// Deregistering anywhere removes the lease everywhere.
	if ok, err := pop1.Deregister(ctx, "b"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	pull(t, pop2, pop1)
	if n := sqlite(t, pop2.Path(), "SELECT count(*) FROM leases"); n != "0" {
		t.Fatalf("%s leases left on pop2", n)
	}
	// Registering without a TTL makes a backend permanent: no lease.
	if _, err := pop2.Register(ctx, Registration{ID: "p", App: "myapp", IP: "10.0.0.2", Port: 80}, ttl, base); err != nil {
		t.Fatal(err)
	}
	if _, err := pop2.Register(ctx, Registration{ID: "p", App: "myapp", IP: "10.0.0.2", Port: 80}, 0, base); err != nil {
		t.Fatal(err)
	}
	if gone := expire(t, pop2, base.Add(time.Hour)); len(gone) > 0 {
		t.Fatalf("a permanent backend expired: %v", gone)
	}
}

// A file whose heartbeats were kept before leases existed gets a lease
// for each, held by this file, and they expire as before.
func TestLeasesFromAnOlderFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	base := time.Unix(1_800_000_000, 0)
	if _, err := s.Register(ctx, Registration{ID: "old", App: "myapp", IP: "10.0.0.1", Port: 80}, time.Minute, base); err != nil {
		t.Fatal(err)
	}
	site := s.SiteID()
	s.Close()
	sqlite(t, path, `BEGIN; DROP TRIGGER crdt_leases_ins; DROP TRIGGER crdt_leases_upd; DROP TRIGGER crdt_leases_pk; DROP TRIGGER crdt_leases_del;
		DROP TABLE leases; DELETE FROM crdt_clock WHERE tbl = 'leases'; COMMIT`)
	s = openT(t, path)
	if !s.migrated {
		t.Fatal("the missing leases table was not created")
	}
	if got := sqlite(t, path, "SELECT holder, expires_at, ttl_ms FROM leases WHERE backend_id = 'old'"); got != site+"|"+fmt.Sprint(base.Add(90*time.Second).UnixMilli())+"|60000" {
		t.Fatalf("lease made from the heartbeat: %q", got)
	}
	if got := sqlite(t, path, "SELECT count(*) FROM crdt_clock WHERE tbl = 'leases' AND col = ''"); got != "1" {
		t.Fatalf("the lease was not captured for replication: %s", got)
	}
	if gone := expire(t, s, base.Add(59*time.Second)); len(gone) > 0 {
		t.Fatalf("expired early: %v", gone)
	}
	if gone := expire(t, s, base.Add(61*time.Second)); !slices.Equal(gone, []string{"old"}) {
		t.Fatalf("expired %v one TTL after the heartbeat", gone)
	}
}
