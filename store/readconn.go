package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
)

// reading is one consistent read of the file.
type reading interface {
	execQueryer
	// prepared is query as a statement the read runs on its connection.
	prepared(ctx context.Context, query string) (*sql.Stmt, error)
}

// readConn is a connection of a reader's own, for one that looks at the
// file at every commit: a Watcher (the look at data_version, and the
// snapshots that follow the journal) or a VersionReader.
//
// Its reads are BEGIN ... ROLLBACK on the connection, not database/sql
// transactions. database/sql starts a goroutine for every transaction, and
// for every query inside one, to watch their contexts; on an idle process
// each wakes a thread, and together they cost more than the statements.
// The statements here run with a context nobody cancels, which needs no
// watching.
type readConn struct {
	s     *Store
	conn  *sql.Conn
	stmts map[string]*sql.Stmt // prepared on conn, by query
}

func (s *Store) openReadConn(ctx context.Context) (*readConn, error) {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &readConn{s: s, conn: c, stmts: map[string]*sql.Stmt{}}, nil
}

// prepared is query as a statement on this connection, prepared at its
// first use.
func (c *readConn) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := c.stmts[query]; st != nil {
		return st, nil
	}
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.stmts[query] = st
	return st, nil
}

func (c *readConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return c.conn.QueryContext(ctx, query, args...)
}

func (c *readConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return c.conn.QueryRowContext(ctx, query, args...)
}

func (c *readConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return c.conn.ExecContext(ctx, query, args...)
}

// exec runs a prepared statement that returns no rows.
func (c *readConn) exec(ctx context.Context, query string) error {
	st, err := c.prepared(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx)
	return err
}

// follow brings v up to the file in one read (see Store.follow). After an
// error the connection may still be inside the read: the caller drops it
// (close(true)).
func (c *readConn) follow(ctx context.Context, v *view) (*view, Delta, error) {
	if err := c.exec(ctx, "BEGIN"); err != nil {
		return nil, Delta{}, c.s.wrap(err)
	}
	nv, d, err := c.s.follow(ctx, c, v)
	if rerr := c.exec(ctx, "ROLLBACK"); rerr != nil && err == nil {
		err = c.s.wrap(rerr)
	}
	return nv, d, err
}

// followTo brings v up to pos, the journal's position a look at the file
// has just read, and reads everything in one read where the journal
// cannot account for the change.
//
// Following needs no read of its own: the entries up to pos are
// committed and never rewritten (a pruned one shows as a shortfall), and
// the rows they name are read as they are now, perhaps past pos, which
// is no harm: the entries of their later changes come after pos, so the
// next follow reads them again. An edit costs two statements instead of a
// transaction's five, and on a quiet process each runs cold, at several
// times what it costs warm.
func (c *readConn) followTo(ctx context.Context, v *view, pos journalPos) (*view, Delta, error) {
	nv, d, ok, err := c.s.followJournal(ctx, c, v, pos)
	if err != nil || ok {
		return nv, d, err
	}
	return c.follow(ctx, nil)
}

// close gives the connection back, or drops it after an error, when a
// read may still be open on it: the pool must never hand out a connection
// inside a transaction, which would also keep the WAL from being
// checkpointed past it.
func (c *readConn) close(drop bool) {
	for _, st := range c.stmts {
		st.Close()
	}
	if drop {
		dropConn(c.conn)
		return
	}
	c.conn.Close()
}

// dropConn closes c and keeps the pool from handing out its driver
// connection again, for one a failure may have left inside a transaction.
func dropConn(c *sql.Conn) {
	c.Raw(func(any) error { return driver.ErrBadConn })
	c.Close()
}
