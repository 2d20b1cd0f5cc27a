package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func openT(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSqliteCLIWritesAreCaptured(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	sqlite(t, path, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('b1','myapp','sa','10.0.0.1',80)`)
	sqlite(t, path, `UPDATE backends SET weight = 7 WHERE id = 'b1'`)
	v, err := s.DBVersion(ctx)
	if err != nil || v != 2 {
		t.Fatalf("db_version %d %v, want 2 (one insert, one update)", v, err)
	}
	ch, err := s.ChangesSince(ctx, s.SiteID(), 0, v)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, c := range ch {
		got[c.Column] = c.Value
		if c.PK != `["b1"]` || c.CL != 1 {
			t.Fatalf("change %+v", c)
		}
	}
	if got["weight"] != int64(7) || got["app"] != "myapp" || got["port"] != int64(80) || len(got) != len(s.shapes["backends"].cols)+1 {
		t.Fatalf("captured %v", got)
	}
	sqlite(t, path, `DELETE FROM backends WHERE id = 'b1'`)
	ch, _ = s.ChangesSince(ctx, s.SiteID(), 0, 100)
	if len(ch) != 1 || ch[0].Column != "" || ch[0].CL != 2 {
		t.Fatalf("after delete: %+v", ch)
	}
	sqlite(t, path, `INSERT INTO backends (id, app) VALUES ('b1','again')`)
	ch, _ = s.ChangesSince(ctx, s.SiteID(), 3, 100)
	if len(ch) == 0 || ch[0].CL != 3 {
		t.Fatalf("after resurrection: %+v", ch)
	}
	// Primary key change: a delete of the old key, an insert of the new.
	sqlite(t, path, `UPDATE backends SET id = 'b2' WHERE id = 'b1'`)
	if n := sqlite(t, path, `SELECT pk || ':' || cl FROM crdt_clock WHERE col = '' ORDER BY pk`); n != `["b1"]:4`+"\n"+`["b2"]:1` {
		t.Fatalf("sentinels after key change: %q", n)
	}
	// Merges are not captured again.
	before, _ := s.DBVersion(ctx)
	res, err := s.Apply(ctx, []Segment{{Origin: "other", From: 0, To: 1, Changes: []Change{
		{Table: "backends", PK: `["x"]`, Column: "app", Value: "remote", HLC: MakeHLC(time.Now(), 0), Seq: 1, CL: 1},
	}}}, time.Now())
	if err != nil || res.Applied != 1 || len(res.Refused) > 0 {
		t.Fatalf("apply: %+v %v", res, err)
	}
	after, _ := s.DBVersion(ctx)
	if after != before {
		t.Fatalf("merge was captured: db_version %d -> %d", before, after)
	}
	if got := sqlite(t, path, `SELECT app FROM backends WHERE id = 'x'`); got != "remote" {
		t.Fatalf("merged row: %q", got)
	}
	vec, _ := s.Vector(ctx)
	if vec["other"] != 1 {
		t.Fatalf("vector %v", vec)
	}
}

func TestCopiedFileGetsNewSiteID(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.db")
	s := openT(t, a)
	sqlite(t, a, `INSERT INTO backends (id, app) VALUES ('b1','myapp')`)
	site := s.SiteID()
	s.Close()
	// Reopening the same file keeps its id.
	s2 := openT(t, a)
	if s2.SiteID() != site || s2.CopiedFrom() != "" {
		t.Fatalf("reopen changed site id")
	}
	s2.Close()
	b := filepath.Join(dir, "b.db")
	data, _ := os.ReadFile(a)
	os.WriteFile(b, data, 0o644)
	c := openT(t, b)
	if c.SiteID() == site || c.CopiedFrom() != site {
		t.Fatalf("copy kept site id %s (copied from %q)", c.SiteID(), c.CopiedFrom())
	}
	ch, _ := c.ChangesSince(context.Background(), c.SiteID(), 0, 1<<40)
	if len(ch) == 0 {
		t.Fatal("copy's changes not re-stamped under its new site id")
	}
	// A rename keeps the identity.
	os.Rename(a, filepath.Join(dir, "moved.db"))
	m := openT(t, filepath.Join(dir, "moved.db"))
	if m.SiteID() != site {
		t.Fatalf("a moved file is not a copy")
	}
}

func TestApplyRefusesWhatItCannotApply(t *testing.T) {
	ctx := context.Background()
	s := openT(t, filepath.Join(t.TempDir(), "r.db"))
	now := time.Now()
	h := MakeHLC(now, 0)
	bad := []Change{
		{Table: "nosuch", PK: `["a"]`, Column: "x", HLC: h, Seq: 1, CL: 1},
		{Table: "backends", PK: `["a"]`, Column: "colour", Value: "red", HLC: h, Seq: 1, CL: 1},
		{Table: "backends", PK: `not json`, Column: "app", Value: "x", HLC: h, Seq: 1, CL: 1},
		{Table: "health", PK: `["only-one"]`, Column: "healthy", Value: int64(1), HLC: h, Seq: 1, CL: 1},
		{Table: "backends", PK: `["a"]`, Column: "app", Value: "future", HLC: MakeHLC(now.Add(2*time.Second), 0), Seq: 1, CL: 1},
		{Table: "backends", PK: `["a"]`, Column: "app", Value: nil, HLC: h, Seq: 1, CL: 1}, // NOT NULL
		{Table: "backends", PK: `["a"]`, Column: "app", Value: "x", HLC: h, Seq: 1, CL: 0},
	}
	for i, c := range bad {
		res, err := s.Apply(ctx, []Segment{{Origin: "peer", From: 0, To: 1, Changes: []Change{c}}}, now)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if len(res.Refused) != 1 || len(res.Advanced) != 0 {
			t.Fatalf("%d: %+v not refused: %+v", i, c, res)
		}
		vec, _ := s.Vector(ctx)
		if vec["peer"] != 0 {
			t.Fatalf("%d: refused change marked as seen", i)
		}
	}
	tbl, _, err := s.Snapshot(ctx)
	if err != nil || len(tbl.Backends()) != 0 {
		t.Fatalf("refused changes left rows: %v %v", tbl.Backends(), err)
	}
	// Each was its merge's only change, merged without a savepoint: the
	// merge's rollback took its clocks too, and the next merge applies.
	var clocks int
	if err := s.DB().QueryRowContext(ctx, "SELECT count(*) FROM crdt_clock").Scan(&clocks); err != nil || clocks != 0 {
		t.Fatalf("refused changes left %d clocks (%v)", clocks, err)
	}
	good := Change{Table: "backends", PK: `["a"]`, Column: "app", Value: "x", HLC: h, Seq: 1, CL: 1}
	if res, err := s.Apply(ctx, []Segment{{Origin: "peer", From: 0, To: 1, Changes: []Change{good}}}, now); err != nil || res.Applied != 1 {
		t.Fatalf("a merge after the refused ones: %+v %v", res, err)
	}
}

// replica is one file of the property test.
type replica struct {
	s    *Store
	last uint64
}

func (r *replica) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := r.s.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// own returns the segment of changes this replica made since the last call.
func (r *replica) own(t *testing.T) Segment {
	ctx := context.Background()
	v, _ := r.s.DBVersion(ctx)
	ch, err := r.s.ChangesSince(ctx, r.s.SiteID(), r.last, v)
	if err != nil {
		t.Fatal(err)
	}
	seg := Segment{Origin: r.s.SiteID(), From: r.last, To: v, Changes: ch}
	r.last = v
	return seg
}

func dump(t *testing.T, s *Store) string {
	rows, err := s.DB().Query(`SELECT id, app, region, weight, port, deleted FROM backends ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, app, region string
		var w, p, d int64
		rows.Scan(&id, &app, &region, &w, &p, &d)
		fmt.Fprintf(&b, "%s|%s|%s|%d|%d|%d\n", id, app, region, w, p, d)
	}
	rows, err = s.DB().Query(`SELECT tbl, pk, col, quote(val), hlc, site, cl FROM crdt_clock ORDER BY tbl, pk, col`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var tbl, pk, col, val, site string
		var hlc, cl int64
		rows.Scan(&tbl, &pk, &col, &val, &hlc, &site, &cl)
		if col == "" {
			fmt.Fprintf(&b, "%s %s cl=%d\n", tbl, pk, cl) // sentinel metadata may differ; its life may not
		} else {
			fmt.Fprintf(&b, "%s %s %s=%s @%d/%s cl=%d\n", tbl, pk, col, val, hlc, site, cl)
		}
	}
	return b.String()
}

// TestMergeConvergesOnRandomHistories: random inserts, updates of random
// columns, deletes, re-inserts and REPLACEs on several replicas, with some
// exchanges in between so writes build on remote state; then every
// message is delivered to every replica in a random order with duplicates
// (and some anti-entropy exchanges): every replica ends with the same table.
func TestMergeConvergesOnRandomHistories(t *testing.T) {
	ctx := context.Background()
	seeds := 12
	if testing.Short() {
		seeds = 3
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 42))
			dir := t.TempDir()
			n := 3 + rng.IntN(2)
			reps := make([]*replica, n)
			for i := range reps {
				reps[i] = &replica{s: openT(t, filepath.Join(dir, fmt.Sprintf("r%d.db", i)))}
			}
			var msgs []Segment
			ids := []string{"a", "b", "c"}
			cols := []string{"app", "region", "weight", "port", "deleted"}
			for step := 0; step < 60; step++ {
				r := reps[rng.IntN(n)]
				id := ids[rng.IntN(len(ids))]
				switch rng.IntN(6) {
				case 0, 1:
					r.exec(t, `INSERT INTO backends (id, app, region, weight) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
						id, fmt.Sprint("app", rng.IntN(3)), fmt.Sprint("r", rng.IntN(3)), rng.IntN(5))
				case 2, 3:
					c := cols[rng.IntN(len(cols))]
					var v any = rng.IntN(100)
					if c == "app" || c == "region" {
						v = fmt.Sprint(c, rng.IntN(100))
					}
					r.exec(t, fmt.Sprintf(`UPDATE backends SET %s = ? WHERE id = ?`, c), v, id)
				case 4:
					r.exec(t, `DELETE FROM backends WHERE id = ?`, id)
				case 5:
					r.exec(t, `INSERT OR REPLACE INTO backends (id, app, port) VALUES (?, ?, ?)`, id, fmt.Sprint("rep", rng.IntN(9)), rng.IntN(9))
				}
				msgs = append(msgs, r.own(t))
				// Some deliveries and anti-entropy mid-history.
				if rng.IntN(3) == 0 {
					to := reps[rng.IntN(n)]
					m := msgs[rng.IntN(len(msgs))]
					if _, err := to.s.Apply(ctx, []Segment{m}, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
				if rng.IntN(8) == 0 {
					from, to := reps[rng.IntN(n)], reps[rng.IntN(n)]
					vec, _ := to.s.Vector(ctx)
					// A budget (0: none) brings the peer up a part at a time.
					segs, err := from.s.Missing(ctx, vec, 1+rng.IntN(5), 0, rng.IntN(8))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := to.s.Apply(ctx, segs, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, r := range reps {
				order := append([]Segment(nil), msgs...)
				for i := 0; i < len(msgs)/3; i++ {
					order = append(order, msgs[rng.IntN(len(msgs))])
				}
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				for _, m := range order {
					if res, err := r.s.Apply(ctx, []Segment{m}, time.Now()); err != nil || len(res.Refused) > 0 {
						t.Fatalf("apply: %v %+v", err, res.Refused)
					}
				}
			}
			want := dump(t, reps[0].s)
			if seed == 0 {
				t.Logf("converged table:\n%s", want)
			}
			for i, r := range reps[1:] {
				if got := dump(t, r.s); got != want {
					t.Fatalf("replica %d differs from replica 0:\n%s\nvs\n%s", i+1, got, want)
				}
			}
			// Anti-entropy rounds then complete every vector without
			// changing the table.
			for range 2 {
				for _, from := range reps {
					for _, to := range reps {
						vec, _ := to.s.Vector(ctx)
						segs, err := from.s.Missing(ctx, vec, 4, 0, 0)
						if err != nil {
							t.Fatal(err)
						}
						if _, err := to.s.Apply(ctx, segs, time.Now()); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			for i, r := range reps[1:] {
				if got := dump(t, r.s); got != want {
					t.Fatalf("replica %d differs from replica 0:\n%s\nvs\n%s", i+1, got, want)
				}
			}
			// With every message delivered, every vector knows every origin fully.
			for _, r := range reps {
				vec, _ := r.s.Vector(ctx)
				for _, o := range reps {
					if vec[o.s.SiteID()] != o.last {
						t.Fatalf("vector %v misses %s up to %d", vec, o.s.SiteID(), o.last)
					}
				}
			}
		})
	}
}

// Anti-entropy leaves out changes younger than notAfter, and its segment
// claims only what it carries.
func TestMissingLeavesOutRecentChanges(t *testing.T) {
	ctx := context.Background()
	s := openT(t, filepath.Join(t.TempDir(), "r.db"))
	s.DB().Exec(`INSERT INTO backends (id, app) VALUES ('old','a')`)
	time.Sleep(20 * time.Millisecond)
	cut := MakeHLC(time.Now(), 0)
	time.Sleep(20 * time.Millisecond)
	s.DB().Exec(`INSERT INTO backends (id, app) VALUES ('new','a')`)
	segs, err := s.Missing(ctx, Vector{}, 100, cut, 0)
	if err != nil || len(segs) != 1 {
		t.Fatalf("%v %+v", err, segs)
	}
	if segs[0].To != 1 {
		t.Fatalf("segment claims up to %d, want 1", segs[0].To)
	}
	for _, c := range segs[0].Changes {
		if c.PK != `["old"]` {
			t.Fatalf("recent change included: %+v", c)
		}
	}
	all, _ := s.Missing(ctx, Vector{}, 100, 0, 0)
	if all[0].To != 2 {
		t.Fatalf("without a limit: to %d", all[0].To)
	}
}

// With a budget, Missing brings a peer up a part at a time: whole
// versions, the first it lacks, about budget changes (a version larger
// than the budget whole); asked again from where the peer got to, the
// next part; in the end the peer holds what the source does.
func TestMissingWithinABudget(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := openT(t, filepath.Join(dir, "src.db"))
	for i := range 10 { // ten versions, one row each
		if _, err := src.DB().Exec(`INSERT INTO backends (id, app, region) VALUES (?, 'a', 'eu')`, fmt.Sprint("b", i)); err != nil {
			t.Fatal(err)
		}
	}
	one, err := src.ChangesSince(ctx, src.SiteID(), 0, 1)
	if err != nil || len(one) < 2 {
		t.Fatalf("version 1: %v, %d changes", err, len(one))
	}
	perVersion := len(one)
	for _, c := range []struct {
		budget int
		parts  []uint64 // the version each round ends at
	}{
		{3*perVersion + 1, []uint64{3, 6, 9, 10}},    // three versions, and a part of a fourth left for the next round
		{1, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}, // a version larger than the budget comes whole
	} {
		dst := openT(t, filepath.Join(dir, fmt.Sprintf("dst%d.db", c.budget)))
		var parts []uint64
		for round := 0; ; round++ {
			vec, err := dst.Vector(ctx)
			if err != nil {
				t.Fatal(err)
			}
			segs, err := src.Missing(ctx, vec, 0, 0, c.budget)
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) == 0 {
				break
			}
			if round > 20 {
				t.Fatalf("budget %d: the peer never caught up", c.budget)
			}
			n := 0
			for _, seg := range segs {
				n += len(seg.Changes)
				for _, ch := range seg.Changes {
					if ch.Seq <= seg.From || ch.Seq > seg.To {
						t.Fatalf("segment (%d, %d] carries version %d", seg.From, seg.To, ch.Seq)
					}
				}
			}
			if n > max(c.budget, perVersion) {
				t.Fatalf("budget %d, round %d: %d changes", c.budget, round, n)
			}
			parts = append(parts, segs[len(segs)-1].To)
			if res, err := dst.Apply(ctx, segs, time.Now()); err != nil || len(res.Refused) > 0 {
				t.Fatalf("apply: %v %+v", err, res.Refused)
			}
		}
		if !slices.Equal(parts, c.parts) {
			t.Errorf("budget %d: the parts ended at versions %v, want %v", c.budget, parts, c.parts)
		}
		if got, want := dump(t, dst), dump(t, src); got != want {
			t.Fatalf("budget %d: the peer holds\n%s\nthe source\n%s", c.budget, got, want)
		}
	}
}

// A merge raises the local clock to the remote HLC it accepts (within the
// skew bound), so a later local write orders after what was seen; and a
// remote write ordered after a local one wins that column.
func TestHLCFollowsMergedClocks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	s := openT(t, path)
	sqlite(t, path, `INSERT INTO backends (id, app, weight) VALUES ('b','local',1)`)
	ahead := MakeHLC(time.Now().Add(400*time.Millisecond), 7)
	res, err := s.Apply(ctx, []Segment{{Origin: "peer", From: 0, To: 1, Changes: []Change{
		{Table: "backends", PK: `["b"]`, Column: "weight", Value: int64(5), HLC: ahead, Seq: 1, CL: 1},
	}}}, time.Now())
	if err != nil || res.Applied != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	if got := sqlite(t, path, `SELECT app, weight FROM backends`); got != "local|5" {
		t.Fatalf("after merge: %q", got)
	}
	sqlite(t, path, `UPDATE backends SET weight = 6 WHERE id = 'b'`)
	var hlc int64
	s.DB().QueryRow(`SELECT hlc FROM crdt_clock WHERE col = 'weight'`).Scan(&hlc)
	if uint64(hlc) <= ahead {
		t.Fatalf("local write after the merge has HLC %d, not after the merged %d", hlc, ahead)
	}
	// The older remote write of the same column loses, whatever the order.
	res, _ = s.Apply(ctx, []Segment{{Origin: "peer", From: 1, To: 2, Changes: []Change{
		{Table: "backends", PK: `["b"]`, Column: "weight", Value: int64(99), HLC: ahead - 1, Seq: 2, CL: 1},
	}}}, time.Now())
	if res.Applied != 0 || res.Stale != 1 || sqlite(t, path, `SELECT weight FROM backends`) != "6" {
		t.Fatalf("older write won: %+v", res)
	}
}

// Merges run one at a time on a connection the store keeps. A merge that
// could not begin, was stopped while it waited for the write lock, or was
// cancelled inside its transaction, leaves it usable: the next merge
// applies, and nothing of the stopped ones stays.
func TestMergeAfterFailedMerges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	seq := uint64(0)
	batch := func(prefix string, n int) []Segment {
		seg := Segment{Origin: "other", From: seq, To: seq + uint64(n)}
		for i := range n {
			seg.Changes = append(seg.Changes, Change{Table: "backends", PK: fmt.Sprintf(`["%s%d"]`, prefix, i), Column: "app",
				Value: "remote", HLC: MakeHLC(time.Now(), 0), Seq: seq + uint64(i+1), CL: 1})
		}
		return []Segment{seg}
	}
	apply := func(ctx context.Context, prefix string, n int) (ApplyResult, error) {
		res, err := s.Apply(ctx, batch(prefix, n), time.Now())
		if err == nil {
			seq += uint64(n)
		}
		return res, err
	}
	if res, err := apply(context.Background(), "a", 1); err != nil || res.Applied != 1 {
		t.Fatalf("first merge: %+v %v", res, err)
	}
	// Another connection holds the write lock.
	lock, err := s.DB().Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	// A merge waiting for it returns when its node stops, over several of
	// the merge connection's waits and long before the store's busy
	// timeout (5 s), after which it would return "locked" instead.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(3*mergeLockSlice, cancel)
	if _, err := apply(ctx, "w", 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("a merge stopped while it waits for the write lock: %v", err)
	}
	// The merge cannot begin (a short wait: the store's is 5 s).
	s.merges.wait = 50 * time.Millisecond
	if _, err := apply(context.Background(), "x", 1); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("a merge while another connection holds the write lock: %v", err)
	}
	lock.ExecContext(context.Background(), "ROLLBACK")
	lock.Close()
	// Cancelled between two statements, well inside its transaction.
	if _, err := apply(cancelAfter(30), "y", 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("a merge cancelled inside its transaction: %v", err)
	}
	if res, err := apply(context.Background(), "z", 1); err != nil || res.Applied != 1 {
		t.Fatalf("the merge after failed ones: %+v %v", res, err)
	}
	if got := sqlite(t, path, `SELECT group_concat(id) FROM (SELECT id FROM backends ORDER BY id)`); got != "a0,z0" {
		t.Fatalf("rows after the merges: %q", got)
	}
}

// cancelAfter returns a context cancelled once its Done channel has been
// asked for n times: a merge asks before every change, so the
// cancellation falls between two changes, where no real clock can put it
// on demand.
func cancelAfter(n int32) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	return &countingCtx{Context: ctx, left: n, cancel: cancel}
}

type countingCtx struct {
	context.Context
	left   int32
	cancel context.CancelFunc
}

func (c *countingCtx) Done() <-chan struct{} {
	if atomic.AddInt32(&c.left, -1) <= 0 {
		c.cancel()
	}
	return c.Context.Done()
}

// A VersionReader tells a commit with something to push (db_version moves)
// from one without, a merge (data_version alone moves, and the versions
// generation with it), and both from no commit at all.
func TestVersionReaderTellsMergesFromLocalCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "routing.db")
	s := openT(t, path)
	r := s.VersionReader()
	defer r.Close()
	r0, err := r.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Read(ctx); got != r0 {
		t.Fatalf("no commit, yet the versions moved: %+v -> %+v", r0, got)
	}
	res, err := s.Apply(ctx, []Segment{{Origin: "other", From: 0, To: 1, Changes: []Change{
		{Table: "backends", PK: `["x"]`, Column: "app", Value: "remote", HLC: MakeHLC(time.Now(), 0), Seq: 1, CL: 1},
	}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := r.Read(ctx)
	if r1.Data == r0.Data || r1.Own != r0.Own || r1.Gen == r0.Gen || r1.Gen != res.GenAfter || res.Own != r0.Own {
		t.Fatalf("after a merge (%+v): %+v -> %+v; want data_version and the generation (the merge's) to move, not db_version", res, r0, r1)
	}
	sqlite(t, path, `UPDATE backends SET port = 81 WHERE id = 'x'`)
	r2, _ := r.Read(ctx)
	if r2.Data == r1.Data || r2.Own <= r1.Own || r2.Gen != r1.Gen {
		t.Fatalf("after a local commit: %+v -> %+v; want data_version and db_version to move, not the generation", r1, r2)
	}
	// A merge reports the own version the local commit left.
	res, err = s.Apply(ctx, []Segment{{Origin: "other", From: 1, To: 2, Changes: []Change{
		{Table: "backends", PK: `["x"]`, Column: "port", Value: int64(82), HLC: MakeHLC(time.Now(), 1), Seq: 2, CL: 1},
	}}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if res.Own != r2.Own {
		t.Fatalf("a merge after the local commit reports own version %d, the file has %d", res.Own, r2.Own)
	}
}
