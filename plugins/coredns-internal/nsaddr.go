package internal

import (
	"net/netip"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/sixpn"
)

// The apex NS is ns.dns.<zone>, a name inside the zone, so it needs address
// records of its own: a secondary (BIND, Knot) refuses a transferred zone
// whose in-zone NS has none. Its addresses are, first found:
//
//   - the `ns` addresses of the Corefile block;
//   - the 6PN address (::1 of the /64 in the pops row) of every POP: each
//     POP runs this server on its mesh address;
//   - the host address of every POP (pops.addr);
//   - 127.0.0.1, for a table without POPs: the zone stays loadable.
func nsAddresses(cfg buildConfig, p *plan) []netip.Addr {
	switch {
	case len(cfg.nsAddrs) > 0:
		return cfg.nsAddrs
	case len(p.sixpn) > 0:
		return p.sixpn
	case len(p.popAddrs) > 0:
		return p.popAddrs
	}
	return []netip.Addr{netip.AddrFrom4([4]byte{127, 0, 0, 1})}
}

// sixpnAddrs reads each POP's own 6PN address from its prefix6 column,
// as the address plan defines it: ::1 of the POP's /64.
func sixpnAddrs(pops []routing.Pop) []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, pop := range pops {
		c, err := sixpn.ParseColumn(pop.Node, pop.Prefix6)
		if err != nil || !c.Prefix.IsValid() || !c.Prefix.Addr().Is6() || c.Prefix.Bits() != 64 {
			continue
		}
		if addr := sixpn.Self(c.Prefix); !seen[addr] {
			seen[addr] = true
			out = append(out, addr)
		}
	}
	return out
}
