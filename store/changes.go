package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Change is one entry of the change log: the state of one column of one
// row (or, with Column "", the row's existence) as some site last wrote it.
type Change struct {
	Table  string
	PK     string // JSON array of the primary key values
	Column string // "" for the row sentinel
	Value  any    // nil, int64, float64, string or []byte
	HLC    uint64
	Site   string // origin site
	Seq    uint64 // the origin's version of the write
	CL     uint64 // causal length of the row: odd alive, even deleted
}

// Segment is every change of Origin with a version in (From, To] that the
// sender holds; changes of that range it no longer holds were superseded by
// later writes, which it sends (or the receiver has) under their own
// origins. A receiver that knows Origin up to From or more and applies the
// whole segment knows Origin up to To.
type Segment struct {
	Origin   string
	From, To uint64
	Changes  []Change
}

// Vector is the version vector of a file: per origin site, the version up to
// which it has every change. It includes the file's own site.
type Vector map[string]uint64

// DBVersion is the local version counter: the version of the newest change
// made on this file (by any writer).
func (s *Store) DBVersion(ctx context.Context) (uint64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, "SELECT v FROM crdt_meta WHERE k = 'db_version'").Scan(&v)
	return uint64(v), err
}

// Vector reads the version vector. The caller owns the map.
//
// A replicating node reads it after every change of the file, and it has
// an entry per POP that ever wrote: at a thousand POPs a read of the whole
// vector is a quarter of a millisecond, and with a merge per change on
// every POP it was the simulation's largest cost. Only a merge moves the
// other sites' entries, and each sets versions_gen anew (crdt.go): while
// it has not moved, the last vector read is the file's, and only this
// site's own version is read again.
func (s *Store) Vector(ctx context.Context) (Vector, error) {
	v, _, err := s.VectorGen(ctx)
	return v, err
}

// VectorGen is Vector with the file's versions generation: a number that
// changes whenever another site's version moves (a merge), and not when
// only the file's own version does. The caller owns the map.
func (s *Store) VectorGen(ctx context.Context) (Vector, int64, error) {
	shared, own, gen, err := s.sharedVector(ctx)
	if err != nil {
		return nil, 0, err
	}
	v := maps.Clone(shared)
	v[s.site] = own
	return v, gen, nil
}

// sharedVector returns the vector as the store keeps it, which nobody may
// modify and whose entry for this file's own site may be older than own;
// the file's own version; and the versions generation.
func (s *Store) sharedVector(ctx context.Context) (Vector, uint64, int64, error) {
	own, gen, err := s.OwnVersion(ctx)
	if err != nil {
		return nil, 0, 0, err
	}
	if c := s.vectors.Load(); c != nil && c.gen == gen {
		return c.v, own, gen, nil
	}
	// The generation moved: the vector and its generation are read
	// again, together.
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, 0, err
	}
	defer tx.Rollback()
	if own, gen, err = ownVersion(ctx, tx); err != nil {
		return nil, 0, 0, err
	}
	v, err := vectorOf(ctx, tx, s.site)
	if err != nil {
		return nil, 0, 0, err
	}
	s.vectors.Store(&vectorCache{gen: gen, v: v})
	return v, own, gen, nil
}

// OwnVersion returns the file's own version and its versions generation
// (VectorGen), in one read: with the vector of that generation at hand,
// they give the whole vector without reading every site's version. One
// statement reads both, at one commit, outside a transaction: one on a
// cancellable context costs database/sql a goroutine to watch it.
func (s *Store) OwnVersion(ctx context.Context) (own uint64, gen int64, err error) {
	return ownVersion(context.WithoutCancel(ctx), s.db)
}

const ownVersionQuery = "SELECT (SELECT v FROM crdt_meta WHERE k = 'db_version'), (SELECT v FROM crdt_meta WHERE k = 'versions_gen')"

func ownVersion(ctx context.Context, q execQueryer) (uint64, int64, error) {
	var own, gen int64
	err := q.QueryRowContext(ctx, ownVersionQuery).Scan(&own, &gen)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the local version: %w", err)
	}
	return uint64(own), gen, nil
}

// vectorCache is the vector as read at one versions_gen.
type vectorCache struct {
	gen int64
	v   Vector
}

