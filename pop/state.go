package pop

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// signalState computes the POP's signal and hands it to subscribers. The
// signal is recomputed at once after a table load, a health verdict or an
// operator action, and every DrainFilePoll for what changes without an
// event (the maintenance file, backends reaching their hard limit).
type signalState struct {
	published string // the state last written to the pops row; run loop only

	rt    *Runtime
	kicks chan struct{}

	mu        sync.Mutex
	cur       Signal
	subs      map[int]chan Signal
	nextSub   int
	drain     string // operator's drain reason; "" when not drained
	drainFile string
	fileSeen  bool
	stopping  string // why the POP is stopping; "" while it is not
	stopAt    time.Time
	stopDelay time.Duration
	stale     string
	holds     map[int]*hold
	nextHold  int
	closed    bool

	// The per-app counts of the last recompute, and what they were
	// counted from: a recompute after a new snapshot counts again only
	// the apps whose backends changed (appsFor).
	appsMu     sync.Mutex
	appsOf     *routing.Table
	apps       AppSignals
	downSeen   uint64
	limitsSeen uint64
}

type hold struct {
	name     string
	max      time.Duration
	released chan struct{}
	once     sync.Once
}

func (s *signalState) init(rt *Runtime) {
	s.rt = rt
	s.kicks = make(chan struct{}, 1)
	s.subs = map[int]chan Signal{}
	s.holds = map[int]*hold{}
	now := time.Now()
	s.cur = Signal{State: Serving, StateReason: "serving since start", Changed: now, Since: now}
	s.recompute()
}

func (s *signalState) configure(drainFile string, stopDelay time.Duration) {
	s.mu.Lock()
	s.drainFile, s.stopDelay = drainFile, stopDelay
	s.mu.Unlock()
}

func (s *signalState) kick() {
	select {
	case s.kicks <- struct{}{}:
	default:
	}
}

func (s *signalState) run(ctx context.Context) {
	t := time.NewTicker(defaults.DrainFilePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kicks:
			// A new snapshot, a health verdict or an operator's
			// action: apps whose backends and health are as before
			// keep their counts.
		case <-t.C:
			// The maintenance file, and backends at their hard limit.
		}
		s.recompute()
		s.publish()
	}
}

// publish writes the POP's state to its own pops row when it changed, so
// that every POP of the cluster knows which POPs serve, drain or stop
// (status pages, operators' queries). A POP running alone writes nothing.
// Only the run loop calls it.
func (s *signalState) publish() {
	if s.rt.Cluster() == nil {
		return
	}
	sig := s.rt.Signal()
	v := string(sig.State)
	if sig.Stale {
		v += ",stale"
	}
	if v == s.published {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.rt.SetPop(ctx, store.PopUpdate{State: store.Str(v)}); err != nil {
		// Retried at the next tick; a stale table often refuses writes too.
		s.rt.log().Debug("publishing the POP's state in its pops row", zap.String("state", v), zap.Error(err))
		return
	}
	s.published = v
}

func (s *signalState) setStale(reason string) (stateChanged bool) {
	s.mu.Lock()
	changed := s.stale != reason
	s.stale = reason
	s.mu.Unlock()
	if changed {
		return s.recompute()
	}
	return false
}

// recompute builds the signal from the table and the operator's state and
// publishes it when it says something new. It counts again only the apps
// whose backends changed since the last count, unless some backend's
// health changed or a backend reached or left its hard limit meanwhile.
// It reports whether the state or staleness changed: what the run loop
// writes to the POP's pops row.
func (s *signalState) recompute() (stateChanged bool) {
	tbl := s.rt.table.Load()
	apps := s.appsFor(tbl)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drainFile != "" {
		_, err := os.Stat(s.drainFile)
		present := err == nil
		if present != s.fileSeen {
			s.fileSeen = present
			verb := "removed: the POP serves again unless drained otherwise"
			if present {
				verb = "found: draining the POP"
			}
			s.rt.log().Warn("maintenance file "+verb, zap.String("drain_file", s.drainFile))
		}
	} else {
		s.fileSeen = false
	}
	next := s.cur
	next.Node = s.rt.Identity().Node
	next.Apps = apps
	next.Generation = tbl.Generation
	next.Stale, next.StaleReason = s.stale != "", ""
	if next.Stale {
		next.StaleReason = "the table file could not be read (" + s.stale + "); routing goes on with the snapshot of generation " +
			fmt.Sprint(tbl.Generation) + " loaded at " + tbl.LoadedAt.UTC().Format(time.RFC3339)
	}
	switch {
	case s.stopping != "":
		next.State, next.StateReason = Stopping, s.stopping
	case s.drain != "":
		next.State, next.StateReason = Draining, s.drain
	case s.fileSeen:
		next.State, next.StateReason = Draining, "maintenance file "+s.drainFile+" exists"
	default:
		next.State = Serving
		if s.cur.State != Serving {
			next.StateReason = "serving: no drain in effect"
		}
	}
	if sameContent(next, s.cur) {
		return false
	}
	stateChanged = next.State != s.cur.State || next.Stale != s.cur.Stale
	now := time.Now()
	if next.State != s.cur.State {
		next.Since = now
		s.rt.log().Info("POP state changed", zap.String("state", string(next.State)),
			zap.String("previous", string(s.cur.State)), zap.String("reason", next.StateReason))
	}
	next.Seq, next.Changed = s.cur.Seq+1, now
	s.cur = next
	if s.closed {
		return stateChanged
	}
	for _, ch := range s.subs {
		deliver(ch, next)
	}
	return stateChanged
}

// deliver replaces whatever the subscriber has not read yet.
func deliver(ch chan Signal, sig Signal) {
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- sig:
	default:
	}
}

