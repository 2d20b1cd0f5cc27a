package store

import (
	"database/sql"

	"github.com/mattn/go-sqlite3"
)

// driverName is go-sqlite3 with every connection set up as the store
// needs it (see connectHook).
const driverName = "sqlite3_edgeproxy"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: connectHook})
}

// connectHook keeps a connection's temporary data in memory. A statement
// that fires the capture triggers inside a larger transaction keeps a
// statement journal (the pages it changes, to undo it alone), which SQLite
// otherwise moves to a temporary file past 64 KB: under registrations,
// Caddy wrote two to four times as often there as to the WAL. A statement
// journal holds no more than the pages one statement changes.
func connectHook(c *sqlite3.SQLiteConn) error {
	_, err := c.Exec("PRAGMA temp_store = MEMORY", nil)
	return err
}
