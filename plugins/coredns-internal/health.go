package internal

import (
	"context"
	"database/sql"
)

// downBackends returns the IDs of the backends that the replicated health
// rows report down: those with at least one row and no row saying healthy.
// One observer that can still reach a backend keeps it in the answers, so a
// POP cut off from a backend cannot remove it for everyone. A backend
// without rows is judged by its healthy column alone.
//
// The rows are read in a transaction of their own, right after the table's
// snapshot. A commit between the two reads changes PRAGMA data_version, so
// the watcher reads both again at its next poll: the answers converge within
// one poll interval.
func downBackends(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// A v1 file that the proxy has not migrated yet has no health table.
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'health'`).Scan(&n); err != nil || n == 0 {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT backend_id FROM health GROUP BY backend_id HAVING max(healthy) = 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	down := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		down[id] = true
	}
	return down, rows.Err()
}
