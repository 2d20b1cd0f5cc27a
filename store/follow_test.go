package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

var client = netip.MustParseAddr("192.0.2.1")

// sameTable fails unless a followed snapshot holds what a fresh read of
// the whole file holds: rows in table order, by ID and by app, pops, and
// the same routing decision for clients of every country.
func sameTable(t *testing.T, step string, got, want *routing.Table) {
	t.Helper()
	row := func(b *routing.Backend) string {
		return fmt.Sprintf("%s|%s|%s|%s|%v|%v|%v|%d|%d|%d", b.ID, b.App, b.Region, b.Country, b.Addr, b.Healthy, b.Deleted, b.Weight, b.SoftLimit, b.HardLimit)
	}
	rows := func(bs []*routing.Backend) []string {
		out := []string{}
		for _, b := range bs {
			out = append(out, row(b))
		}
		return out
	}
	if g, w := rows(got.Backends()), rows(want.Backends()); !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: followed table\n%v\nwhole read\n%v", step, g, w)
	}
	if !reflect.DeepEqual(got.Apps(), want.Apps()) || !reflect.DeepEqual(got.Pops(), want.Pops()) {
		t.Fatalf("%s: apps %v pops %v, whole read apps %v pops %v", step, got.Apps(), got.Pops(), want.Apps(), want.Pops())
	}
	for _, b := range want.Backends() {
		if g := got.Backend(b.ID); g == nil || row(g) != row(b) || g.Load != b.Load {
			t.Fatalf("%s: Backend(%q) = %v, want %s with the same Load", step, b.ID, g, row(b))
		}
	}
	for _, app := range want.Apps() {
		if g, w := rows(got.App(app)), rows(want.App(app)); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: app %s: %v, want %v", step, app, g, w)
		}
		for _, cc := range []string{"", "BR", "DE", "US"} {
			c := routing.Client{Country: cc, Region: routing.DefaultRegions().Region(cc)}
			sc := routing.Scorer{LocalRegion: "sa"}
			// Both tables share the Loads: each slot taken is given back
			// before the other table decides.
			gd := sc.Acquire(got, routing.NewAffinity(time.Minute, nil), app, client, c, nil)
			if gd.Backend != nil {
				gd.Backend.Load.Release()
			}
			wd := sc.Acquire(want, routing.NewAffinity(time.Minute, nil), app, client, c, nil)
			if wd.Backend != nil {
				wd.Backend.Load.Release()
			}
			if (gd.Backend == nil) != (wd.Backend == nil) || (gd.Backend != nil && gd.Backend.ID != wd.Backend.ID) {
				t.Fatalf("%s: app %s client %q: followed table picks %v, whole read %v", step, app, cc, gd.Backend, wd.Backend)
			}
		}
	}
}

