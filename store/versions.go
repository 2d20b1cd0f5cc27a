package store

import "context"

// VersionReader reads, on a connection of its own, the counters a
// follower of local commits looks at after each report of a change:
// data_version, which moves with every commit any other connection makes
// (a merge of replicated changes included), and this site's db_version,
// which moves with local commits only. A report after which neither moved
// is of a commit not visible yet, and worth a second look shortly; one
// after which data_version alone moved was of a commit with nothing to
// push (a merge, bookkeeping), and needs none. The versions generation,
// read with them, tells whether the other sites' versions moved too.
type VersionReader struct {
	s    *Store
	conn *readConn // nil until the first Read, and after a failed one
}

// Versions is what one VersionReader.Read saw, all at one commit.
type Versions struct {
	Data uint64 // data_version: moves with every commit of another connection
	Own  uint64 // this site's db_version: moves with local commits only
	Gen  int64  // the versions generation (VectorGen): moves when another site's version does
}

// VersionReader returns a reader; Close gives its connection back.
func (s *Store) VersionReader() *VersionReader { return &VersionReader{s: s} }

const versionsQuery = `SELECT (SELECT data_version FROM pragma_data_version), (SELECT v FROM crdt_meta WHERE k = 'db_version'),
		(SELECT v FROM crdt_meta WHERE k = 'versions_gen')`

// Read returns the versions. The statement is short, and runs with a
// context nobody cancels: a cancellable one costs database/sql a goroutine
// per read to watch it.
func (r *VersionReader) Read(ctx context.Context) (Versions, error) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if r.conn == nil {
		if r.conn, err = r.s.openReadConn(ctx); err != nil {
			return Versions{}, err
		}
	}
	var d, v, g int64
	st, err := r.conn.prepared(ctx, versionsQuery)
	if err == nil {
		err = st.QueryRowContext(ctx).Scan(&d, &v, &g)
	}
	if err != nil {
		r.conn.close(true)
		r.conn = nil
		return Versions{}, err
	}
	return Versions{Data: uint64(d), Own: uint64(v), Gen: g}, nil
}

// Close gives the connection back.
func (r *VersionReader) Close() {
	if r.conn != nil {
		r.conn.close(false)
		r.conn = nil
	}
}
