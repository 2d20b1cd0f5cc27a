package store

import (
	"context"
	"database/sql"
	"sync"
)

// mergeConn is the connection merges (Apply) run on, one at a time. A
// merge holds the file's write lock for its whole batch anyway. On one
// connection the statements a merge runs are compiled once per file, not
// once per connection of the pool (an UPDATE compiles the table's capture
// triggers: most of a simulated 300-POP cluster's statement compiling);
// and the two nodes of a bridge, merging into one file, wait on a mutex
// rather than on SQLite's busy handler.
type mergeConn struct {
	mu   sync.Mutex
	conn *sql.Conn // nil until the first merge, and after a failure
}

// take locks the merge connection and returns it, opened if need be. The
// caller calls release, with broken set when a transaction may still be
// open on it.
func (m *mergeConn) take(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	m.mu.Lock()
	if m.conn == nil {
		c, err := db.Conn(ctx)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		m.conn = c
	}
	return m.conn, nil
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
