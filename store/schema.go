package store

import (
	"context"
	"database/sql"
	"fmt"
)

// SchemaVersion is the version migrations bring a file to, kept in
// PRAGMA user_version. A v1 routing.db has version 0; version 1 has the
// backends, pops and health tables; version 2 adds change capture for
// replication (crdt_* tables and triggers, see crdt.go).
const SchemaVersion = 2

// column is a backends column with the value a missing or NULL cell reads as.
type column struct {
	name string
	decl string // type and default used when the column is added
	zero string // SQL literal used in place of NULL or a missing column
}

// backendColumns lists every column of backends in v1's order, then ours.
var backendColumns = []column{
	{"id", "TEXT", "''"},
	{"app", "TEXT NOT NULL DEFAULT ''", "''"},
	{"region", "TEXT NOT NULL DEFAULT ''", "''"},
	{"country", "TEXT NOT NULL DEFAULT ''", "''"},
	{"wg_ip", "TEXT NOT NULL DEFAULT ''", "''"},
	{"port", "INTEGER NOT NULL DEFAULT 0", "0"},
	{"healthy", "INTEGER NOT NULL DEFAULT 1", "1"},
	{"weight", "INTEGER NOT NULL DEFAULT 2", "0"},
	{"soft_limit", "INTEGER NOT NULL DEFAULT 100", "0"},
	{"hard_limit", "INTEGER NOT NULL DEFAULT 150", "0"},
	{"deleted", "INTEGER NOT NULL DEFAULT 0", "0"},
}

const createBackends = `CREATE TABLE IF NOT EXISTS backends (
	id         TEXT PRIMARY KEY NOT NULL,
	app        TEXT NOT NULL DEFAULT '',
	region     TEXT NOT NULL DEFAULT '',
	country    TEXT NOT NULL DEFAULT '',
	wg_ip      TEXT NOT NULL DEFAULT '',
	port       INTEGER NOT NULL DEFAULT 0,
	healthy    INTEGER NOT NULL DEFAULT 1,
	weight     INTEGER NOT NULL DEFAULT 2,
	soft_limit INTEGER NOT NULL DEFAULT 100,
	hard_limit INTEGER NOT NULL DEFAULT 150,
	deleted    INTEGER NOT NULL DEFAULT 0
)`

// pops holds one row per POP, written by that POP.
const createPops = `CREATE TABLE IF NOT EXISTS pops (
	node       TEXT PRIMARY KEY NOT NULL,
	region     TEXT NOT NULL DEFAULT '',
	country    TEXT NOT NULL DEFAULT '',
	addr       TEXT NOT NULL DEFAULT '',
	public_key TEXT NOT NULL DEFAULT '',
	endpoint   TEXT NOT NULL DEFAULT '',
	prefix6    TEXT NOT NULL DEFAULT '',
	anycast    TEXT NOT NULL DEFAULT ''
)`

// health holds one row per backend and observing POP; only the observer
// writes its row.
const createHealth = `CREATE TABLE IF NOT EXISTS health (
	backend_id TEXT NOT NULL,
	observer   TEXT NOT NULL,
	healthy    INTEGER NOT NULL DEFAULT 1,
	rtt_us     INTEGER NOT NULL DEFAULT 0,
	checked_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (backend_id, observer)
)`

// migrate brings the file to SchemaVersion. Every step is idempotent, so a
// crash halfway is repaired by the next open, and a file already at the
// current version is left untouched.
func migrate(ctx context.Context, db *sql.DB) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this build understands (%d)", version, SchemaVersion)
	}
	if version == SchemaVersion {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, stmt := range []string{createBackends, createPops, createHealth, createCRDT} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	have, err := tableColumns(ctx, tx, "backends")
	if err != nil {
		return err
	}
	for _, c := range backendColumns {
		if have[c.name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE backends ADD COLUMN %s %s", c.name, c.decl)); err != nil {
			return fmt.Errorf("adding column backends.%s: %w", c.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return err
	}
	return tx.Commit()
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// tableColumns returns the set of column names of a table (empty when the
// table does not exist).
func tableColumns(ctx context.Context, q queryer, table string) (map[string]bool, error) {
	rows, err := q.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		cols[name] = true
	}
	return cols, rows.Err()
}
