package internal

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scrape is the server's /metrics text.
func (s *server) scrape() string {
	s.t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", s.metrics))
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return string(body)
}

// sample is one sample of a scrape, named with its labels as exposed, or
// -1 when the scrape has none.
func sample(t *testing.T, text, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// The scrape tells a snapshot that read only an edited row from one that
// read the whole table (a schema change), and a reload, which replaces the
// plugin's instance, does not set the counters back.
func TestCorefileSnapshotMetrics(t *testing.T) {
	s := startServer(t)
	named := func(name, read string) string {
		if read == "" {
			return fmt.Sprintf(`coredns_internal_%s{db=%q}`, name, s.db)
		}
		return fmt.Sprintf(`coredns_internal_%s{db=%q,read=%q}`, name, s.db, read)
	}
	type reads struct{ changes, whole, rows, seconds float64 }
	// All four from one scrape: a snapshot taken between two scrapes
	// would show in some and not the others.
	scrape := func() reads {
		text := s.scrape()
		return reads{
			changes: sample(t, text, named("snapshots_total", "changes")),
			whole:   sample(t, text, named("snapshots_total", "whole")),
			rows:    sample(t, text, named("snapshot_rows_total", "")),
			seconds: sample(t, text, named("snapshot_read_seconds_total", "changes")),
		}
	}
	waitFor := func(what string, ok func(reads) bool) reads {
		t.Helper()
		var r reads
		for start := time.Now(); !ok(r); time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s: %+v", what, r)
			}
			r = scrape()
		}
		return r
	}
	before := waitFor("the counters exported", func(r reads) bool { return r.changes >= 0 && r.whole >= 0 && r.rows >= 0 })

	sqlite(t, s.db, `UPDATE backends SET weight = 7 WHERE id = 'fr1'`)
	after := waitFor("a snapshot following the edit", func(r reads) bool { return r.changes > before.changes })
	if after.rows <= before.rows || after.whole != before.whole || after.seconds <= before.seconds {
		t.Fatalf("after a one-row edit: %+v, before %+v; want rows and seconds grown, no whole read", after, before)
	}
	sqlite(t, s.db, `CREATE INDEX backends_weight ON backends (weight)`)
	after = waitFor("a whole read after a schema change", func(r reads) bool { return r.whole == after.whole+1 })

	if err := s.process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); !strings.Contains(s.stderr.String(), "Reloading complete"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no reload:\n%s", s.stderr)
		}
	}
	if r := scrape(); r.changes < after.changes || r.whole < after.whole || r.rows < after.rows {
		t.Fatalf("after a reload the counters went back: %+v, before %+v", r, after)
	}
	sqlite(t, s.db, `UPDATE backends SET weight = 8 WHERE id = 'fr1'`)
	waitFor("a snapshot of the reloaded instance counted", func(r reads) bool { return r.changes > after.changes })
}

// Commits to a table no snapshot holds are looked at by the commit watch's
// thread, not by the plugin's watcher: coredns_internal_table_looks_total
// grows by the safety poll's one a second at most, not by one a commit.
func TestCorefileCommitsToOtherTablesCostNoLook(t *testing.T) {
	s := startServer(t)
	name := fmt.Sprintf(`coredns_internal_table_looks_total{db=%q}`, s.db)
	sqlite(t, s.db, `CREATE TABLE operator_notes (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO operator_notes VALUES (1, 0)`)
	looks := func() float64 {
		t.Helper()
		var v float64 = -1
		for start := time.Now(); v < 0; time.Sleep(20 * time.Millisecond) {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("no %s in the scrape", name)
			}
			v = sample(t, s.scrape(), name)
		}
		return v
	}
	time.Sleep(200 * time.Millisecond) // the schema change's whole read
	before, start := looks(), time.Now()
	const commits = 30
	for range commits {
		sqlite(t, s.db, `UPDATE operator_notes SET v = v + 1 WHERE k = 1`)
	}
	took := time.Since(start)
	polls := float64(int(took/time.Second) + 1)
	if got := looks() - before; got > polls {
		t.Fatalf("%d commits to an operator's table over %v made the plugin look %v times, want at most %v (its safety poll, once a second)",
			commits, took.Round(time.Millisecond), got, polls)
	}
}
