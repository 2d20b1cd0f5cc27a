package pop

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/routing"
)

// The passive checker looks at every row only when a run of failures
// began since its last look; a run that begins after one is still found,
// and the backend ejected, at the next tick, and readmitted when its
// ejection ends.
func TestPassiveFindsFailuresBegunSinceItsLastLook(t *testing.T) {
	rt, _ := openPOP(t, `('a','myapp','sa','BR','10.0.0.1',80)`, `('b','myapp','sa','BR','10.0.0.2',80)`)
	m := newHealthManager(rt, nil)
	tbl := waitTable(t, rt, func(tbl *routing.Table) bool { return tbl.Backend("b") != nil })
	now := time.Now()
	m.passive(tbl, now)
	a := tbl.Backend("a")
	for range health.DefaultEjectAfter {
		a.Load.DialFailed()
	}
	m.passive(tbl, now)
	if a.Load.DownReasons()&routing.DownEjected == 0 {
		t.Fatalf("a failed %d dials in a row after the checker's last look and is not ejected", health.DefaultEjectAfter)
	}
	if len(m.failing) != 1 {
		t.Fatalf("the checker follows %d backends, want the ejected one", len(m.failing))
	}
	later := now.Add(time.Hour)
	m.passive(tbl, later)
	if a.Load.DownReasons()&routing.DownEjected != 0 {
		t.Fatal("a is still ejected an hour later")
	}
	m.passive(tbl, later)
	if len(m.failing) != 0 {
		t.Fatalf("the checker still follows %d backends once none fails", len(m.failing))
	}
}

// waitTable returns rt's table once ok says it has what was written.
func waitTable(t *testing.T, rt *Runtime, ok func(*routing.Table) bool) *routing.Table {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if tbl := rt.Table(); ok(tbl) {
			return tbl
		}
		if time.Now().After(deadline) {
			t.Fatal("the rows written did not reach the table within 3s")
		}
	}
}

// The monitors follow the edits of the apps they check: a backend added
// is checked, one marked unhealthy or removed is not, and an app whose
// backends are all gone has nothing checked.
func TestHealthChecksFollowEditedApps(t *testing.T) {
	rt, db := openPOP(t, `('a1','web','sa','BR','127.0.0.1',1)`, `('a2','web','sa','BR','127.0.0.1',2)`, `('d1','db','eu','DE','127.0.0.1',3)`)
	spec := HealthSpec{Monitor: &health.Config{Interval: time.Hour}}
	m := newHealthManager(rt, map[string]HealthSpec{"web": spec, "db": spec})
	t.Cleanup(func() {
		for _, mon := range m.monitors {
			mon.Stop()
		}
	})
	checked := func() string {
		var out []string
		for app, mon := range m.monitors {
			for _, st := range mon.Statuses() {
				out = append(out, app+":"+st.ID)
			}
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	m.sync(waitTable(t, rt, func(tbl *routing.Table) bool { return tbl.Backend("d1") != nil }))
	if got := checked(); got != "[db:d1 web:a1 web:a2]" {
		t.Fatalf("checked at start: %s", got)
	}
	for _, q := range []string{
		`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('a3','web','sa','BR','127.0.0.1',4)`,
		`UPDATE backends SET healthy = 0 WHERE id = 'a1'`,
		`DELETE FROM backends WHERE id = 'd1'`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	m.sync(waitTable(t, rt, func(tbl *routing.Table) bool {
		return tbl.Backend("a3") != nil && !tbl.Backend("a1").Healthy && tbl.Backend("d1") == nil
	}))
	if got := checked(); got != "[web:a2 web:a3]" {
		t.Fatalf("checked after the edits: %s", got)
	}
}

// A backend that moves from a checked app to one no monitor checks sheds
// the verdict of its old app's checks, and a result of those checks that
// comes after the move gives it none. A backend of an unchecked app that
// stays where it was keeps no verdict either, through edits of its app.
func TestUncheckedAppsCarryNoActiveVerdict(t *testing.T) {
	rt, db := openPOP(t, `('a1','web','sa','BR','127.0.0.1',1)`, `('a2','web','sa','BR','127.0.0.1',2)`, `('o1','other','sa','BR','127.0.0.1',3)`)
	m := newHealthManager(rt, map[string]HealthSpec{"web": {Monitor: &health.Config{Interval: time.Hour}}})
	t.Cleanup(func() {
		for _, mon := range m.monitors {
			mon.Stop()
		}
	})
	activeDown := func(id string) bool {
		return rt.Table().Backend(id).Load.DownReasons()&routing.DownActive != 0
	}
	m.sync(waitTable(t, rt, func(tbl *routing.Table) bool { return tbl.Backend("o1") != nil }))
	m.checked("web", health.Status{ID: "a1", Healthy: false}, true)
	if !activeDown("a1") {
		t.Fatal("a failed check of web did not mark a1, a backend of web, down")
	}
	m.checked("web", health.Status{ID: "o1", Healthy: false}, true)
	if activeDown("o1") {
		t.Fatal("web's checks marked o1, a backend of another app, down")
	}
	for _, q := range []string{
		`UPDATE backends SET app = 'other' WHERE id = 'a1'`,
		`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('o2','other','sa','BR','127.0.0.1',4)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
		m.sync(waitTable(t, rt, func(tbl *routing.Table) bool {
			return tbl.Backend("a1").App == "other" && (q[0] == 'U' || tbl.Backend("o2") != nil)
		}))
		if activeDown("a1") {
			t.Fatalf("after %q: a1, now in an app no monitor checks, is still down by web's checks", q)
		}
		m.checked("web", health.Status{ID: "a1", Healthy: false}, true)
		if activeDown("a1") {
			t.Fatalf("after %q: a late result of web's checks marked a1 down", q)
		}
	}
}

// The monitors' sync after a one-row edit of a table of 100 backends an
// app, without active checks: the cost every snapshot pays.
func BenchmarkHealthSyncAfterEdit(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		rows := benchRows(n)
		before := routing.NewTable(1, time.Now(), rows, nil)
		edited := *rows[n/2]
		edited.Weight = 7
		after := slices.Clone(rows)
		after[n/2] = &edited
		tbl := before.Derive(2, time.Now(), routing.RowsOf(after), nil, []routing.Change{{Old: rows[n/2], New: &edited}}, nil)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := newHealthManager(nil, nil)
			for b.Loop() {
				m.synced = before
				m.sync(tbl)
			}
		})
	}
}

// A tick of the passive checker over a table where nothing fails: the
// idle POP's cost, ten times a second.
func BenchmarkPassiveTickIdle(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		rows := benchRows(n)
		tbl := routing.NewTable(1, time.Now(), rows, nil)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			m := newHealthManager(nil, nil)
			now := time.Now()
			for b.Loop() {
				m.passive(tbl, now)
			}
		})
	}
}

// benchRows is n backends, 100 an app.
func benchRows(n int) []*routing.Backend {
	rows := make([]*routing.Backend, n)
	for i := range rows {
		rows[i] = &routing.Backend{ID: fmt.Sprintf("be%d", i), App: fmt.Sprintf("app%d", i/100), Healthy: true,
			Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 80)}
	}
	return rows
}
