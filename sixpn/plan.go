// Package sixpn is the 6PN address plan: a deployment's ULA /48 (the
// network), one /64 per POP inside it (the subnet), the POP's own address
// ::1 of its /64, and the checks that keep the table's prefixes apart.
//
// It uses the standard library only, so the Caddy app, the CoreDNS plugin
// and tests share one reading of the plan.
package sixpn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
)

// ula is fc00::/7, the unique local range (RFC 4193). Only its fd00::/8
// half is in use, but a plan within fc00::/8 is still local, so both pass.
var ula = netip.MustParsePrefix("fc00::/7")

// Plan is one deployment's network.
type Plan struct {
	Network netip.Prefix // a ULA /48
}

// ParseNetwork reads a deployment network: a ULA /48 such as fdaa:0:1::/48.
func ParseNetwork(s string) (Plan, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return Plan{}, fmt.Errorf("network %q: not a prefix: %v", s, err)
	}
	if !p.Addr().Is6() || p.Addr().Is4In6() {
		return Plan{}, fmt.Errorf("network %q: not an IPv6 prefix", s)
	}
	if p.Bits() != 48 {
		return Plan{}, fmt.Errorf("network %q: must be a /48, not a /%d", s, p.Bits())
	}
	if !ula.Contains(p.Addr()) {
		return Plan{}, fmt.Errorf("network %q: not a unique local (fc00::/7) prefix", s)
	}
	if p.Masked() != p {
		return Plan{}, fmt.Errorf("network %q: has host bits set (the /48 is %s)", s, p.Masked())
	}
	return Plan{Network: p}, nil
}

// ParseSubnet reads a subnet number: up to four hex digits, as in the
// address (2a is fdaa:0:1:2a::/64 in fdaa:0:1::/48).
func ParseSubnet(s string) (uint16, error) {
	s = strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "0x")
	if s == "" || len(s) > 4 {
		return 0, fmt.Errorf("subnet %q: want 1 to 4 hex digits", s)
	}
	n, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("subnet %q: not hex", s)
	}
	return uint16(n), nil
}

// Subnet is the /64 of subnet number n.
func (p Plan) Subnet(n uint16) netip.Prefix {
	a := p.Network.Addr().As16()
	binary.BigEndian.PutUint16(a[6:8], n)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// SubnetOf says which subnet number holds addr, if the network does.
func (p Plan) SubnetOf(addr netip.Addr) (uint16, bool) {
	if !p.Network.Contains(addr) {
		return 0, false
	}
	a := addr.As16()
	return binary.BigEndian.Uint16(a[6:8]), true
}

// Contains reports whether prefix is one of the plan's /64s.
func (p Plan) Contains(prefix netip.Prefix) bool {
	return prefix.Bits() == 64 && p.Network.Contains(prefix.Addr()) && prefix.Masked() == prefix
}

// Self is the POP's own address in its /64: ::1.
func Self(subnet netip.Prefix) netip.Addr {
	a := subnet.Masked().Addr().As16()
	a[15] = 1
	return netip.AddrFrom16(a)
}

// Derive returns the candidate subnet numbers for a node name, first
// choice first: a stable hash of the name, then the hash of name#1, name#2
// and so on, so two POPs whose names collide still find distinct /64s by
// the same rule on every POP. Subnet 0 is skipped: it is the network's own
// address and easy to mistake for "unset".
func Derive(node string, n int) []uint16 {
	out := make([]uint16, 0, n)
	for i := 0; len(out) < n; i++ {
		h := fnv.New32a()
		h.Write([]byte(node))
		if i > 0 {
			fmt.Fprintf(h, "#%d", i)
		}
		s := h.Sum32()
		v := uint16(s>>16) ^ uint16(s)
		if v == 0 {
			continue
		}
		out = append(out, v)
	}
	return out
}

// ErrNoSubnet says every derived candidate was taken.
var ErrNoSubnet = errors.New("no free subnet among the derived candidates")

// Choose picks this node's /64. An explicit subnet (explicit true) must not
// be claimed by another POP in claims. Otherwise the node keeps the prefix
// its own row already carries (own) when that is still one of the plan's
// /64s and nobody else claims it, else it takes the first derived
// candidate no other POP claims.
func (p Plan) Choose(node string, subnet uint16, explicit bool, own netip.Prefix, claims []Claim) (netip.Prefix, error) {
	taken := func(pfx netip.Prefix) string {
		for _, c := range claims {
			if c.Node != node && c.Prefix.IsValid() && c.Prefix.Overlaps(pfx) {
				return c.Node
			}
		}
		return ""
	}
	if explicit {
		pfx := p.Subnet(subnet)
		if other := taken(pfx); other != "" {
			return netip.Prefix{}, fmt.Errorf("subnet %x (%s) is already POP %q's", subnet, pfx, other)
		}
		return pfx, nil
	}
	if own.IsValid() && p.Contains(own) && taken(own) == "" {
		return own, nil
	}
	for _, n := range Derive(node, 64) {
		if pfx := p.Subnet(n); taken(pfx) == "" {
			return pfx, nil
		}
	}
	return netip.Prefix{}, ErrNoSubnet
}

// Self4 is the POP's own IPv4 address in the mesh, when it routes IPv4
// prefixes: the first address after the network address of its first
// IPv4 route (10.50.1.1 for 10.50.1.0/24), or the address of a /32. It is
// inside the POP's allowed IPs at every other POP, so IPv4 traffic the POP
// sends into the mesh from it is accepted.
func Self4(routes []netip.Prefix) (netip.Addr, bool) {
	for _, r := range routes {
		if !r.Addr().Is4() {
			continue
		}
		if r.Bits() >= 31 {
			return r.Addr(), true
		}
		return r.Masked().Addr().Next(), true
	}
	return netip.Addr{}, false
}
