package routing

import "net/netip"

// Decision is the outcome of Acquire.
type Decision struct {
	Backend *Backend
	Tier    Tier
	// Sticky is true when the client's affinity binding chose the backend.
	Sticky bool
}

// Acquire chooses a backend of app for a connection from ip and takes a
// connection slot on it; the caller must Release the backend's Load when the
// connection ends. The client keeps its bound backend while that backend is
// routable and below its hard limit; otherwise the best backend is picked
// and the binding moves to it. skip lists backends that already failed for
// this connection: a retry never returns to them and never uses the binding.
// It returns a zero Decision when no backend is eligible.
func (s Scorer) Acquire(t *Table, aff *Affinity, app string, ip netip.Addr, c Client, skip []*Backend) Decision {
	if len(skip) == 0 {
		if id := aff.Get(app, ip); id != "" {
			b := t.Backend(id)
			if b != nil && b.App == app && b.Routable() && b.Load.TryAcquire(b.HardLimit) {
				return Decision{Backend: b, Tier: s.Tier(b, c), Sticky: true}
			}
		}
	}
	e := t.apps.get(app)
	if e == nil {
		return Decision{}
	}
	// Another connection can take the last slot between the pick and
	// TryAcquire; then pick again. Each failure means some backend filled
	// up, so the loop is bounded by the number of candidates.
	for range len(e.list) {
		b, tier := s.pick(e.index, c, skip)
		if b == nil {
			break
		}
		if b.Load.TryAcquire(b.HardLimit) {
			aff.Set(app, ip, b.ID)
			return Decision{Backend: b, Tier: tier}
		}
	}
	return Decision{}
}
