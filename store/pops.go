package store

import (
	"context"
	"errors"
	"strings"

	"github.com/edgeproxy/edgeproxy/routing"
)

// PopUpdate sets columns of one POP's own pops row. A nil field leaves its
// column as it is.
type PopUpdate struct {
	Region    *string
	Country   *string
	Addr      *string // cluster address, host:port
	PublicKey *string // WireGuard public key, base64
	Endpoint  *string // WireGuard endpoint, host:port
	Prefix6   *string // 6PN prefix of the POP, e.g. fdaa:0:1:2a::/64
	Anycast   *string // announced prefixes and their state
	State     *string // the POP's health signal (see routing.Pop.State)
}

// Str is a PopUpdate field set to s.
func Str(s string) *string { return &s }

// SetPop creates or updates the pops row of node with the columns u sets.
// An unchanged row is not written, so a restart causes no replication.
func (s *Store) SetPop(ctx context.Context, node string, u PopUpdate) error {
	if strings.TrimSpace(node) == "" {
		return errors.New("pops row: no node name")
	}
	if s.readOnly {
		return ErrReadOnly
	}
	cols := []struct {
		name string
		v    *string
	}{{"region", u.Region}, {"country", u.Country}, {"addr", u.Addr}, {"public_key", u.PublicKey},
		{"endpoint", u.Endpoint}, {"prefix6", u.Prefix6}, {"anycast", u.Anycast}, {"state", u.State}}
	names := []string{"node"}
	args := []any{node}
	var sets, differs []string
	for _, c := range cols {
		if c.v == nil {
			continue
		}
		names = append(names, c.name)
		args = append(args, *c.v)
		sets = append(sets, c.name+" = excluded."+c.name)
		differs = append(differs, "pops."+c.name+" IS NOT excluded."+c.name)
	}
	q := "INSERT INTO pops (" + strings.Join(names, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(names)-1) + ")"
	if len(sets) == 0 {
		q += " ON CONFLICT (node) DO NOTHING"
	} else {
		q += " ON CONFLICT (node) DO UPDATE SET " + strings.Join(sets, ", ") + " WHERE " + strings.Join(differs, " OR ")
	}
	defer s.writeLock()()
	if _, err := s.exec(ctx, nil, q, args...); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Pops reads every pops row, ordered by node.
func (s *Store) Pops(ctx context.Context) ([]routing.Pop, error) {
	p, err := loadPops(ctx, s.db)
	return p, s.wrapNil(err)
}
