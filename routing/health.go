package routing

import "sync/atomic"

// Down reasons: why this POP currently keeps traffic away from a backend
// that the table allows. They are bits of one atomic word so the connection
// path checks them with a single load.
const (
	// DownActive: the POP's active health checks failed `fall` times.
	DownActive uint32 = 1 << iota
	// DownEjected: passive outlier detection ejected the backend after
	// repeated dial failures or resets, for a backoff.
	DownEjected
)

// liveHealth is the POP's own, immediate view of a backend: health-check
// verdicts, passive failure counts and the smoothed round-trip time. It
// lives in the Load, so it survives table snapshots like connection counts.
type liveHealth struct {
	down        atomic.Uint32
	consecFails atomic.Uint32 // dial failures and resets since the last good dial
	rttMicros   atomic.Int64  // smoothed round-trip time; 0 when unmeasured
}

// downChanges counts every change of any backend's Down reasons, so a
// summary of the table built from them knows when it must look at every
// backend again (health transitions are rare; connections never write it).
var downChanges atomic.Uint64

// DownChanges returns a number that moves whenever any backend's Down
// reasons change.
func DownChanges() uint64 { return downChanges.Load() }

// failureRuns counts the runs of consecutive failures that began, on any
// backend: the passive checker looks for failing backends among all of a
// table's rows only when it moved, and otherwise at the few it follows.
var failureRuns atomic.Uint64

// FailureRuns returns a number that moves whenever some backend's count of
// consecutive failures leaves zero.
func FailureRuns() uint64 { return failureRuns.Load() }

func (l *Load) failed() {
	if l.health.consecFails.Add(1) == 1 {
		failureRuns.Add(1)
	}
}

// Down reports whether the POP keeps traffic away from the backend now.
func (l *Load) Down() bool { return l.health.down.Load() != 0 }

// DownReasons returns the Down* bits that are set.
func (l *Load) DownReasons() uint32 { return l.health.down.Load() }

// SetDown sets or clears one Down* reason and reports whether it changed.
func (l *Load) SetDown(reason uint32, down bool) bool {
	for {
		old := l.health.down.Load()
		nw := old &^ reason
		if down {
			nw = old | reason
		}
		if nw == old {
			return false
		}
		if l.health.down.CompareAndSwap(old, nw) {
			l.changed()
			downChanges.Add(1)
			return true
		}
	}
}

// DialSucceeded ends a run of consecutive failures. It writes only when a
// run is in progress, so healthy backends cost one shared read.
func (l *Load) DialSucceeded() {
	if l.health.consecFails.Load() != 0 {
		l.health.consecFails.Store(0)
	}
}

// ConnReset counts a connection the backend reset against it, like a failed
// dial, without touching the dial failure total.
func (l *Load) ConnReset() { l.failed() }

// ConsecutiveFailures is the number of dial failures and resets since the
// last successful dial.
func (l *Load) ConsecutiveFailures() uint32 { return l.health.consecFails.Load() }

// ResetFailures clears the consecutive failure count, for example when an
// ejection ends and the backend gets another chance.
func (l *Load) ResetFailures() { l.health.consecFails.Store(0) }

// RTT is the smoothed round-trip time in microseconds measured by health
// checks, or 0 when none was measured.
func (l *Load) RTT() int64 { return l.health.rttMicros.Load() }

// SetRTT records the smoothed round-trip time in microseconds.
func (l *Load) SetRTT(us int64) { l.health.rttMicros.Store(us) }

// rttLess reports whether a has a better measured round-trip time than b;
// an unmeasured time loses to any measured one.
func rttLess(a, b *Load) bool {
	ra, rb := a.RTT(), b.RTT()
	switch {
	case ra <= 0:
		return false
	case rb <= 0:
		return true
	default:
		return ra < rb
	}
}

// TableRoutable is Routable without the POP's live view: what the table
// itself allows. Snapshot indexes are built from it, and the live view is
// checked per connection, so a backend coming back needs no new snapshot.
func (b *Backend) TableRoutable() bool {
	return b.Healthy && !b.Deleted && b.Addr.IsValid()
}

func downReason(bits uint32) string {
	switch {
	case bits&DownActive != 0 && bits&DownEjected != 0:
		return "failing health checks and ejected after repeated failures"
	case bits&DownActive != 0:
		return "failing health checks"
	default:
		return "ejected after repeated connection failures"
	}
}

// rttKey orders backends by measured round-trip time, unmeasured last; it
// agrees with rttLess.
func rttKey(l *Load) int64 {
	if r := l.RTT(); r > 0 {
		return r
	}
	return 1<<63 - 1
}
