package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"
)

// TestKeepIdleConnsKeepsConnectionsOpen: by default a connection left idle
// past idleConnTime is closed; a store opened with KeepIdleConns keeps its
// idle connections until Close.
func TestKeepIdleConnsKeepsConnectionsOpen(t *testing.T) {
	defer func(d time.Duration) { idleConnTime = d }(idleConnTime)
	idleConnTime = 50 * time.Millisecond
	ctx := context.Background()
	open := func(name string, keep bool) *Store {
		st, err := Open(ctx, filepath.Join(t.TempDir(), name), Options{KeepIdleConns: keep})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	// Three connections at once, then all idle.
	use := func(st *Store) {
		var conns []*sql.Conn
		for range 3 {
			c, err := st.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.ExecContext(ctx, "SELECT count(*) FROM backends"); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}
	byDefault, kept := open("default.db", false), open("kept.db", true)
	use(byDefault)
	use(kept)
	// database/sql looks for idle connections to close once a second.
	deadline := time.Now().Add(10 * time.Second)
	for byDefault.DB().Stats().MaxIdleTimeClosed == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no idle connection of the default store was closed within 10 s: %+v", byDefault.DB().Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := kept.DB().Stats(); s.MaxIdleTimeClosed != 0 || s.Idle < 3 {
		t.Fatalf("the store with KeepIdleConns closed idle connections: %+v", s)
	}
}
