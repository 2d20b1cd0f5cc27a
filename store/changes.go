package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
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
		if c.v == nil {
			// Merges took it forward as differences: made whole once,
			// for every reader of this generation.
			m := &vectorCache{gen: gen, v: c.whole()}
			s.vectors.CompareAndSwap(c, m)
			c = m
		}
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

// vectorCache is the vector as read at one versions_gen: whole (v), or
// as the versions a merge advanced (moved) over the cache of the
// generation it began from (base). A merge used to copy the whole vector
// to take the cache forward, a map of a thousand sites at a thousand POPs
// on every merge, where the replicator reads it seldom (it keeps its own).
type vectorCache struct {
	gen   int64
	v     Vector
	base  *vectorCache
	moved Vector
	depth int // differences over the nearest whole vector
}

// maxVectorDepth bounds the differences a cache holds over a whole vector.
const maxVectorDepth = 64

// advanced is c taken forward to generation gen by a merge that advanced
// moved (the merge's result, which its caller keeps): whole again once
// maxVectorDepth merges are kept as differences.
func (c *vectorCache) advanced(gen int64, moved Vector) *vectorCache {
	next := &vectorCache{gen: gen, base: c, moved: maps.Clone(moved), depth: c.depth + 1}
	if next.depth > maxVectorDepth {
		return &vectorCache{gen: gen, v: next.whole()}
	}
	return next
}

// whole is c's vector as a map of its own.
func (c *vectorCache) whole() Vector {
	var diffs []Vector
	for ; c.v == nil; c = c.base {
		diffs = append(diffs, c.moved)
	}
	v := maps.Clone(c.v)
	for i := len(diffs) - 1; i >= 0; i-- {
		maps.Copy(v, diffs[i])
	}
	return v
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
	return s.changesSince(ctx, origin, from, to, 0)
}

// changesUpTo returns the changes of origin from the version after from,
// whole versions only, about limit of them (0: no limit): it stops before
// the version that would pass the limit, unless that is the first, which
// comes whole however large. It returns the last version they cover.
func (s *Store) changesUpTo(ctx context.Context, origin string, from, to uint64, limit int) ([]Change, uint64, error) {
	ch, err := s.changesSince(ctx, origin, from, to, limit)
	if err != nil || limit <= 0 || len(ch) < limit {
		return ch, to, err
	}
	last := ch[len(ch)-1].Seq
	if ch[0].Seq == last {
		// One version, as large as the limit or more: all of it.
		ch, err = s.changesSince(ctx, origin, from, last, 0)
		return ch, last, err
	}
	// The last version read may be cut short: it is left for next time.
	i := len(ch) - 1
	for ch[i-1].Seq == last {
		i--
	}
	return ch[:i], last - 1, nil
}

func (s *Store) changesSince(ctx context.Context, origin string, from, to uint64, limit int) ([]Change, error) {
	q := `SELECT tbl, pk, col, val, hlc, seq, cl FROM crdt_clock
		WHERE site = ? AND seq > ? AND seq <= ? ORDER BY seq, tbl, pk, col`
	args := []any{origin, int64(from), int64(to)}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
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
//
// With a budget (0: none), the segments hold about that many changes in
// all, whole versions, the first ones the peer lacks: a peer far behind
// (a new POP, a table of 100,000 backends) is brought up a part at a time,
// each read once, instead of reading everything at every sync.
func (s *Store) Missing(ctx context.Context, peer Vector, maxChanges int, notAfter uint64, budget int) ([]Segment, error) {
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
	left := budget
	for _, o := range origins {
		if budget > 0 && left <= 0 {
			break
		}
		to, from := version(o), peer[o]
		ch, to, err := s.changesUpTo(ctx, o, from, to, left)
		if err != nil {
			return nil, err
		}
		left -= len(ch)
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
