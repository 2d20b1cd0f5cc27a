package edgeroute_test

import (
	"cmp"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
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
	// All four from one scrape: a snapshot taken between two scrapes
	// would show in some and not the others.
	scrape := func() reads {
		t.Helper()
		text, err := p.Metrics()
		if err != nil {
			t.Fatal(err)
		}
		secs, err := strconv.ParseFloat(popctl.Sample(text, `edgeroute_table_snapshot_read_seconds_total{read="changes"}`), 64)
		if err != nil {
			t.Fatalf("edgeroute_table_snapshot_read_seconds_total: %v", err)
		}
		return reads{
			changes: atoi(popctl.Sample(text, `edgeroute_table_snapshots_total{read="changes"}`)),
			whole:   atoi(popctl.Sample(text, `edgeroute_table_snapshots_total{read="whole"}`)),
			rows:    atoi(popctl.Sample(text, `edgeroute_table_snapshot_rows_total`)),
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

// TestBackendMetricsNameTheBackendsThisPOPUsed: by default only a backend
// this POP has sent a connection to has series of its own, so a scrape of
// a large table costs the backends in use; backend_metrics all names every
// backend of the table, and off none, while the per-app series stay.
func TestBackendMetricsNameTheBackendsThisPOPUsed(t *testing.T) {
	for _, c := range []struct {
		option     string
		used, idle bool // whether fr-1 (used) and jp-1 (never used) have series
	}{
		{"", true, false},
		{"backend_metrics used", true, false},
		{"backend_metrics all", true, true},
		{"backend_metrics off", false, false},
	} {
		t.Run(cmp.Or(c.option, "default"), func(t *testing.T) {
			p := startPOP(t, popConfig{region: "eu", country: "FR", extraGlobal: c.option})
			p.addBackend(startBackend(t, "fr-1"), "myapp", "eu", "FR", 100, 150)
			p.addBackend(startBackend(t, "jp-1"), "myapp", "ap", "JP", 100, 150)
			p.waitBackends(2)
			if got := p.via(clientFR); got != "fr-1" {
				t.Fatalf("a FR client went to %q, want fr-1", got)
			}
			for _, b := range []struct {
				id   string
				want bool
			}{{"fr-1", c.used}, {"jp-1", c.idle}} {
				for _, name := range []string{"edgeroute_backend_connections_total", "edgeroute_backend_routable", "edgeroute_backend_ejected"} {
					sample := fmt.Sprintf(`%s{app="myapp",backend=%q}`, name, b.id)
					if got := p.metric(sample); (got != "") != b.want {
						t.Errorf("%s = %q; want a series: %v", sample, got, b.want)
					}
				}
			}
			if got := p.metric(`edgeroute_app_routable_backends{app="myapp"}`); got != "2" {
				t.Errorf(`edgeroute_app_routable_backends{app="myapp"} = %q, want 2`, got)
			}
		})
	}
}

// TestCommitsToOtherTablesCostTheProxyNoLook: commits to a table no
// snapshot holds (an operator's own here; on a POP also heartbeats and
// leases) are looked at by the commit watch's thread, not by the proxy's
// watcher. edgeroute_table_looks_total grows by the safety poll's one a
// second at most, not by one a commit; an edit to a backend is still
// followed.
func TestCommitsToOtherTablesCostTheProxyNoLook(t *testing.T) {
	p := startPOP(t, popConfig{})
	p.addBackend(startBackend(t, "be-a"), "myapp", "sa", "BR", 100, 150)
	p.waitBackends(1)
	p.sql(`CREATE TABLE operator_notes (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO operator_notes VALUES (1, 0)`)
	time.Sleep(200 * time.Millisecond) // the schema change's whole read
	looks := func() int {
		t.Helper()
		v := p.metric(`edgeroute_table_looks_total`)
		if v == "" {
			t.Fatal("no edgeroute_table_looks_total in the scrape")
		}
		return atoi(v)
	}
	before, start := looks(), time.Now()
	const commits = 30
	for range commits {
		p.sql(`UPDATE operator_notes SET v = v + 1 WHERE k = 1`)
	}
	took := time.Since(start)
	polls := int(took/time.Second) + 1
	if got := looks() - before; got > polls {
		t.Fatalf("%d commits to an operator's table over %v made the proxy look %d times, want at most %d (its safety poll, once a second)",
			commits, took.Round(time.Millisecond), got, polls)
	}
	snapshots := func() int { return atoi(p.metric(`edgeroute_table_snapshots_total{read="changes"}`)) }
	edited := snapshots()
	p.sql(`UPDATE backends SET weight = 7 WHERE id = 'be-a'`)
	eventually(t, 2*time.Second, func() string {
		if snapshots() == edited {
			return "the edit to a backend after the other table's commits was not followed"
		}
		return ""
	})
}
