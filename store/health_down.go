package store

import (
	"context"
	"encoding/json"
)

// DownOf is DownBackends for the given backend IDs only: which of them the
// health rows report down. A follower of the file reads it for the
// backends whose health rows the journal says changed, instead of every
// row.
func (s *Store) DownOf(ctx context.Context, ids []string) (map[string]bool, error) {
	down := map[string]bool{}
	if len(ids) == 0 {
		return down, nil
	}
	tx, ok, err := s.healthReader(ctx)
	if err != nil || !ok {
		return down, err
	}
	defer tx.Rollback()
	list, _ := json.Marshal(ids)
	rows, err := tx.QueryContext(ctx, `SELECT backend_id FROM health WHERE backend_id IN (SELECT value FROM json_each(?))
		GROUP BY backend_id HAVING max(healthy) = 0`, string(list))
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.wrap(err)
		}
		down[id] = true
	}
	return down, s.wrapNil(rows.Err())
}