// appsFor returns the per-app counts of tbl, counting again only what
// may have changed since the last call.
func (s *signalState) appsFor(tbl *routing.Table) AppSignals {
	s.appsMu.Lock()
	defer s.appsMu.Unlock()
	// Read before the counts: a change during them moves these again.
	down, limits := routing.DownChanges(), routing.LimitCrossings()
	switch {
	case s.appsOf == nil || down != s.downSeen || limits != s.limitsSeen:
		// Every app, but only when a health verdict changed or a
		// backend reached or left its hard limit: counting every
		// app at every periodic recompute (four times a second) would
		// be most of an idle POP's CPU at a hundred thousand backends.
		s.apps = appSignals(tbl, nil, AppSignals{})
	case tbl != s.appsOf:
		s.apps = appSignals(tbl, s.appsOf, s.apps)
	}
	s.appsOf, s.downSeen, s.limitsSeen = tbl, down, limits
	return s.apps
}

// Signal is the POP's health now.
func (rt *Runtime) Signal() Signal {
	rt.signal.mu.Lock()
	defer rt.signal.mu.Unlock()
	return rt.signal.cur
}

// Watch delivers the newest signal after every change, the current one
// first. The channel is closed by stop, or when the runtime is released.
func (rt *Runtime) Watch() (<-chan Signal, func()) {
	s := &rt.signal
	ch := make(chan Signal, 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	ch <- s.cur
	if s.closed {
		close(ch)
		return ch, func() {}
	}
	id := s.nextSub
	s.nextSub++
	s.subs[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			close(ch)
		}
	}
}

// close ends every subscription: the runtime is gone.
func (s *signalState) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for id, ch := range s.subs {
		delete(s.subs, id)
		close(ch)
	}
}

// Drain moves the POP to Draining for the reason given; Undrain ends an
// operator's drain (the maintenance file, if present, keeps it draining).
func (rt *Runtime) Drain(reason string) {
	rt.signal.mu.Lock()
	rt.signal.drain = reason
	rt.signal.mu.Unlock()
	rt.signal.recompute()
	rt.signal.kick() // publishes it
}

// Undrain ends an operator's drain and reports whether one was in effect.
func (rt *Runtime) Undrain() bool {
	rt.signal.mu.Lock()
	was := rt.signal.drain != ""
	rt.signal.drain = ""
	rt.signal.mu.Unlock()
	rt.signal.recompute()
	rt.signal.kick()
	return was
}

// BeginStop moves the POP to Stopping; the first reason given stays.
func (rt *Runtime) BeginStop(reason string) {
	rt.signal.mu.Lock()
	if rt.signal.stopping == "" {
		rt.signal.stopping = reason
		rt.signal.stopAt = time.Now()
	}
	rt.signal.mu.Unlock()
	rt.signal.recompute()
	rt.signal.kick()
}

// Hold keeps a stopping POP's listeners open until release or max.
func (rt *Runtime) Hold(name string, max time.Duration) func() {
	s := &rt.signal
	if max <= 0 || max > defaults.MaxHold {
		max = defaults.MaxHold
	}
	h := &hold{name: name, max: max, released: make(chan struct{})}
	s.mu.Lock()
	id := s.nextHold
	s.nextHold++
	s.holds[id] = h
	s.mu.Unlock()
	return func() {
		h.once.Do(func() {
			close(h.released)
			s.mu.Lock()
			delete(s.holds, id)
			s.mu.Unlock()
		})
	}
}

// WaitStop returns once a stopping POP may close its listeners: after the
// configured stop delay and once every hold is released or out of time.
// It returns at once when the POP is not stopping.
func (rt *Runtime) WaitStop() {
	s := &rt.signal
	s.mu.Lock()
	if s.stopping == "" {
		s.mu.Unlock()
		return
	}
	start, delay := s.stopAt, s.stopDelay
	holds := make([]*hold, 0, len(s.holds))
	for _, h := range s.holds {
		holds = append(holds, h)
	}
	s.mu.Unlock()
	if d := time.Until(start.Add(delay)); d > 0 {
		rt.log().Info("stopping: keeping listeners open for the stop delay", zap.Duration("for", d))
		time.Sleep(d)
	}
	for _, h := range holds {
		t := time.NewTimer(time.Until(start.Add(h.max)))
		select {
		case <-h.released:
		case <-t.C:
			rt.log().Warn("stopping: an app did not finish within its hold; closing anyway", zap.String("app", h.name), zap.Duration("hold", h.max))
		}
		t.Stop()
	}
}
