package store

import (
	"context"
	"fmt"
	"strings"
)

// The change journal: which rows of the tables a snapshot is built from
// changed, in commit order, so a follower of the file re-reads those rows
// instead of the whole table.
//
// crdt_clock cannot say it: its rows carry the origin's site and version,
// not the order in which this file received them, and a merge rewrites
// them in place. The journal is local and never replicated: one row per
// written row (n, tbl, pk), numbered by AUTOINCREMENT so numbers only
// grow, filled by triggers of their own that fire on every write (the
// sqlite3 CLI's, a v1 proxy's, the replicator's merges, which the capture
// triggers skip). A reader remembers the last n it has seen. Old entries
// are pruned by the writing proxy, keeping journalKeep; a reader that fell
// further behind, or finds the file's schema or journal id changed (a file
// copied over this one, a column added), reads the whole table again.
//
// crdt_meta's 'journal' key is a random id given to the journal when it is
// created: a file restored from another copy has other numbers under the
// same name.

// journaled lists the tables whose changes the journal records: those a
// snapshot and the DNS server's records are built from.
var journaled = []struct {
	name string
	pk   []string
}{
	{"backends", []string{"id"}},
	{"pops", []string{"node"}},
	{"health", []string{"backend_id", "observer"}},
}

const createJournal = `
CREATE TABLE IF NOT EXISTS crdt_journal (n INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, pk TEXT NOT NULL);
INSERT OR IGNORE INTO crdt_meta (k, v) VALUES ('journal', lower(hex(randomblob(8))));
`

// journalKeep is how many entries pruning leaves: at 100 changes a second,
// ten minutes of them, a few MB.
const journalKeep = 65536

// journalTriggerSQL returns the journal's triggers of a table, by name.
func journalTriggerSQL(tbl string, pk []string) map[string]string {
	q, lit := quoteIdent(tbl), quoteLit(tbl)
	newKey, oldKey := pkExpr("NEW", pk), pkExpr("OLD", pk)
	name := func(op string) string { return "crdt_journal_" + tbl + "_" + op }
	return map[string]string{
		name("ins"): fmt.Sprintf("CREATE TRIGGER %s AFTER INSERT ON %s BEGIN\nINSERT INTO crdt_journal (tbl, pk) VALUES (%s, %s);\nEND",
			quoteIdent(name("ins")), q, lit, newKey),
		// A changed primary key is the old row gone and a new one.
		name("upd"): fmt.Sprintf("CREATE TRIGGER %s AFTER UPDATE ON %s BEGIN\nINSERT INTO crdt_journal (tbl, pk) VALUES (%s, %s);\nINSERT INTO crdt_journal (tbl, pk) SELECT %s, %s WHERE %s IS NOT %s;\nEND",
			quoteIdent(name("upd")), q, lit, newKey, lit, oldKey, oldKey, newKey),
		name("del"): fmt.Sprintf("CREATE TRIGGER %s AFTER DELETE ON %s BEGIN\nINSERT INTO crdt_journal (tbl, pk) VALUES (%s, %s);\nEND",
			quoteIdent(name("del")), q, lit, oldKey),
	}
}

