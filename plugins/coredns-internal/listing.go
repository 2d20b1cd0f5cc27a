package internal

import (
	"sync"
	"sync/atomic"

	"github.com/edgeproxy/edgeproxy/routing"

	"github.com/miekg/dns"
)

// listing is a region's <region>.backends name: its backends' records in
// table order, one backend at a time, written at the first query that asks
// for the name in a snapshot. A change to one backend of a region of
// thousands would otherwise copy thousands of records, at every change,
// for a name few ask for.
type listing struct {
	once  sync.Once
	done  atomic.Bool // the records are written: the next build may reuse them
	owner string
	ttl   uint32
	live  routing.Rows    // every live backend of the name, table order: the next build's list starts from it
	down  map[string]bool // backends the health rows report down
	// prev is the name's records in the snapshot before the change, when
	// they had been written, and fresh the backends the change wrote:
	// every other backend keeps its records.
	prev   []backendRecs
	fresh  map[*routing.Backend]bool
	target targetFunc

	recs []backendRecs
	def  *rrset
}

func (l *listing) sets() *listing {
	l.once.Do(func() {
		list := make([]*routing.Backend, 0, l.live.Len())
		for b := range l.live.All() {
			if l.serves(b) {
				list = append(list, b)
			}
		}
		if l.prev != nil {
			l.recs = l.reuse(list)
		} else {
			l.recs = make([]backendRecs, len(list))
			for i, b := range list {
				l.recs[i] = l.write(b)
			}
		}
		l.def = recsSet(l.recs)
		l.prev, l.fresh, l.target = nil, nil, nil
		l.done.Store(true)
	})
	return l
}

// written returns the records if they have been written.
func (l *listing) written() []backendRecs {
	if l == nil || !l.done.Load() {
		return nil
	}
	return l.recs
}

func (l *listing) write(b *routing.Backend) backendRecs {
	r := backendRecs{b: b, addr: addrRR(l.owner, b.Addr.Addr(), l.ttl)}
	if target, glue, ok := l.target(b); ok {
		r.srv = &dns.SRV{Hdr: dns.RR_Header{Name: l.owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: l.ttl},
			Weight: weight(b), Port: b.Addr.Port(), Target: target}
		r.glue = glue
	}
	return r
}

// reuse pairs the serving backends with the records before the change.
// Both lists are in table order, and backends the change did not write
// keep theirs, so one pass pairs them up: an old entry that is not the next
// backend belongs to a row the change wrote, and goes.
func (l *listing) reuse(list []*routing.Backend) []backendRecs {
	recs := make([]backendRecs, 0, len(list))
	prev, j := l.prev, 0
	for _, b := range list {
		for j < len(prev) && prev[j].b != b && !l.fresh[b] {
			j++ // an old row the change rewrote or removed
		}
		if j < len(prev) && prev[j].b == b {
			recs = append(recs, prev[j])
			j++
			continue
		}
		recs = append(recs, l.write(b))
	}
	return recs
}

// serves is zoneBuilder.serving's test.
func (l *listing) serves(b *routing.Backend) bool { return b.Routable() && !l.down[b.ID] }

// hasRecords: every serving backend has an address record.
func (l *listing) hasRecords() bool {
	for b := range l.live.All() {
		if l.serves(b) {
			return true
		}
	}
	return false
}

// listed gives a <region>.backends name the records it writes at the
// first ask, reusing those of the same name before the change.
func (zb *zoneBuilder) listed(n *node, live routing.Rows) {
	l := &listing{owner: n.name, ttl: zb.cfg.ttl, live: live, down: zb.down, target: zb.sharedTarget()}
	if zb.prev != nil {
		if p := zb.prev.names.get(n.name); p != nil {
			if recs := p.list.written(); recs != nil {
				l.prev, l.fresh = recs, zb.fresh
			}
		}
	}
	n.list = l
}

// regionList returns the live backends of region r in t, derived from its
// list in the table before (old) when the rows ids changed stayed where
// they were: a row edited in place takes its old place, one that left the
// region or died goes. ok is false when a row came into the region, whose
// place in table order only a pass over the table finds.
func regionList(before routing.Rows, r string, old, t *routing.Table, ids []string) (routing.Rows, bool) {
	list := before
	for _, id := range ids {
		ob, nb := old.Backend(id), t.Backend(id)
		in := func(b *routing.Backend) bool { return b != nil && !b.Deleted && b.Region == r }
		was, is := in(ob), in(nb)
		if !was && !is {
			continue
		}
		if !was {
			return routing.Rows{}, false
		}
		at, i := -1, 0
		for b := range list.All() {
			if b == ob {
				at = i
				break
			}
			i++
		}
		switch {
		case at < 0:
			return routing.Rows{}, false
		case is:
			list = list.Edit([]int{at}, []*routing.Backend{nb}, []int{at})
		default:
			list = list.Edit([]int{at}, nil, nil)
		}
	}
	return list, true
}
