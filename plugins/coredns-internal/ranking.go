package internal

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/edgeproxy/edgeproxy/routing"

	"github.com/miekg/dns"
)

// Ranked names (an app, its regions, services and nearest names) list
// their backends best first for the client, in one order per class of
// client. Those records are written at the first query that asks for the
// name in a snapshot, not when the snapshot is built: a change to one
// backend rebuilds its app's name, the app's two in its region and its
// region's, each in up to eleven orders, and at
// a hundred changes a second most of them are never asked for before the
// next change. The names untouched by a change keep their records from
// the snapshot before, written or not.

// orders is the scorer's order of one list of serving backends for every
// class of client: unknown location, each country and each region some
// backend of the list is in. It is worked out at the first ask and shared
// by the names that list the same backends (an app and its ten nearest
// names, through the app's ranking; a region of an app and its services
// name).
type orders struct {
	once    sync.Once
	scorer  routing.Scorer
	regions routing.RegionMap

	// backends is the name's backends as planned, and down the backends
	// the health rows report down (until list is made); list, the
	// serving ones in table order, is worked out from them at the first
	// need (a query, a transfer), since most names a change builds are
	// never asked for before the next change. backends stays: the next
	// edit in place of them patches it (see listsInPlace).
	backends []*routing.Backend
	down     map[string]bool
	listOnce sync.Once
	list     []*routing.Backend

	def       []routing.Ranked
	byCountry map[string][]routing.Ranked
	byRegion  map[string][]routing.Ranked
}

// serving returns the name's serving backends, in table order.
func (o *orders) serving() []*routing.Backend {
	o.listOnce.Do(func() {
		o.list = serving(o.backends, o.down)
		o.down = nil
	})
	return o.list
}

func (o *orders) get() *orders {
	o.once.Do(func() {
		o.serving()
		o.def = o.scorer.Rank(o.list, routing.Client{})
		o.byCountry, o.byRegion = map[string][]routing.Ranked{}, map[string][]routing.Ranked{}
		for _, b := range o.list {
			if cc := b.Country; cc != "" && o.byCountry[cc] == nil {
				o.byCountry[cc] = o.scorer.Rank(o.list, routing.Client{Country: cc, Region: o.regions.Region(cc)})
			}
			if r := b.Region; r != "" && o.byRegion[r] == nil {
				o.byRegion[r] = o.scorer.Rank(o.list, routing.Client{Region: r})
			}
		}
	})
	return o
}

// targetFunc returns a backend's SRV target name and the address record of
// that name, or false when it has none. The ones a ranking keeps are safe
// for concurrent use: they read only what a published snapshot never
// changes.
type targetFunc func(*routing.Backend) (string, dns.RR, bool)

// ranking is a ranked name's records for every class of client.
type ranking struct {
	once   sync.Once
	owner  string
	ttl    uint32
	top    int // > 0: only the first top backends of each order (top<n>.nearest)
	orders *orders
	target targetFunc

	def       *rrset
	byCountry map[string]*rrset
	byRegion  map[string]*rrset

	// An app's name: the rankings of its top<n>.nearest names, made at
	// their first ask, and the target they write with (target itself
	// goes once the app's own records are written).
	near       [maxNearest]atomic.Pointer[ranking]
	nearTarget targetFunc
}

// nearest returns the ranking of the top<n>.nearest name owner of the app
// whose ranking r is: the first n backends of each of r's orders.
func (r *ranking) nearest(n int, owner string) *ranking {
	p := &r.near[n-1]
	if d := p.Load(); d != nil {
		return d
	}
	p.CompareAndSwap(nil, &ranking{owner: owner, ttl: r.ttl, top: n, orders: r.orders, target: r.nearTarget})
	return p.Load()
}

// sets writes the records at the first call.
func (r *ranking) sets() *ranking {
	r.once.Do(func() {
		o := r.orders.get()
		// One address record per backend and one SRV record per
		// backend and tier, shared by every order.
		addrs := make(map[*routing.Backend]dns.RR, len(o.list))
		srvs := map[srvKey]dns.RR{}
		write := func(order []routing.Ranked) *rrset {
			if r.top > 0 && len(order) > r.top {
				order = order[:r.top]
			}
			return writeSet(r.owner, r.ttl, order, true, addrs, srvs, r.target)
		}
		r.def = write(o.def)
		r.byCountry = make(map[string]*rrset, len(o.byCountry))
		for cc, order := range o.byCountry {
			r.byCountry[cc] = write(order)
		}
		r.byRegion = make(map[string]*rrset, len(o.byRegion))
		for region, order := range o.byRegion {
			r.byRegion[region] = write(order)
		}
		r.target = nil // what it reads can go once nothing else needs it
	})
	return r
}

