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
//
// The registry's tables (heartbeats, and the replicated leases, see
// registry.go) came later within version 2: a build that does not know
// them ignores them and reads the rest as before, so they need no new
// version that would make such a build refuse the file. Opening creates
// them when they are missing, whatever the version.
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
	anycast    TEXT NOT NULL DEFAULT '',
	state      TEXT NOT NULL DEFAULT ''
)`

// popColumns are the pops columns added after the table was first
// created, with their declarations, for files made before them.
var popColumns = []struct{ name, decl string }{
	{"state", "TEXT NOT NULL DEFAULT ''"},
}

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

// migrate brings the file to SchemaVersion and reports whether this call
// did the work. Every step is idempotent, so a crash halfway is repaired
// by the next open, and a file already current is left untouched (no
// write, no lock).
//
// db must begin its transactions with BEGIN IMMEDIATE (Store.wdb): the
// migration takes the write lock before it reads anything, waiting for
// it, and looks at the file again once it holds it, so of two processes
// opening a fresh file at the same instant one migrates and the other
// finds the work done.
func migrate(ctx context.Context, db *sql.DB) (bool, error) {
	if current, err := schemaCurrent(ctx, db); err != nil || current {
		return false, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer tx.Rollback()
	current, err := schemaCurrent(ctx, tx)
	if err != nil || current {
		return false, err
	}
	had, err := tableColumns(ctx, tx, "leases")
	if err != nil {
		return false, err
	}
	for _, stmt := range []string{createBackends, createPops, createHealth, createCRDT, createHeartbeats, createLeases} {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return false, err
		}
	}
	if len(had) == 0 {
		// A file written before leases existed: the heartbeats this POP
		// kept become leases it holds, so the backends keep expiring.
		if _, err := tx.ExecContext(ctx, leasesFromHeartbeats); err != nil {
			return false, err
		}
	}
	havePops, err := tableColumns(ctx, tx, "pops")
	if err != nil {
		return false, err
	}
	for _, c := range popColumns {
		if havePops[c.name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE pops ADD COLUMN %s %s", c.name, c.decl)); err != nil {
			return false, fmt.Errorf("adding column pops.%s: %w", c.name, err)
		}
	}
	have, err := tableColumns(ctx, tx, "backends")
	if err != nil {
		return false, err
	}
	for _, c := range backendColumns {
		if have[c.name] {
			continue
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("ALTER TABLE backends ADD COLUMN %s %s", c.name, c.decl)); err != nil {
			return false, fmt.Errorf("adding column backends.%s: %w", c.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return false, err
	}
	return true, tx.Commit()
}

// schemaCurrent reports whether the file is at SchemaVersion with every
// table, and fails on a file newer than this build.
func schemaCurrent(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) (bool, error) {
	var version, tables, popCols int
	if err := q.QueryRowContext(ctx, `SELECT (SELECT user_version FROM pragma_user_version),
		(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('heartbeats', 'leases')),
		(SELECT count(*) FROM pragma_table_info('pops') WHERE name = 'state')`).Scan(&version, &tables, &popCols); err != nil {
		return false, err
	}
	if version > SchemaVersion {
		return false, fmt.Errorf("schema version %d is newer than this build understands (%d)", version, SchemaVersion)
	}
	return version == SchemaVersion && tables == 2 && popCols == len(popColumns), nil
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
