package anycast

import (
	"fmt"
	"net/netip"
	"sort"
	"time"

	"github.com/edgeproxy/edgeproxy/pop"
)

// Phase is where one prefix is in its announcement.
type Phase string

const (
	// Withdrawn: not announced.
	Withdrawn Phase = "withdrawn"
	// Announced: announced with its configured attributes.
	Announced Phase = "announced"
	// Draining: announced with the drain attributes (GRACEFUL_SHUTDOWN)
	// until the drain wait ends, then withdrawn.
	Draining Phase = "draining"
)

// PrefixState is one prefix as the machine decided it.
type PrefixState struct {
	Prefix netip.Prefix `json:"prefix"`
	Phase  Phase        `json:"state"`
	// Reason says why the prefix is in Phase.
	Reason string `json:"reason"`
	// Healthy is the condition after rise/fall hysteresis.
	Healthy bool `json:"healthy"`
	// Since is when Phase last changed.
	Since time.Time `json:"since"`
	// DrainUntil is when a draining prefix is withdrawn.
	DrainUntil time.Time `json:"drain_until,omitzero"`
}

// prefixRun is the machine's memory of one prefix across configs.
type prefixRun struct {
	spec       *Announce
	configured time.Time // first configured in this process
	ok, bad    int       // consecutive observations of the condition
	healthy    bool
	phase      Phase
	reason     string
	since      time.Time
	drainStart time.Time // zero unless the POP is draining
}

// Machine decides, from the POP's signal and the clock, which prefixes are
// announced, draining or withdrawn. It is pure: no I/O, no goroutines, no
// clock of its own, so every transition is testable with plain values.
// It is not safe for concurrent use.
type Machine struct {
	wait  time.Duration
	runs  map[netip.Prefix]*prefixRun
	order []netip.Prefix
	sig   pop.Signal
	// closed: the signal's source is gone, which only happens when the
	// POP stops.
	closed bool
}

// NewMachine returns a machine with nothing configured.
func NewMachine() *Machine {
	return &Machine{runs: map[netip.Prefix]*prefixRun{}}
}

// Configure applies a config's announcements at now. Prefixes kept keep
// their state; new ones start withdrawn with their announce delay counting
// from now; removed ones are forgotten (the caller withdraws them).
func (m *Machine) Configure(now time.Time, cfg *Config) {
	m.wait = cfg.Drain.Wait
	next := map[netip.Prefix]*prefixRun{}
	m.order = m.order[:0]
	for i := range cfg.Announces {
		a := &cfg.Announces[i]
		for _, p := range a.Prefixes {
			key := p.Masked()
			r := m.runs[key]
			if r == nil {
				r = &prefixRun{configured: now, phase: Withdrawn, reason: "announce_delay", since: now}
			} else if r.spec != nil && (r.spec.When != a.When || r.spec.Min != a.Min) {
				// A new condition is observed afresh, from the state the
				// prefix is in: hysteresis counts start over.
				r.ok, r.bad = 0, 0
				if r.healthy {
					r.ok = a.Rise
				} else {
					r.bad = a.Fall
				}
			}
			r.spec = a
			next[key] = r
			m.order = append(m.order, key)
		}
	}
	sort.Slice(m.order, func(i, j int) bool { return m.order[i].String() < m.order[j].String() })
	m.runs = next
	m.decide(now)
}

// Observe takes a signal (new, or the same one again at the observation
// interval) as one observation of every condition.
func (m *Machine) Observe(now time.Time, sig pop.Signal) {
	m.sig = sig
	if !sig.Stale {
		for _, r := range m.runs {
			r.observe(sig)
		}
	}
	m.decide(now)
}

// SourceClosed records that the POP's signal ended: the POP is stopping.
func (m *Machine) SourceClosed(now time.Time) {
	m.closed = true
	m.decide(now)
}

// Advance moves time without an observation: announce delays and drain
// waits that ended take effect.
func (m *Machine) Advance(now time.Time) { m.decide(now) }

func (r *prefixRun) observe(sig pop.Signal) {
	a := r.spec
	cond := true
	if a.When != "" {
		n, _ := sig.Routable(a.When)
		cond = n >= a.Min
	}
	if cond {
		r.ok++
		r.bad = 0
		if !r.healthy && r.ok >= a.Rise {
			r.healthy = true
		}
	} else {
		r.bad++
		r.ok = 0
		if r.healthy && r.bad >= a.Fall {
			r.healthy = false
		}
	}
}