// forClient returns the records for a client in country cc ("" when
// unknown).
func (r *ranking) forClient(cc string, regions routing.RegionMap) *rrset {
	r = r.sets()
	if cc != "" {
		if s := r.byCountry[cc]; s != nil {
			return s
		}
		if s := r.byRegion[regions.Region(cc)]; s != nil {
			return s
		}
	}
	return r.def
}

// hasRecords: a ranked name's default order lists every serving backend
// (a DNS server holds no connections, so none is at its hard limit).
func (r *ranking) hasRecords() bool { return len(r.orders.serving()) > 0 }

// listKey names one list of backends of a plan by its first element and
// length: the lists of a plan are never re-sliced.
type listKey struct {
	first *routing.Backend
	n     int
}

// ordersOf returns the orders of a plan's list of backends, one per list.
func (zb *zoneBuilder) ordersOf(backends []*routing.Backend) *orders {
	var k listKey
	if len(backends) > 0 {
		k = listKey{backends[0], len(backends)}
		if o := zb.orders[k]; o != nil {
			return o
		}
	}
	o := &orders{scorer: zb.cfg.scorer, regions: zb.cfg.regions, backends: backends, down: zb.down}
	if len(backends) > 0 {
		if zb.orders == nil {
			zb.orders = map[listKey]*orders{}
		}
		zb.orders[k] = o
	}
	return o
}

// ranked gives a ranked name the records it writes at the first ask.
func (zb *zoneBuilder) ranked(n *node, backends []*routing.Backend) {
	n.ranks = &ranking{owner: n.name, ttl: zb.cfg.ttl, orders: zb.ordersOf(backends), target: zb.sharedTarget()}
	if n.kind == kindApp {
		n.ranks.nearTarget = n.ranks.target
	}
}

// sharedTarget is the builder's target for records written after the
// build: it reads the plan's target names (and nothing else of the plan,
// which it would keep in memory for as long as a name is not asked for),
// and shares the target's own address record when the snapshot in service
// has it. Not the zone being built: a name keeps its target until it is
// asked for, and a zone holds every name, those built before it too, so
// every snapshot would keep every one before it.
func (zb *zoneBuilder) sharedTarget() targetFunc {
	if zb.shared != nil {
		return zb.shared
	}
	origin, rel, cfg := zb.z.origin, zb.plan.targets.target, zb.cfg
	zb.shared = func(b *routing.Backend) (string, dns.RR, bool) {
		r, ok := rel(b)
		if !ok {
			return "", nil, false
		}
		name := fqdnIn(origin, r)
		if _, ok := dns.IsDomainName(name); !ok || len(name) > 254 {
			return "", nil, false
		}
		if !b.Addr.IsValid() {
			return name, nil, true
		}
		if rr := cfg.publishedAddr(origin, name, b.Addr.Addr()); rr != nil {
			return name, rr, true
		}
		return name, addrRR(name, b.Addr.Addr(), cfg.ttl), true
	}
	return zb.shared
}

// publishedAddr is name's one address record in the zone origin of the
// snapshot in service, if that record is addr; else nil.
func (c buildConfig) publishedAddr(origin, name string, addr netip.Addr) dns.RR {
	if c.published == nil {
		return nil
	}
	s := c.published.Load()
	if s == nil {
		return nil
	}
	z := s.zone(origin)
	if z == nil {
		return nil
	}
	n := z.names.get(name)
	if n == nil || n.def == nil {
		return nil
	}
	rr := n.def.addr()
	var ip net.IP
	switch rr := rr.(type) {
	case *dns.A:
		ip = rr.A
	case *dns.AAAA:
		ip = rr.AAAA
	}
	if got, ok := netip.AddrFromSlice(ip); !ok || got.Unmap() != addr.Unmap() {
		return nil
	}
	return rr
}

// addr is the set's one address record, or nil when it has none or more.
func (s *rrset) addr() dns.RR {
	switch {
	case len(s.a) == 1 && len(s.aaaa) == 0:
		return s.a[0]
	case len(s.aaaa) == 1 && len(s.a) == 0:
		return s.aaaa[0]
	}
	return nil
}
