package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
)

// A member far behind, a new POP above all, is sent rows it never held,
// one life each: a catch-up of 100,000 backends is 100,000 runs of a
// sentinel and its columns, and merging each whole (mergeRow) still
// cost five statements a row. Runs of rows this file has never held, of
// one table and the same columns, are merged rowBatch at a time: four
// statements for all of them.

// rowBatch is how many rows a batch merges. Only batches of exactly this
// many are merged together, so each table and set of columns compiles
// its statements once; fewer runs are merged one at a time.
const rowBatch = 16

// rowRun is a row's life as rowColumns found it: its sentinel, at index
// at of its segment, and the column changes that follow it.
type rowRun struct {
	sentinel Change
	at       int
	cols     []Change
}

// tookRow counts a row's run, merged whole.
func (res *ApplyResult) tookRow(r rowRun) {
	res.Applied += 1 + len(r.cols)
	res.MaxHLC = max(res.MaxHLC, r.sentinel.HLC)
	for _, c := range r.cols {
		res.MaxHLC = max(res.MaxHLC, c.HLC)
	}
}

// rowBatchAt returns the runs of new lives that follow one another from
// change i of seg, up to rowBatch, of the first's table and with the same
// columns in the same order; and the index of the change after them. The
// change at i has passed the caller's checks; the sentinels after it
// must pass them here, since a batch merges them without the caller.
func (s *Store) rowBatchAt(seg Segment, i int, limit uint64) ([]rowRun, int) {
	var runs []rowRun
	j := i
	for len(runs) < rowBatch && j < len(seg.Changes) {
		c := seg.Changes[j]
		c.Site = seg.Origin
		if j > i && (c.Seq <= seg.From || c.Seq > seg.To || s.check(c, limit) != "") {
			break
		}
		cols := s.rowColumns(seg, j, limit)
		if len(cols) == 0 || (len(runs) > 0 && !sameRun(runs[0], c, cols)) {
			break
		}
		runs = append(runs, rowRun{c, j, cols})
		j += 1 + len(cols)
	}
	return runs, j
}

// sameRun tells whether a run of sentinel and cols has first's table and
// columns, in the same order.
func sameRun(first rowRun, sentinel Change, cols []Change) bool {
	if sentinel.Table != first.sentinel.Table || len(cols) != len(first.cols) {
		return false
	}
	for k, c := range cols {
		if c.Column != first.cols[k].Column {
			return false
		}
	}
	return true
}

// mergeRows merges runs, rows this file has never held, inside a
// savepoint: what mergeRow does for each, in four statements for all.
// It reports false, having written nothing, when any of the rows has a
// life here already (the caller then merges them as before), and err when
// a write failed, which left nothing behind.
func (s *Store) mergeRows(ctx context.Context, conn *mergeConn, runs []rowRun) (bool, error) {
	return conn.savepoint(ctx, func() (bool, error) {
		table := runs[0].sentinel.Table
		pks := make([]string, len(runs))
		for k, r := range runs {
			pks[k] = r.sentinel.PK
		}
		list, err := json.Marshal(pks)
		if err != nil {
			return false, err
		}
		var held int
		if err := conn.queryRow(ctx, `SELECT count(*) FROM crdt_clock WHERE tbl = ?1 AND col = '' AND pk IN (SELECT value FROM json_each(?2))`,
			table, string(list)).Scan(&held); err != nil || held > 0 {
			return false, err
		}
		// The sentinels' clocks: each row's new life.
		rows := make([]string, len(runs))
		args := make([]any, 0, 6*len(runs))
		for k, r := range runs {
			rows[k] = "(?, ?, '', NULL, ?, ?, ?, ?)"
			c := r.sentinel
			args = append(args, c.Table, c.PK, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL))
		}
		if _, err := conn.exec(ctx, "INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES "+strings.Join(rows, ", ")+
			" ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl", args...); err != nil {
			return false, err
		}
		// The rows, inserted (or, where a row without a clock is in the
		// table, its columns of the run set, as writeRow does).
		sh := s.shapes[table]
		names, _ := pkColumns(sh.pk)
		pk := strings.Join(names, ", ")
		sets := make([]string, len(runs[0].cols))
		for k, c := range runs[0].cols {
			names = append(names, quoteIdent(c.Column))
			sets[k] = quoteIdent(c.Column) + " = excluded." + quoteIdent(c.Column)
		}
		args = args[:0]
		for k, r := range runs {
			values := make([]string, 0, len(sh.pk)+len(r.cols))
			args = append(args, r.sentinel.PK)
			at := len(args)
			for p := range sh.pk {
				values = append(values, fmt.Sprintf("json_extract(?%d, '$[%d]')", at, p))
			}
			for _, c := range r.cols {
				args = append(args, c.Value)
				values = append(values, fmt.Sprintf("?%d", len(args)))
			}
			rows[k] = "(" + strings.Join(values, ", ") + ")"
		}
		if _, err := conn.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES %s ON CONFLICT (%s) DO UPDATE SET %s",
			quoteIdent(table), strings.Join(names, ", "), strings.Join(rows, ", "), pk, strings.Join(sets, ", ")), args...); err != nil {
			return false, err
		}
		// Their columns' clocks.
		clocks := make([]string, 0, len(runs)*len(runs[0].cols))
		args = args[:0]
		for _, r := range runs {
			for _, c := range r.cols {
				clocks = append(clocks, "(?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, c.Table, c.PK, c.Column, c.Value, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL))
			}
		}
		_, err = conn.exec(ctx, "INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES "+strings.Join(clocks, ", "), args...)
		return err == nil, err
	})
}
