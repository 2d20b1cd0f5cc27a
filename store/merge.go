package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// Refusal is a change the merge did not apply, and why.
type Refusal struct {
	Change Change
	Reason string
}

// ApplyResult says what a merge did.
type ApplyResult struct {
	Applied  int       // changes that won and were written
	Stale    int       // changes already known or superseded
	Refused  []Refusal // changes that could not be applied
	Advanced Vector    // origins whose version moved forward, at their new versions
	MaxHLC   uint64    // highest HLC merged
	// GenBefore and GenAfter are the file's versions generation
	// (VectorGen) before and after the merge; the same when no origin
	// advanced.
	GenBefore, GenAfter int64
	// Own is the file's own version at the merge, which no local commit
	// moves while the merge holds the write lock: with Advanced and the
	// vector of GenBefore, the whole vector as the merge left it.
	Own uint64
}

// Apply merges segments from other sites in one transaction. A change is
// refused (and its segment not counted as seen, so anti-entropy offers it
// again) when its table or column is unknown here (a newer schema), its
// key is malformed, its HLC is more than MaxClockSkew ahead of now, or the
// write fails. Merging is idempotent and commutative: per column the
// highest (HLC, site) wins, and a higher causal length supersedes a row's
// earlier life. The triggers do not capture these writes.
func (s *Store) Apply(ctx context.Context, segs []Segment, now time.Time) (ApplyResult, error) {
	var res ApplyResult
	if s.readOnly {
		return res, ErrReadOnly
	}
	conn, err := s.merges.take(ctx, s.db)
	if err != nil {
		return res, err
	}
	if err := conn.begin(ctx); err != nil {
		s.merges.release(false)
		return res, err
	}
	done := false
	defer func() {
		broken := false
		if !done {
			_, err := conn.exec(context.Background(), "ROLLBACK")
			broken = err != nil
		}
		s.merges.release(broken)
	}()
	// Once the write lock is held, the merge's statements run on a context
	// nobody cancels: the driver runs a statement on a cancellable one in a
	// goroutine of its own, which costs more than most of these statements.
	// The caller's context is looked at before each change instead.
	octx := ctx
	ctx = context.WithoutCancel(ctx)
	// The versions of the segments' origins only: the whole vector has an
	// entry per POP that ever wrote, a thousand at a thousand POPs, and a
	// merge usually carries one origin, whose version the first statement
	// reads.
	vec := Vector{}
	var origins []string // each once, in the segments' order
	for _, seg := range segs {
		if _, ok := vec[seg.Origin]; !ok && seg.Origin != s.site && seg.Origin != "" {
			vec[seg.Origin] = 0
			origins = append(origins, seg.Origin)
		}
	}
	first := ""
	if len(origins) > 0 {
		first = origins[0]
	}
	// The flag that keeps the triggers off, and the file's own version
	// and versions generation, in one statement: the vector read last, if
	// it is still the file's, is brought up to date below instead of being
	// read again after the merge.
	var own, firstVersion int64
	if err := conn.queryRow(ctx, beginMergeQuery, first).Scan(&own, &res.GenBefore, &firstVersion); err != nil {
		return res, err
	}
	res.Own = uint64(own)
	res.GenAfter = res.GenBefore
	cached := s.vectors.Load()
	if cached != nil && cached.gen != res.GenBefore {
		cached = nil
	}
	for k, o := range origins {
		if k == 0 {
			vec[o] = uint64(firstVersion)
			continue
		}
		var v int64
		err := conn.queryRow(ctx, "SELECT version FROM crdt_versions WHERE site = ?", o).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return res, err
		}
		vec[o] = uint64(v)
	}
	limit := MakeHLC(now.Add(MaxClockSkew), 0xffff)
	alone := len(segs) == 1 && len(segs[0].Changes) == 1
	for _, seg := range segs {
		if seg.Origin == s.site || seg.Origin == "" {
			continue // our own changes, echoed back
		}
		ok := true
		// Runs of new lives found ahead by rowBatchAt, up to index
		// single, that were not merged as a batch: merged one at a time.
		var found []rowRun
		single := 0
		for i := 0; i < len(seg.Changes); i++ {
			select {
			case <-octx.Done():
				return res, octx.Err()
			default:
			}
			c := seg.Changes[i]
			c.Site = seg.Origin
			if c.Seq <= seg.From || c.Seq > seg.To {
				// Only in a segment that claims more than it carries; harmless to
				// merge, but the claim is not trusted.
				ok = false
			}
			if reason := s.check(c, limit); reason != "" {
				res.Refused = append(res.Refused, Refusal{c, reason})
				ok = false
				continue
			}
			if i >= single {
				runs, next := s.rowBatchAt(seg, i, limit)
				if len(runs) == rowBatch {
					if won, err := s.mergeRows(ctx, conn, runs); err == nil && won {
						for _, r := range runs {
							res.tookRow(r)
						}
						i = next - 1
						continue
					}
				}
				found, single = runs, next
			}
			if len(found) > 0 && found[0].at == i {
				r := found[0]
				found = found[1:]
				if won, err := s.mergeRow(ctx, conn, r.sentinel, r.cols); err == nil && won {
					res.tookRow(r)
					i += len(r.cols)
					continue
				}
				// Not a new life of the row here, or a column that cannot
				// be written: change by change, as any other.
			}
			var won bool
			if alone {
				// The merge's only change, without a savepoint: if it
				// fails, rolling the whole merge back leaves the file
				// as the savepoint's rollback would.
				won, err = s.mergeChange(ctx, conn, c)
			} else {
				won, err = s.mergeOne(ctx, conn, c)
			}
			if err != nil {
				res.Refused = append(res.Refused, Refusal{c, err.Error()})
				if alone {
					return res, nil
				}
				ok = false
				continue
			}
			if won {
				res.Applied++
			} else {
				res.Stale++
			}
			res.MaxHLC = max(res.MaxHLC, c.HLC)
		}
		if ok && vec[seg.Origin] >= seg.From && seg.To > vec[seg.Origin] {
			vec[seg.Origin] = seg.To
			if _, err := conn.exec(ctx, `INSERT INTO crdt_versions (site, version) VALUES (?, ?)
				ON CONFLICT (site) DO UPDATE SET version = max(version, excluded.version)`, seg.Origin, int64(seg.To)); err != nil {
				return res, err
			}
			if res.Advanced == nil {
				res.Advanced = Vector{}
			}
			res.Advanced[seg.Origin] = seg.To
		}
	}
	var next *vectorCache
	gen := sql.NullInt64{}
	if len(res.Advanced) > 0 {
		res.GenAfter = rand.Int64()
		gen = sql.NullInt64{Int64: res.GenAfter, Valid: true}
		if cached != nil {
			next = cached.advanced(res.GenAfter, res.Advanced)
		}
	}
	if _, err := conn.exec(ctx, endMergeQuery, int64(res.MaxHLC), gen); err != nil {
		return res, err
	}
	if _, err := conn.exec(ctx, "COMMIT"); err != nil {
		return res, err
	}
	done = true
	if next != nil {
		s.vectors.CompareAndSwap(cached, next)
	}
	return res, nil
}

