package store

import "time"

// Hybrid logical clock values, as the capture triggers write them and the
// merge compares them: the high 48 bits are Unix milliseconds, the low 16 a
// logical counter that orders events within one millisecond and events
// seen from a clock slightly ahead of ours. An HLC never goes backwards on
// a site: every local write takes max(last + 1, now << 16), and every merge
// raises last to the highest remote HLC it accepts.

// HLCLogicalBits is the width of the logical counter.
const HLCLogicalBits = 16

// MakeHLC builds an HLC from a wall-clock time and a logical counter.
func MakeHLC(t time.Time, logical uint16) uint64 {
	return uint64(t.UnixMilli())<<HLCLogicalBits | uint64(logical)
}

// HLCTime is the physical part of an HLC.
func HLCTime(h uint64) time.Time { return time.UnixMilli(int64(h >> HLCLogicalBits)) }

// MaxClockSkew is how far ahead of local time a remote HLC may be. Changes
// stamped further in the future are refused (and not marked as seen), so
// one POP with a wrong clock cannot win every future write.
const MaxClockSkew = 500 * time.Millisecond

// sqlNowHLC is the SQL expression of now << 16, usable in triggers run by
// any SQLite (the sqlite3 CLI included): julianday has millisecond
// resolution everywhere, unixepoch('subsec') only since 3.42.
const sqlNowHLC = `(CAST(round((julianday('now') - 2440587.5) * 86400000.0) AS INTEGER) << 16)`