// A follower fed by the journal ends every step where a whole read of the
// file ends, through sqlite3 CLI edits (inserts, updates, a changed
// primary key, deletes, an edit that changes nothing a snapshot holds),
// merges from another site, a pruned journal and an added column.
func TestFollowMatchesWholeReads(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "routing.db")
	s := openT(t, path)
	other := openT(t, filepath.Join(dir, "other.db"))
	rc := readConnT(t, s)
	v, d, err := rc.follow(ctx, nil)
	if err != nil || !d.Full || !v.journal {
		t.Fatalf("first follow: %v %+v journal %v", err, d, v != nil && v.journal)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"sa", "eu", "us"}
	countries := []string{"BR", "DE", "US"}
	next := 0
	check := func(step string, wantFull bool) {
		t.Helper()
		nv, d, err := rc.follow(ctx, v)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if nv == nil {
			t.Fatalf("%s: the follower saw no change", step)
		}
		if d.Full != wantFull {
			t.Fatalf("%s: delta %+v, want full %v", step, d, wantFull)
		}
		whole, warnings, err := s.Snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sameTable(t, step, nv.table, whole)
		if !reflect.DeepEqual(nv.warningList(), warnings) {
			t.Fatalf("%s: warnings %q, whole read %q", step, nv.warningList(), warnings)
		}
		if nv.table.Generation <= v.table.Generation {
			t.Fatalf("%s: generation %d after %d", step, nv.table.Generation, v.table.Generation)
		}
		v = nv
	}
	insert := func() string {
		id := fmt.Sprintf("b%d", next)
		next++
		r := rng.IntN(3)
		return fmt.Sprintf("INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('%s', 'app%d', '%s', '%s', '10.0.%d.%d', 80);",
			id, rng.IntN(3), regions[r], countries[r], next/250, next%250)
	}
	script := ""
	for range 40 {
		script += insert()
	}
	sqlite(t, path, script)
	check("40 inserts", false)

	for i := range 60 {
		id := fmt.Sprintf("b%d", rng.IntN(next))
		var stmt string
		switch rng.IntN(7) {
		case 0:
			stmt = insert()
		case 1:
			stmt = fmt.Sprintf("UPDATE backends SET healthy = 1 - healthy WHERE id = '%s'", id)
		case 2:
			stmt = fmt.Sprintf("UPDATE backends SET app = 'app%d', weight = %d WHERE id = '%s'", rng.IntN(4), rng.IntN(5), id)
		case 3:
			stmt = fmt.Sprintf("DELETE FROM backends WHERE id = '%s'", id)
		case 4:
			stmt = fmt.Sprintf("UPDATE backends SET id = 'renamed%d' WHERE id = '%s'", i, id)
		case 5:
			stmt = fmt.Sprintf("UPDATE backends SET wg_ip = 'not-an-ip' WHERE id = '%s'; UPDATE backends SET deleted = 1 WHERE id = 'b%d'", id, rng.IntN(next))
		case 6:
			stmt = fmt.Sprintf("INSERT OR REPLACE INTO pops (node, region) VALUES ('pop%d', 'eu'); UPDATE backends SET region = 'us', country = 'US' WHERE id = '%s'", rng.IntN(3), id)
		}
		// A commit that may touch no row (a deleted ID) is followed
		// only when it wrote something.
		before := sqlite(t, path, "SELECT seq FROM sqlite_sequence WHERE name = 'crdt_journal'")
		sqlite(t, path, stmt)
		if sqlite(t, path, "SELECT seq FROM sqlite_sequence WHERE name = 'crdt_journal'") == before {
			if nv, _, err := rc.follow(ctx, v); err != nil || nv != nil {
				t.Fatalf("%s: nothing written, yet a new snapshot (%v)", stmt, err)
			}
			continue
		}
		check(stmt, false)
	}

	// A commit of rows no snapshot holds makes no new snapshot.
	sqlite(t, path, "CREATE TABLE IF NOT EXISTS scratch (x); INSERT INTO scratch VALUES (1)")
	check("a new table (schema change)", true)
	sqlite(t, path, "INSERT INTO scratch VALUES (2)")
	if nv, _, err := rc.follow(ctx, v); err != nil || nv != nil {
		t.Fatalf("a write to another table made a snapshot (%v)", err)
	}

	// Changes merged from another site are journaled like local ones.
	other.DB().Exec(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('far', 'app1', 'eu', 'DE', '10.9.9.9', 443)`)
	other.DB().Exec(`UPDATE backends SET weight = 7 WHERE id = 'far'`)
	mine, _ := s.Vector(ctx)
	segs, err := other.Missing(ctx, mine, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(ctx, segs, time.Now()); err != nil {
		t.Fatal(err)
	}
	check("merge from another site", false)
	if b := v.table.Backend("far"); b == nil || b.Weight != 7 {
		t.Fatalf("merged row: %+v", b)
	}

	// A reader whose entries were pruned reads the whole table.
	sqlite(t, path, "UPDATE backends SET weight = 9 WHERE id = 'far'; DELETE FROM crdt_journal WHERE n <= (SELECT max(n) FROM crdt_journal)")
	sqlite(t, path, "UPDATE backends SET weight = 3 WHERE id = 'far'")
	check("journal pruned past the reader", true)

	// A column added by hand changes the schema: a whole read.
	sqlite(t, path, "ALTER TABLE backends ADD COLUMN note TEXT")
	sqlite(t, path, "UPDATE backends SET weight = 4 WHERE id = 'far'")
	check("column added", true)
	sqlite(t, path, "UPDATE backends SET weight = 5 WHERE id = 'far'")
	check("after the column", false)
}

// A watcher follows to the position its look read, while writers go on
// committing: the rows are read as they are by then, and the next follow
// takes the commits after the position, so the table ends as the file is.
func TestFollowToALookedAtPosition(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	sqlite(t, path, `INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('b1', 'app', 'sa', 'BR', '10.0.0.1', 80), ('b2', 'app', 'eu', 'DE', '10.0.0.2', 80), ('b3', 'app', 'us', 'US', '10.0.0.3', 80)`)
	rc := readConnT(t, s)
	v, _, err := rc.follow(ctx, nil)
	if err != nil || !v.journal {
		t.Fatalf("first follow: %v", err)
	}
	look := func() journalPos {
		t.Helper()
		pos, ok := s.journalNow(ctx, rc)
		if !ok {
			t.Fatal("no journal position")
		}
		return pos
	}

	sqlite(t, path, "UPDATE backends SET weight = 2 WHERE id = 'b1'")
	looked := look()
	sqlite(t, path, "UPDATE backends SET weight = 3 WHERE id = 'b1'; DELETE FROM backends WHERE id = 'b2'; INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('b9', 'app', 'sa', 'BR', '10.0.0.9', 80)")
	nv, d, err := rc.followTo(ctx, v, looked)
	if err != nil || nv == nil || d.Full {
		t.Fatalf("follow to the looked-at position: %v %+v", err, d)
	}
	if !reflect.DeepEqual(d.Backends, []string{"b1"}) {
		t.Fatalf("changed %v, want the one row written up to the position", d.Backends)
	}
	if b := nv.table.Backend("b1"); b == nil || b.Weight != 3 {
		t.Fatalf("b1 = %+v, want it as the file holds it now (weight 3)", b)
	}
	if nv.table.Backend("b2") == nil || nv.table.Backend("b9") != nil {
		t.Fatal("rows written after the position were taken before their entries")
	}

	nv2, d, err := rc.followTo(ctx, nv, look())
	if err != nil || nv2 == nil || d.Full {
		t.Fatalf("the next follow: %v %+v", err, d)
	}
	whole, _, err := s.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameTable(t, "after the commits past the position", nv2.table, whole)

	// Entries pruned past the follower: the whole table is read.
	sqlite(t, path, "UPDATE backends SET weight = 5 WHERE id = 'b3'; DELETE FROM crdt_journal")
	sqlite(t, path, "UPDATE backends SET weight = 6 WHERE id = 'b3'")
	nv3, d, err := rc.followTo(ctx, nv2, look())
	if err != nil || !d.Full {
		t.Fatalf("follow past pruned entries: %v %+v, want a whole read", err, d)
	}
	if b := nv3.table.Backend("b3"); b == nil || b.Weight != 6 {
		t.Fatalf("b3 = %+v after the whole read", b)
	}
}

// Pruning keeps the newest journalKeep entries and leaves a short journal
// alone.
func TestPruneJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	sqlite(t, path, fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
		INSERT INTO crdt_journal (tbl, pk) SELECT 'backends', json_array('x' || i) FROM c`, journalKeep+journalKeep/2))
	if err := s.pruneJournal(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sqlite(t, path, "SELECT count(*), max(n) - min(n) + 1 FROM crdt_journal"); n != fmt.Sprintf("%d|%d", journalKeep, journalKeep) {
		t.Fatalf("after pruning: %s", n)
	}
	sqlite(t, path, "INSERT INTO crdt_journal (tbl, pk) VALUES ('backends', '[\"y\"]')")
	if err := s.pruneJournal(ctx); err != nil {
		t.Fatal(err)
	}
	if n := sqlite(t, path, "SELECT count(*) FROM crdt_journal"); n != fmt.Sprint(journalKeep+1) {
		t.Fatalf("a journal below the limit was pruned: %s entries", n)
	}
}