const (
	// beginMergeQuery sets the flag the triggers look at, and reads the
	// file's own version and versions generation (ownVersionQuery) and the
	// version of origin ?1 here.
	beginMergeQuery = `UPDATE crdt_meta SET v = 1 WHERE k = 'applying'
		RETURNING (SELECT v FROM crdt_meta WHERE k = 'db_version'), (SELECT v FROM crdt_meta WHERE k = 'versions_gen'),
			coalesce((SELECT version FROM crdt_versions WHERE site = ?1), 0)`
	// endMergeQuery clears the flag, takes the clock past the highest HLC
	// merged (?1) and, where an origin advanced, sets the new versions
	// generation (?2; NULL leaves it).
	endMergeQuery = `UPDATE crdt_meta SET v = CASE k WHEN 'applying' THEN 0 WHEN 'hlc' THEN max(v, ?1) ELSE coalesce(?2, v) END
		WHERE k IN ('applying', 'hlc', 'versions_gen')`
)

// check returns why a change cannot be applied here, or "".
func (s *Store) check(c Change, limit uint64) string {
	sh := s.shapes[c.Table]
	if sh == nil {
		return fmt.Sprintf("unknown table %q (a newer schema?)", c.Table)
	}
	var key []any
	if err := json.Unmarshal([]byte(c.PK), &key); err != nil || len(key) != len(sh.pk) {
		return fmt.Sprintf("malformed primary key %q for table %s", c.PK, c.Table)
	}
	return checkOfRow(sh, c, limit)
}

// checkOfRow is check for a change of a row of table sh whose key a
// change before it passed check: everything but the table and the key.
func checkOfRow(sh *tableShape, c Change, limit uint64) string {
	if c.Column != "" && !sh.has[c.Column] {
		return fmt.Sprintf("unknown column %s.%s (a newer schema?)", c.Table, c.Column)
	}
	if c.HLC > limit {
		return fmt.Sprintf("clock %s is more than %v ahead of ours", HLCTime(c.HLC).UTC().Format(time.RFC3339Nano), MaxClockSkew)
	}
	if c.CL == 0 || (c.Column != "" && c.CL%2 == 0) {
		return fmt.Sprintf("invalid causal length %d", c.CL)
	}
	switch c.Value.(type) {
	case nil, int64, float64, string, []byte:
	default:
		return fmt.Sprintf("unsupported value type %T", c.Value)
	}
	return ""
}

