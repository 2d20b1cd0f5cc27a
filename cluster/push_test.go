package cluster

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// A local commit whose report came before a merge became visible, and
// which became visible itself only after the merge (a writer that syncs
// the WAL before its commit shows, on a slow disk), is still pushed by the
// report's series of looks, not left to the safety poll. No disk here is
// slow on demand, so the kernel's reports are replaced by the test's: it
// reports the commit early, then makes it.
func TestACommitVisibleAfterAMergeIsStillPushed(t *testing.T) {
	var mu sync.Mutex
	reports := map[*store.Store]chan struct{}{}
	commitReports = func(st *store.Store, ctx context.Context) (*store.ChangeReports, error) {
		mu.Lock()
		defer mu.Unlock()
		reports[st] = make(chan struct{}, 1)
		return &store.ChangeReports{C: reports[st]}, nil
	}
	defer func() { commitReports = (*store.Store).NotifyChanges }()
	nodes := startCluster(t, 2, nil, func(c *Config) { c.SyncInterval, c.PushSafetyPoll = time.Hour, time.Hour })
	src, dst := nodes[0], nodes[1]
	has := func(id string) bool {
		var n int
		dst.st.DB().QueryRow(`SELECT count(*) FROM backends WHERE id = ?`, id).Scan(&n)
		return n == 1
	}

	// A change of a third file's, merged into src's: it moves src's
	// data_version, not its own version.
	if _, err := src.st.Apply(context.Background(), writtenElsewhere(t, 1, 1), time.Now()); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	reports[src.st] <- struct{}{} // the local commit's write, reported before it shows
	mu.Unlock()
	// The loop's first looks find the merge and then nothing; the commit
	// shows after them.
	time.Sleep(100 * time.Millisecond)
	src.exec(t, `INSERT INTO backends (id, app) VALUES ('late', 'app')`)
	start := time.Now()
	for !has("late") {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("the commit was not pushed within 2s of showing (pushes: %d)", src.Stats.Pushes.Load())
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("pushed %v after it showed", time.Since(start))
}
