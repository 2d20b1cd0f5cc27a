package internal

import (
	"bytes"
	golog "log"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeproxy/edgeproxy/routing"
)

// logBuffer captures what the plugin logs; the watcher writes from its own
// goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// waitFor reports whether s appears in the log within d.
func (l *logBuffer) waitFor(s string, d time.Duration) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(5 * time.Millisecond) {
		if strings.Contains(l.String(), s) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func captureLog(t *testing.T) *logBuffer {
	buf := &logBuffer{}
	prev := golog.Writer()
	golog.SetOutput(buf)
	t.Cleanup(func() { golog.SetOutput(prev) })
	return buf
}

// answerAddrs is the A records of name for a client in 198.51.100.0/24 (FR).
func answerAddrs(t *testing.T, in *Internal, name string) string {
	t.Helper()
	resp, _, _ := serve(t, in, query(name, dns.TypeA, "198.51.100.0/24"), "")
	if resp == nil {
		t.Fatal("no reply")
	}
	var out []string
	for _, rr := range resp.Answer {
		a, _ := netip.AddrFromSlice(rr.(*dns.A).A)
		out = append(out, a.Unmap().String())
	}
	return strings.Join(out, " ")
}

// eventually polls until the answer is want, failing after 200 ms: the
// promise made for edits.
func eventually(t *testing.T, in *Internal, name, want, what string) {
	t.Helper()
	start := time.Now()
	for {
		got := answerAddrs(t, in, name)
		if got == want {
			t.Logf("%s: answered after %v", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 200*time.Millisecond {
			t.Fatalf("%s: after 200 ms %s answers %q, want %q", what, name, got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWatchServesEditsAndSurvivesAnUnreadableTable(t *testing.T) {
	logs := captureLog(t)
	in := newFixture(t)
	if err := in.start(); err != nil {
		t.Fatal(err)
	}
	db := in.db
	if got := answerAddrs(t, in, "web.internal."); got != "10.50.3.1 10.50.3.2 10.50.1.1 10.50.2.7" {
		t.Fatalf("before any edit: %s", got)
	}

	sqlite(t, db, `UPDATE backends SET healthy = 0 WHERE id = 'fr1'`)
	eventually(t, in, "web.internal.", "10.50.3.2 10.50.1.1 10.50.2.7", "unhealthy backend")

	sqlite(t, db, `UPDATE backends SET deleted = 1 WHERE id = 'flaky'`)
	eventually(t, in, "web.internal.", "10.50.3.2 10.50.1.1", "deleted backend")

	// The health rows count: every observer reporting de1 down removes it.
	sqlite(t, db, `INSERT INTO health (backend_id, observer, healthy) VALUES ('de1', 'gru-1', 0)`)
	eventually(t, in, "web.internal.", "10.50.1.1", "backend down in the health rows")

	// A table that cannot be read any more: the last good snapshot stays
	// in use and the fault is logged once, however many polls meet it.
	errorsBefore := counterValue(t, reloadErrors.WithLabelValues(db))
	serial := in.snap.Load().serial
	// The pops table becomes a view without the columns the store reads,
	// in one transaction: a file without pops at all is a v1 file, which
	// is served.
	sqlite(t, db, `BEGIN; ALTER TABLE pops RENAME TO pops_saved; CREATE VIEW pops AS SELECT node FROM pops_saved; COMMIT`)
	time.Sleep(400 * time.Millisecond) // eight polls
	if got := answerAddrs(t, in, "web.internal."); got != "10.50.1.1" {
		t.Fatalf("unreadable table: answers %q, want the last good snapshot's", got)
	}
	if in.snap.Load().serial != serial {
		t.Fatal("a snapshot was published from an unreadable table")
	}
	if n := strings.Count(logs.String(), "no such column: region"); n != 1 {
		t.Fatalf("the read error was logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "still serving serial") {
		t.Fatalf("the log does not say the last snapshot is still served:\n%s", logs)
	}
	if got := counterValue(t, reloadErrors.WithLabelValues(db)) - errorsBefore; got != 1 {
		t.Fatalf("reload errors counter moved by %v, want 1", got)
	}

	// Repaired: served again, and said so.
	sqlite(t, db, `BEGIN; DROP VIEW pops; ALTER TABLE pops_saved RENAME TO pops; UPDATE backends SET healthy = 1 WHERE id = 'fr1'; COMMIT`)
	eventually(t, in, "web.internal.", "10.50.3.1 10.50.1.1", "repaired table")
	// The snapshot is published before the recovery is logged: a query
	// can see the repair a moment before the log says so.
	if !logs.waitFor("readable again", time.Second) {
		t.Fatalf("recovery not logged within a second of serving it:\n%s", logs)
	}
	if in.snap.Load().serial <= serial {
		t.Fatal("serial did not move forward after the repair")
	}
}

// A row that cannot be served is logged when it appears, not at every
// reload.
func TestWarningsAreLoggedOnce(t *testing.T) {
	logs := captureLog(t)
	in := newFixture(t)
	if err := in.start(); err != nil {
		t.Fatal(err)
	}
	// reload runs sql and waits for the snapshot that shows it: any new
	// snapshot is not enough, since one may follow an earlier commit.
	reload := func(sql string, shows func(*routing.Table) bool) {
		t.Helper()
		serial := in.snap.Load().serial
		sqlite(t, in.db, sql)
		for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
			if s := in.snap.Load(); s.serial != serial && shows(s.table) {
				return
			}
			if time.Since(start) > time.Second {
				t.Fatalf("no reload showing %s within a second", sql)
			}
		}
	}
	weightFR1 := in.snap.Load().table.Backend("fr1").Weight
	for i := range 3 {
		reload(`UPDATE backends SET weight = weight + 1 WHERE id = 'fr1'`, func(tb *routing.Table) bool {
			return tb.Backend("fr1") != nil && tb.Backend("fr1").Weight >= weightFR1+i+1
		})
	}
	if n := strings.Count(logs.String(), `backend "bad.id": ID is not a DNS label`); n != 1 {
		t.Fatalf("warning logged %d times over 4 loads, want once:\n%s", n, logs)
	}
	reload(`UPDATE backends SET id = 'bad_id' WHERE id = 'bad.id'`, func(tb *routing.Table) bool { return tb.Backend("bad_id") != nil })
	reload(`UPDATE backends SET id = 'bad.id' WHERE id = 'bad_id'`, func(tb *routing.Table) bool { return tb.Backend("bad.id") != nil })
	if n := strings.Count(logs.String(), `backend "bad.id": ID is not a DNS label`); n != 2 {
		t.Fatalf("a warning that went away and came back was logged %d times, want twice:\n%s", n, logs)
	}
}
