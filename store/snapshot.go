package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unique"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Snapshot reads the whole routing table into an immutable routing.Table.
// Rows that cannot be routed (an address that is not an IP, a port out of
// range) are kept, marked unroutable, and described in the returned
// warnings, so one bad row never hides the others.
func (s *Store) Snapshot(ctx context.Context) (*routing.Table, []string, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, nil, s.wrap(err)
	}
	defer tx.Rollback()

	v, err := s.readAll(ctx, tx)
	if err != nil {
		return nil, nil, s.wrap(err)
	}
	if v.journal {
		s.snapView.Store(v)
	}
	return v.table, v.warningList(), nil
}

// readAll reads the whole table into a new view; its journal position is
// set when the file has a journal and the view can follow it.
func (s *Store) readAll(ctx context.Context, q execQueryer) (*view, error) {
	pos, journal, err := journalState(ctx, q)
	if err != nil {
		return nil, err
	}
	v, list, err := s.loadBackends(ctx, q)
	if err != nil {
		return nil, err
	}
	pops, err := loadPops(ctx, q)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if s.listOnly {
		v.table = routing.NewListTable(s.nextGeneration(now), now, list, pops)
	} else {
		v.table = routing.NewTable(s.nextGeneration(now), now, list, pops)
	}
	v.backends = v.table.Rows()
	v.pos, v.journal = pos, journal && v.unique
	return v, nil
}

func (s *Store) wrap(err error) error {
	return fmt.Errorf("routing table %s: %w", s.path, describe(err))
}

// backendQuery selects every known column, reading missing ones (a v1 file
// the proxy has not migrated yet, seen by a read-only reader) and NULLs as
// their zero value.
func backendQuery(have map[string]bool) string {
	var cols []string
	for _, c := range backendColumns {
		if have[c.name] {
			cols = append(cols, fmt.Sprintf("COALESCE(%s, %s)", c.name, c.zero))
		} else {
			cols = append(cols, c.zero)
		}
	}
	return "SELECT rowid, " + strings.Join(cols, ", ") + " FROM backends"
}

// loadBackends reads every backend row, in table order, into a new view
// (without its table) and a list.
func (s *Store) loadBackends(ctx context.Context, q queryer) (*view, []*routing.Backend, error) {
	have, err := tableColumns(ctx, q, "backends")
	if err != nil {
		return nil, nil, err
	}
	if len(have) == 0 {
		// Every edgeProxy table, v1's included, has backends: a file
		// without it is the wrong file or a broken one, never "no
		// backends", which would take every app out of service.
		return nil, nil, errors.New("the file has no backends table")
	}
	v := &view{query: backendQuery(have), rowOf: map[string]int64{}, warnings: map[string]rowWarning{}, unique: true}
	rows, err := q.QueryContext(ctx, v.query+" ORDER BY rowid")
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var list []*routing.Backend
	for rows.Next() {
		rowid, b, warning, err := s.scanBackend(rows)
		if err != nil {
			return nil, nil, err
		}
		if _, dup := v.rowOf[b.ID]; dup {
			v.unique = false // rows cannot be told apart by ID: no following
		}
		v.rowOf[b.ID] = rowid
		if warning != "" {
			v.warnings[b.ID] = rowWarning{rowid, warning}
		}
		list = append(list, b)
	}
	return v, list, rows.Err()
}

// backendRow is one row of backendQuery as SQLite gives it.
type backendRow struct {
	rowid                                  int64
	id, app, region, country, ip           string
	port, healthy, weight, soft, hard, del int64
}

// scanBackend reads one row of backendQuery, and says why it cannot be
// routed when it cannot.
func (s *Store) scanBackend(rows *sql.Rows) (int64, *routing.Backend, string, error) {
	r, err := scanBackendRow(rows)
	if err != nil {
		return 0, nil, "", err
	}
	b, warning := s.backendOf(r)
	return r.rowid, b, warning, nil
}

func scanBackendRow(rows *sql.Rows) (backendRow, error) {
	var r backendRow
	err := rows.Scan(&r.rowid, &r.id, &r.app, &r.region, &r.country, &r.ip, &r.port, &r.healthy, &r.weight, &r.soft, &r.hard, &r.del)
	return r, err
}

// backendOf makes the backend of a row, and says why it cannot be routed
// when it cannot.
func (s *Store) backendOf(r backendRow) (*routing.Backend, string) {
	// An app's, region's or country's name repeats on many rows: one copy
	// of each. Names compared often, as the DNS plugin groups a changed
	// app's backends by region, then compare by pointer.
	b := routing.Backend{
		ID:        r.id,
		App:       unique.Make(r.app).Value(),
		Region:    unique.Make(strings.ToLower(strings.TrimSpace(r.region))).Value(),
		Country:   unique.Make(strings.ToUpper(strings.TrimSpace(r.country))).Value(),
		Healthy:   r.healthy != 0,
		Deleted:   r.del != 0,
		Weight:    int(r.weight),
		SoftLimit: int(r.soft),
		HardLimit: int(r.hard),
	}
	var warning string
	addr, err := netip.ParseAddr(strings.TrimSpace(r.ip))
	switch {
	case err != nil:
		warning = fmt.Sprintf("backend %q: wg_ip %q is not an IP address; not routed", b.ID, r.ip)
	case r.port < 1 || r.port > 65535:
		warning = fmt.Sprintf("backend %q: port %d is outside 1-65535; not routed", b.ID, r.port)
	default:
		b.Addr = netip.AddrPortFrom(addr.Unmap(), uint16(r.port))
	}
	b.Load = s.loads.For(b.ID)
	return &b, warning
}

func loadPops(ctx context.Context, q queryer) ([]routing.Pop, error) {
	have, err := tableColumns(ctx, q, "pops")
	if err != nil || len(have) == 0 {
		return nil, err
	}
	state := "''"
	if have["state"] { // a file the proxy has not migrated yet lacks it
		state = "state"
	}
	rows, err := q.QueryContext(ctx, `SELECT node, region, country, addr, public_key, endpoint, prefix6, anycast, `+state+` FROM pops ORDER BY node`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []routing.Pop
	for rows.Next() {
		var p routing.Pop
		if err := rows.Scan(&p.Node, &p.Region, &p.Country, &p.Addr, &p.PublicKey, &p.Endpoint, &p.Prefix6, &p.Anycast, &p.State); err != nil {
			return nil, err
		}
		p.Region = strings.ToLower(p.Region)
		p.Country = strings.ToUpper(p.Country)
		out = append(out, p)
	}
	return out, rows.Err()
}
