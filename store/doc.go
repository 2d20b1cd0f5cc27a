// Package store keeps the routing table in a SQLite file: it opens (or
// creates) the file, migrates it forward, loads immutable routing.Table
// snapshots from it and watches it for commits made by any writer, the
// sqlite3 CLI included.
//
// The file stays readable by edgeProxy v1 and by the sqlite3 CLI: the
// backends table keeps v1's columns and names, and an existing v1
// routing.db is migrated in place by adding only what is missing.
//
// Commits are detected with PRAGMA data_version on a connection that never
// writes, which SQLite bumps whenever another connection, in this process or
// another one, commits to the file. Polling it costs one page-cache read.
//
// The package imports neither Caddy nor CoreDNS.
package store
