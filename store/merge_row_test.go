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
	ctx := context.Background()
	dir := t.TempDir()
	src := openT(t, filepath.Join(dir, "src.db"))
	for _, q := range []string{
		`INSERT INTO backends (id, app, region, country, wg_ip, port, weight) VALUES ('a', 'web', 'eu', 'DE', '192.0.2.1', 8080, 3)`,
		`INSERT INTO backends (id, app, port) VALUES ('b', 'api', 9000)`,
		`INSERT INTO health (backend_id, observer, healthy, rtt_us) VALUES ('a', 'pop-1', 0, 1500)`,
		`UPDATE backends SET weight = 7 WHERE id = 'b'`,
		`INSERT INTO backends (id, app, port) VALUES ('c', 'first', 1)`,
		`DELETE FROM backends WHERE id = 'c'`,
		`INSERT INTO backends (id, app, region) VALUES ('c', 'second', 'us')`,
		`INSERT INTO backends (id, app) VALUES ('e', 'web')`,
		`UPDATE backends SET port = 5 WHERE id = 'c'`,
	} {
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
	h := MakeHLC(time.Now(), 0)
	forged := Segment{Origin: "forger", From: 0, To: 1, Changes: []Change{
		{Table: "backends", PK: `["d"]`, CL: 1, HLC: h, Seq: 1},
		{Table: "backends", PK: `["d"]`, Column: "app", Value: nil, CL: 1, HLC: h, Seq: 1},
		{Table: "backends", PK: `["d"]`, Column: "port", Value: int64(443), CL: 1, HLC: h, Seq: 1},
	}}
	segs := []Segment{{Origin: src.SiteID(), From: 0, To: to, Changes: changes}, forged}

	var paths [2]string
	var applied, refused [2]int
	for i, name := range []string{"whole.db", "one-by-one.db"} {
		paths[i] = filepath.Join(dir, name)
		dst := openT(t, paths[i])
		// An older life of c here, with its own values.
		if _, err := dst.DB().ExecContext(ctx, `INSERT INTO backends (id, app, port, weight) VALUES ('c', 'local', 2, 9)`); err != nil {
			t.Fatal(err)
		}
		var batches [][]Segment
		if i == 0 {
			batches = [][]Segment{segs}
		} else {
			for _, seg := range segs {
				for _, c := range seg.Changes {
					batches = append(batches, []Segment{{Origin: seg.Origin, From: c.Seq - 1, To: c.Seq, Changes: []Change{c}}})
				}
			}
		}
		// Delivered twice, with a local edit in between that the second
		// delivery, of an older write of the same life, must not undo.
		for round := range 2 {
			if round == 1 {
				if _, err := dst.DB().ExecContext(ctx, `UPDATE backends SET port = 1234 WHERE id = 'a'`); err != nil {
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
	if applied[0] != applied[1] || refused[0] != 2 || refused[1] != 2 {
		t.Fatalf("merged whole: %d applied, %d refused; one by one: %d applied, %d refused (want the same, 2 refused)",
			applied[0], refused[0], applied[1], refused[1])
	}
	for _, q := range []string{
		`SELECT * FROM backends ORDER BY id`,
		`SELECT * FROM health ORDER BY backend_id, observer`,
		// The files' own writes differ in site and clock only.
		`SELECT tbl, pk, col, quote(val), CASE WHEN site = (SELECT v FROM crdt_meta WHERE k = 'site') THEN 'here' ELSE hlc || ' ' || site || ' ' || seq END, cl
			FROM crdt_clock ORDER BY tbl, pk, col`,
	} {
		whole, one := sqlite(t, paths[0], q), sqlite(t, paths[1], q)
		if whole != one {
			t.Errorf("%s\nmerged whole:\n%s\none by one:\n%s", q, whole, one)
		}
	}
	want := "a|web|eu|DE|192.0.2.1|1234|1|3|100|150|0\n" +
		"b|api||||9000|1|7|100|150|0\n" +
		"c|second|us|||5|1|2|100|150|0\n" +
		"d|||||443|1|2|100|150|0\n" +
		"e|web||||0|1|2|100|150|0"
	if got := sqlite(t, paths[0], `SELECT * FROM backends ORDER BY id`); got != want {
		t.Errorf("rows merged whole:\n%s\nwant:\n%s", got, want)
	}
}
