package store

import (
	"context"
	"fmt"
	"strings"
)

// A row's life as its origin wrote it (an INSERT: the sentinel and every
// column, under one version) comes as a run of changes, the sentinel
// first. Where it is a new life here too (a registration replicated, rows
// repaired after a partition), every column of the run wins, since the
// new life clears the row's column clocks: the row is written with one
// statement and its clocks with another, instead of two per column, each
// an UPDATE that runs the table's triggers.

// rowColumns returns the column changes that follow the sentinel at
// seg.Changes[i] for the same life of the same row, each one the merge
// would take (within the segment's range, no column twice), or nil when
// the change at i does not begin a living row's run. The sentinel has
// passed check, so its key is not parsed again for each column.
func (s *Store) rowColumns(seg Segment, i int, limit uint64) []Change {
	sentinel := seg.Changes[i]
	if sentinel.Column != "" || sentinel.CL%2 == 0 {
		return nil
	}
	sh := s.shapes[sentinel.Table]
	seen := map[string]bool{}
	j := i + 1
	for ; j < len(seg.Changes); j++ {
		c := seg.Changes[j]
		c.Site = seg.Origin
		if c.Table != sentinel.Table || c.PK != sentinel.PK || c.CL != sentinel.CL || c.Column == "" || seen[c.Column] ||
			c.Seq <= seg.From || c.Seq > seg.To || checkOfRow(sh, c, limit) != "" {
			break
		}
		seen[c.Column] = true
	}
	if j == i+1 {
		return nil
	}
	cols := make([]Change, j-i-1)
	for k := range cols {
		cols[k] = seg.Changes[i+1+k]
		cols[k].Site = seg.Origin
	}
	return cols
}

// mergeRow merges a row's sentinel and the columns of the same life when
// that life is newer than the row's here, inside a savepoint. won is false
// when it is not (the changes are then merged one by one), and err when a
// write failed, which left nothing behind.
func (s *Store) mergeRow(ctx context.Context, conn *mergeConn, sentinel Change, cols []Change) (bool, error) {
	return conn.savepoint(ctx, func() (bool, error) {
		local, err := rowCL(ctx, conn, sentinel.Table, sentinel.PK)
		if err != nil || sentinel.CL <= local {
			return false, err
		}
		if err := newLife(ctx, conn, sentinel); err != nil {
			return false, err
		}
		return true, s.writeRow(ctx, conn, sentinel, cols)
	})
}

// writeRow writes the row, inserted or, where a row of an older life is
// still here, its columns of the run set (the others keep their values,
// as change by change), and the run's column clocks.
func (s *Store) writeRow(ctx context.Context, conn *mergeConn, sentinel Change, cols []Change) error {
	sh := s.shapes[sentinel.Table]
	names, values := pkColumns(sh.pk)
	pk := strings.Join(names, ", ")
	sets := make([]string, len(cols))
	args := make([]any, 1, 1+len(cols))
	args[0] = sentinel.PK
	for i, c := range cols {
		names = append(names, quoteIdent(c.Column))
		values = append(values, fmt.Sprintf("?%d", i+2))
		sets[i] = quoteIdent(c.Column) + " = excluded." + quoteIdent(c.Column)
		args = append(args, c.Value)
	}
	if _, err := conn.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT (%s) DO UPDATE SET %s",
		quoteIdent(sentinel.Table), strings.Join(names, ", "), strings.Join(values, ", "), pk, strings.Join(sets, ", ")), args...); err != nil {
		return err
	}
	// Their clocks, in one statement.
	rows := make([]string, len(cols))
	args = make([]any, 0, 8*len(cols))
	for i, c := range cols {
		rows[i] = "(?, ?, ?, ?, ?, ?, ?, ?)"
		args = append(args, c.Table, c.PK, c.Column, c.Value, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL))
	}
	_, err := conn.exec(ctx, "INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES "+strings.Join(rows, ", "), args...)
	return err
}