func vectorOf(ctx context.Context, q execQueryer, site string) (Vector, error) {
	// One row for the whole vector: stepping through a row per site
	// through cgo cost about 3 us a site, 3 ms a read at a thousand POPs,
	// and a node reads it after every change of the file. Each entry is
	// "<bytes of site>:<site>:<version>", so any site text parses back.
	var all sql.NullString
	if err := q.QueryRowContext(ctx, `SELECT group_concat(length(CAST(site AS BLOB)) || ':' || site || ':' || version, ',') FROM crdt_versions`).Scan(&all); err != nil {
		return nil, err
	}
	v, err := parseVector(all.String)
	if err != nil {
		return nil, fmt.Errorf("reading the version vector: %w", err)
	}
	var own int64
	if err := q.QueryRowContext(ctx, "SELECT v FROM crdt_meta WHERE k = 'db_version'").Scan(&own); err != nil {
		return nil, err
	}
	v[site] = uint64(own)
	return v, nil
}

// parseVector reads vectorOf's encoding of crdt_versions.
func parseVector(b string) (Vector, error) {
	v := Vector{}
	for len(b) > 0 {
		i := strings.IndexByte(b, ':')
		n, err := strconv.Atoi(b[:max(i, 0)])
		if i < 0 || err != nil || n < 0 || i+1+n+1 > len(b) || b[i+1+n] != ':' {
			return nil, fmt.Errorf("malformed entry at %q", truncate(b, 40))
		}
		site := b[i+1 : i+1+n]
		b = b[i+1+n+1:]
		j := strings.IndexByte(b, ',')
		if j < 0 {
			j = len(b)
		}
		x, err := strconv.ParseUint(b[:j], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("version of %q: %w", site, err)
		}
		v[site] = x
		b = b[min(j+1, len(b)):]
	}
	return v, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ChangesSince returns the changes of origin with a version in (from, to],
// in version order.
func (s *Store) ChangesSince(ctx context.Context, origin string, from, to uint64) ([]Change, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT tbl, pk, col, val, hlc, seq, cl FROM crdt_clock
		WHERE site = ? AND seq > ? AND seq <= ? ORDER BY seq, tbl, pk, col`, origin, int64(from), int64(to))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		c := Change{Site: origin}
		var hlc, seq, cl int64
		if err := rows.Scan(&c.Table, &c.PK, &c.Column, &c.Value, &hlc, &seq, &cl); err != nil {
			return nil, err
		}
		c.HLC, c.Seq, c.CL = uint64(hlc), uint64(seq), uint64(cl)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Missing returns, for every origin this file knows further than the peer
// vector says, the segment that brings the peer up to this file's vector.
// A segment is split into pieces of about maxChanges changes (cut between
// versions) so no message grows without bound.
//
// Changes stamped after notAfter (an HLC; 0 for no limit) are left out,
// and their segment ends before them: they are most likely still on their
// way in the origin's own push, and sending them twice is waste.
func (s *Store) Missing(ctx context.Context, peer Vector, maxChanges int, notAfter uint64) ([]Segment, error) {
	shared, own, _, err := s.sharedVector(ctx)
	if err != nil {
		return nil, err
	}
	version := func(o string) uint64 {
		if o == s.site {
			return own
		}
		return shared[o]
	}
	// Only the origins the peer lacks, in order: the vector has an entry
	// per POP, and a peer lacks a few.
	var origins []string
	if own > peer[s.site] {
		origins = append(origins, s.site)
	}
	for o, to := range shared {
		if o != s.site && to > peer[o] {
			origins = append(origins, o)
		}
	}
	sort.Strings(origins)
	var out []Segment
	for _, o := range origins {
		to, from := version(o), peer[o]
		ch, err := s.ChangesSince(ctx, o, from, to)
		if err != nil {
			return nil, err
		}
		if notAfter > 0 {
			for i, c := range ch {
				if c.HLC > notAfter {
					// Versions of one origin follow its clock, so the rest is
					// recent too.
					ch, to = ch[:i], c.Seq-1
					break
				}
			}
			for len(ch) > 0 && ch[len(ch)-1].Seq > to {
				ch = ch[:len(ch)-1]
			}
			if to <= from {
				continue
			}
		}
		out = append(out, Split(Segment{Origin: o, From: from, To: to, Changes: ch}, maxChanges)...)
	}
	return out, nil
}

// Split cuts a segment into pieces of at most about max changes, between
// versions, each claiming its own range.
func Split(seg Segment, max int) []Segment {
	if max <= 0 || len(seg.Changes) <= max {
		return []Segment{seg}
	}
	var out []Segment
	from := seg.From
	start := 0
	for i := 1; i <= len(seg.Changes); i++ {
		atEnd := i == len(seg.Changes)
		if !atEnd && (i-start < max || seg.Changes[i].Seq == seg.Changes[i-1].Seq) {
			continue
		}
		to := seg.Changes[i-1].Seq
		if atEnd {
			to = seg.To
		}
		out = append(out, Segment{Origin: seg.Origin, From: from, To: to, Changes: seg.Changes[start:i]})
		from, start = to, i
	}
	return out
}

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

// ErrReadOnly is returned by writes on a read-only store.
var ErrReadOnly = errors.New("routing table opened read-only")

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
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		s.merges.release(false)
		return res, err
	}
	done := false
	defer func() {
		broken := false
		if !done {
			_, err := conn.ExecContext(context.Background(), "ROLLBACK")
			broken = err != nil
		}
		s.merges.release(broken)
	}()
	if _, err := conn.ExecContext(ctx, "UPDATE crdt_meta SET v = 1 WHERE k = 'applying'"); err != nil {
		return res, err
	}
	// The vector read last, if it is still the file's, is brought up to
	// date below instead of being read again after the merge.
	var own int64
	if err := conn.QueryRowContext(ctx, ownVersionQuery).Scan(&own, &res.GenBefore); err != nil {
		return res, err
	}
	res.Own = uint64(own)
	res.GenAfter = res.GenBefore
	cached := s.vectors.Load()
	if cached != nil && cached.gen != res.GenBefore {
		cached = nil
	}
	// The versions of the segments' origins only: the whole vector has an
	// entry per POP that ever wrote, a thousand at a thousand POPs, and a
	// merge usually carries one origin.
	vec := Vector{}
	for _, seg := range segs {
		if _, ok := vec[seg.Origin]; ok || seg.Origin == s.site || seg.Origin == "" {
			continue
		}
		var v int64
		err := conn.QueryRowContext(ctx, "SELECT version FROM crdt_versions WHERE site = ?", seg.Origin).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return res, err
		}
		vec[seg.Origin] = uint64(v)
	}
	limit := MakeHLC(now.Add(MaxClockSkew), 0xffff)
	for _, seg := range segs {
		if seg.Origin == s.site || seg.Origin == "" {
			continue // our own changes, echoed back
		}
		ok := true
		for _, c := range seg.Changes {
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
			won, err := s.mergeOne(ctx, conn, c)
			if err != nil {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				res.Refused = append(res.Refused, Refusal{c, err.Error()})
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
			if _, err := conn.ExecContext(ctx, `INSERT INTO crdt_versions (site, version) VALUES (?, ?)
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
	if len(res.Advanced) > 0 {
		res.GenAfter = rand.Int64()
		if _, err := conn.ExecContext(ctx, "UPDATE crdt_meta SET v = ? WHERE k = 'versions_gen'", res.GenAfter); err != nil {
			return res, err
		}
		if cached != nil {
			next = &vectorCache{gen: res.GenAfter, v: maps.Clone(cached.v)}
			maps.Copy(next.v, res.Advanced)
		}
	}
	if res.MaxHLC > 0 {
		if _, err := conn.ExecContext(ctx, "UPDATE crdt_meta SET v = max(v, ?) WHERE k = 'hlc'", int64(res.MaxHLC)); err != nil {
			return res, err
		}
	}
	if _, err := conn.ExecContext(ctx, "UPDATE crdt_meta SET v = 0 WHERE k = 'applying'"); err != nil {
		return res, err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return res, err
	}
	done = true
	if next != nil {
		s.vectors.CompareAndSwap(cached, next)
	}
	return res, nil
}

// check returns why a change cannot be applied here, or "".
func (s *Store) check(c Change, limit uint64) string {
	sh := s.shapes[c.Table]
	if sh == nil {
		return fmt.Sprintf("unknown table %q (a newer schema?)", c.Table)
	}
	if c.Column != "" && !sh.has[c.Column] {
		return fmt.Sprintf("unknown column %s.%s (a newer schema?)", c.Table, c.Column)
	}
	var key []any
	if err := json.Unmarshal([]byte(c.PK), &key); err != nil || len(key) != len(sh.pk) {
		return fmt.Sprintf("malformed primary key %q for table %s", c.PK, c.Table)
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
func (s *Store) mergeOne(ctx context.Context, conn *sql.Conn, c Change) (won bool, err error) {
	if _, err := conn.ExecContext(ctx, "SAVEPOINT merge"); err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			conn.ExecContext(ctx, "ROLLBACK TO merge")
		}
		conn.ExecContext(ctx, "RELEASE merge")
	}()
	sh := s.shapes[c.Table]
	tbl := quoteIdent(c.Table)
	var lcl int64
	err = conn.QueryRowContext(ctx, "SELECT cl FROM crdt_clock WHERE tbl = ? AND pk = ? AND col = ''", c.Table, c.PK).Scan(&lcl)
	if err != nil && err != sql.ErrNoRows {
		return false, err
	}
	err = nil
	local := uint64(lcl)
	if c.CL < local {
		return false, nil
	}
	if c.CL > local {
		// A newer life of the row (or its death) supersedes everything
		// this file knows of it.
		if _, err = conn.ExecContext(ctx, `INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES (?, ?, '', NULL, ?, ?, ?, ?)
			ON CONFLICT (tbl, pk, col) DO UPDATE SET hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl`,
			c.Table, c.PK, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL)); err != nil {
			return false, err
		}
		if _, err = conn.ExecContext(ctx, "DELETE FROM crdt_clock WHERE tbl = ? AND pk = ? AND col != ''", c.Table, c.PK); err != nil {
			return false, err
		}
		if c.CL%2 == 0 {
			_, err = conn.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE "+pkWhere(sh.pk), c.PK)
			return err == nil, err
		}
		cols := make([]string, len(sh.pk))
		vals := make([]string, len(sh.pk))
		for i, p := range sh.pk {
			cols[i] = quoteIdent(p)
			vals[i] = fmt.Sprintf("json_extract(?1, '$[%d]')", i)
		}
		if _, err = conn.ExecContext(ctx, fmt.Sprintf("INSERT INTO %s (%s) VALUES (%s) ON CONFLICT DO NOTHING",
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
		err = conn.QueryRowContext(ctx, "SELECT hlc, site FROM crdt_clock WHERE tbl = ? AND pk = ? AND col = ?", c.Table, c.PK, c.Column).Scan(&hlc, &site)
		switch {
		case err == sql.ErrNoRows:
			err = nil
		case err != nil:
			return false, err
		case uint64(hlc) > c.HLC || (uint64(hlc) == c.HLC && site >= c.Site):
			return false, nil
		}
	}
	if _, err = conn.ExecContext(ctx, fmt.Sprintf("UPDATE %s SET %s = ?2 WHERE %s", tbl, quoteIdent(c.Column), pkWhere(sh.pk)), c.PK, c.Value); err != nil {
		return false, err
	}
	if _, err = conn.ExecContext(ctx, `INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl`,
		c.Table, c.PK, c.Column, c.Value, int64(c.HLC), c.Site, int64(c.Seq), int64(c.CL)); err != nil {
		return false, err
	}
	return true, nil
}

// TombstoneSites lists the origins of the deletes whose tombstones are
// older than before: the sites tombstone collection must find every
// member's version of. Most rounds find none, and the round ends there.
func (s *Store) TombstoneSites(ctx context.Context, before time.Time) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT site FROM crdt_clock WHERE col = '' AND cl % 2 = 0 AND hlc < ?`,
		int64(MakeHLC(before, 0)))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var sites []string
	for rows.Next() {
		var site string
		if err := rows.Scan(&site); err != nil {
			return nil, err
		}
		sites = append(sites, site)
	}
	return sites, rows.Err()
}

// CollectTombstones forgets the sentinels of deleted rows that are older
// than before and that every peer has seen: seen holds, per origin, the
// lowest version all members know (an origin it lacks, or holds at 0, is
// left alone). It returns how many it removed, in one write transaction.
func (s *Store) CollectTombstones(ctx context.Context, seen Vector, before time.Time) (int64, error) {
	if s.readOnly {
		return 0, ErrReadOnly
	}
	some := false
	for _, v := range seen {
		some = some || v > 0
	}
	if !some {
		return 0, nil
	}
	limit := int64(MakeHLC(before, 0))
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var n int64
	for site, v := range seen {
		if v == 0 {
			continue
		}
		r, err := tx.ExecContext(ctx, `DELETE FROM crdt_clock WHERE col = '' AND cl % 2 = 0 AND site = ? AND seq <= ? AND hlc < ?`,
			site, int64(v), limit)
		if err != nil {
			return 0, err
		}
		k, _ := r.RowsAffected()
		n += k
	}
	return n, tx.Commit()
}

// Tombstones counts the sentinels of deleted rows.
func (s *Store) Tombstones(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM crdt_clock WHERE col = '' AND cl % 2 = 0").Scan(&n)
	return n, err
}

// SetVersion raises the local version counter to at least v. The cluster
// calls it when a peer knows this site further than this file does: the
// file was restored from a backup in place, and new changes must not reuse
// versions the peers have already seen.
func (s *Store) SetVersion(ctx context.Context, v uint64) error {
	_, err := s.db.ExecContext(ctx, "UPDATE crdt_meta SET v = max(v, ?) WHERE k = 'db_version'", int64(v))
	return err
}
