package store

import (
	"context"
	"encoding/json"
	"time"
)

// Observation is one row of the replicated health table: how one POP
// (Observer) last found one backend.
type Observation struct {
	BackendID string
	Observer  string
	Healthy   bool
	RTT       time.Duration
	CheckedAt time.Time
}

// HealthObservations reads the rows of the health table of the backends
// named, or every row when ids is nil, ordered by backend and observer,
// for status pages. A file without a health table (a v1 file the proxy has
// not migrated) has none.
func (s *Store) HealthObservations(ctx context.Context, ids []string) ([]Observation, error) {
	tx, ok, err := s.healthReader(ctx)
	if err != nil || !ok {
		return nil, err
	}
	defer tx.Rollback()
	const columns = `SELECT backend_id, observer, healthy, rtt_us, checked_at FROM health`
	query, args := columns+` ORDER BY backend_id, observer`, []any(nil)
	if ids != nil {
		list, err := json.Marshal(ids)
		if err != nil {
			return nil, err
		}
		query, args = columns+` WHERE backend_id IN (SELECT value FROM json_each(?)) ORDER BY backend_id, observer`, []any{string(list)}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Observation
	for rows.Next() {
		var o Observation
		var healthy int
		var rtt, at int64
		if err := rows.Scan(&o.BackendID, &o.Observer, &healthy, &rtt, &at); err != nil {
			return nil, s.wrap(err)
		}
		o.Healthy, o.RTT, o.CheckedAt = healthy != 0, time.Duration(rtt)*time.Microsecond, time.Unix(at, 0)
		out = append(out, o)
	}
	return out, s.wrapNil(rows.Err())
}
