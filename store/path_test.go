package store

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A file whose name holds characters a SQLite URI gives a meaning to (#, ?,
// %) is opened as named, read-write and read-only: no other file is made
// or read in its place.
func TestOpenPathsWithURICharacters(t *testing.T) {
	for _, name := range []string{"routing#2.db", "what?.db", "100%25.db", "a b.db", "x?mode=ro#y.db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			s, err := Open(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sqlite(t, path, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('a','myapp','eu','10.0.0.1',80)`)
			tbl, _, err := s.Snapshot(context.Background())
			s.Close()
			if err != nil {
				t.Fatal(err)
			}
			if tbl.Backend("a") == nil {
				t.Fatalf("the store did not read the row the sqlite3 CLI wrote into %s", name)
			}
			ro, err := Open(context.Background(), path, Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			tbl, _, err = ro.Snapshot(context.Background())
			ro.Close()
			if err != nil || tbl.Backend("a") == nil {
				t.Fatalf("read-only: %v, backend a %v", err, tbl.Backend("a"))
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if n := e.Name(); !slices.Contains([]string{name, name + "-wal", name + "-shm"}, n) {
					t.Errorf("%s was made next to %s", n, name)
				}
			}
		})
	}
}
