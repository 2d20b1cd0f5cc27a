// Package internal implements the CoreDNS plugin "internal": it answers for
// the .internal zone from edgeProxy's routing table, the SQLite file the
// proxy keeps replicated between POPs. See README.md for the names served.
//
// The table is read by a watcher into an immutable snapshot of prebuilt
// records, swapped atomically. A query only reads the current snapshot: it
// does no SQLite, no cgo call and takes no lock.
package internal

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/coredns/coredns/plugin/pkg/fall"
	"github.com/coredns/coredns/request"

	"github.com/miekg/dns"
)

// Internal is the plugin handler.
type Internal struct {
	Next plugin.Handler
	Fall fall.F

	// Zones are the origins served, lower-case FQDNs.
	Zones []string

	regions routing.RegionMap
	geo     *geo.Resolver
	build   buildConfig
	snap    atomic.Pointer[snapshot]

	// Lifecycle of the table reader; see watch.go.
	db      string // path of the routing table, for logs and metrics
	store   *store.Store
	stats   store.WatchStats // how the watcher read its snapshots, for metrics
	stopped chan struct{}
	cancel  context.CancelFunc
	warned  map[string]bool
}

// Name implements plugin.Handler.
func (in *Internal) Name() string { return "internal" }

// ServeDNS implements plugin.Handler.
func (in *Internal) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) == 0 {
		return dns.RcodeFormatError, nil
	}
	q := r.Question[0]
	// ToLower returns q.Name itself when it has no upper case, so the usual
	// query allocates nothing here.
	lname := strings.ToLower(q.Name)
	snap := in.snap.Load()
	if snap == nil {
		return plugin.NextOrFailure(in.Name(), in.Next, ctx, w, r)
	}
	z := snap.match(lname)
	if z == nil {
		return plugin.NextOrFailure(in.Name(), in.Next, ctx, w, r)
	}
	switch {
	case len(r.Question) > 1:
		return dns.RcodeFormatError, nil
	case r.Opcode != dns.OpcodeQuery:
		return dns.RcodeNotImplemented, nil
	case q.Qclass != dns.ClassINET:
		return dns.RcodeRefused, nil
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		// The transfer plugin serves transfers (over TCP, to the hosts it
		// allows) before the query gets here.
		return dns.RcodeRefused, nil
	}
	ecs, ok := subnet(r)
	if !ok {
		return dns.RcodeFormatError, nil
	}

	n := z.names.get(lname)
	if n == nil {
		if in.Fall.Through(lname) {
			return plugin.NextOrFailure(in.Name(), in.Next, ctx, w, r)
		}
		in.reply(w, r, ecs, 0, nil, nil, z, dns.RcodeNameError)
		return dns.RcodeSuccess, nil
	}

	set, scope := n.unranked(), uint8(0)
	if r := z.names.rankingOf(n); r != nil {
		set = r.forClient(in.country(w, ecs), in.regions)
		// The order depends on where the client is, so the answer is only
		// valid for the client's subnet.
		if ecs != nil {
			scope = ecs.SourceNetmask
		}
	}
	var answer, extra []dns.RR
	switch q.Qtype {
	case dns.TypeA:
		answer = set.a
	case dns.TypeAAAA:
		answer = set.aaaa
	case dns.TypeSRV:
		answer, extra = set.srv, set.glue
	case dns.TypeSOA:
		if n.kind == kindApex {
			answer = []dns.RR{z.soa}
		}
	case dns.TypeNS:
		if n.kind == kindApex {
			answer, extra = []dns.RR{z.ns}, z.nsGlue
		}
	case dns.TypeTXT:
		answer = set.txt
	case dns.TypeANY:
		// Reached only without the any plugin in front (RFC 8482 answers).
		if n.kind == kindApex {
			answer = append(answer, z.soa, z.ns)
		}
		answer = append(append(append(append(answer, set.a...), set.aaaa...), set.srv...), set.txt...)
	}
	if len(answer) == 0 {
		scope = 0
	}
	in.reply(w, r, ecs, scope, answer, extra, z, dns.RcodeSuccess)
	served.add(metrics.WithServer(ctx), n.kind, len(answer))
	return dns.RcodeSuccess, nil
}

