// Package edgeroute plugs edgeProxy's routing into Caddy: the app
// `edgeroute` (the routing table of this POP), the layer4 handler
// `layer4.handlers.edgeroute` (routes each TCP connection to the best backend
// of an app and proxies it), the admin API under /edgeroute/ and the
// `caddy edgeroute` command.
//
// The app is a thin adapter: the table, scoring and GeoIP live in the core
// packages routing, store and geo. State that must outlive a config reload
// (the open SQLite file, live connection counts, affinity bindings) is kept
// in a usage pool keyed by the database path, so a `caddy reload` neither
// loses counts nor cuts connections in flight.
package edgeroute
