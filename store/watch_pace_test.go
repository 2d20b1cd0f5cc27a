package store

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// A stream of commits is followed in batches, at most one snapshot per
// followGap, and the last snapshot holds the last commit: every snapshot
// costs its consumers (the health sync, the POP signal, the DNS records),
// and a burst of registrations would otherwise hand them one per commit.
func TestStreamOfCommitsIsFollowedInBatches(t *testing.T) {
	s := openTemp(t)
	sqlite(t, s.Path(), `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('a','myapp','eu','10.0.0.1',80)`)
	first, _, err := s.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var at []time.Time
	last := make(chan struct{})
	const commits = 300
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, Watcher{From: first, OnTable: func(tbl *routing.Table, _ []string) {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		if tbl.Backend("a").Weight == commits {
			close(last)
		}
	}})
	time.Sleep(100 * time.Millisecond) // the watcher is up

	db, err := sql.Open("sqlite3", "file:"+s.Path()+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	start := time.Now()
	for k := 1; k <= commits; k++ {
		if _, err := db.Exec(`UPDATE backends SET weight = ? WHERE id = 'a'`, k); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Microsecond)
	}
	span := time.Since(start)
	select {
	case <-last:
	case <-time.After(5 * time.Second):
		t.Fatal("the last commit was never delivered")
	}
	mu.Lock()
	n := len(at)
	mu.Unlock()
	if most := int(span/followGap) + 2; n > most {
		t.Fatalf("%d commits over %v were delivered as %d snapshots; at one per %v, at most %d", commits, span.Round(time.Millisecond), n, followGap, most)
	}
	t.Logf("%d commits over %v: %d snapshots", commits, span.Round(time.Millisecond), n)
}
