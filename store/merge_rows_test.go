package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// Rows this file never held, merged rowBatch at a time, leave the file as
// their changes merged one by one do. The history has runs long enough
// for batches, broken by a row of another table; a batch holding a row
// that lives here in an older life (merged row by row instead); and a
// forger's batch with a NULL in a NOT NULL column, which fails whole and
// is merged row by row, the bad column refused alone.
func TestRowsMergedInBatchesEqualOneByOne(t *testing.T) {
	dir := t.TempDir()
	var writes []string
	for i := range 2*rowBatch + 8 {
		if i == rowBatch+3 {
			writes = append(writes, `INSERT INTO health (backend_id, observer, healthy) VALUES ('r00', 'pop-1', 0)`)
		}
		writes = append(writes, fmt.Sprintf(`INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('r%02d', 'app%d', 'eu', '192.0.2.%d', %d)`, i, i%3, i+1, 8000+i))
	}
	writes = append(writes, `UPDATE backends SET weight = 9 WHERE id = 'r35'`)
	seg := written(t, dir, writes)
	h := MakeHLC(time.Now(), 0)
	var forged []Change
	for i := range rowBatch {
		pk := fmt.Sprintf(`["f%02d"]`, i)
		var app any = "forged"
		if i == 5 {
			app = nil
		}
		forged = append(forged, Change{Table: "backends", PK: pk, CL: 1, HLC: h, Seq: uint64(i + 1)},
			Change{Table: "backends", PK: pk, Column: "app", Value: app, CL: 1, HLC: h, Seq: uint64(i + 1)},
			Change{Table: "backends", PK: pk, Column: "port", Value: int64(443), CL: 1, HLC: h, Seq: uint64(i + 1)})
	}
	segs := []Segment{seg, {Origin: "forger", From: 0, To: rowBatch, Changes: forged}}
	limit := MakeHLC(time.Now().Add(MaxClockSkew), 0xffff)
	if runs, next := openT(t, filepath.Join(dir, "probe.db")).rowBatchAt(segs[0], 0, limit); len(runs) != rowBatch {
		t.Fatalf("the first %d rows inserted are not taken as a batch (%d runs, up to change %d of %d)", rowBatch, len(runs), next, len(segs[0].Changes))
	}

	// An older life of a row of the second batch, with its own values.
	batches := mergedBothWays(t, dir, segs, `INSERT INTO backends (id, app, port, weight) VALUES ('r20', 'local', 2, 9)`, []string{""}, 1)
	if got := sqlite(t, batches, `SELECT count(*), sum(app = 'forged') FROM backends`); got != fmt.Sprintf("%d|%d", 2*rowBatch+8+rowBatch, rowBatch-1) {
		t.Errorf("rows in batches: %s", got)
	}
}
