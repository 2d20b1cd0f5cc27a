package sixpn

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Claim is what one POP's row says it holds: its /64 and the IPv4 (or
// other) prefixes routed behind it.
type Claim struct {
	Node   string
	Prefix netip.Prefix   // the POP's 6PN /64
	Routes []netip.Prefix // extra prefixes behind the POP (v1's 10.50.x.x)
}

// Prefixes is the claim's /64 followed by its routes: the allowed IPs of
// the POP's peer entry.
func (c Claim) Prefixes() []netip.Prefix {
	out := make([]netip.Prefix, 0, 1+len(c.Routes))
	if c.Prefix.IsValid() {
		out = append(out, c.Prefix)
	}
	return append(out, c.Routes...)
}

// FormatColumn writes a claim as the pops row's prefix6 column carries it:
// the /64 first, then the routes, comma separated
// ("fdaa:0:1:2a::/64,10.50.1.0/24").
func FormatColumn(prefix netip.Prefix, routes []netip.Prefix) string {
	parts := []string{prefix.String()}
	for _, r := range routes {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ",")
}

// ParseColumn reads a prefix6 column. An empty column is a POP that has not
// published a prefix yet: a zero claim and no error.
func ParseColumn(node, col string) (Claim, error) {
	c := Claim{Node: node}
	col = strings.TrimSpace(col)
	if col == "" {
		return c, nil
	}
	for i, f := range strings.FieldsFunc(col, func(r rune) bool { return r == ',' || r == ' ' }) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return c, fmt.Errorf("POP %q: prefix6 %q: %v", node, f, err)
		}
		if p.Masked() != p {
			return c, fmt.Errorf("POP %q: prefix6 %q has host bits set", node, f)
		}
		if i == 0 {
			c.Prefix = p
		} else {
			c.Routes = append(c.Routes, p)
		}
	}
	return c, nil
}

// Refusal says why a POP's claim is not installed. Other names the second
// POP of an overlap; it is empty for a foreign prefix.
type Refusal struct {
	Node   string
	Other  string
	Prefix netip.Prefix
	Reason string
}

func (r Refusal) Error() string {
	if r.Other != "" {
		return fmt.Sprintf("POP %q: prefix %s overlaps POP %q's: %s", r.Node, r.Prefix, r.Other, r.Reason)
	}
	return fmt.Sprintf("POP %q: prefix %s: %s", r.Node, r.Prefix, r.Reason)
}

// Validate splits claims into those safe to install and the refused ones.
// A /64 outside the plan is foreign. Of two claims that overlap (their /64s
// or routes), one held by self or by an installed POP (installed reports
// which are, nil for none) wins and the other is refused, naming it: a new
// row cannot take addresses from a POP already meshed. When neither or
// both are installed, both are refused, each naming the other, since
// neither can be trusted to own the addresses. Claims with no prefix are
// left out silently: that POP has not published one yet. The result is
// sorted by node.
func (p Plan) Validate(self string, claims []Claim, installed func(node string) bool) (ok []Claim, refused []Refusal) {
	held := func(node string) bool { return node == self || (installed != nil && installed(node)) }
	bad := make(map[string]bool)
	for _, c := range claims {
		if !c.Prefix.IsValid() {
			continue
		}
		if !p.Contains(c.Prefix) {
			refused = append(refused, Refusal{Node: c.Node, Prefix: c.Prefix,
				Reason: fmt.Sprintf("not a /64 of the network %s", p.Network)})
			bad[c.Node] = true
			continue
		}
		for _, r := range c.Routes {
			if r.Addr().Is6() && p.Network.Overlaps(r) {
				refused = append(refused, Refusal{Node: c.Node, Prefix: r,
					Reason: fmt.Sprintf("a route inside the network %s", p.Network)})
				bad[c.Node] = true
			}
		}
	}
	for i, a := range claims {
		if !a.Prefix.IsValid() {
			continue
		}
		for _, b := range claims[i+1:] {
			if !b.Prefix.IsValid() || a.Node == b.Node {
				continue
			}
			pa, pb, overlap := firstOverlap(a.Prefixes(), b.Prefixes())
			if !overlap {
				continue
			}
			ha, hb := held(a.Node), held(b.Node)
			if a.Node != self && (!ha || hb) {
				refused = append(refused, Refusal{Node: a.Node, Other: b.Node, Prefix: pa, Reason: fmt.Sprintf("%s is claimed by both", pb)})
				bad[a.Node] = true
			}
			if b.Node != self && (!hb || ha) {
				refused = append(refused, Refusal{Node: b.Node, Other: a.Node, Prefix: pb, Reason: fmt.Sprintf("%s is claimed by both", pa)})
				bad[b.Node] = true
			}
		}
	}
	for _, c := range claims {
		if c.Prefix.IsValid() && !bad[c.Node] {
			ok = append(ok, c)
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].Node < ok[j].Node })
	return ok, refused
}

func firstOverlap(a, b []netip.Prefix) (netip.Prefix, netip.Prefix, bool) {
	for _, x := range a {
		for _, y := range b {
			if x.Overlaps(y) {
				return x, y, true
			}
		}
	}
	return netip.Prefix{}, netip.Prefix{}, false
}

// Owner says which claim holds addr: the one whose /64 or route contains
// it, the most specific first.
func Owner(claims []Claim, addr netip.Addr) (string, bool) {
	best, bits := "", -1
	for _, c := range claims {
		for _, p := range c.Prefixes() {
			if p.Contains(addr) && p.Bits() > bits {
				best, bits = c.Node, p.Bits()
			}
		}
	}
	return best, bits >= 0
}
