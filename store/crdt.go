package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Change capture (schema version 2).
//
// Every replicated table gets SQL triggers that record each write into
// crdt_clock, one entry per (table, primary key, column) holding the value,
// the HLC of the write, the site (file) that made it and that site's local
// version (seq) of the write, plus one entry per row with col = '' (the row
// sentinel) whose cl is the row's causal length: odd while the row exists,
// even once it is deleted. Because the triggers live in the file, any
// writer is captured, the sqlite3 CLI included.
//
// crdt_meta holds the site id, the local version counter (db_version), the
// last HLC handed out and the `applying` flag. The replicator sets applying
// to 1 inside its merge transaction and back to 0 before committing, so
// the triggers (WHEN applying = 0) skip its writes; no other connection can
// see the flag set, since it never commits as 1.
//
// crdt_versions holds, per origin site, the highest version up to which
// this file has merged (or superseded) every change of that site: the
// version vector anti-entropy exchanges. Every merge that moves it sets
// crdt_meta's versions_gen to a new random value, so a reader can tell
// that the vector it read last is still the file's.

// replicated lists the tables that replicate, with their primary keys.
var replicated = []struct {
	name string
	pk   []string
}{
	{"backends", []string{"id"}},
	{"pops", []string{"node"}},
	{"health", []string{"backend_id", "observer"}},
	{"leases", []string{"backend_id"}},
}

const createCRDT = `
CREATE TABLE IF NOT EXISTS crdt_meta (k TEXT PRIMARY KEY NOT NULL, v) WITHOUT ROWID;
INSERT OR IGNORE INTO crdt_meta (k, v) VALUES ('db_version', 0), ('hlc', 0), ('applying', 0), ('site', ''), ('dev', 0), ('ino', 0), ('versions_gen', 0);
CREATE TABLE IF NOT EXISTS crdt_clock (
	tbl  TEXT NOT NULL,
	pk   TEXT NOT NULL,
	col  TEXT NOT NULL,
	val,
	hlc  INTEGER NOT NULL,
	site TEXT NOT NULL,
	seq  INTEGER NOT NULL,
	cl   INTEGER NOT NULL,
	PRIMARY KEY (tbl, pk, col)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS crdt_clock_by_site ON crdt_clock (site, seq);
CREATE TABLE IF NOT EXISTS crdt_versions (site TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL) WITHOUT ROWID;
`