// Stopping reports whether the POP is stopping (or its signal ended).
func (m *Machine) Stopping() bool { return m.closed || m.sig.State == pop.Stopping }

// draining reports whether the POP sheds traffic, and why.
func (m *Machine) draining() (bool, string) {
	if m.closed {
		return true, "pop stopped"
	}
	switch m.sig.State {
	case pop.Draining, pop.Stopping:
		reason := "pop " + string(m.sig.State)
		if m.sig.StateReason != "" {
			reason += ": " + m.sig.StateReason
		}
		return true, reason
	}
	return false, ""
}

func (m *Machine) decide(now time.Time) {
	drain, drainWhy := m.draining()
	for _, key := range m.order {
		r := m.runs[key]
		a := r.spec
		phase, reason := Withdrawn, ""
		switch {
		case !r.healthy:
			// Unhealthy wins over draining: nothing behind the prefix
			// can serve, so there is nothing to drain gently.
			phase, reason = Withdrawn, r.unhealthyReason(m.sig)
			if drain && r.drainStart.IsZero() {
				// Withdrawn when the drain began: nothing to drain, and
				// it stays out until the drain ends.
				r.drainStart = now.Add(-m.wait)
			}
		case drain:
			if r.drainStart.IsZero() {
				r.drainStart = now
				if r.phase == Withdrawn {
					// Nothing to drain: it never goes out again until
					// the drain ends.
					r.drainStart = now.Add(-m.wait)
				}
			}
			if now.Before(r.drainStart.Add(m.wait)) {
				phase, reason = Draining, drainWhy
			} else {
				phase, reason = Withdrawn, drainWhy+" (drained)"
			}
		case now.Before(r.configured.Add(a.AnnounceDelay)):
			phase, reason = Withdrawn, "announce_delay"
		default:
			phase = Announced
			if a.When != "" {
				n, _ := m.sig.Routable(a.When)
				reason = fmt.Sprintf("%s: %d routable (min %d)", a.When, n, a.Min)
			} else {
				reason = "pop serving"
			}
			if m.sig.Stale {
				reason += "; table stale, holding"
			}
		}
		if !drain {
			r.drainStart = time.Time{}
		}
		if phase != r.phase {
			r.since = now
		}
		r.phase, r.reason = phase, reason
	}
}

func (r *prefixRun) unhealthyReason(sig pop.Signal) string {
	a := r.spec
	stale := ""
	if sig.Stale {
		stale = "; table stale, holding"
	}
	if a.When == "" {
		// Only before the first observation.
		return "waiting for the pop signal" + stale
	}
	n, ok := sig.Routable(a.When)
	if !ok && sig.Seq == 0 && sig.Changed.IsZero() {
		return "waiting for the pop signal" + stale
	}
	if n >= a.Min {
		return fmt.Sprintf("%s: %d routable (min %d), rising %d/%d", a.When, n, a.Min, r.ok, a.Rise) + stale
	}
	return fmt.Sprintf("%s: %d routable (min %d)", a.When, n, a.Min) + stale
}

// States lists every prefix, sorted.
func (m *Machine) States() []PrefixState {
	out := make([]PrefixState, 0, len(m.order))
	for _, key := range m.order {
		r := m.runs[key]
		s := PrefixState{Prefix: key, Phase: r.phase, Reason: r.reason, Healthy: r.healthy, Since: r.since}
		if r.phase == Draining {
			s.DrainUntil = r.drainStart.Add(m.wait)
		}
		out = append(out, s)
	}
	return out
}

// Spec is the announcement a prefix belongs to.
func (m *Machine) Spec(p netip.Prefix) *Announce {
	if r := m.runs[p.Masked()]; r != nil {
		return r.spec
	}
	return nil
}

// Next is the earliest time a decision changes without a new observation
// (an announce delay or a drain wait ending); zero if none.
func (m *Machine) Next() time.Time {
	var next time.Time
	drain, _ := m.draining()
	earliest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, r := range m.runs {
		if r.phase == Draining {
			earliest(r.drainStart.Add(m.wait))
		}
		if !drain && r.healthy && r.phase == Withdrawn {
			earliest(r.configured.Add(r.spec.AnnounceDelay))
		}
	}
	return next
}

// AllWithdrawn reports whether no prefix is announced or draining.
func (m *Machine) AllWithdrawn() bool {
	for _, r := range m.runs {
		if r.phase != Withdrawn {
			return false
		}
	}
	return true
}
