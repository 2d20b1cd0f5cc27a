package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
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
	// ListOnly gives snapshots without the index connections are routed
	// by (routing.NewListTable), for a reader that never routes: the DNS
	// server.
	ListOnly bool
	// KeepIdleConns keeps the connections the store's pools hold idle
	// open until Close, instead of closing each after five minutes
	// unused. It is for a process that holds many stores, as the cluster
	// simulator holds a thousand: the driver's close of one connection
	// walks the registrations of every connection in the process, and a
	// thousand stores' idle connections came to be closed together.
	KeepIdleConns bool
}

// ErrReadOnly is returned by writes on a read-only store.
var ErrReadOnly = errors.New("routing table opened read-only")

// Store is an open routing table file.
type Store struct {
	path     string
	readOnly bool
	db       *sql.DB // reads, and the handle DB returns
	wdb      *sql.DB // write transactions (BEGIN IMMEDIATE); db when read-only
	loads    *routing.LoadTracker
	listOnly bool
	gen      atomic.Uint64
	snapView atomic.Pointer[view] // what the last Snapshot read, for a Watch to follow on from
	vectors  atomic.Pointer[vectorCache]
	merges   mergeConn

	heartbeats heartbeatGroups
	// migrated is set when this open brought the file to SchemaVersion
	// (and not some other process before it).
	migrated bool

	// Replication state (crdt.go), set by initCRDT on writable opens.
	site   string
	copied string
	shapes map[string]*tableShape
}

// fileURI is the SQLite URI of the file at path with the query q. The
// characters a URI gives a meaning to are escaped: a file named
// "routing#2.db" opened as "file:routing#2.db" would be "routing" (what
// follows # is a fragment), and one with ? in its name would lose the rest
// of its name to the query.
func fileURI(path string, q url.Values) string {
	return "file:" + uriPathEscaper.Replace(path) + "?" + q.Encode()
}

var uriPathEscaper = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

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
	// Every connection waits up to 5 s for a lock another process holds
	// (a second proxy opening the file, the DNS server reading it, a v1
	// proxy or the sqlite3 CLI writing it) instead of failing at once.
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	// Each connection keeps its prepared statements: a merge runs a few
	// statements per change, and preparing them again each time (an
	// UPDATE compiles the table's capture triggers) costs 12 times the
	// merge itself (220 changes: 161 ms, 13 ms with the cache). A merge
	// writes with a statement per table and column, so the cache holds
	// more than they and the reads add up to.
	q.Set("_stmt_cache_size", "128")
	if opts.ReadOnly {
		q.Set("mode", "ro")
	} else {
		// WAL is set once, by init (useWAL), and stays with the file.
		q.Set("_synchronous", "NORMAL")
	}
	db, err := sql.Open(driverName, fileURI(abs, q))
	if err != nil {
		return nil, fmt.Errorf("routing table %s: %w", abs, err)
	}
	keepIdle(db, opts.KeepIdleConns)
	s := &Store{path: abs, readOnly: opts.ReadOnly, db: db, wdb: db, loads: opts.Loads, listOnly: opts.ListOnly}
	if !opts.ReadOnly {
		// Write transactions begin with BEGIN IMMEDIATE: they take the
		// write lock up front, waiting for it under the busy timeout. A
		// deferred transaction that reads first and writes later cannot
		// wait when another process committed in between (SQLite fails it
		// with "database is locked" at once), which is what two proxies
		// migrating one file at the same instant ran into. Reads keep
		// their own pool of deferred transactions, so a snapshot never
		// holds the write lock.
		q.Set("_txlock", "immediate")
		if s.wdb, err = sql.Open(driverName, fileURI(abs, q)); err != nil {
			db.Close()
			return nil, fmt.Errorf("routing table %s: %w", abs, err)
		}
		keepIdle(s.wdb, opts.KeepIdleConns)
	}
	if s.loads == nil {
		s.loads = routing.NewLoadTracker()
	}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("routing table %s: %w", abs, describe(err))
	}
	return s, nil
}

// keepIdle keeps up to idleConns connections open between uses, for
// idleConnTime or, with always, until the pool is closed. A POP's
// goroutines use the file at once (the watcher, the cluster's loops,
// health flushes, the registration API); with database/sql's default of
// two idle connections, a third is closed when given back, and the next
// use opens it and prepares its statements again: a seventh of a 300-POP
// simulation's CPU.
func keepIdle(db *sql.DB, always bool) {
	db.SetMaxIdleConns(idleConns)
	if !always {
		db.SetConnMaxIdleTime(idleConnTime)
	}
}

const idleConns = 6

// idleConnTime is how long a connection may stay idle before it is
// closed: after a burst of use, the file's page caches are given back.
var idleConnTime = 5 * time.Minute

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
	if err := useWAL(ctx, s.db); err != nil {
		return fmt.Errorf("switching to WAL journaling: %w", err)
	}
	migrated, err := migrate(ctx, s.wdb)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	s.migrated = migrated
	if err := s.initCRDT(ctx); err != nil {
		return fmt.Errorf("setting up change capture: %w", err)
	}
	return nil
}

// busyTimeout is how long a statement waits for a lock another connection
// or process holds.
const busyTimeout = 5 * time.Second

// setBusyTimeout sets how long the statements of conn wait for a lock;
// the pool's connections wait busyTimeout.
func setBusyTimeout(ctx context.Context, conn *sql.Conn, d time.Duration) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", d.Milliseconds()))
	return err
}

// useWAL puts the file in WAL mode, in which readers and the writer do not
// block each other; the mode stays with the file. Switching a v1 file
// needs the exclusive lock, and when another process writes the file at
// the same time (a v1 proxy still running on it) SQLite gives up on the
// switch with "database is locked" rather than wait, sometimes only after
// the whole busy timeout, when both sides wait for each other. So the
// switch is tried with a short busy timeout, again and again, until it
// gets a moment when the file is free.
func useWAL(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || strings.EqualFold(mode, "wal") {
		return err
	}
	if err := setBusyTimeout(ctx, conn, 20*time.Millisecond); err != nil {
		return err
	}
	defer setBusyTimeout(context.Background(), conn, busyTimeout)
	deadline := time.Now().Add(2 * busyTimeout)
	for {
		err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("the file stays in journal mode %q", mode)
			}
			return nil
		}
		var se sqlite3.Error
		if !errors.As(err, &se) || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
		}
	}
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

// DB is the file's database handle. Everything outside this package
// reads and writes through the typed calls instead; DB is for tests that
// set up fixtures. Its transactions are deferred: a writer must not read
// before its first write in one (see Open).
func (s *Store) DB() *sql.DB { return s.db }

// Loads is the tracker whose Loads the snapshots carry.
func (s *Store) Loads() *routing.LoadTracker { return s.loads }

// Close closes the file.
func (s *Store) Close() error {
	s.merges.close()
	err := s.db.Close()
	if s.wdb != s.db {
		err = errors.Join(err, s.wdb.Close())
	}
	return err
}

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
