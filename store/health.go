package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// HealthRow is one observer's view of one backend, for the health table.
type HealthRow struct {
	BackendID string
	Healthy   bool
	RTT       time.Duration
	CheckedAt time.Time
}

// WriteHealth upserts this observer's rows of the health table in one
// transaction, and deletes its rows for the IDs in gone.
func (s *Store) WriteHealth(ctx context.Context, observer string, rows []HealthRow, gone []string) error {
	defer s.writeLock()()
	if len(rows) == 0 && len(gone) == 0 {
		return nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	for _, r := range rows {
		healthy := 0
		if r.Healthy {
			healthy = 1
		}
		if _, err := s.exec(ctx, tx, `INSERT INTO health (backend_id, observer, healthy, rtt_us, checked_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT(backend_id, observer) DO UPDATE SET healthy=excluded.healthy, rtt_us=excluded.rtt_us, checked_at=excluded.checked_at`,
			r.BackendID, observer, healthy, r.RTT.Microseconds(), r.CheckedAt.Unix()); err != nil {
			return s.wrap(fmt.Errorf("writing health of %s: %w", r.BackendID, err))
		}
	}
	for _, id := range gone {
		if _, err := s.exec(ctx, tx, `DELETE FROM health WHERE backend_id=? AND observer=?`, id, observer); err != nil {
			return s.wrap(err)
		}
	}
	return s.wrapNil(tx.Commit())
}

// DownBackends returns the IDs of the backends that the replicated health
// rows report down: those with at least one row and no row saying healthy.
// One observer that can still reach a backend keeps it in the answers, so a
// POP cut off from a backend cannot remove it for everyone. A backend
// without rows is judged by its healthy column alone. It works on a
// read-only store, and on a v1 file the proxy has not migrated yet (no
// health table: nothing is down).
//
// The rows are read in a transaction of their own. A reader that takes
// them right after a snapshot may see a commit that fell between the two
// reads; that commit changes PRAGMA data_version, so a watcher reads both
// again at its next look and the two converge within one poll interval.
func (s *Store) DownBackends(ctx context.Context) (map[string]bool, error) {
	tx, ok, err := s.healthReader(ctx)
	if err != nil || !ok {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT backend_id FROM health GROUP BY backend_id HAVING max(healthy) = 0`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	down := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap(err)
		}
		down[id] = true
	}
	return down, s.wrapNil(rows.Err())
}

// healthReader opens a read transaction on a file with a health table.
// ok is false, and no transaction is left open, when the file has none
// (a v1 file the proxy has not migrated yet).
func (s *Store) healthReader(ctx context.Context) (tx *sql.Tx, ok bool, err error) {
	tx, err = s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, false, s.wrap(err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'health'`).Scan(&n); err != nil || n == 0 {
		tx.Rollback()
		return nil, false, s.wrapNil(err)
	}
	return tx, true, nil
}
