//go:build !cgo

package store

// go-sqlite3 is a cgo package: built with CGO_ENABLED=0 it compiles to a stub
// whose every open fails at run time, and this package stops compiling on the
// missing sqlite3.Error. This file turns that into an error that names the fix,
// since xcaddy and cross builds default to CGO_ENABLED=0.
const _ = edgeproxy_store_needs_cgo_set_CGO_ENABLED_1
