package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A row's new life merged in one go (mergeRow) leaves the file exactly as
// its changes merged one by one do: the rows, and every clock. The history
// covers a row inserted whole, one whose column was edited after (its run
// split in two), a composite key, a row that lives here in an older life
// with other values (its new life's run split too), and a forged life
// with a NULL in a NOT NULL column, which is refused alone while the rest
// of its row merges. Everything is delivered twice, with a local edit in
// between that the second delivery must leave alone.
func TestNewRowMergedWholeEqualsChangeByChange(t *testing.T) {
	dir := t.TempDir()
	seg := written(t, dir, []string{
		`INSERT INTO backends (id, app, region, country, wg_ip, port, weight) VALUES ('a', 'web', 'eu', 'DE', '192.0.2.1', 8080, 3)`,
		`INSERT INTO backends (id, app, port) VALUES ('b', 'api', 9000)`,
		`INSERT INTO health (backend_id, observer, healthy, rtt_us) VALUES ('a', 'pop-1', 0, 1500)`,
		`UPDATE backends SET weight = 7 WHERE id = 'b'`,
		`INSERT INTO backends (id, app, port) VALUES ('c', 'first', 1)`,
		`DELETE FROM backends WHERE id = 'c'`,
		`INSERT INTO backends (id, app, region) VALUES ('c', 'second', 'us')`,
		`INSERT INTO backends (id, app) VALUES ('e', 'web')`,
		`UPDATE backends SET port = 5 WHERE id = 'c'`,
	})
	h := MakeHLC(time.Now(), 0)
	forged := Segment{Origin: "forger", From: 0, To: 1, Changes: []Change{
		{Table: "backends", PK: `["d"]`, CL: 1, HLC: h, Seq: 1},
		{Table: "backends", PK: `["d"]`, Column: "app", Value: nil, CL: 1, HLC: h, Seq: 1},
		{Table: "backends", PK: `["d"]`, Column: "port", Value: int64(443), CL: 1, HLC: h, Seq: 1},
	}}
	segs := []Segment{seg, forged}

	// An older life of c here, with its own values. Delivered twice, with
	// a local edit in between that the second delivery, of an older write
	// of the same life, must not undo.
	whole := mergedBothWays(t, dir, segs, `INSERT INTO backends (id, app, port, weight) VALUES ('c', 'local', 2, 9)`,
		[]string{"", `UPDATE backends SET port = 1234 WHERE id = 'a'`}, 2)
	want := "a|web|eu|DE|192.0.2.1|1234|1|3|100|150|0\n" +
		"b|api||||9000|1|7|100|150|0\n" +
		"c|second|us|||5|1|2|100|150|0\n" +
		"d|||||443|1|2|100|150|0\n" +
		"e|web||||0|1|2|100|150|0"
	if got := sqlite(t, whole, `SELECT * FROM backends ORDER BY id`); got != want {
		t.Errorf("rows merged whole:\n%s\nwant:\n%s", got, want)
	}
}

// written makes writes on a new file in dir, and returns the segment of
// every change they made.
func written(t *testing.T, dir string, writes []string) Segment {
	t.Helper()
	ctx := context.Background()
	src := openT(t, filepath.Join(dir, "src.db"))
	for _, q := range writes {
		if _, err := src.DB().ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	to, err := src.DBVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes, err := src.ChangesSince(ctx, src.SiteID(), 0, to)
	if err != nil {
		t.Fatal(err)
	}
	return Segment{Origin: src.SiteID(), From: 0, To: to, Changes: changes}
}

// mergedBothWays merges segs into two new files in dir, each holding
// what the statement local writes first: in one go, and change by
// change. A round delivers them all, after its statement, if any. It
// fails t unless both ways applied as many changes, refused wantRefused
// and left the same rows and clocks, and returns the first file's path.
func mergedBothWays(t *testing.T, dir string, segs []Segment, local string, rounds []string, wantRefused int) string {
	t.Helper()
	ctx := context.Background()
	var paths [2]string
	var applied, refused [2]int
	for i, name := range []string{"whole.db", "one-by-one.db"} {
		paths[i] = filepath.Join(dir, name)
		dst := openT(t, paths[i])
		if _, err := dst.DB().ExecContext(ctx, local); err != nil {
			t.Fatal(err)
		}
		batches := [][]Segment{segs}
		if i == 1 {
			batches = oneByOne(segs)
		}
		for _, before := range rounds {
			if before != "" {
				if _, err := dst.DB().ExecContext(ctx, before); err != nil {
					t.Fatal(err)
				}
			}
			for _, b := range batches {
				res, err := dst.Apply(ctx, b, time.Now())
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				applied[i] += res.Applied
				refused[i] += len(res.Refused)
			}
		}
	}
	if applied[0] != applied[1] || refused[0] != wantRefused || refused[1] != wantRefused {
		t.Fatalf("in one go: %d applied, %d refused; one by one: %d applied, %d refused (want the same, %d refused)",
			applied[0], refused[0], applied[1], refused[1], wantRefused)
	}
	sameMerge(t, paths[0], paths[1])
	return paths[0]
}

// oneByOne is segs as one batch per change, each its own segment.
func oneByOne(segs []Segment) [][]Segment {
	var batches [][]Segment
	for _, seg := range segs {
		for _, c := range seg.Changes {
			batches = append(batches, []Segment{{Origin: seg.Origin, From: c.Seq - 1, To: c.Seq, Changes: []Change{c}}})
		}
	}
	return batches
}

// sameMerge fails t unless the files at a (merged in one go) and at b
// (change by change) hold the same rows and clocks.
func sameMerge(t *testing.T, a, b string) {
	t.Helper()
	for _, q := range []string{
		`SELECT * FROM backends ORDER BY id`,
		`SELECT * FROM health ORDER BY backend_id, observer`,
		// The files' own writes differ in site and clock only.
		`SELECT tbl, pk, col, quote(val), CASE WHEN site = (SELECT v FROM crdt_meta WHERE k = 'site') THEN 'here' ELSE hlc || ' ' || site || ' ' || seq END, cl
			FROM crdt_clock ORDER BY tbl, pk, col`,
	} {
		whole, one := sqlite(t, a, q), sqlite(t, b, q)
		if whole != one {
			t.Errorf("%s\nmerged in one go:\n%s\none by one:\n%s", q, whole, one)
		}
	}
}
