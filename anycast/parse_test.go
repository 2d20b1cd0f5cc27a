package anycast

import (
	"strings"
	"testing"
)

func TestParsers(t *testing.T) {
	if asn, err := ParseASN("1.10"); err != nil || asn != 65546 {
		t.Fatalf("asdot: %d %v", asn, err)
	}
	for _, bad := range []string{"0", "23456", "4294967296", "-1", "x", "1.70000"} {
		if _, err := ParseASN(bad); err == nil {
			t.Errorf("ParseASN(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"2001:db8::1", "0.0.0.0", "300.1.1.1"} {
		if _, err := ParseRouterID(bad); err == nil {
			t.Errorf("ParseRouterID(%q) accepted", bad)
		}
	}
	if c, err := ParseCommunity("65535:0"); err != nil || c != GracefulShutdown || c.String() != "65535:0" {
		t.Fatalf("65535:0: %v %v", c, err)
	}
	for _, bad := range []string{"65536:1", "1", "a:b", "1:2:3"} {
		if _, err := ParseCommunity(bad); err == nil {
			t.Errorf("ParseCommunity(%q) accepted", bad)
		}
	}
	if c, err := ParseLargeCommunity("65101:1:4294967295"); err != nil || c.String() != "65101:1:4294967295" {
		t.Fatalf("large: %v %v", c, err)
	}
	if _, err := ParseLargeCommunity("1:2"); err == nil {
		t.Error("large community with two parts accepted")
	}
	for _, bad := range []string{"192.0.2.1", "192.0.2.0/33", "0.0.0.0/0", "::/0"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

func TestValidateNamesTheOption(t *testing.T) {
	cases := map[string]func(c *Config){
		"asn":                    func(c *Config) { c.ASN = 0 },
		"router_id":              func(c *Config) { c.RouterID = ParseMust("::1") },
		"remote_as is required":  func(c *Config) { c.Peers[0].RemoteAS = 0 },
		"passive needs":          func(c *Config) { c.Peers[0].Passive = true },
		"next_hop self cannot":   func(c *Config) { c.Peers[0].Families = []Family{IPv4, IPv6} },
		"announced twice":        func(c *Config) { c.Announces = append(c.Announces, c.Announces[0]) },
		"min must be at least 1": func(c *Config) { c.Announces[0].Min = 0 },
		"hold must be":           func(c *Config) { c.Peers[0].Hold = 1 },
	}
	for want, mutate := range cases {
		c := validConfig()
		if err := c.Validate(); err != nil {
			t.Fatalf("valid config refused: %v", err)
		}
		mutate(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v", want, err)
		}
	}
}
