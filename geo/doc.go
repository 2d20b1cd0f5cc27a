// Package geo maps client IP addresses to ISO 3166-1 alpha-2 country codes,
// reading MaxMind-format (.mmdb) databases.
//
// Two record shapes are understood, per record, so one Resolver reads either:
// MaxMind GeoIP2/GeoLite2 Country and City databases (country.iso_code, with
// registered_country.iso_code as the fallback) and the DB-IP Lite databases
// republished by ip-location-db (a top-level country_code). With no path the
// embedded DB-IP "IP to Country Lite" database is used (see data/README.md
// for its licence and how to refresh it).
//
// Resolver.Country runs once per proxied connection, so it takes no lock and
// allocates nothing. The record is walked with maxminddb's cursor API instead
// of being decoded into a struct, and the two letters found are interned
// through a fixed table holding every two-letter code: the string returned
// is a slice of that table, never a fresh copy of the database bytes, so a
// lookup costs a tree walk and a few byte comparisons, and nothing for the
// garbage collector.
//
// Databases are read into memory rather than memory-mapped: Close can then
// never pull pages from under a lookup still running on another goroutine
// (Caddy reloads configuration while connections are in flight), and an
// operator overwriting the file in place cannot crash the process.
package geo
