package sixpn

import (
	"net/netip"
	"strings"
	"testing"
)

func mustPlan(t *testing.T) Plan {
	t.Helper()
	p, err := ParseNetwork("fdaa:0:1::/48")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseNetworkRefusesWhatIsNotAULA48(t *testing.T) {
	for in, want := range map[string]string{
		"fdaa:0:1::/64":  "must be a /48",
		"2001:db8::/48":  "not a unique local",
		"10.0.0.0/8":     "not an IPv6 prefix",
		"fdaa:0:1::1/48": "host bits",
		"fdaa:0:1::":     "not a prefix",
		"::ffff:0:0/48":  "not an IPv6 prefix",
	} {
		_, err := ParseNetwork(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "network") {
			t.Errorf("ParseNetwork(%q) = %v, want an error about the network containing %q", in, err, want)
		}
	}
	if _, err := ParseNetwork("fdaa:0:1::/48"); err != nil {
		t.Fatal(err)
	}
}

func TestSubnetSelfAndOwner(t *testing.T) {
	p := mustPlan(t)
	n, err := ParseSubnet("2a")
	if err != nil {
		t.Fatal(err)
	}
	sub := p.Subnet(n)
	if sub.String() != "fdaa:0:1:2a::/64" {
		t.Fatalf("subnet 2a = %s", sub)
	}
	if got := Self(sub).String(); got != "fdaa:0:1:2a::1" {
		t.Fatalf("self = %s", got)
	}
	if got, ok := p.SubnetOf(netip.MustParseAddr("fdaa:0:1:2a::99")); !ok || got != 0x2a {
		t.Fatalf("SubnetOf = %x %v", got, ok)
	}
	if _, ok := p.SubnetOf(netip.MustParseAddr("fdaa:0:2:2a::99")); ok {
		t.Fatal("an address outside the network has a subnet")
	}
	for _, bad := range []string{"", "12345", "xyz"} {
		if _, err := ParseSubnet(bad); err == nil {
			t.Errorf("ParseSubnet(%q) accepted", bad)
		}
	}
	claims := []Claim{
		{Node: "gru-1", Prefix: sub, Routes: []netip.Prefix{netip.MustParsePrefix("10.50.1.0/24")}},
		{Node: "fra-1", Prefix: p.Subnet(0x3b)},
	}
	for addr, want := range map[string]string{"fdaa:0:1:2a::10": "gru-1", "10.50.1.7": "gru-1", "fdaa:0:1:3b::1": "fra-1", "fdaa:0:1:4c::1": ""} {
		got, ok := Owner(claims, netip.MustParseAddr(addr))
		if got != want || ok != (want != "") {
			t.Errorf("Owner(%s) = %q %v, want %q", addr, got, ok, want)
		}
	}
}

func TestDeriveIsStableAndAvoidsTakenSubnets(t *testing.T) {
	p := mustPlan(t)
	a, b := Derive("gru-1", 3), Derive("gru-1", 3)
	if a[0] != b[0] || a[1] != b[1] || a[0] == a[1] {
		t.Fatalf("derive not stable or not distinct: %v %v", a, b)
	}
	first, err := p.Choose("gru-1", 0, false, netip.Prefix{}, nil)
	if err != nil || first != p.Subnet(a[0]) {
		t.Fatalf("Choose = %s %v, want %s", first, err, p.Subnet(a[0]))
	}
	// Another POP already holds the first candidate: the next one is taken.
	got, err := p.Choose("gru-1", 0, false, netip.Prefix{}, []Claim{{Node: "other", Prefix: first}})
	if err != nil || got != p.Subnet(a[1]) {
		t.Fatalf("Choose with the first taken = %s %v, want %s", got, err, p.Subnet(a[1]))
	}
	// The node's own row keeps its prefix across restarts.
	own := p.Subnet(0x77)
	got, err = p.Choose("gru-1", 0, false, own, []Claim{{Node: "gru-1", Prefix: own}})
	if err != nil || got != own {
		t.Fatalf("Choose with its own row = %s %v", got, err)
	}
	// An explicit subnet that another POP holds is an error naming it.
	_, err = p.Choose("gru-1", 0x2a, true, netip.Prefix{}, []Claim{{Node: "fra-1", Prefix: p.Subnet(0x2a)}})
	if err == nil || !strings.Contains(err.Error(), `"fra-1"`) || !strings.Contains(err.Error(), "subnet 2a") {
		t.Fatalf("clashing explicit subnet: %v", err)
	}
}

func TestColumnRoundTrip(t *testing.T) {
	p := mustPlan(t)
	col := FormatColumn(p.Subnet(0x2a), []netip.Prefix{netip.MustParsePrefix("10.50.1.0/24")})
	if col != "fdaa:0:1:2a::/64,10.50.1.0/24" {
		t.Fatalf("column %q", col)
	}
	c, err := ParseColumn("gru-1", col)
	if err != nil || c.Prefix != p.Subnet(0x2a) || len(c.Routes) != 1 || c.Routes[0].String() != "10.50.1.0/24" {
		t.Fatalf("ParseColumn = %+v %v", c, err)
	}
	if c, err := ParseColumn("x", ""); err != nil || c.Prefix.IsValid() {
		t.Fatalf("empty column = %+v %v", c, err)
	}
	if _, err := ParseColumn("x", "fdaa:0:1:2a::1/64"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("host bits accepted: %v", err)
	}
}

func TestValidateRefusesOverlapsAndForeignPrefixesNamingBothPOPs(t *testing.T) {
	p := mustPlan(t)
	v4 := netip.MustParsePrefix("10.50.1.0/24")
	claims := []Claim{
		{Node: "self", Prefix: p.Subnet(1)},
		{Node: "good", Prefix: p.Subnet(2), Routes: []netip.Prefix{v4}},
		{Node: "dup-of-self", Prefix: p.Subnet(1)},
		{Node: "foreign", Prefix: netip.MustParsePrefix("fdbb::/64")},
		{Node: "route-clash", Prefix: p.Subnet(4), Routes: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/16")}},
		{Node: "unpublished"},
	}
	ok, refused := p.Validate("self", claims, nil)
	var okNodes []string
	for _, c := range ok {
		okNodes = append(okNodes, c.Node)
	}
	if strings.Join(okNodes, ",") != "self" {
		t.Fatalf("installed %v, want only self", okNodes)
	}
	msgs := ""
	for _, r := range refused {
		msgs += r.Error() + "\n"
	}
	for _, want := range []string{
		`POP "dup-of-self": prefix fdaa:0:1:1::/64 overlaps POP "self"'s`,
		`POP "foreign": prefix fdbb::/64: not a /64 of the network fdaa:0:1::/48`,
		`POP "good": prefix 10.50.1.0/24 overlaps POP "route-clash"'s`,
		`POP "route-clash": prefix 10.50.0.0/16 overlaps POP "good"'s`,
	} {
		if !strings.Contains(msgs, want) {
			t.Errorf("refusals lack %q:\n%s", want, msgs)
		}
	}
	for _, r := range refused {
		if r.Node == "self" || r.Node == "unpublished" {
			t.Errorf("%s refused: %v", r.Node, r)
		}
	}
}

func TestSelf4(t *testing.T) {
	for in, want := range map[string]string{"10.50.1.0/24": "10.50.1.1", "10.50.1.7/32": "10.50.1.7", "fd00::/64,10.9.0.0/16": "10.9.0.1", "fd00::/64": ""} {
		var routes []netip.Prefix
		for _, f := range strings.Split(in, ",") {
			routes = append(routes, netip.MustParsePrefix(f))
		}
		got, ok := Self4(routes)
		if (want == "" && ok) || (want != "" && got.String() != want) {
			t.Errorf("Self4(%s) = %v %v, want %q", in, got, ok, want)
		}
	}
}

func TestValidateKeepsTheInstalledPOPAgainstANewcomer(t *testing.T) {
	p := mustPlan(t)
	claims := []Claim{{Node: "b", Prefix: p.Subnet(2)}, {Node: "rogue", Prefix: p.Subnet(2)}}
	ok, refused := p.Validate("self", claims, func(n string) bool { return n == "b" })
	if len(ok) != 1 || ok[0].Node != "b" || len(refused) != 1 || refused[0].Node != "rogue" || refused[0].Other != "b" {
		t.Fatalf("ok %v refused %v", ok, refused)
	}
	// Neither installed: both refused.
	ok, refused = p.Validate("self", claims, nil)
	if len(ok) != 0 || len(refused) != 2 {
		t.Fatalf("ok %v refused %v", ok, refused)
	}
}