func pkExpr(ref string, pk []string) string {
	parts := make([]string, len(pk))
	for i, c := range pk {
		parts[i] = ref + "." + quoteIdent(c)
	}
	return "json_array(" + strings.Join(parts, ", ") + ")"
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteLit(s string) string   { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

const (
	bumpClock = `UPDATE crdt_meta SET v = max(v + 1, ` + sqlNowHLC + `) WHERE k = 'hlc';
	UPDATE crdt_meta SET v = v + 1 WHERE k = 'db_version';
`
	// The clock's three values an entry is written with: hlc, site, seq.
	metaTables = `crdt_meta h, crdt_meta s, crdt_meta d`
	metaWhere  = `h.k = 'hlc' AND s.k = 'site' AND d.k = 'db_version'`
	metaFrom   = ` FROM ` + metaTables + ` WHERE ` + metaWhere
	upsertTail = ` ON CONFLICT (tbl, pk, col) DO UPDATE SET val = excluded.val, hlc = excluded.hlc, site = excluded.site, seq = excluded.seq, cl = excluded.cl;
`
	applyingOff = `(SELECT v FROM crdt_meta WHERE k = 'applying') = 0`
)

// insertBody records a (re)inserted row: the sentinel becomes alive (odd)
// and every column is written. The sentinel's new causal length is the
// same read before the statement writes it or after, so the column entries
// carry it either way.
func insertBody(tbl string, pk, cols []string) string {
	key := pkExpr("NEW", pk)
	rows := "SELECT '' AS col, NULL AS val"
	if len(cols) > 0 {
		rows += " UNION ALL " + columnRows(cols, false)
	}
	return clockEntries(tbl, key, rows, `COALESCE((SELECT CASE WHEN cl % 2 = 1 THEN cl ELSE cl + 1 END `+sentinelOf(tbl, key)+`), 1)`)
}

// sentinelOf locates a row's sentinel: its entry whose col is empty.
func sentinelOf(tbl, key string) string {
	return `FROM crdt_clock WHERE tbl = ` + quoteLit(tbl) + ` AND pk = ` + key + ` AND col = ''`
}

// clockEntries writes the entries rows (col, val) yield for one row, with
// causal length cl, in one statement: each statement of a trigger opens
// cursors and seeks of its own, which cost more than the entry it writes.
func clockEntries(tbl, key, rows, cl string) string {
	return fmt.Sprintf(`INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) SELECT %s, %s, c.col, c.val, h.v, s.v, d.v, %s FROM (%s) c, %s WHERE %s%s`,
		quoteLit(tbl), key, cl, rows, metaTables, metaWhere, upsertTail)
}

// columnRows is a row (col, val) for each column of NEW, or, if changed, for
// each column the UPDATE changed. A UNION ALL rather than VALUES: SQLite
// does not resolve a VALUES list's columns under an upsert.
func columnRows(cols []string, changed bool) string {
	rows := make([]string, len(cols))
	for i, c := range cols {
		rows[i] = fmt.Sprintf("SELECT %s AS col, NEW.%s AS val", quoteLit(c), quoteIdent(c))
		if changed {
			rows[i] += fmt.Sprintf(" WHERE NEW.%s IS NOT OLD.%s", quoteIdent(c), quoteIdent(c))
		}
	}
	return strings.Join(rows, " UNION ALL ")
}

// deleteBody records a deleted row: the sentinel becomes dead (even) and the
// column entries, which belong to the row's past life, go.
func deleteBody(tbl string, pk []string) string {
	key := pkExpr("OLD", pk)
	return fmt.Sprintf(`INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) SELECT %s, %s, '', NULL, h.v, s.v, d.v, COALESCE((SELECT CASE WHEN cl %% 2 = 1 THEN cl + 1 ELSE cl END %s), 2)%s%s`,
		quoteLit(tbl), key, sentinelOf(tbl, key), metaFrom, upsertTail) +
		fmt.Sprintf("DELETE FROM crdt_clock WHERE tbl = %s AND pk = %s AND col != '';\n", quoteLit(tbl), key)
}

// updateBody records the columns an UPDATE changed.
func updateBody(tbl string, pk, cols []string) string {
	key := pkExpr("NEW", pk)
	// A row written before capture existed has no sentinel yet.
	// (Not INSERT OR IGNORE: the statement that fires a trigger overrides
	// the conflict clauses of the trigger's statements.)
	sentinel := fmt.Sprintf(`INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) SELECT %s, %s, '', NULL, h.v, s.v, d.v, 1%s AND NOT EXISTS (SELECT 1 %s);
`, quoteLit(tbl), key, metaFrom, sentinelOf(tbl, key))
	if len(cols) == 0 {
		return sentinel
	}
	return sentinel + clockEntries(tbl, key, columnRows(cols, true), `(SELECT cl `+sentinelOf(tbl, key)+`)`)
}

// triggerSQL returns the capture triggers of a table, by name.
func triggerSQL(tbl string, pk, cols []string) map[string]string {
	samePK := pkExpr("NEW", pk) + " = " + pkExpr("OLD", pk)
	q := quoteIdent(tbl)
	return map[string]string{
		"crdt_" + tbl + "_ins": fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s WHEN %s BEGIN\n%s%sEND",
			quoteIdent("crdt_"+tbl+"_ins"), q, applyingOff, bumpClock, insertBody(tbl, pk, cols)),
		"crdt_" + tbl + "_upd": fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN %s AND %s BEGIN\n%s%sEND",
			quoteIdent("crdt_"+tbl+"_upd"), q, applyingOff, samePK, bumpClock, updateBody(tbl, pk, cols)),
		"crdt_" + tbl + "_pk": fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s WHEN %s AND NOT (%s) BEGIN\n%s%s%sEND",
			quoteIdent("crdt_"+tbl+"_pk"), q, applyingOff, samePK, bumpClock, deleteBody(tbl, pk), insertBody(tbl, pk, cols)),
		"crdt_" + tbl + "_del": fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s WHEN %s BEGIN\n%s%sEND",
			quoteIdent("crdt_"+tbl+"_del"), q, applyingOff, bumpClock, deleteBody(tbl, pk)),
	}
}

