package anycast

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseASN reads an AS number: plain (65101) or asdot (1.10). 0 and
// AS_TRANS (23456) are refused: neither can be a speaker's own or a peer's
// AS.
func ParseASN(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	var asn uint64
	if hi, lo, ok := strings.Cut(s, "."); ok {
		h, err1 := strconv.ParseUint(hi, 10, 16)
		l, err2 := strconv.ParseUint(lo, 10, 16)
		if err1 != nil || err2 != nil {
			return 0, fmt.Errorf("%q is not an AS number", s)
		}
		asn = h<<16 | l
	} else {
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not an AS number (1 to 4294967295)", s)
		}
		asn = v
	}
	return asn32(uint32(asn))
}

func asn32(asn uint32) (uint32, error) {
	switch asn {
	case 0:
		return 0, fmt.Errorf("AS 0 is reserved")
	case 23456:
		return 0, fmt.Errorf("AS 23456 is AS_TRANS, not a usable AS number")
	}
	return asn, nil
}

// ParseRouterID reads a BGP identifier: an IPv4 address other than 0.0.0.0.
func ParseRouterID(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("%q is not an IPv4 address (a BGP identifier is 4 bytes)", s)
	}
	if a.IsUnspecified() {
		return netip.Addr{}, fmt.Errorf("0.0.0.0 is not a usable router ID")
	}
	return a, nil
}

// ParseAddr reads a unicast IPv4 or IPv6 address.
func ParseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zoned addresses are not supported", s)
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%q is not a unicast address", s)
	}
	return a, nil
}

// ParsePrefix reads an IPv4 or IPv6 prefix. The address may carry host bits
// (192.0.2.1/24): the prefix announced is the masked one, the address as
// written is the one `assign` puts on the interface.
func ParsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not a prefix (address/length)", s)
	}
	if p.Addr().Zone() != "" || p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%q is not a plain IPv4 or IPv6 prefix", s)
	}
	if p.Masked().Addr().IsUnspecified() {
		return netip.Prefix{}, fmt.Errorf("%q: a default route is not an anycast prefix", s)
	}
	return p, nil
}

// Community is a standard BGP community (RFC 1997), high:low.
type Community uint32

// GracefulShutdown is RFC 8326's GRACEFUL_SHUTDOWN community, 65535:0.
const GracefulShutdown Community = 0xFFFF0000

func (c Community) String() string { return fmt.Sprintf("%d:%d", uint32(c)>>16, uint32(c)&0xFFFF) }

// ParseCommunity reads a community as two 16-bit numbers, 65101:100.
func ParseCommunity(s string) (Community, error) {
	hi, lo, ok := strings.Cut(strings.TrimSpace(s), ":")
	h, err1 := strconv.ParseUint(hi, 10, 16)
	l, err2 := strconv.ParseUint(lo, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a community (two numbers 0-65535 as high:low)", s)
	}
	return Community(h<<16 | l), nil
}

// LargeCommunity is a large BGP community (RFC 8092), global:local1:local2.
type LargeCommunity struct{ Global, Local1, Local2 uint32 }

func (c LargeCommunity) String() string { return fmt.Sprintf("%d:%d:%d", c.Global, c.Local1, c.Local2) }

// ParseLargeCommunity reads a large community as three 32-bit numbers.
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) != 3 {
		return LargeCommunity{}, fmt.Errorf("%q is not a large community (three numbers as global:local1:local2)", s)
	}
	var v [3]uint32
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("%q is not a large community (each part 0-4294967295)", s)
		}
		v[i] = uint32(n)
	}
	return LargeCommunity{v[0], v[1], v[2]}, nil
}

// ParseFamily reads an address family name: ipv4 or ipv6.
func ParseFamily(s string) (Family, error) {
	switch f := Family(strings.ToLower(strings.TrimSpace(s))); f {
	case IPv4, IPv6:
		return f, nil
	}
	return "", fmt.Errorf("%q is not a family (ipv4 or ipv6)", s)
}
