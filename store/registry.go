package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Registration is a backend as a registration asks for it (edgeProxy v1's
// Auto-Discovery payload, validated by the caller).
type Registration struct {
	ID        string
	App       string
	Region    string
	Country   string
	IP        string
	Port      int
	Weight    int
	SoftLimit int
	HardLimit int
}

// Registered is a backend row with the heartbeat state this POP keeps for
// it. Backends written by other means (SQL, replication, the admin API
// without a TTL) have no heartbeat: zero times and HasHeartbeat false.
type Registered struct {
	Registration
	Healthy      bool
	HasHeartbeat bool
	RegisteredAt time.Time
	LastSeen     time.Time
	ExpiresAt    time.Time
}

// heartbeats is this POP's own record of when registered backends last
// checked in. It is local, not replicated: only the POP a backend talks to
// expires it, and the expiry itself (deleting the backend row) replicates.
const createHeartbeats = `CREATE TABLE IF NOT EXISTS heartbeats (
	backend_id    TEXT PRIMARY KEY NOT NULL,
	registered_at INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL
)`

const createHeartbeatsIndex = `CREATE INDEX IF NOT EXISTS heartbeats_expires ON heartbeats (expires_at)`

var (
	registryReady sync.Map // *Store -> struct{}
	writeLocks    sync.Map // *Store -> *sync.Mutex
	stmtCache     sync.Map // stmtKey -> *sql.Stmt
)

type stmtKey struct {
	s     *Store
	query string
}

// exec runs a statement prepared once per store and connection. Preparing
// is most of a write's cost here: SQLite compiles the replication triggers
// into every statement that fires them.
func (s *Store) exec(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		st = tx.StmtContext(ctx, st)
	}
	return st.ExecContext(ctx, args...)
}

func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st, err := s.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if tx != nil {
		st = tx.StmtContext(ctx, st)
	}
	return st.QueryContext(ctx, args...)
}

