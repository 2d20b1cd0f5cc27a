package health

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Defaults of a check configuration.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 2
	// rttAlpha weighs the newest sample in the smoothed RTT (as TCP's
	// SRTT uses 1/8; a little faster here since checks are sparse).
	rttAlpha = 0.25
)

// Config is one app's active check.
type Config struct {
	Checker  Checker
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive successes that bring a down backend back
	Fall     int // consecutive failures that take an up backend out
}

func (c *Config) defaults() {
	if c.Checker == nil {
		c.Checker = TCP{}
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Timeout > c.Interval {
		c.Timeout = c.Interval
	}
	if c.Rise <= 0 {
		c.Rise = DefaultRise
	}
	if c.Fall <= 0 {
		c.Fall = DefaultFall
	}
}

// Target is a backend to check.
type Target struct {
	ID   string
	Addr netip.AddrPort
	// Down is the state to start in: a backend already held down (by an
	// earlier config, say) needs `rise` successes to come back.
	Down bool
}

// Status is what the monitor knows of one backend.
type Status struct {
	ID        string         `json:"id"`
	Addr      netip.AddrPort `json:"addr"`
	Healthy   bool           `json:"healthy"`
	RTT       time.Duration  `json:"rtt"`      // smoothed; 0 until a check passed
	LastRTT   time.Duration  `json:"last_rtt"` // of the last passing check
	LastError string         `json:"last_error,omitempty"`
	LastCheck time.Time      `json:"last_check"`
	Since     time.Time      `json:"since"` // of the current state
	Checks    uint64         `json:"checks"`
	Failures  uint64         `json:"failures"`
	// Streak is the number of consecutive results that disagree with the
	// current state (failures while healthy, successes while down).
	Streak int `json:"streak"`
}

// Monitor checks a set of targets with one Config.
type Monitor struct {
	cfg Config
	// onCheck receives the status after every check; changed is true
	// when the check flipped the backend's state. Called from the
	// checking goroutine, one call at a time per target.
	onCheck func(st Status, changed bool)

	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	tgts   map[string]*target
	wg     sync.WaitGroup
}

type target struct {
	m      *Monitor
	ctx    context.Context
	cancel context.CancelFunc
	probe  Probe

	// busy is held while a check runs: the scheduler skips a target
	// whose previous check is still going, and the probe is closed only
	// once no check uses it.
	busy sync.Mutex

	mu sync.Mutex
	st Status

	// Owned by the scheduler, under its lock.
	due   time.Time
	index int
}

// NewMonitor returns a monitor; nothing runs until Sync adds targets.
func NewMonitor(cfg Config, onCheck func(st Status, changed bool)) *Monitor {
	cfg.defaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Monitor{cfg: cfg, onCheck: onCheck, ctx: ctx, cancel: cancel, tgts: map[string]*target{}}
}

// Config is the monitor's configuration with defaults applied.
func (m *Monitor) Config() Config { return m.cfg }

// Sync makes the checked set equal to targets: new ones start (at a random
// point of the first interval, so checks spread out), gone ones stop, and a
// target whose address changed starts over.
func (m *Monitor) Sync(targets []Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ctx.Err() != nil {
		return
	}
	keep := make(map[string]bool, len(targets))
	for _, t := range targets {
		keep[t.ID] = true
		if old, ok := m.tgts[t.ID]; ok {
			if old.st.Addr == t.Addr {
				continue
			}
			m.drop(old)
			delete(m.tgts, t.ID)
		}
		m.start(t)
	}
	for id, t := range m.tgts {
		if !keep[id] {
			m.drop(t)
			delete(m.tgts, id)
		}
	}
}

func (m *Monitor) start(t Target) {
	ctx, cancel := context.WithCancel(m.ctx)
	tg := &target{
		m:      m,
		ctx:    ctx,
		cancel: cancel,
		probe:  m.cfg.Checker.Probe(t.Addr),
		st:     Status{ID: t.ID, Addr: t.Addr, Healthy: !t.Down, Since: time.Now()},
		index:  -1,
	}
	m.tgts[t.ID] = tg
	first := time.Duration(rand.Int64N(int64(min(m.cfg.Interval, time.Second))))
	processScheduler.add(tg, time.Now().Add(first))
}

// drop stops checking tg and closes its probe once a check in flight,
// cancelled here, has returned.
func (m *Monitor) drop(tg *target) {
	processScheduler.remove(tg)
	tg.cancel()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tg.busy.Lock()
		tg.probe.Close()
		tg.busy.Unlock()
	}()
}

