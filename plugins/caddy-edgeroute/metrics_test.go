package edgeroute_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// TestSnapshotMetricsShowHowTheTableWasRead: an operator's scrape tells a
// snapshot that read only the edited row (read="changes") from one that
// read the whole table (a schema change the journal cannot account for).
func TestSnapshotMetricsShowHowTheTableWasRead(t *testing.T) {
	p := startPOP(t, popConfig{})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.addBackend(startBackend(t, "be-b"), "myapp", "sa", "BR", 100, 150)
	p.waitBackends(2)
	type reads struct {
		changes, whole, rows int
		seconds              float64
	}
	scrape := func() reads {
		t.Helper()
		secs, err := strconv.ParseFloat(p.metric(`edgeroute_table_snapshot_read_seconds_total{read="changes"}`), 64)
		if err != nil {
			t.Fatalf("edgeroute_table_snapshot_read_seconds_total: %v", err)
		}
		return reads{
			changes: atoi(p.metric(`edgeroute_table_snapshots_total{read="changes"}`)),
			whole:   atoi(p.metric(`edgeroute_table_snapshots_total{read="whole"}`)),
			rows:    atoi(p.metric(`edgeroute_table_snapshot_rows_total`)),
			seconds: secs,
		}
	}
	before := scrape()

	p.sql(`UPDATE backends SET weight = 7 WHERE id = 'be-a'`)
	var after reads
	eventually(t, 2*time.Second, func() string {
		if after = scrape(); after.changes == before.changes {
			return fmt.Sprintf("no snapshot followed the edit: %+v", after)
		}
		return ""
	})
	if after.rows <= before.rows || after.whole != before.whole || after.seconds <= before.seconds {
		t.Fatalf("after a one-row edit: %+v, before %+v; want rows and seconds grown, no whole read", after, before)
	}

	p.sql(`CREATE INDEX backends_weight ON backends (weight)`)
	eventually(t, 2*time.Second, func() string {
		if s := scrape(); s.whole != after.whole+1 {
			return fmt.Sprintf("after a schema change: %+v, want one more whole read than %+v", s, after)
		}
		return ""
	})
}
