package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// VersionReader reads, on a connection of its own, the two counters a
// follower of local commits looks at after each report of a change:
// data_version, which moves with every commit any other connection makes
// (a merge of replicated changes included), and this site's db_version,
// which moves with local commits only. A report after which neither moved
// is of a commit not visible yet, and worth a second look shortly; one
// after which data_version alone moved was of a commit with nothing to
// push (a merge, bookkeeping), and needs none.
type VersionReader struct {
	s    *Store
	conn *sql.Conn
	stmt *sql.Stmt
}

// VersionReader returns a reader; Close gives its connection back.
func (s *Store) VersionReader() *VersionReader { return &VersionReader{s: s} }

const versionsQuery = `SELECT (SELECT data_version FROM pragma_data_version), (SELECT v FROM crdt_meta WHERE k = 'db_version')`

// Read returns data_version and db_version. The statement is short, and
// runs with a context nobody cancels: a cancellable one costs database/sql
// a goroutine per read to watch it.
func (r *VersionReader) Read(ctx context.Context) (data, db uint64, err error) {
	ctx = context.WithoutCancel(ctx)
	if r.conn == nil {
		c, err := r.s.db.Conn(ctx)
		if err != nil {
			return 0, 0, err
		}
		st, err := c.PrepareContext(ctx, versionsQuery)
		if err != nil {
			c.Close()
			return 0, 0, err
		}
		r.conn, r.stmt = c, st
	}
	var d, v int64
	if err := r.stmt.QueryRowContext(ctx).Scan(&d, &v); err != nil {
		r.drop()
		return 0, 0, err
	}
	return uint64(d), uint64(v), nil
}

// drop closes a connection that failed a read; the next Read opens another.
func (r *VersionReader) drop() {
	r.stmt.Close()
	r.conn.Raw(func(any) error { return driver.ErrBadConn })
	r.conn.Close()
	r.conn, r.stmt = nil, nil
}

// Close gives the connection back.
func (r *VersionReader) Close() {
	if r.conn != nil {
		r.stmt.Close()
		r.conn.Close()
		r.conn, r.stmt = nil, nil
	}
}
