package cluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A new member that lacks a large table is brought up a part at a time:
// each change is sent to it once, and it forwards none of them back to the
// member that had them all. Serving everything at every sync sent the
// difference several times over while the new member was still merging
// it, and the new member echoed what it learnt back.
func TestNewMemberCatchesUpOnALargeTableOnce(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, filepath.Join(dir, "a.db"), testConfig("a", nil, nil))
	a.exec(t, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
		INSERT INTO backends (id, app, region, wg_ip, port) SELECT printf('b%04d', i), 'app', 'eu', printf('10.1.%d.%d', i / 256, i % 256), 80 FROM n`)
	need, err := a.st.ChangesSince(context.Background(), a.st.SiteID(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if len(need) < 2*serveBudget {
		t.Fatalf("%d changes: not enough for several parts of %d", len(need), serveBudget)
	}
	// Older than forwardAge: what b learns is repair, which it forwards.
	time.Sleep(forwardAge + 100*time.Millisecond)
	b := startNode(t, filepath.Join(dir, "b.db"), testConfig("b", nil, []string{a.Addr()}))
	took := converge(t, []*tnode{a, b}, 60*time.Second)
	sent, echoed := a.Stats.ChangesSent.Load(), b.Stats.ChangesSent.Load()
	t.Logf("%d changes caught up in %v; a sent %d, b sent %d", len(need), took, sent, echoed)
	if sent > uint64(len(need))*11/10 {
		t.Errorf("a sent %d changes for the %d b lacked", sent, len(need))
	}
	if echoed != 0 {
		t.Errorf("b sent %d changes, though a had them all", echoed)
	}
}
