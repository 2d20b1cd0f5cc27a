package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// mergeConn is the connection merges (Apply) run on, one at a time. A
// merge holds the file's write lock for its whole batch anyway. On one
// connection the statements a merge runs are compiled once per file, not
// once per connection of the pool, and stay prepared in the driver's
// statement cache (Open's _stmt_cache_size); and the two nodes
// of a bridge, merging into one file, wait on a mutex rather than on
// SQLite's busy handler.
type mergeConn struct {
	mu   sync.Mutex
	conn *sql.Conn // nil until the first merge, and after a failure
	// wait is how long a merge waits for the write lock in all; zero
	// is busyTimeout, as for every other statement of the store.
	wait time.Duration
}

// mergeLockSlice is how long the merge connection's busy handler waits
// for the write lock at a time. BEGIN runs on a context nobody cancels:
// the driver runs a statement on a cancellable one in a goroutine of its
// own, which cost a quarter of a merge. Between two slices the merge looks
// at its caller's context instead, so a node that stops is not held for
// the whole busy timeout by another connection's open transaction.
const mergeLockSlice = 100 * time.Millisecond

// take locks the merge connection and returns it, opened if need be. The
// caller calls release, with broken set when a transaction may still be
// open on it.
func (m *mergeConn) take(ctx context.Context, db *sql.DB) (*mergeConn, error) {
	m.mu.Lock()
	if m.conn == nil {
		c, err := db.Conn(ctx)
		if err == nil {
			if err = setBusyTimeout(ctx, c, mergeLockSlice); err != nil {
				dropConn(c)
			}
		}
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		m.conn = c
	}
	return m, nil
}

// release unlocks the merge connection; a broken one is dropped, never
// handed back to the pool inside a transaction.
func (m *mergeConn) release(broken bool) {
	if broken && m.conn != nil {
		dropConn(m.conn)
		m.conn = nil
	}
	m.mu.Unlock()
}

// begin takes the file's write lock for a merge (BEGIN IMMEDIATE),
// waiting for it in slices of mergeLockSlice until m.wait has passed or
// ctx is done.
func (m *mergeConn) begin(ctx context.Context) error {
	wait := m.wait
	if wait == 0 {
		wait = busyTimeout
	}
	deadline := time.Now().Add(wait)
	for {
		_, err := m.exec(context.WithoutCancel(ctx), "BEGIN IMMEDIATE")
		var se sqlite3.Error
		if err == nil || !errors.As(err, &se) || se.Code != sqlite3.ErrBusy || !time.Now().Before(deadline) {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// close gives the connection back to the pool, before the pool closes,
// with the pool's busy timeout.
func (m *mergeConn) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		setBusyTimeout(context.Background(), m.conn, busyTimeout)
		m.conn.Close()
		m.conn = nil
	}
}

// exec runs query on the connection. The driver keeps its statements
// prepared; a statement prepared through database/sql would bypass that
// cache and be compiled again.
func (m *mergeConn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return m.conn.ExecContext(ctx, query, args...)
}

// queryRow runs query on the connection for one row.
func (m *mergeConn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return m.conn.QueryRowContext(ctx, query, args...)
}

// savepoint runs merge inside a savepoint, so a merge that fails leaves
// nothing behind while the transaction goes on.
func (m *mergeConn) savepoint(ctx context.Context, merge func() (bool, error)) (bool, error) {
	if _, err := m.exec(ctx, "SAVEPOINT merge"); err != nil {
		return false, err
	}
	won, err := merge()
	if err != nil {
		m.exec(ctx, "ROLLBACK TO merge")
	}
	m.exec(ctx, "RELEASE merge")
	return won, err
}