// ensureJournal creates the journal and its triggers where missing or
// different, inside initCRDT's transaction. Like ensureTriggers it writes
// nothing to a file that has them already. A file found to be a copy gets
// a new journal id: its entries continue the original's numbers but no
// longer describe the same history.
func ensureJournal(ctx context.Context, tx execQueryer, copied bool) error {
	if _, err := tx.ExecContext(ctx, createJournal); err != nil {
		return err
	}
	if copied {
		if _, err := tx.ExecContext(ctx, `UPDATE crdt_meta SET v = lower(hex(randomblob(8))) WHERE k = 'journal'`); err != nil {
			return err
		}
	}
	for _, j := range journaled {
		cols, err := tableColumns(ctx, tx, j.name)
		if err != nil {
			return err
		}
		if len(cols) == 0 {
			continue
		}
		for name, want := range journalTriggerSQL(j.name, j.pk) {
			var have string
			err := tx.QueryRowContext(ctx, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?", name).Scan(&have)
			if err == nil && have == want {
				continue
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

// journalPos is where a reader is in the journal, and what it has to match
// for its position to mean anything.
type journalPos struct {
	id     string // crdt_meta 'journal'
	schema int64  // PRAGMA schema_version
	n      int64  // the last entry read
}

// after reports whether p is further along q's journal: the same journal
// and schema, a later entry.
func (p journalPos) after(q journalPos) bool {
	return p.id == q.id && p.schema == q.schema && p.n > q.n
}

// journalState reads the journal's id, the schema version and the last
// entry number; ok is false when the file has no journal.
func journalState(ctx context.Context, q execQueryer) (pos journalPos, ok bool, err error) {
	var tables int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('crdt_journal', 'crdt_meta', 'sqlite_sequence')`).Scan(&tables); err != nil || tables < 3 {
		return pos, false, err
	}
	var id *string
	err = q.QueryRowContext(ctx, `SELECT (SELECT v FROM crdt_meta WHERE k = 'journal'), (SELECT schema_version FROM pragma_schema_version),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'crdt_journal'), 0)`).Scan(&id, &pos.schema, &pos.n)
	if err != nil || id == nil {
		return pos, false, err
	}
	pos.id = *id
	return pos, true, nil
}

// journalChanges is what the entries after a position name.
type journalChanges struct {
	backends []string // IDs, each once
	pops     bool
	health   []string // backend IDs, each once
}

// add notes an entry of table tbl naming the row key, unless seen (the
// entries added so far) holds it already.
func (ch *journalChanges) add(seen map[string]bool, tbl, key string) {
	if seen[tbl+"\x00"+key] {
		return
	}
	seen[tbl+"\x00"+key] = true
	switch tbl {
	case "backends":
		ch.backends = append(ch.backends, key)
	case "pops":
		ch.pops = true
	case "health":
		ch.health = append(ch.health, key)
	}
}

// journalEntriesQuery reads the table and key of the entries after one
// number up to another.
const journalEntriesQuery = `SELECT tbl, json_extract(pk, '$[0]') FROM crdt_journal WHERE n > ? AND n <= ?`

// readJournal returns the changes after from up to to (both entry numbers
// of the same journal), or ok false when entries in between were pruned or
// there are more than limit of them: the reader reads everything instead.
func (s *Store) readJournal(ctx context.Context, r reading, from, to int64, limit int) (ch journalChanges, ok bool, err error) {
	if to-from > int64(limit) {
		return ch, false, nil
	}
	st, err := r.prepared(ctx, journalEntriesQuery)
	if err != nil {
		return ch, false, err
	}
	rows, err := st.QueryContext(ctx, from, to)
	if err != nil {
		return ch, false, err
	}
	defer rows.Close()
	var count int64
	seen := map[string]bool{}
	for rows.Next() {
		count++
		var tbl string
		var key any
		if err := rows.Scan(&tbl, &key); err != nil {
			return ch, false, err
		}
		var k string
		switch v := key.(type) {
		case string:
			k = v
		case []byte:
			k = string(v)
		default:
			// A NULL or numeric key names no row the snapshot reads by
			// text: read everything.
			return ch, false, nil
		}
		ch.add(seen, tbl, k)
	}
	if err := rows.Err(); err != nil {
		return ch, false, err
	}
	// Numbers run without gaps: fewer entries than numbers means some were
	// pruned before this reader saw them.
	return ch, count == to-from, nil
}

// journalPosQuery reads the journal's id, the schema version and the last
// entry's number.
const journalPosQuery = `SELECT (SELECT v FROM crdt_meta WHERE k = 'journal'), (SELECT schema_version FROM pragma_schema_version),
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'crdt_journal'), 0)`

// journalNow reads where the journal of a file known to have one is: its
// id, the schema version and the last entry. An error (the journal or
// crdt_meta gone) tells the caller to read everything.
func (s *Store) journalNow(ctx context.Context, r reading) (pos journalPos, ok bool) {
	st, err := r.prepared(ctx, journalPosQuery)
	if err != nil {
		return pos, false
	}
	var id *string
	if err := st.QueryRowContext(ctx).Scan(&id, &pos.schema, &pos.n); err != nil || id == nil {
		return pos, false
	}
	pos.id = *id
	return pos, true
}

// pruneJournal drops all but the newest journalKeep entries, when there
// are a quarter more than that, so it writes rarely.
func (s *Store) pruneJournal(ctx context.Context) error {
	if s.readOnly {
		return nil
	}
	var lo, hi *int64
	if err := s.db.QueryRowContext(ctx, `SELECT min(n), max(n) FROM crdt_journal`).Scan(&lo, &hi); err != nil || lo == nil {
		if err != nil && strings.Contains(err.Error(), "no such table") {
			return nil
		}
		return err
	}
	if *hi-*lo < journalKeep+journalKeep/4 {
		return nil
	}
	defer s.writeLock()()
	_, err := s.wdb.ExecContext(ctx, `DELETE FROM crdt_journal WHERE n <= ?`, *hi-journalKeep)
	return err
}
