package internal

import (
	"strings"

	"github.com/coredns/coredns/plugin/transfer"

	"github.com/miekg/dns"
)

// Transfer implements transfer.Transferer: AXFR of one zone as the snapshot
// in use holds it. Ranked names are listed in the order a client of unknown
// location gets; a secondary serving them cannot rank per client.
func (in *Internal) Transfer(zone string, serial uint32) (<-chan []dns.RR, error) {
	s := in.snap.Load()
	if s == nil {
		return nil, transfer.ErrNotAuthoritative
	}
	z := s.zone(strings.ToLower(dns.Fqdn(zone)))
	if z == nil {
		return nil, transfer.ErrNotAuthoritative
	}
	ch := make(chan []dns.RR, 2)
	ch <- []dns.RR{z.soa}
	// IXFR from a serial at least as new: the SOA alone says "up to date".
	if serial != 0 && serial >= z.soa.Serial {
		close(ch)
		return ch, nil
	}
	go func() {
		ch <- []dns.RR{z.ns}
		for _, n := range z.axfr.list() {
			set := z.names.records(n)
			var rrs []dns.RR
			rrs = append(rrs, set.a...)
			rrs = append(rrs, set.aaaa...)
			rrs = append(rrs, set.srv...)
			rrs = append(rrs, set.txt...)
			ch <- rrs
		}
		ch <- []dns.RR{z.soa}
		close(ch)
	}()
	return ch, nil
}
