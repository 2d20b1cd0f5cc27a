package health

import (
	"sync"
	"time"
)

// Defaults of passive outlier detection.
const (
	DefaultEjectAfter   = 3
	DefaultBaseEjection = 5 * time.Second
	DefaultMaxEjection  = 5 * time.Minute
)

// OutlierConfig says when a backend whose connections fail is ejected.
type OutlierConfig struct {
	// Failures is the number of consecutive dial failures or resets that
	// ejects a backend. Default 3.
	Failures int
	// Base is the first ejection's length; each further ejection doubles
	// it, up to Max. Default 5s and 5m.
	Base, Max time.Duration
}

func (c *OutlierConfig) defaults() {
	if c.Failures <= 0 {
		c.Failures = DefaultEjectAfter
	}
	if c.Base <= 0 {
		c.Base = DefaultBaseEjection
	}
	if c.Max < c.Base {
		c.Max = max(DefaultMaxEjection, c.Base)
	}
}

// Action is what Observe asks the caller to do.
type Action int

const (
	Keep    Action = iota // nothing changes
	Eject                 // hold the backend down until the returned time
	Readmit               // the ejection is over: let it back in, reset its failure count
)

// Outliers tracks ejections of many backends. The caller polls each
// backend's consecutive failure count (kept with atomics on the connection
// path) and applies the returned actions.
type Outliers struct {
	cfg OutlierConfig
	mu  sync.Mutex
	m   map[string]*outlier
}

type outlier struct {
	ejections int       // in the current run of trouble
	until     time.Time // zero when not ejected
	last      time.Time // when the last ejection ended
	total     uint64
}

// NewOutliers returns a tracker.
func NewOutliers(cfg OutlierConfig) *Outliers {
	cfg.defaults()
	return &Outliers{cfg: cfg, m: map[string]*outlier{}}
}

// Config returns the configuration with defaults applied.
func (o *Outliers) Config() OutlierConfig { return o.cfg }

// Observe decides about one backend given its consecutive failures now.
// allowEject false (ejecting would leave its app with no backend) delays
// an ejection. It returns the action and, for Eject, its end.
func (o *Outliers) Observe(id string, consecutive uint32, allowEject bool, now time.Time) (Action, time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.m[id]
	if s == nil {
		if consecutive == 0 {
			return Keep, time.Time{}
		}
		s = new(outlier)
		o.m[id] = s
	}
	if !s.until.IsZero() {
		if now.Before(s.until) {
			return Keep, s.until
		}
		s.until, s.last = time.Time{}, now
		return Readmit, time.Time{}
	}
	if consecutive < uint32(o.cfg.Failures) {
		// A backend that behaved for a long while starts from the base
		// ejection again.
		if s.ejections > 0 && now.Sub(s.last) > o.cfg.Max {
			s.ejections = 0
		}
		if consecutive == 0 && s.ejections == 0 {
			delete(o.m, id)
		}
		return Keep, time.Time{}
	}
	if !allowEject {
		return Keep, time.Time{}
	}
	d := o.cfg.Base << min(s.ejections, 20)
	if d > o.cfg.Max || d <= 0 {
		d = o.cfg.Max
	}
	s.ejections++
	s.total++
	s.until = now.Add(d)
	return Eject, s.until
}

// EjectionInfo describes a backend's ejection state.
type EjectionInfo struct {
	Ejected bool      `json:"ejected"`
	Until   time.Time `json:"until,omitzero"`
	// Ejections is the number in the current run of trouble (it sets the
	// next ejection's length); Total since the tracker started.
	Ejections int    `json:"ejections"`
	Total     uint64 `json:"total"`
}

// Info returns one backend's ejection state.
func (o *Outliers) Info(id string) EjectionInfo {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.m[id]
	if s == nil {
		return EjectionInfo{}
	}
	return EjectionInfo{Ejected: !s.until.IsZero(), Until: s.until, Ejections: s.ejections, Total: s.total}
}

// Forget drops backends that keep returns false for.
func (o *Outliers) Forget(keep func(id string) bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.m {
		if !keep(id) {
			delete(o.m, id)
		}
	}
}
