package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// sqlite runs the real sqlite3 CLI on the file, as an operator would. It
// waits up to 5 s (.timeout) where another connection holds a lock for a
// moment, instead of failing with "database is locked" at once.
func sqlite(t *testing.T, path, sql string) string {
	t.Helper()
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, sql).CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v\n%s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

const v1Schema = `CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, country TEXT, wg_ip TEXT, port INTEGER,
	healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);`

const v1SchemaNoCountry = `CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, wg_ip TEXT, port INTEGER,
	healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);`

func TestOpenMigratesV1FileInPlace(t *testing.T) {
	for name, schema := range map[string]string{"with country": v1Schema, "without country": v1SchemaNoCountry} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "routing.db")
			cols := "id, app, region, wg_ip, port, healthy, weight, soft_limit, hard_limit"
			sqlite(t, path, schema+`INSERT INTO backends (`+cols+`) VALUES
				('sa-node-1','myapp','sa','10.50.1.1',8080,1,1,100,200),
				('eu-node-1','myapp','eu','10.50.3.1',8080,1,1,100,200);`)
			s, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tbl, warnings, err := s.Snapshot(context.Background())
			if err != nil || len(warnings) > 0 {
				t.Fatalf("snapshot: %v %v", err, warnings)
			}
			got := tbl.App("myapp")
			if len(got) != 2 || got[0].ID != "sa-node-1" || got[1].Addr.String() != "10.50.3.1:8080" || !got[1].Healthy {
				t.Fatalf("v1 rows not loaded as they were: %+v", got)
			}
			// The file is migrated: v2 tables exist, the version is set, and
			// v1's rows and columns are untouched.
			if v := sqlite(t, path, "PRAGMA user_version"); v != fmt.Sprint(SchemaVersion) {
				t.Fatalf("user_version %s", v)
			}
			if n := sqlite(t, path, "SELECT count(*) FROM pops; SELECT count(*) FROM health; SELECT count(*) FROM backends"); n != "0\n0\n2" {
				t.Fatalf("tables after migration: %q", n)
			}
			if c := sqlite(t, path, "SELECT count(*) FROM pragma_table_info('backends') WHERE name='country'"); c != "1" {
				t.Fatalf("country column missing after migration")
			}
			// Opening again is a no-op.
			s.Close()
			s2, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatalf("second open: %v", err)
			}
			s2.Close()
		})
	}
}

func TestOpenRejectsBadFilesWithClearErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("this is not sqlite\n", 300)), 0o644)
	unreadable := filepath.Join(dir, "secret.db")
	sqlite(t, unreadable, v1Schema)
	os.Chmod(unreadable, 0)

	cases := []struct {
		name, path string
		ro         bool
		want       string
	}{
		{"not sqlite", garbage, false, "not a SQLite database"},
		{"not sqlite read-only", garbage, true, "not a SQLite database"},
		{"missing dir", filepath.Join(dir, "nope", "routing.db"), false, "does not exist"},
		{"read-only missing file", filepath.Join(dir, "missing.db"), true, "no such file"},
		{"directory", dir, false, "is a directory"},
		{"empty path", "", false, "no database path"},
	}
	if os.Geteuid() != 0 { // root reads through permissions
		cases = append(cases, struct {
			name, path string
			ro         bool
			want       string
		}{"unreadable", unreadable, false, "cannot open"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(context.Background(), c.path, Options{ReadOnly: c.ro})
			if err == nil {
				s.Close()
				t.Fatalf("opened %s", c.path)
			}
			if !strings.Contains(err.Error(), c.want) || (c.path != "" && !strings.Contains(err.Error(), filepath.Base(c.path))) {
				t.Fatalf("error %q should name the file and say %q", err, c.want)
			}
		})
	}
	// The garbage file is left as it was: nothing is lost.
	if b, _ := os.ReadFile(garbage); !strings.HasPrefix(string(b), "this is not sqlite") {
		t.Fatal("garbage file was modified")
	}
}

func TestReadOnlyNeverWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	sqlite(t, path, v1SchemaNoCountry+`INSERT INTO backends VALUES ('a','myapp','eu','10.0.0.1',80,1,1,10,20,0);`)
	before, _ := os.ReadFile(path)
	s, err := Open(context.Background(), path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl, _, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if b := tbl.Backend("a"); b == nil || b.Country != "" || !b.Routable() {
		t.Fatalf("read-only snapshot of an unmigrated v1 file: %+v", b)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("read-only open changed the file")
	}
}

func TestSnapshotKeepsBadRowsOutWithWarnings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sqlite(t, path, `INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES
		('good','myapp','EU','fr','10.0.0.1',80),
		('badip','myapp','eu','FR','backend.example',80),
		('badport','myapp','eu','FR','10.0.0.2',70000)`)
	tbl, warnings, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 2 || !strings.Contains(warnings[0], "badip") || !strings.Contains(warnings[1], "badport") {
		t.Fatalf("warnings %q", warnings)
	}
	good := tbl.Backend("good")
	if !good.Routable() || good.Region != "eu" || good.Country != "FR" || good.Weight != 2 || good.SoftLimit != 100 || good.HardLimit != 150 {
		t.Fatalf("defaults or normalisation wrong: %+v", good)
	}
	if tbl.Backend("badip").Routable() || tbl.Backend("badport").Routable() {
		t.Fatal("bad rows must not be routable")
	}
}

func TestWatchSeesSqlite3EditsQuickly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	loads := routing.NewLoadTracker()
	s, err := Open(context.Background(), path, Options{Loads: loads})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tables := make(chan *routing.Table, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{OnTable: func(t *routing.Table, _ []string) { tables <- t }})
	time.Sleep(120 * time.Millisecond) // let the watcher take its baseline

	sqlite(t, path, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('x','myapp','eu','10.0.0.9',80)`)
	var first *routing.Table
	select {
	case first = <-tables:
	case <-time.After(time.Second):
		t.Fatal("no snapshot after a sqlite3 insert")
	}
	for first.Backend("x") == nil { // the baseline load may come first
		first = <-tables
	}
	first.Backend("x").Load.TryAcquire(0)

	start := time.Now()
	sqlite(t, path, `UPDATE backends SET healthy=0 WHERE id='x'`)
	for {
		select {
		case tbl := <-tables:
			if tbl.Backend("x").Healthy {
				continue
			}
			if tbl.Generation <= first.Generation {
				t.Fatalf("generation did not increase: %d then %d", first.Generation, tbl.Generation)
			}
			if tbl.Backend("x").Load.Active() != 1 {
				t.Fatal("live connection count lost across snapshots")
			}
			t.Logf("sqlite3 update seen after %v", time.Since(start))
			return
		case <-time.After(time.Second):
			t.Fatal("update not seen within a second")
		}
	}
}