// A copy of the file continues the journal's numbers under a new journal
// id, so a reader that followed the original reads the copy whole.
func TestCopyGetsANewJournalID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "routing.db")
	s := openT(t, path)
	sqlite(t, path, "INSERT INTO backends (id, app, wg_ip, port) VALUES ('a', 'web', '10.0.0.1', 80)")
	rc, err := s.openReadConn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, _, err := rc.follow(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc.close(false)
	s.Close()
	copyPath := filepath.Join(dir, "copy.db")
	sqlite(t, path, ".backup "+copyPath)
	c := openT(t, copyPath)
	if c.CopiedFrom() == "" {
		t.Fatal("the copy was not recognized")
	}
	pos, ok, err := journalState(ctx, c.DB())
	if err != nil || !ok {
		t.Fatalf("journal of the copy: %v %v", ok, err)
	}
	if pos.id == v.pos.id {
		t.Fatalf("the copy kept the journal id %s", pos.id)
	}
	sqlite(t, copyPath, "UPDATE backends SET weight = 5 WHERE id = 'a'")
	if _, d, err := readConnT(t, c).follow(ctx, v); err != nil || !d.Full {
		t.Fatalf("a view of the original followed the copy: %+v %v", d, err)
	}
}

// readConnT is a follower's connection to s, closed after the test.
func readConnT(tb testing.TB, s *Store) *readConn {
	tb.Helper()
	c, err := s.openReadConn(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.close(false) })
	return c
}