type execQueryer interface {
	queryer
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tableShape is a replicated table as this file has it.
type tableShape struct {
	pk   []string
	cols []string        // non-key columns, in table order
	has  map[string]bool // non-key columns
}

func loadShapes(ctx context.Context, q queryer) (map[string]*tableShape, error) {
	out := map[string]*tableShape{}
	for _, r := range replicated {
		rows, err := q.QueryContext(ctx, "SELECT name FROM pragma_table_info(?) ORDER BY cid", r.name)
		if err != nil {
			return nil, err
		}
		sh := &tableShape{pk: r.pk, has: map[string]bool{}}
		isPK := map[string]bool{}
		for _, p := range r.pk {
			isPK[p] = true
		}
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return nil, err
			}
			if !isPK[name] {
				sh.cols = append(sh.cols, name)
				sh.has[name] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
		out[r.name] = sh
	}
	return out, nil
}

// ensureTriggers (re)creates the capture triggers whose text differs from
// what the current columns need, so a migration that adds a column also
// captures it. A file whose triggers are current is not written to.
func ensureTriggers(ctx context.Context, tx execQueryer, shapes map[string]*tableShape) error {
	for _, r := range replicated {
		sh := shapes[r.name]
		for name, want := range triggerSQL(r.name, sh.pk, sh.cols) {
			var have string
			err := tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", name).Scan(&have)
			if err == nil && have == want {
				continue
			}
			if err != nil && err != sql.ErrNoRows {
				return err
			}
			if _, err := tx.ExecContext(ctx, "DROP TRIGGER IF EXISTS "+quoteIdent(name)); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, want); err != nil {
				return fmt.Errorf("creating trigger %s: %w", name, err)
			}
		}
	}
	return nil
}

