package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestConnectionsKeepTemporaryDataInMemory: both pools of a proxy's store
// and a reader's store hold their statement journals in memory (see
// connectHook), so a batch of registrations writes no temporary file.
func TestConnectionsKeepTemporaryDataInMemory(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	w := openT(t, path)
	r, err := Open(ctx, path, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, s := range map[string]*Store{"proxy": w, "reader": r} {
		for pool, db := range map[string]*sql.DB{"read": s.db, "write": s.wdb} {
			var mode int
			if err := db.QueryRowContext(ctx, "PRAGMA temp_store").Scan(&mode); err != nil {
				t.Fatalf("%s store, %s pool: %v", name, pool, err)
			}
			if mode != 2 {
				t.Errorf("%s store, %s pool: temp_store = %d, want 2 (memory)", name, pool, mode)
			}
		}
	}
}
