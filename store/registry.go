package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
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

// Registered is a backend row with its heartbeat state. Backends written
// by other means (SQL, replication of such a row, the admin API without a
// TTL) have no lease: zero times and HasHeartbeat false; they never expire.
//
// The POP that took a backend's latest heartbeats reports them exactly.
// Any other POP reports the backend's replicated lease: LastSeen is when
// the lease was last renewed, ExpiresAt when the cluster removes the
// backend (see leases).
type Registered struct {
	Registration
	Healthy      bool
	HasHeartbeat bool
	RegisteredAt time.Time
	LastSeen     time.Time
	ExpiresAt    time.Time
}

// Heartbeat expiry is a property of the cluster, not of one POP: a backend
// registered at a POP that then dies must still be removed, and a backend
// that heartbeats to another POP must stay. Two tables carry it.
//
// heartbeats is this POP's own, exact record of the heartbeats it took
// (v1's last_heartbeat_secs). It is local and not replicated: it is
// written at every heartbeat.
//
// leases holds one replicated row per backend that must heartbeat: until
// when the backend is known alive (expires_at), its TTL, and the site
// (file) that renewed the lease last (holder). Every POP's expiry removes a
// backend whose lease ran out more than LeaseGrace ago, whoever wrote it.
//
// Replicating every heartbeat would cost one cluster write per backend per
// heartbeat (v1 clients send one every few seconds) for no news. So a
// lease is written for TTL*3/2 and renewed only when less than one TTL of
// it remains: at most one replicated write per TTL/2 per backend, however
// often it heartbeats, while the lease always covers a full TTL after the
// latest heartbeat, so no POP can remove a backend that is on time. The
// price is paid only when the POP taking the heartbeats is gone: the others
// remove a silent backend between TTL and TTL*3/2 (plus LeaseGrace) after
// its last heartbeat.
//
// The POP that holds the lease removes the backend exactly one TTL after
// the last heartbeat it took, as v1 did. A POP taking a heartbeat for a
// lease another site holds renews it at once, so the holder is always the
// POP that took the latest heartbeat (as soon as that write replicates,
// ~100 ms), and a POP whose own heartbeat record ran out but that no
// longer holds the lease leaves the backend alone.
const (
	createHeartbeats = `CREATE TABLE IF NOT EXISTS heartbeats (
	backend_id    TEXT PRIMARY KEY NOT NULL,
	registered_at INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeats_expires ON heartbeats (expires_at)`

	// Every column has a default: the merge inserts a row by its key and
	// then sets its columns one by one.
	createLeases = `CREATE TABLE IF NOT EXISTS leases (
	backend_id    TEXT PRIMARY KEY NOT NULL,
	registered_at INTEGER NOT NULL DEFAULT 0,
	renewed_at    INTEGER NOT NULL DEFAULT 0,
	expires_at    INTEGER NOT NULL DEFAULT 0,
	ttl_ms        INTEGER NOT NULL DEFAULT 0,
	holder        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS leases_expires ON leases (expires_at)`

	leasesFromHeartbeats = `INSERT OR IGNORE INTO leases (backend_id, registered_at, renewed_at, expires_at, ttl_ms, holder)
	SELECT backend_id, registered_at, last_seen, expires_at + (expires_at - last_seen) / 2, expires_at - last_seen,
		COALESCE((SELECT v FROM crdt_meta WHERE k = 'site'), '') FROM heartbeats`
)

// LeaseGrace is how long past its lease's end a backend is kept by a POP
// that did not take its heartbeats: it absorbs the difference between the
// clocks of the POP that wrote the lease and the POP reading it. POPs
// whose clocks are further apart than MaxClockSkew do not replicate at all
// (the merge refuses their changes), so that much is enough. The time a
// renewal takes to replicate (~100 ms) is covered by the lease itself: a
// client heartbeating every TTL/3 (v1's and ours) renews it while half a
// TTL of it is left.
const LeaseGrace = MaxClockSkew