// reply writes an authoritative answer. An empty answer carries the SOA in
// the authority section: NODATA with RcodeSuccess, NXDOMAIN otherwise.
// Shared records are copied into fresh slices, so whatever later plugins do
// to the message cannot reach the snapshot's slices.
func (in *Internal) reply(w dns.ResponseWriter, r *dns.Msg, ecs *dns.EDNS0_SUBNET, scope uint8, answer, extra []dns.RR, z *zone, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	m.Authoritative = true
	// A name can list thousands of backends (<region>.backends). What
	// reaches the client is as much as fits its message size (512 bytes,
	// or its EDNS size, over UDP; 64 KB over TCP), and the server's
	// truncation takes the rest away and sets TC. No more records than
	// could fit are handed to it: packing and truncating 20,000 records
	// took 2 ms a query, a hundred ordinary answers.
	state := request.Request{W: w, Req: r}
	fit := state.Size()/minPackedRR + 1
	if len(answer) > fit {
		answer, m.Truncated = answer[:fit], true
	}
	if len(extra) > fit {
		extra = extra[:fit]
	}
	qname := r.Question[0].Name
	if len(answer) > 0 {
		m.Answer = owned(answer, qname)
	} else {
		// The SOA's owner keeps the client's spelling of the origin: the
		// tail of its question.
		soa := dns.RR(z.soa)
		if n := len(qname) - len(z.origin); n >= 0 {
			if tail := qname[n:]; tail != z.origin && strings.EqualFold(tail, z.origin) {
				soa = dns.Copy(soa)
				soa.Header().Name = tail
			}
		}
		m.Ns = []dns.RR{soa}
	}
	if len(extra) > 0 {
		m.Extra = make([]dns.RR, len(extra), len(extra)+1)
		copy(m.Extra, extra)
	}
	if ecs != nil {
		m.Extra = append(m.Extra, ecsReply(r, ecs, scope))
	}
	w.WriteMsg(m)
}

// minPackedRR is the fewest bytes a record takes in a message: a name
// compressed to a pointer, type, class, TTL and length, and no data.
const minPackedRR = 12

// owned returns the records with qname as their owner. Records are built
// with the lower-case name; a client that asked with other case (DNS 0x20)
// gets copies carrying its spelling, as resolvers that check it expect.
func owned(rrs []dns.RR, qname string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		if rr.Header().Name != qname {
			rr = dns.Copy(rr)
			rr.Header().Name = qname
		}
		out[i] = rr
	}
	return out
}

// subnet returns the query's EDNS Client Subnet option, if any, and false
// when the option is malformed (RFC 7871 section 7.1.2 asks for FORMERR):
// address bits set beyond the source prefix length.
func subnet(r *dns.Msg) (*dns.EDNS0_SUBNET, bool) {
	o := r.IsEdns0()
	if o == nil {
		return nil, true
	}
	for _, opt := range o.Option {
		e, ok := opt.(*dns.EDNS0_SUBNET)
		if !ok {
			continue
		}
		if e.Family == 0 {
			return e, true // dig's "+subnet=0": no address, source prefix 0
		}
		if p, ok := ecsPrefix(e); !ok || p.Masked().Addr() != p.Addr() {
			return nil, false
		}
		return e, true
	}
	return nil, true
}

func ecsPrefix(e *dns.EDNS0_SUBNET) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok {
		return netip.Prefix{}, false
	}
	if e.Family == 1 {
		// The option's IPv4 address arrives in its 16-byte form.
		if a = a.Unmap(); !a.Is4() {
			return netip.Prefix{}, false
		}
	}
	p := netip.PrefixFrom(a, int(e.SourceNetmask))
	return p, p.IsValid()
}

// country locates the client: by its subnet when the query carries one,
// otherwise by the address the query came from. A subnet with prefix
// length 0 is a client that asked not to be located.
func (in *Internal) country(w dns.ResponseWriter, ecs *dns.EDNS0_SUBNET) string {
	var a netip.Addr
	if ecs != nil {
		if ecs.SourceNetmask == 0 {
			return ""
		}
		a, _ = netip.AddrFromSlice(ecs.Address)
	} else {
		switch ra := w.RemoteAddr().(type) {
		case *net.UDPAddr:
			a, _ = netip.AddrFromSlice(ra.IP)
		case *net.TCPAddr:
			a, _ = netip.AddrFromSlice(ra.IP)
		}
	}
	if in.geo == nil {
		return ""
	}
	return in.geo.Country(a.Unmap())
}

// ecsReply is the OPT record of the reply, echoing the query's subnet with
// the scope the answer is valid for.
func ecsReply(r *dns.Msg, ecs *dns.EDNS0_SUBNET, scope uint8) *dns.OPT {
	req := r.IsEdns0()
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(max(req.UDPSize(), dns.MinMsgSize))
	if req.Do() {
		o.SetDo()
	}
	o.Option = []dns.EDNS0{&dns.EDNS0_SUBNET{
		Code:          dns.EDNS0SUBNET,
		Family:        ecs.Family,
		SourceNetmask: ecs.SourceNetmask,
		SourceScope:   scope,
		Address:       ecs.Address,
	}}
	return o
}
