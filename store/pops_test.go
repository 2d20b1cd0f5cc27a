package store

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/edgeproxy/edgeproxy/routing"
)

// A POP's own row: written with what changed, left alone when nothing
// did, so a restart or a repeated publication replicates nothing.
func TestSetPopWritesOnlyWhatChanged(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	version := func() uint64 {
		t.Helper()
		v, err := s.DBVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := s.SetPop(ctx, " ", PopUpdate{Region: Str("sa")}); err == nil {
		t.Fatal("a pops row without a node name was accepted")
	}
	first := PopUpdate{Region: Str("sa"), Country: Str("br"), Addr: Str("10.50.0.1:4001")}
	if err := s.SetPop(ctx, "gru-1", first); err != nil {
		t.Fatal(err)
	}
	want := routing.Pop{Node: "gru-1", Region: "sa", Country: "BR", Addr: "10.50.0.1:4001"}
	pops, err := s.Pops(ctx)
	if err != nil || len(pops) != 1 || pops[0] != want {
		t.Fatalf("pops %+v %v, want %+v", pops, err, want)
	}
	// The same values again (a restart): no write, the version stays.
	v := version()
	if err := s.SetPop(ctx, "gru-1", first); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPop(ctx, "gru-1", PopUpdate{}); err != nil {
		t.Fatal(err)
	}
	if got := version(); got != v {
		t.Fatalf("an unchanged pops row was rewritten: version %d -> %d", v, got)
	}
	// One field set (the mesh publishing its key): that column changes,
	// the nil fields leave theirs, and only it replicates.
	if err := s.SetPop(ctx, "gru-1", PopUpdate{PublicKey: Str("a2V5"), Region: Str("sa")}); err != nil {
		t.Fatal(err)
	}
	want.PublicKey = "a2V5"
	if pops, _ := s.Pops(ctx); len(pops) != 1 || pops[0] != want {
		t.Fatalf("after setting the key: %+v, want %+v", pops, want)
	}
	if got := version(); got != v+1 {
		t.Fatalf("version %d -> %d, want one write", v, got)
	}
	ch, err := s.ChangesSince(ctx, s.SiteID(), v, v+1)
	if err != nil || len(ch) != 1 || ch[0].Table != "pops" || ch[0].Column != "public_key" || ch[0].Value != "a2V5" {
		t.Fatalf("captured %+v %v, want the public_key column alone", ch, err)
	}
	// Another POP's row, from an empty update: created with defaults.
	if err := s.SetPop(ctx, "fra-1", PopUpdate{}); err != nil {
		t.Fatal(err)
	}
	if pops, _ := s.Pops(ctx); len(pops) != 2 || pops[0] != (routing.Pop{Node: "fra-1"}) || pops[1] != want {
		t.Fatalf("pops %+v", pops)
	}
	// Readers (the DNS server) read the rows; they cannot write them.
	ro, err := Open(ctx, s.Path(), Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if pops, err := ro.Pops(ctx); err != nil || len(pops) != 2 {
		t.Fatalf("read-only pops: %+v %v", pops, err)
	}
	if err := ro.SetPop(ctx, "gru-1", PopUpdate{Anycast: Str("192.0.2.1/32")}); err != ErrReadOnly {
		t.Fatalf("a read-only store writing a pops row: %v", err)
	}
}

// Pops on a v1 file the proxy has not migrated (no pops table) is empty.
func TestPopsOfAnUnmigratedV1File(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, path, v1Schema)
	ro, err := Open(context.Background(), path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if pops, err := ro.Pops(context.Background()); err != nil || len(pops) != 0 {
		t.Fatalf("%+v %v", pops, err)
	}
}

// TestPopsStateColumnAddedToAnOlderFile: a file made before pops had a
// state column gets it when opened, and a POP's published state is
// captured for replication like every other column.
func TestPopsStateColumnAddedToAnOlderFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPop(ctx, "gru-1", PopUpdate{Region: Str("sa")}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The pops table as files had it before the column existed.
	sqlite(t, path, `BEGIN;
		DROP TRIGGER crdt_pops_ins; DROP TRIGGER crdt_pops_upd; DROP TRIGGER crdt_pops_pk; DROP TRIGGER crdt_pops_del;
		CREATE TABLE pops_old AS SELECT node, region, country, addr, public_key, endpoint, prefix6, anycast FROM pops;
		DROP TABLE pops;
		CREATE TABLE pops (node TEXT PRIMARY KEY NOT NULL, region TEXT NOT NULL DEFAULT '', country TEXT NOT NULL DEFAULT '',
			addr TEXT NOT NULL DEFAULT '', public_key TEXT NOT NULL DEFAULT '', endpoint TEXT NOT NULL DEFAULT '',
			prefix6 TEXT NOT NULL DEFAULT '', anycast TEXT NOT NULL DEFAULT '');
		INSERT INTO pops SELECT * FROM pops_old; DROP TABLE pops_old;
		COMMIT;`)

	s, err = Open(ctx, path, Options{})
	if err != nil {
		t.Fatalf("opening a file whose pops lacks state: %v", err)
	}
	defer s.Close()
	if err := s.SetPop(ctx, "gru-1", PopUpdate{State: Str("draining")}); err != nil {
		t.Fatal(err)
	}
	pops, err := s.Pops(ctx)
	if err != nil || len(pops) != 1 || pops[0].State != "draining" || pops[0].Region != "sa" {
		t.Fatalf("pops %+v, %v", pops, err)
	}
	var captured int
	if err := s.DB().QueryRow(`SELECT count(*) FROM crdt_clock WHERE tbl = 'pops' AND col = 'state' AND val = 'draining'`).Scan(&captured); err != nil || captured != 1 {
		t.Fatalf("the state write was not captured for replication: %d, %v", captured, err)
	}
}
