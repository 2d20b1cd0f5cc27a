package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Options tune Open.
type Options struct {
	// ReadOnly opens an existing file without ever writing to it or
	// migrating it, as the DNS server does: the proxy owns the file.
	ReadOnly bool
	// Loads keeps live connection counts across snapshots. Nil gives the
	// store a tracker of its own.
	Loads *routing.LoadTracker
}

// Store is an open routing table file.
type Store struct {
	path     string
	readOnly bool
	db       *sql.DB
	loads    *routing.LoadTracker
	gen      atomic.Uint64

	// Replication state (crdt.go), set by initCRDT on writable opens.
	site   string
	copied string
	shapes map[string]*tableShape
}

// Open opens the routing table at path, creating and migrating it unless
// opts.ReadOnly. Errors name the file and what is wrong with it.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if strings.TrimSpace(path) == "" {
		return nil, errors.New("routing table: no database path given")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("routing table %s: %w", path, err)
	}
	if err := checkFile(abs, opts.ReadOnly); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("_busy_timeout", "5000")
	if opts.ReadOnly {
		q.Set("mode", "ro")
	} else {
		q.Set("_journal_mode", "WAL")
		q.Set("_synchronous", "NORMAL")
	}
	db, err := sql.Open("sqlite3", "file:"+abs+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("routing table %s: %w", abs, err)
	}
	s := &Store{path: abs, readOnly: opts.ReadOnly, db: db, loads: opts.Loads}
	if s.loads == nil {
		s.loads = routing.NewLoadTracker()
	}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("routing table %s: %w", abs, describe(err))
	}
	return s, nil
}

func checkFile(path string, readOnly bool) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("routing table %s: is a directory, not a SQLite file", path)
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist) && readOnly:
		return fmt.Errorf("routing table %s: no such file (this reader never creates it; start the proxy first or point db at an existing routing.db)", path)
	case errors.Is(err, os.ErrNotExist):
		if _, derr := os.Stat(filepath.Dir(path)); derr != nil {
			return fmt.Errorf("routing table %s: directory %s does not exist", path, filepath.Dir(path))
		}
		return nil
	default:
		return fmt.Errorf("routing table %s: %w", path, err)
	}
}

func (s *Store) init(ctx context.Context) error {
	// Reading the schema is the first real I/O: it is what fails on a file
	// that is not SQLite or cannot be read.
	if _, err := tableColumns(ctx, s.db, "backends"); err != nil {
		return err
	}
	if s.readOnly {
		return nil
	}
	if err := migrate(ctx, s.db); err != nil {
		return err
	}
	return s.initCRDT(ctx)
}

// describe turns SQLite's terse errors into what an operator should check.
func describe(err error) error {
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.Code {
		case sqlite3.ErrNotADB:
			return fmt.Errorf("not a SQLite database (%v)", err)
		case sqlite3.ErrCorrupt:
			return fmt.Errorf("database file is corrupt (%v)", err)
		case sqlite3.ErrCantOpen, sqlite3.ErrPerm, sqlite3.ErrAuth:
			return fmt.Errorf("cannot open the file: check that it exists and its permissions (%v)", err)
		case sqlite3.ErrReadonly:
			return fmt.Errorf("file is read-only: the proxy needs write access (%v)", err)
		}
	}
	return err
}

// Path is the absolute path of the file.
func (s *Store) Path() string { return s.path }

// DB is the handle for writers (the registration API, replication).
func (s *Store) DB() *sql.DB { return s.db }

// Loads is the tracker whose Loads the snapshots carry.
func (s *Store) Loads() *routing.LoadTracker { return s.loads }

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// nextGeneration returns a generation above every earlier one and, across
// restarts, above those of earlier runs: DNS serials are derived from it.
func (s *Store) nextGeneration(now time.Time) uint64 {
	for {
		prev := s.gen.Load()
		next := max(prev+1, uint64(now.Unix()))
		if s.gen.CompareAndSwap(prev, next) {
			return next
		}
	}
}
