package store

import (
	"context"
	"database/sql"
)

// preparedStmts are the statements a connection of the store's own keeps
// prepared, by query, from their first use: a statement on a table with
// triggers compiles them too, which costs more than running it.
type preparedStmts struct {
	byQuery map[string]*sql.Stmt
	limit   int // how many are kept at most; 0 for no limit
}

// get is query prepared on conn, or nil (with no error) when limit
// statements are kept already.
func (p *preparedStmts) get(ctx context.Context, conn *sql.Conn, query string) (*sql.Stmt, error) {
	if st := p.byQuery[query]; st != nil || (p.limit > 0 && len(p.byQuery) >= p.limit) {
		return st, nil
	}
	st, err := conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if p.byQuery == nil {
		p.byQuery = map[string]*sql.Stmt{}
	}
	p.byQuery[query] = st
	return st, nil
}

// close closes every statement kept, before their connection closes.
func (p *preparedStmts) close() {
	for _, st := range p.byQuery {
		st.Close()
	}
	p.byQuery = nil
}
