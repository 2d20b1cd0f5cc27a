// Package routing holds the routing table as the data plane sees it and the
// rules that pick a backend for a client.
//
// A Table is an immutable snapshot: it is built once from the SQLite store,
// published with an atomic swap, and read by every connection without a lock.
// The only mutable state a connection touches is the per-backend Load, which
// lives outside the snapshot (in a LoadTracker) so that live connection counts
// survive table swaps and configuration reloads.
//
// Scoring follows edgeProxy v1 exactly: score = geo*100 + load/weight, lowest
// wins, where geo is 0 when the backend is in the client's country, 1 in the
// client's region, 2 in the POP's own region and 3 otherwise, and load is
// active connections divided by the soft limit. Backends at their hard limit,
// unhealthy or deleted are skipped. Ties keep table order, as v1 did.
//
// The package imports neither Caddy nor CoreDNS.
package routing