// launch runs one check of tg, unless the last one is still running. A
// probe that can finish without waiting (a TCP connect to a nearby
// backend) runs right here, on the scheduler's goroutine; the rest, and
// the wait of a probe that has to, run in a goroutine of their own.
func (m *Monitor) launch(tg *target) {
	if !tg.busy.TryLock() {
		return
	}
	// Under m.mu, so Stop's Wait never races a new check, and a target
	// dropped (its probe closed) since the scheduler picked it is seen.
	m.mu.Lock()
	if tg.ctx.Err() != nil {
		m.mu.Unlock()
		tg.busy.Unlock()
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	start := time.Now()
	qp, quick := tg.probe.(quickProbe)
	if quick {
		if done, err := qp.start(); done {
			m.finish(tg, start, err)
			return
		}
	}
	go func() {
		cctx, cancel := context.WithTimeout(tg.ctx, m.cfg.Timeout)
		var err error
		if quick {
			err = qp.wait(cctx)
		} else {
			err = tg.probe.Check(cctx)
		}
		cancel()
		m.finish(tg, start, err)
	}()
}

// quickProbe is a Probe whose check often ends without waiting: start
// ends it (done) or leaves a wait in flight for wait, which must then be
// called, bounded by ctx.
type quickProbe interface {
	Probe
	start() (done bool, err error)
	wait(ctx context.Context) error
}

// finish records the result of a check launched at start and releases tg.
func (m *Monitor) finish(tg *target, start time.Time, err error) {
	defer m.wg.Done()
	defer tg.busy.Unlock()
	if tg.ctx.Err() != nil {
		return
	}
	st, changed := tg.record(start, time.Since(start), err, m.cfg)
	if m.onCheck != nil {
		m.onCheck(st, changed)
	}
}

// record applies one result to the state machine.
func (tg *target) record(at time.Time, rtt time.Duration, err error, cfg Config) (Status, bool) {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.st.apply(at, rtt, err, cfg.Rise, cfg.Fall)
}

// apply is the rise/fall state machine with RTT smoothing.
func (s *Status) apply(at time.Time, rtt time.Duration, err error, rise, fall int) (Status, bool) {
	s.Checks++
	s.LastCheck = at
	ok := err == nil
	if ok {
		s.LastError = ""
		s.LastRTT = rtt
		if s.RTT == 0 {
			s.RTT = rtt
		} else {
			s.RTT = time.Duration(rttAlpha*float64(rtt) + (1-rttAlpha)*float64(s.RTT))
		}
	} else {
		s.Failures++
		s.LastError = err.Error()
	}
	changed := false
	if ok == s.Healthy {
		s.Streak = 0
	} else {
		s.Streak++
		need := fall
		if !s.Healthy {
			need = rise
		}
		if s.Streak >= need {
			s.Healthy, s.Streak, s.Since, changed = ok, 0, at, true
		}
	}
	return *s, changed
}

// Statuses returns every target's status, sorted by ID.
func (m *Monitor) Statuses() []Status {
	m.mu.Lock()
	out := make([]Status, 0, len(m.tgts))
	for _, t := range m.tgts {
		t.mu.Lock()
		out = append(out, t.st)
		t.mu.Unlock()
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len is the number of targets.
func (m *Monitor) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tgts)
}

// Stop ends every check and waits for them.
func (m *Monitor) Stop() {
	m.mu.Lock()
	m.cancel()
	for _, tg := range m.tgts {
		m.drop(tg)
	}
	m.tgts = map[string]*target{}
	m.mu.Unlock()
	m.wg.Wait()
	if c, ok := m.cfg.Checker.(interface{ Close() }); ok {
		c.Close()
	}
}
