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
	mu     sync.Mutex
	st     Status
	probe  Probe
	cancel context.CancelFunc
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
			old.cancel()
			delete(m.tgts, t.ID)
		}
		m.start(t)
	}
	for id, t := range m.tgts {
		if !keep[id] {
			t.cancel()
			delete(m.tgts, id)
		}
	}
}

func (m *Monitor) start(t Target) {
	ctx, cancel := context.WithCancel(m.ctx)
	tg := &target{
		st:     Status{ID: t.ID, Addr: t.Addr, Healthy: !t.Down, Since: time.Now()},
		probe:  m.cfg.Checker.Probe(t.Addr),
		cancel: cancel,
	}
	m.tgts[t.ID] = tg
	m.wg.Add(1)
	go m.run(ctx, tg)
}

func (m *Monitor) run(ctx context.Context, tg *target) {
	defer m.wg.Done()
	defer tg.probe.Close()
	first := time.Duration(rand.Int64N(int64(min(m.cfg.Interval, time.Second))))
	timer := time.NewTimer(first)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
		err := tg.probe.Check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st, changed := tg.record(start, time.Since(start), err, m.cfg)
		if m.onCheck != nil {
			m.onCheck(st, changed)
		}
		// Next check one interval after this one started, so slow
		// checks do not stretch the period.
		timer.Reset(max(time.Until(start.Add(m.cfg.Interval)), m.cfg.Interval/10))
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
	m.tgts = map[string]*target{}
	m.mu.Unlock()
	m.wg.Wait()
	if c, ok := m.cfg.Checker.(interface{ Close() }); ok {
		c.Close()
	}
}
