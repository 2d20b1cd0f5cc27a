package routing

import (
	"sync"
	"sync/atomic"
)

// Load is the live state of one backend on this POP: active connections and
// traffic counters. It is updated with atomics only.
type Load struct {
	active   atomic.Int64
	total    atomic.Uint64
	bytesIn  atomic.Uint64 // client to backend
	bytesOut atomic.Uint64 // backend to client
	failures atomic.Uint64 // dial failures
	atLimit  atomic.Bool   // active reached the hard limit of the last TryAcquire, or of the newest row (limitIs)
	limit    atomic.Int64  // the hard limit of the newest table's row (0: none, or not known)
	health   liveHealth    // the POP's own health view (health.go)
	// cells of the newest table's chunks whose remembered best backend
	// depends on this load (index.go); refreshed on every change.
	cells atomic.Pointer[[]*cell]
}

// changed refreshes the chunks this load belongs to.
func (l *Load) changed() {
	if cs := l.cells.Load(); cs != nil {
		for _, c := range *cs {
			c.c.Load().refresh()
		}
	}
}

// Active is the number of connections currently proxied to the backend.
func (l *Load) Active() int64 { return l.active.Load() }

// Total is the number of connections ever proxied to the backend.
func (l *Load) Total() uint64 { return l.total.Load() }

// BytesIn is the number of bytes copied from clients to the backend.
func (l *Load) BytesIn() uint64 { return l.bytesIn.Load() }

// BytesOut is the number of bytes copied from the backend to clients.
func (l *Load) BytesOut() uint64 { return l.bytesOut.Load() }

// DialFailures is the number of failed dials to the backend.
func (l *Load) DialFailures() uint64 { return l.failures.Load() }

// TryAcquire takes a connection slot unless that would exceed hardLimit
// (0: unlimited). The compare-and-swap makes the hard limit exact under
// concurrent connections: a check followed by an increment would not be.
func (l *Load) TryAcquire(hardLimit int) bool {
	for {
		n := l.active.Load()
		if hardLimit > 0 && n >= int64(hardLimit) {
			return false
		}
		if l.active.CompareAndSwap(n, n+1) {
			l.total.Add(1)
			if hardLimit > 0 && n+1 == int64(hardLimit) {
				l.atLimit.Store(true)
				limitCrossings.Add(1)
			}
			l.changed()
			return true
		}
	}
}

// Release returns a slot taken by TryAcquire. The backend leaves its hard
// limit when its connections fall below it: one release after it reached
// the limit, or more where an edit lowered the limit under them.
func (l *Load) Release() {
	n := l.active.Add(-1)
	if l.atLimit.Load() {
		if limit := l.limit.Load(); (limit == 0 || n < limit) && l.atLimit.CompareAndSwap(true, false) {
			limitCrossings.Add(1)
		}
	}
	l.changed()
}

// limitIs notes hardLimit, the limit of a row a new table holds, and
// whether the load is at it. Release counts a crossing only when the load
// was noted at its limit, and only once its connections fall below it, so
// an edit that lowers a backend's limit to or under its connections must
// note both: else the POP signal would count the backend at its limit
// after they ended.
func (l *Load) limitIs(hardLimit int) {
	l.limit.Store(int64(hardLimit))
	l.atLimit.Store(hardLimit > 0 && l.active.Load() >= int64(hardLimit))
}

// limitCrossings counts the times any backend reached its hard limit or
// fell back below it: the only change of what a POP can route that comes
// with no event (snapshot or health verdict) of its own.
var limitCrossings atomic.Uint64

// LimitCrossings returns a number that moves whenever some backend
// reaches its hard limit or leaves it.
func LimitCrossings() uint64 { return limitCrossings.Load() }

// AddBytes records traffic copied in each direction.
func (l *Load) AddBytes(in, out uint64) {
	l.bytesIn.Add(in)
	l.bytesOut.Add(out)
}

// DialFailed records a failed dial.
func (l *Load) DialFailed() {
	l.failures.Add(1)
	l.failed()
}

// LoadTracker hands out one Load per backend ID and keeps it for as long as
// the tracker lives, so counts carry over from one table snapshot to the
// next. Only table building takes its lock; connections never do.
type LoadTracker struct {
	mu    sync.Mutex
	loads map[string]*Load
	// added counts the loads For created since the last sweep, and kept
	// how many the last sweep left: Forget sweeps only once the tracker
	// may have outgrown what it keeps by a quarter.
	added, kept int
	swept       bool // Forget was called before
}

// NewLoadTracker returns an empty tracker.
func NewLoadTracker() *LoadTracker {
	return &LoadTracker{loads: make(map[string]*Load)}
}

// For returns the Load of the backend with the given ID, creating it.
func (t *LoadTracker) For(id string) *Load {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.loads[id]
	if !ok {
		l = new(Load)
		t.loads[id] = l
		t.added++
	}
	return l
}

// Forget drops the loads of backends that are gone and carry no connection,
// so a table with churning IDs does not grow the tracker forever. It is
// called after every new snapshot, so it looks at the loads only once
// enough new ones came since it last did (a quarter of those it kept, and
// at least forgetSlack): a snapshot that follows a one-row edit costs a
// counter, not a pass over every backend, and the tracker never holds more
// than about a quarter over what the table has.
func (t *LoadTracker) Forget(keep func(id string) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.swept {
		// The first call comes after the first table: the tracker holds
		// the loads made for the tables read so far, normally that one's
		// own, and a sweep would look up each to drop none (at 100,000
		// backends, the first edit's snapshot waited 70 ms for it). The
		// loads of backends gone meanwhile go at the next sweep.
		t.swept, t.added, t.kept = true, 0, len(t.loads)
		return
	}
	if t.added < max(forgetSlack, t.kept/4) {
		return
	}
	for id, l := range t.loads {
		if !keep(id) && l.Active() == 0 {
			delete(t.loads, id)
		}
	}
	t.added, t.kept = 0, len(t.loads)
}

// forgetSlack is how many new loads Forget lets come before it looks.
const forgetSlack = 64