// backfill records rows that exist without a sentinel (a v1 file, or rows
// written while no trigger existed) as local inserts, so they replicate.
func backfill(ctx context.Context, tx execQueryer, shapes map[string]*tableShape) error {
	for _, r := range replicated {
		sh := shapes[r.name]
		// Each row is touched with an UPDATE that changes nothing through
		// a capture of its own: simplest is to run the insert body per row.
		key := pkExpr("t", sh.pk)
		rows, err := tx.QueryContext(ctx, fmt.Sprintf(
			"SELECT %s FROM %s t WHERE NOT EXISTS (SELECT 1 FROM crdt_clock c WHERE c.tbl = %s AND c.pk = %s AND c.col = '')",
			key, quoteIdent(r.name), quoteLit(r.name), key))
		if err != nil {
			return err
		}
		var keys []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		rows.Close()
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, bumpClock); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) SELECT ?, ?, '', NULL, h.v, s.v, d.v, 1`+metaFrom, r.name, k); err != nil {
				return err
			}
			for _, c := range sh.cols {
				where := make([]string, len(sh.pk))
				for i, p := range sh.pk {
					where[i] = fmt.Sprintf("%s = json_extract(?2, '$[%d]')", quoteIdent(p), i)
				}
				if _, err := tx.ExecContext(ctx, fmt.Sprintf(`INSERT INTO crdt_clock (tbl, pk, col, val, hlc, site, seq, cl) SELECT ?1, ?2, ?3, (SELECT %s FROM %s WHERE %s), h.v, s.v, d.v, 1`+metaFrom,
					quoteIdent(c), quoteIdent(r.name), strings.Join(where, " AND ")), r.name, k, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func newSiteID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// fileIdentity is what tells this file from a copy of it: a copy (cp,
// sqlite3 .backup, VACUUM INTO, a restore, a move to another file system)
// is a new inode or device, while SQLite itself never replaces the inode of
// a file it writes.
func fileIdentity(path string) (dev, ino int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, nil
	}
	return int64(st.Dev), int64(st.Ino), nil
}

// initCRDT runs on every writable open, after the migrations: it gives the
// file its site id (a new one when the file is a copy), makes sure the
// triggers match the columns and loads the table shapes the merge checks
// changes against.
func (s *Store) initCRDT(ctx context.Context) error {
	dev, ino, err := fileIdentity(s.path)
	if err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	commit := false
	defer func() {
		if !commit {
			conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var site string
	var mdev, mino int64
	if err := conn.QueryRowContext(ctx, "SELECT (SELECT v FROM crdt_meta WHERE k='site'), (SELECT v FROM crdt_meta WHERE k='dev'), (SELECT v FROM crdt_meta WHERE k='ino')").Scan(&site, &mdev, &mino); err != nil {
		return err
	}
	switch {
	case site == "":
		site = newSiteID()
	case mdev != dev || mino != ino:
		// A copy: the original keeps its site id; this file continues
		// under a new one. Changes stamped with the old id here (made by
		// the original before the copy, or on the copy since) are
		// re-stamped as the new site's, with new versions and their
		// HLCs kept, so merges still order them by time and the old
		// site's versions never name two different changes.
		old := site
		site = newSiteID()
		s.copied = old
		if _, err := conn.ExecContext(ctx, `INSERT INTO crdt_versions (site, version) SELECT ?1, v FROM crdt_meta WHERE k = 'db_version'
			ON CONFLICT (site) DO UPDATE SET version = max(version, excluded.version)`, old); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `UPDATE crdt_meta SET v = v + 1 WHERE k = 'db_version'`); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, `UPDATE crdt_clock SET site = ?1, seq = (SELECT v FROM crdt_meta WHERE k = 'db_version') WHERE site = ?2`, site, old); err != nil {
			return err
		}
	}
	// Only what differs is written: a second process opening the file
	// finds everything in place and commits an empty transaction, which
	// leaves the file as it was.
	if _, err := conn.ExecContext(ctx, `UPDATE crdt_meta SET v = CASE k WHEN 'site' THEN ?1 WHEN 'dev' THEN ?2 WHEN 'ino' THEN ?3 END
		WHERE (k = 'site' AND v IS NOT ?1) OR (k = 'dev' AND v IS NOT ?2) OR (k = 'ino' AND v IS NOT ?3)`, site, dev, ino); err != nil {
		return err
	}
	// Files made before versions_gen (see Store.Vector) get it here; the
	// row already there, nothing is written.
	if _, err := conn.ExecContext(ctx, "INSERT OR IGNORE INTO crdt_meta (k, v) VALUES ('versions_gen', 0)"); err != nil {
		return err
	}
	// A crash of the replicator can never leave the flag set (it is only
	// ever committed as 0), but a hand edit could.
	if _, err := conn.ExecContext(ctx, "UPDATE crdt_meta SET v = 0 WHERE k = 'applying' AND v != 0"); err != nil {
		return err
	}
	shapes, err := loadShapes(ctx, conn)
	if err != nil {
		return err
	}
	if err := ensureTriggers(ctx, conn, shapes); err != nil {
		return err
	}
	if err := backfill(ctx, conn, shapes); err != nil {
		return err
	}
	if err := ensureJournal(ctx, conn, s.copied != ""); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	commit = true
	s.site = site
	s.shapes = shapes
	return nil
}

// SiteID identifies this file in the cluster (a new one for each copy).
func (s *Store) SiteID() string { return s.site }

// CopiedFrom is the site id the file had when Open found it to be a copy
// of another file, or "".
func (s *Store) CopiedFrom() string { return s.copied }