func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	k := stmtKey{s, query}
	if v, ok := stmtCache.Load(k); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if v, loaded := stmtCache.LoadOrStore(k, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// writeLock serializes this process's registry writes to one file. SQLite
// admits one writer at a time anyway; queueing on a mutex instead of on
// SQLite's busy handler (which sleeps in growing steps) keeps concurrent
// registrations from waiting for nothing.
func (s *Store) writeLock() func() {
	v, _ := writeLocks.LoadOrStore(s, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// ensureRegistry creates the heartbeats table once per open store. It is
// idempotent and independent of the schema version, so it composes with any
// migration.
func (s *Store) ensureRegistry(ctx context.Context) error {
	if _, ok := registryReady.Load(s); ok {
		return nil
	}
	if s.readOnly {
		return errors.New("routing table opened read-only")
	}
	for _, stmt := range []string{createHeartbeats, createHeartbeatsIndex} {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			return s.wrap(err)
		}
	}
	registryReady.Store(s, struct{}{})
	return nil
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v)
}

// Register creates or replaces the backend row (healthy, not deleted) and,
// when ttl > 0, starts its heartbeat clock: without a heartbeat within ttl
// the backend is removed by ExpireHeartbeats. With ttl <= 0 the backend is
// permanent, as if written with SQL. It reports whether the row is new.
//
// Concurrent registrations are committed together (group commit): the
// first caller commits everything queued meanwhile in one transaction.
func (s *Store) Register(ctx context.Context, r Registration, ttl time.Duration, now time.Time) (created bool, err error) {
	if err := s.ensureRegistry(ctx); err != nil {
		return false, err
	}
	v, _ := batchers.LoadOrStore(s, new(regBatcher))
	b := v.(*regBatcher)
	req := &regReq{r: r, ttl: ttl, now: now, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, req)
	if b.busy {
		b.mu.Unlock()
		select {
		case <-req.done:
			return req.created, req.err
		case <-ctx.Done():
			// The write may still land; the caller gave up waiting.
			return false, ctx.Err()
		}
	}
	b.busy = true
	for len(b.pending) > 0 {
		batch := b.pending
		b.pending = nil
		b.mu.Unlock()
		s.commitRegistrations(batch)
		b.mu.Lock()
	}
	b.busy = false
	b.mu.Unlock()
	return req.created, req.err
}

var batchers sync.Map // *Store -> *regBatcher

type regBatcher struct {
	mu      sync.Mutex
	pending []*regReq
	busy    bool
}

type regReq struct {
	r       Registration
	ttl     time.Duration
	now     time.Time
	created bool
	err     error
	done    chan struct{}
}

// maxBatch bounds one transaction, so one commit never holds the write
// lock for long.
const maxBatch = 256

func (s *Store) commitRegistrations(batch []*regReq) {
	for len(batch) > 0 {
		n := min(len(batch), maxBatch)
		part := batch[:n]
		batch = batch[n:]
		if err := s.registerTx(part); err != nil && len(part) > 1 {
			// One bad row must not fail the others: retry one by one.
			for _, req := range part {
				req.err = s.registerTx([]*regReq{req})
			}
		} else {
			for _, req := range part {
				req.err = err
			}
		}
		for _, req := range part {
			close(req.done)
		}
	}
}

func (s *Store) registerTx(batch []*regReq) error {
	defer s.writeLock()()
	// Not a caller's context: a batch serves several callers.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback()
	for _, req := range batch {
		r, ttl, now := req.r, req.ttl, req.now
		// Update then insert rather than an upsert: a v1 file may lack
		// the primary key on id that ON CONFLICT needs.
		res, err := s.exec(ctx, tx, `UPDATE backends SET app=?, region=?, country=?, wg_ip=?, port=?, healthy=1,
			weight=?, soft_limit=?, hard_limit=?, deleted=0 WHERE id=?`,
			r.App, r.Region, r.Country, r.IP, r.Port, r.Weight, r.SoftLimit, r.HardLimit, r.ID)
		if err != nil {
			return s.wrap(err)
		}
		n, _ := res.RowsAffected()
		req.created = n == 0
		if n == 0 {
			if _, err := s.exec(ctx, tx, `INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit, deleted)
				VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 0)`,
				r.ID, r.App, r.Region, r.Country, r.IP, r.Port, r.Weight, r.SoftLimit, r.HardLimit); err != nil {
				return s.wrap(err)
			}
		}
		if ttl > 0 {
			_, err = s.exec(ctx, tx, `INSERT INTO heartbeats (backend_id, registered_at, last_seen, expires_at) VALUES (?, ?, ?, ?)
				ON CONFLICT(backend_id) DO UPDATE SET registered_at=excluded.registered_at, last_seen=excluded.last_seen, expires_at=excluded.expires_at`,
				r.ID, ms(now), ms(now), ms(now.Add(ttl)))
		} else {
			_, err = s.exec(ctx, tx, `DELETE FROM heartbeats WHERE backend_id=?`, r.ID)
		}
		if err != nil {
			return s.wrap(err)
		}
	}
	return s.wrapNil(tx.Commit())
}

// Heartbeat records that a backend is alive and pushes its expiry to
// now+ttl. A backend that exists without a heartbeat (written by SQL, say)
// starts one. It reports false, writing nothing, when no live backend has
// the ID.
func (s *Store) Heartbeat(ctx context.Context, id string, ttl time.Duration, now time.Time) (bool, error) {
	defer s.writeLock()()
	if err := s.ensureRegistry(ctx); err != nil {
		return false, err
	}
	// One statement: the row is written only if the backend exists.
	res, err := s.exec(ctx, nil, `INSERT INTO heartbeats (backend_id, registered_at, last_seen, expires_at)
		SELECT id, ?, ?, ? FROM backends WHERE id=? AND COALESCE(deleted, 0)=0 LIMIT 1
		ON CONFLICT(backend_id) DO UPDATE SET last_seen=excluded.last_seen, expires_at=excluded.expires_at`,
		ms(now), ms(now), ms(now.Add(ttl)), id)
	if err != nil {
		return false, s.wrap(err)
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Deregister deletes a backend row and its heartbeat. The deletion
// replicates like any other write. It reports false when there was no live
// backend with the ID.
func (s *Store) Deregister(ctx context.Context, id string) (bool, error) {
	defer s.writeLock()()
	if err := s.ensureRegistry(ctx); err != nil {
		return false, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, s.wrap(err)
	}
	defer tx.Rollback()
	// Writes come first in every transaction here: a deferred transaction
	// that reads before writing can fail with SQLITE_BUSY_SNAPSHOT under
	// concurrent writers instead of waiting.
	if _, err := s.exec(ctx, tx, `DELETE FROM heartbeats WHERE backend_id=?`, id); err != nil {
		return false, s.wrap(err)
	}
	rows, err := s.query(ctx, tx, `DELETE FROM backends WHERE id=? RETURNING COALESCE(deleted, 0)`, id)
	if err != nil {
		return false, s.wrap(err)
	}
	live := false
	for rows.Next() {
		var deleted int64
		if err := rows.Scan(&deleted); err != nil {
			rows.Close()
			return false, s.wrap(err)
		}
		live = live || deleted == 0
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, s.wrap(err)
	}
	return live, s.wrapNil(tx.Commit())
}

func (s *Store) wrapNil(err error) error {
	if err == nil {
		return nil
	}
	return s.wrap(err)
}

// ExpireHeartbeats deletes every backend whose heartbeat expired before now
// and returns their IDs.
func (s *Store) ExpireHeartbeats(ctx context.Context, now time.Time) ([]string, error) {
	if err := s.ensureRegistry(ctx); err != nil {
		return nil, err
	}
	// The common case, nothing expired, is one indexed read and no write.
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM heartbeats WHERE expires_at < ?`, ms(now)).Scan(&n); err != nil {
		return nil, s.wrap(err)
	}
	if n == 0 {
		return nil, nil
	}
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	rows, err := s.query(ctx, tx, `DELETE FROM backends WHERE id IN (SELECT backend_id FROM heartbeats WHERE expires_at < ?) RETURNING id`, ms(now))
	if err != nil {
		return nil, s.wrap(err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	if _, err := s.exec(ctx, tx, `DELETE FROM heartbeats WHERE expires_at < ?`, ms(now)); err != nil {
		return nil, s.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.wrap(err)
	}
	return ids, nil
}

const registeredQuery = `SELECT b.id, COALESCE(b.app, ''), COALESCE(b.region, ''), COALESCE(b.country, ''), COALESCE(b.wg_ip, ''),
	COALESCE(b.port, 0), COALESCE(b.healthy, 1), COALESCE(b.weight, 0), COALESCE(b.soft_limit, 0), COALESCE(b.hard_limit, 0),
	h.backend_id IS NOT NULL, COALESCE(h.registered_at, 0), COALESCE(h.last_seen, 0), COALESCE(h.expires_at, 0)
	FROM backends b LEFT JOIN heartbeats h ON h.backend_id = b.id
	WHERE COALESCE(b.deleted, 0) = 0`

func scanRegistered(sc interface{ Scan(...any) error }) (Registered, error) {
	var (
		r               Registered
		healthy, hasHB  int64
		reg, seen, expi int64
	)
	err := sc.Scan(&r.ID, &r.App, &r.Region, &r.Country, &r.IP, &r.Port, &healthy, &r.Weight, &r.SoftLimit, &r.HardLimit,
		&hasHB, &reg, &seen, &expi)
	r.Healthy, r.HasHeartbeat = healthy != 0, hasHB != 0
	r.RegisteredAt, r.LastSeen, r.ExpiresAt = fromMS(reg), fromMS(seen), fromMS(expi)
	r.Region = strings.ToLower(r.Region)
	return r, err
}

// ListRegistered returns every live backend (not deleted) in table order
// with its heartbeat state.
func (s *Store) ListRegistered(ctx context.Context) ([]Registered, error) {
	if err := s.ensureRegistry(ctx); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, registeredQuery+" ORDER BY b.rowid")
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	var out []Registered
	for rows.Next() {
		r, err := scanRegistered(rows)
		if err != nil {
			return nil, s.wrap(err)
		}
		out = append(out, r)
	}
	return out, s.wrapNil(rows.Err())
}

// GetRegistered returns one live backend, or false.
func (s *Store) GetRegistered(ctx context.Context, id string) (Registered, bool, error) {
	if err := s.ensureRegistry(ctx); err != nil {
		return Registered{}, false, err
	}
	r, err := scanRegistered(s.db.QueryRowContext(ctx, registeredQuery+" AND b.id = ? LIMIT 1", id))
	if errors.Is(err, sql.ErrNoRows) {
		return Registered{}, false, nil
	}
	if err != nil {
		return Registered{}, false, s.wrap(err)
	}
	return r, true, nil
}

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
	tx, err := s.db.BeginTx(ctx, nil)
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
