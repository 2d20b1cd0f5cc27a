package store

import "context"

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
	conn *readConn // nil until the first Read, and after a failed one
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
		if r.conn, err = r.s.openReadConn(ctx); err != nil {
			return 0, 0, err
		}
	}
	var d, v int64
	st, err := r.conn.prepared(ctx, versionsQuery)
	if err == nil {
		err = st.QueryRowContext(ctx).Scan(&d, &v)
	}
	if err != nil {
		r.conn.close(true)
		r.conn = nil
		return 0, 0, err
	}
	return uint64(d), uint64(v), nil
}

// Close gives the connection back.
func (r *VersionReader) Close() {
	if r.conn != nil {
		r.conn.close(false)
		r.conn = nil
	}
}