func pkWhere(pk []string) string {
	parts := make([]string, len(pk))
	for i, p := range pk {
		parts[i] = fmt.Sprintf("%s = json_extract(?1, '$[%d]')", quoteIdent(p), i)
	}
	return strings.Join(parts, " AND ")
}

// mergeOne merges one change inside a savepoint, so a change that fails
// (a NOT NULL column given NULL, say) leaves nothing behind. It reports
// whether the change won.
func (s *Store) mergeOne(ctx context.Context, conn *mergeConn, c Change) (bool, error) {
	return conn.savepoint(ctx, func() (bool, error) { return s.mergeChange(ctx, conn, c) })
}

// mergeChange is mergeOne's work, inside its savepoint.
func (s *Store) mergeChange(ctx context.Context, conn *mergeConn, c Change) (won bool, err error) {
	sh := s.shapes[c.Table]
	tbl := quoteIdent(c.Table)
	local, err := rowCL(ctx, conn, c.Table, c.PK)
	if err != nil {
		return false, err
	}
	if c.CL < local {
		return false, nil
	}
	if c.CL > local {
		// A newer life of the row (or its death) supersedes everything
		// this file knows of it.
		if err = newLife(ctx, conn, c); err != nil {
			return false, err
		}
		if c.CL%2 == 0 {
			_, err = conn.exec(ctx, "DELETE FROM "+tbl+" WHERE "+pkWhere(sh.pk), c.PK)
			return err == nil, err
		}
		cols, vals := pkColumns(sh.pk)
		if _, err = conn.exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING",
			tbl, strings.Join(cols, ", "), strings.Join(vals, ", ")), c.PK); err != nil {
			return false, err
		}
		if c.Column == "" {
			return true, nil
		}
	} else if c.Column == "" || c.CL%2 == 0 {
		return false, nil // same life: nothing new about the row itself
	} else {
		var hlc int64
		var site string
		err = conn.queryRow(ctx, "SELECT hlc, site FROM crdt_clock WHERE tbl = ? AND pk = ? AND col = ?", c.Table, c.PK, c.Column).Scan(&hlc, &site)
		switch {
		case err == sql.ErrNoRows:
			err = nil
		case err != nil:
			return false, err
		case uint64(hlc) > c.HLC || (uint64(hlc) == c.HLC && site >= c.Site):
			return false, nil
		}
	}
	if _, err = conn.exec(ctx, fmt.Sprintf("UPDATE %s SET %s = ?2 WHERE %s", tbl, quoteIdent(c.Column), pkWhere(sh.pk)), c.PK, c.Value); err != nil {
		return false, err
	}
	if _, err = conn.exec(ctx, `INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl`,
		c.Table, c.PK, c.Column, c.Value, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL)); err != nil {
		return false, err
	}
	return true, nil
}

// rowCL is the causal length of a row here: 0 if this file never had it.
func rowCL(ctx context.Context, conn *mergeConn, table, pk string) (uint64, error) {
	var cl int64
	err := conn.queryRow(ctx, "SELECT cl FROM crdt_clock WHERE tbl = ? AND pk = ? AND col = ''", table, pk).Scan(&cl)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return uint64(cl), err
}

// newLife records the row sentinel's change of life, and drops the column
// clocks of the row's life before.
func newLife(ctx context.Context, conn *mergeConn, sentinel Change) error {
	if _, err := conn.exec(ctx, `INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES (?, ?, '', NULL, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl`,
		sentinel.Table, sentinel.PK, int64(sentinel.HLC), sentinel.Site, int64(sentinel.Seq), int64(sentinel.CL)); err != nil {
		return err
	}
	_, err := conn.exec(ctx, "DELETE FROM crdt_clock WHERE tbl = ? AND pk = ? AND col != ''", sentinel.Table, sentinel.PK)
	return err
}

// pkColumns are a table's key columns, and the values that take each from
// the JSON array of a change's key bound as ?1.
func pkColumns(pk []string) (names, values []string) {
	for i, p := range pk {
		names = append(names, quoteIdent(p))
		values = append(values, fmt.Sprintf("json_extract(?1, '$[%d]')", i))
	}
	return names, values
}
