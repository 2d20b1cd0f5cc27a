package routing

import (
	"net/netip"
)

// Backend is one row of the backends table, resolved for routing.
type Backend struct {
	ID      string
	App     string
	Region  string
	Country string
	// Addr is the backend's address on the 6PN/WireGuard network (v1's wg_ip)
	// and its port.
	Addr    netip.AddrPort
	Healthy bool
	Deleted bool
	// Weight, SoftLimit and HardLimit as stored. Zero means what it meant in
	// v1: weight 1, soft limit 1, no hard limit. Use the Effective* methods.
	Weight    int
	SoftLimit int
	HardLimit int

	// Load is shared by every snapshot that holds this backend ID.
	Load *Load
}

// EffectiveWeight is the weight used in scoring (v1: 0 counts as 1).
func (b *Backend) EffectiveWeight() float64 {
	if b.Weight <= 0 {
		return 1
	}
	return float64(b.Weight)
}

// EffectiveSoftLimit is the divisor of the load (v1: 0 counts as 1).
func (b *Backend) EffectiveSoftLimit() float64 {
	if b.SoftLimit <= 0 {
		return 1
	}
	return float64(b.SoftLimit)
}

// Routable reports whether the backend may receive traffic at all,
// regardless of its current load: the table allows it and this POP's health
// view does not hold it down.
func (b *Backend) Routable() bool {
	return b.TableRoutable() && (b.Load == nil || !b.Load.Down())
}

// AtHardLimit reports whether the backend has no room for one more
// connection.
func (b *Backend) AtHardLimit() bool {
	return b.HardLimit > 0 && b.Load.Active() >= int64(b.HardLimit)
}

// takeLoad readies b's load for a new table that holds b: a load of its
// own if it came with none (the store gives each row its ID's), and b's
// hard limit noted in it (limitIs).
func (b *Backend) takeLoad() {
	if b.Load == nil {
		b.Load = new(Load)
	}
	b.Load.limitIs(b.HardLimit)
}
