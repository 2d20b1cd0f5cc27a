package store

import (
	"context"
	"database/sql"
	"sync"
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
}

// take locks the merge connection and returns it, opened if need be. The
// caller calls release, with broken set when a transaction may still be
// open on it.
func (m *mergeConn) take(ctx context.Context, db *sql.DB) (*mergeConn, error) {
	m.mu.Lock()
	if m.conn == nil {
		c, err := db.Conn(ctx)
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

// close gives the connection back to the pool, before the pool closes.
func (m *mergeConn) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
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