// leaseLength is how long a lease written at a heartbeat lasts.
func leaseLength(ttl time.Duration) time.Duration { return ttl + ttl/2 }

var (
	writeLocks sync.Map // *Store -> *sync.Mutex
	stmtCache  sync.Map // stmtKey -> *sql.Stmt
)

type stmtKey struct {
	s     *Store
	query string
}

// exec runs a statement prepared once per store and connection. Preparing
// is most of a write's cost here: SQLite compiles the replication triggers
// into every statement that fires them. Statements run on the write
// handle; tx must come from it too.
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
	st, err := s.wdb.PrepareContext(ctx, query)
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

// ensureRegistry refuses registry calls on a read-only store. (Open
// creates the registry's tables.)
func (s *Store) ensureRegistry() error {
	if s.readOnly {
		return ErrReadOnly
	}
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
// when ttl > 0, starts its heartbeat clock and its lease: without a
// heartbeat within ttl the backend is removed by ExpireHeartbeats, here or,
// should this POP be gone, on every other POP (see leases). With ttl <= 0
// the backend is permanent, as if written with SQL. It reports whether the
// row is new.
//
// Concurrent registrations are committed together (group commit): the
// first caller commits everything queued meanwhile in one transaction.
func (s *Store) Register(ctx context.Context, r Registration, ttl time.Duration, now time.Time) (created bool, err error) {
	if err := s.ensureRegistry(); err != nil {
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
	// Not a caller's context: a batch serves several callers. And one
	// nobody cancels: the driver runs a statement under a context that
	// can end on a goroutine of its own and wakes the caller after it,
	// two thread hand-offs for each of a registration's statements. The
	// file's busy timeout bounds a wait for the write lock.
	ctx := context.Background()
	tx, err := s.wdb.BeginTx(ctx, nil)
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
			if _, err := s.exec(ctx, tx, `INSERT INTO heartbeats (backend_id, registered_at, last_seen, expires_at) VALUES (?, ?, ?, ?)
				ON CONFLICT(backend_id) DO UPDATE SET registered_at=excluded.registered_at, last_seen=excluded.last_seen, expires_at=excluded.expires_at`,
				r.ID, ms(now), ms(now), ms(now.Add(ttl))); err != nil {
				return s.wrap(err)
			}
			_, err = s.exec(ctx, tx, `INSERT INTO leases (backend_id, registered_at, renewed_at, expires_at, ttl_ms, holder) VALUES (?1, ?2, ?2, ?3, ?4, ?5)
				ON CONFLICT(backend_id) DO UPDATE SET registered_at=excluded.registered_at, renewed_at=excluded.renewed_at,
				expires_at=excluded.expires_at, ttl_ms=excluded.ttl_ms, holder=excluded.holder`,
				r.ID, ms(now), ms(now.Add(leaseLength(ttl))), ttl.Milliseconds(), s.site)
		} else {
			if _, err := s.exec(ctx, tx, `DELETE FROM heartbeats WHERE backend_id=?`, r.ID); err != nil {
				return s.wrap(err)
			}
			_, err = s.exec(ctx, tx, `DELETE FROM leases WHERE backend_id=?`, r.ID)
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
// the ID. The replicated lease is written only when it needs renewing or
// another POP holds it (see leases). Heartbeats that arrive together are
// committed together (see heartbeats.go).
func (s *Store) Heartbeat(ctx context.Context, id string, ttl time.Duration, now time.Time) (bool, error) {
	if err := s.ensureRegistry(); err != nil {
		return false, err
	}
	return s.heartbeats.join(ctx, s, heartbeat{id: id, ttl: ttl, now: now})
}

// heartbeat writes one heartbeat in tx, reporting whether the backend exists.
func (s *Store) heartbeat(ctx context.Context, tx *sql.Tx, h heartbeat) (bool, error) {
	// The row is written only if the backend exists.
	res, err := s.exec(ctx, tx, `INSERT INTO heartbeats (backend_id, registered_at, last_seen, expires_at)
		SELECT id, ?, ?, ? FROM backends WHERE id=? AND COALESCE(deleted, 0)=0 LIMIT 1
		ON CONFLICT(backend_id) DO UPDATE SET last_seen=excluded.last_seen, expires_at=excluded.expires_at`,
		ms(h.now), ms(h.now), ms(h.now.Add(h.ttl)), h.id)
	if err != nil {
		return false, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return false, nil
	}
	// A lease that still covers a full TTL, written by this POP with this
	// TTL, is left as it is: nothing to replicate.
	if _, err := s.exec(ctx, tx, `INSERT INTO leases (backend_id, registered_at, renewed_at, expires_at, ttl_ms, holder)
		VALUES (?1, COALESCE((SELECT registered_at FROM heartbeats WHERE backend_id = ?1), ?2), ?2, ?3, ?4, ?5)
		ON CONFLICT(backend_id) DO UPDATE SET renewed_at=excluded.renewed_at, expires_at=excluded.expires_at,
			ttl_ms=excluded.ttl_ms, holder=excluded.holder
		WHERE leases.holder IS NOT excluded.holder OR leases.ttl_ms IS NOT excluded.ttl_ms
			OR leases.expires_at - excluded.renewed_at < excluded.ttl_ms`,
		h.id, ms(h.now), ms(h.now.Add(leaseLength(h.ttl))), h.ttl.Milliseconds(), s.site); err != nil {
		return false, err
	}
	return true, nil
}

// Deregister deletes a backend row, its lease and its heartbeat. The
// deletion replicates like any other write. It reports false when there
// was no live backend with the ID.
func (s *Store) Deregister(ctx context.Context, id string) (bool, error) {
	if err := s.ensureRegistry(); err != nil {
		return false, err
	}
	defer s.writeLock()()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, s.wrap(err)
	}
	defer tx.Rollback()
	if _, err := s.exec(ctx, tx, `DELETE FROM heartbeats WHERE backend_id=?`, id); err != nil {
		return false, s.wrap(err)
	}
	if _, err := s.exec(ctx, tx, `DELETE FROM leases WHERE backend_id=?`, id); err != nil {
		return false, s.wrap(err)
	}
	ids, err := s.deleteBackends(ctx, tx, `DELETE FROM backends WHERE id=? AND COALESCE(deleted, 0)=0 RETURNING id`, id)
	if err != nil {
		return false, err
	}
	// A row marked deleted goes as well, but was not live.
	if _, err := s.exec(ctx, tx, `DELETE FROM backends WHERE id=?`, id); err != nil {
		return false, s.wrap(err)
	}
	return len(ids) > 0, s.wrapNil(tx.Commit())
}

func (s *Store) deleteBackends(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := s.query(ctx, tx, query, args...)
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
	return ids, s.wrapNil(rows.Err())
}

func (s *Store) wrapNil(err error) error {
	if err == nil {
		return nil
	}
	return s.wrap(err)
}

// expiredLeases selects the backends to remove at ?2 (now): those whose
// lease ran out before ?1 (now - LeaseGrace), and those whose lease this
// site (?3) holds and whose heartbeats, taken here, stopped one TTL ago.
const expiredLeases = `SELECT backend_id FROM leases WHERE expires_at < ?1
	UNION SELECT l.backend_id FROM leases l JOIN heartbeats h ON h.backend_id = l.backend_id
	WHERE l.holder = ?3 AND h.expires_at < ?2`

// ExpireHeartbeats deletes every backend whose heartbeats stopped (see
// leases) and returns their IDs. Every POP runs it: a backend is removed
// even when the POP it registered with is gone.
func (s *Store) ExpireHeartbeats(ctx context.Context, now time.Time) ([]string, error) {
	if err := s.ensureRegistry(); err != nil {
		return nil, err
	}
	cutoff := ms(now.Add(-LeaseGrace))
	// The common case, nothing expired, is two indexed reads and no write.
	var due bool
	if err := s.db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM leases WHERE expires_at < ?1)
		OR EXISTS (SELECT 1 FROM heartbeats WHERE expires_at < ?2)`, cutoff, ms(now)).Scan(&due); err != nil {
		return nil, s.wrap(err)
	}
	if !due {
		return nil, nil
	}
	defer s.writeLock()()
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer tx.Rollback()
	var expired []string
	rows, err := s.query(ctx, tx, expiredLeases, cutoff, ms(now), s.site)
	if err != nil {
		return nil, s.wrap(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		expired = append(expired, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	var ids []string
	if len(expired) > 0 {
		list, _ := json.Marshal(expired)
		if ids, err = s.deleteBackends(ctx, tx, `DELETE FROM backends WHERE id IN (SELECT value FROM json_each(?)) RETURNING id`, string(list)); err != nil {
			return nil, err
		}
		if _, err := s.exec(ctx, tx, `DELETE FROM leases WHERE backend_id IN (SELECT value FROM json_each(?))`, string(list)); err != nil {
			return nil, s.wrap(err)
		}
	}
	// This POP's own records that ran out: of the backends just removed,
	// and of those whose heartbeats now go to another POP.
	if _, err := s.exec(ctx, tx, `DELETE FROM heartbeats WHERE expires_at < ?`, ms(now)); err != nil {
		return nil, s.wrap(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, s.wrap(err)
	}
	return ids, nil
}

// registeredQuery reads live backends with their heartbeat state: this
// POP's own record while it holds the lease (?1), the lease otherwise,
// expiring LeaseGrace (?2) after its end.
const registeredQuery = `SELECT b.id, COALESCE(b.app, ''), COALESCE(b.region, ''), COALESCE(b.country, ''), COALESCE(b.wg_ip, ''),
	COALESCE(b.port, 0), COALESCE(b.healthy, 1), COALESCE(b.weight, 0), COALESCE(b.soft_limit, 0), COALESCE(b.hard_limit, 0),
	l.backend_id IS NOT NULL, COALESCE(h.registered_at, l.registered_at, 0), COALESCE(h.last_seen, l.renewed_at, 0),
	COALESCE(h.expires_at, l.expires_at + ?2, 0)
	FROM backends b LEFT JOIN leases l ON l.backend_id = b.id
	LEFT JOIN heartbeats h ON h.backend_id = b.id AND l.holder = ?1
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
	if err := s.ensureRegistry(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, registeredQuery+" ORDER BY b.rowid", s.site, LeaseGrace.Milliseconds())
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
	if err := s.ensureRegistry(); err != nil {
		return Registered{}, false, err
	}
	r, err := scanRegistered(s.db.QueryRowContext(ctx, registeredQuery+" AND b.id = ?3 LIMIT 1", s.site, LeaseGrace.Milliseconds(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Registered{}, false, nil
	}
	if err != nil {
		return Registered{}, false, s.wrap(err)
	}
	return r, true, nil
}

// NextExpiry is when ExpireHeartbeats will next have something to remove,
// as the file stands: the earliest end of a lease (plus LeaseGrace) or of
// this POP's own heartbeat record. ok is false when nothing must heartbeat.
func (s *Store) NextExpiry(ctx context.Context) (at time.Time, ok bool, err error) {
	if err := s.ensureRegistry(); err != nil {
		return time.Time{}, false, err
	}
	var lease, own sql.NullInt64
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT min(expires_at) FROM leases), (SELECT min(expires_at) FROM heartbeats)`).Scan(&lease, &own); err != nil {
		return time.Time{}, false, s.wrap(err)
	}
	if lease.Valid {
		at, ok = fromMS(lease.Int64).Add(LeaseGrace), true
	}
	if own.Valid && (!ok || fromMS(own.Int64).Before(at)) {
		at, ok = fromMS(own.Int64), true
	}
	return at, ok, nil
}
