package bgp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/edgeproxy/edgeproxy/anycast"
)

func parse(t *testing.T, src string) (*App, error) {
	t.Helper()
	app := new(App)
	err := app.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
	return app, err
}

const full = `bgp {
	asn       65101
	router_id 198.51.100.2
	listen    off
	peer 198.51.100.1 {
		remote_as     65000
		local_address 198.51.100.2
		hold          9s
		families      ipv4 ipv6
		multihop      2
		password      s3cret
	}
	peer 2001:db8:1::1 {
		remote_as 65000
		connect_retry 2s
	}
	announce 192.0.2.1/32 2001:db8:100::1/128 {
		when     myapp min 2
		assign
		next_hop 2001:db8:1::2
		med 50
		communities 65101:100 65101:200
		large_communities 65101:1:2
		prepend 1
		rise 3
		fall 2
		announce_delay 5s
	}
	drain {
		communities 65535:0 65101:666
		wait        20s
		med         500
		prepend     2
	}
}`

func TestCaddyfileFull(t *testing.T) {
	app, err := parse(t, full)
	if err != nil {
		t.Fatal(err)
	}
	// The JSON form round-trips (what Caddy stores and loads).
	raw, err := json.Marshal(app)
	if err != nil {
		t.Fatal(err)
	}
	var back App
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	// An IPv6 prefix over an IPv4 session needs an explicit IPv6 next hop;
	// the announce block gives one, but 192.0.2.1 then has an IPv6 next
	// hop, which is refused: split into two blocks as an operator would.
	if _, err := back.core(); err == nil || !strings.Contains(err.Error(), "next_hop 2001:db8:1::2 is not of the family of 192.0.2.1/32") {
		t.Fatalf("mixed next hop: %v", err)
	}
	back.Announce = append(back.Announce, &AnnounceConfig{Prefixes: []string{"192.0.2.1/32"}, When: "myapp"})
	back.Announce[0].Prefixes = []string{"2001:db8:100::1/128"}
	c, err := back.core()
	if err != nil {
		t.Fatal(err)
	}
	p := c.Peers[0]
	if c.ASN != 65101 || c.RouterID.String() != "198.51.100.2" || c.ListenPort != 0 ||
		p.RemoteAS != 65000 || p.LocalAddress.String() != "198.51.100.2" || p.Hold != 9*time.Second ||
		len(p.Families) != 2 || p.Multihop != 2 || p.Password != "s3cret" || p.Port != 179 {
		t.Fatalf("peer 1: %+v", p)
	}
	if q := c.Peers[1]; q.Families[0] != anycast.IPv6 || q.ConnectRetry != 2*time.Second || q.Hold != 90*time.Second {
		t.Fatalf("peer 2 defaults: %+v", q)
	}
	a := c.Announces[0]
	if a.When != "myapp" || a.Min != 2 || a.Assign != "lo" || a.NextHop.String() != "2001:db8:1::2" || !a.HasMED || a.MED != 50 ||
		len(a.Communities) != 2 || a.LargeCommunities[0].String() != "65101:1:2" || a.Prepend != 1 ||
		a.Rise != 3 || a.Fall != 2 || a.AnnounceDelay != 5*time.Second {
		t.Fatalf("announce: %+v", a)
	}
	if d := c.Announces[1]; d.Min != 1 || d.Rise != 2 || d.Fall != 1 || d.AnnounceDelay != 2*time.Second || d.Assign != "" {
		t.Fatalf("announce defaults: %+v", d)
	}
	if c.Drain.Wait != 20*time.Second || len(c.Drain.Communities) != 2 || c.Drain.Communities[0] != anycast.GracefulShutdown ||
		c.Drain.MED != 500 || c.Drain.Prepend != 2 {
		t.Fatalf("drain: %+v", c.Drain)
	}
}

func TestPasswordPlaceholder(t *testing.T) {
	src := `bgp {
		asn 65101
		router_id 198.51.100.2
		peer 198.51.100.1 {
			remote_as 65000
			password {env.EDGEPROXY_TEST_BGP_PW}
		}
	}`
	t.Setenv("EDGEPROXY_TEST_BGP_PW", "from-env")
	app, err := parse(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if raw, _ := json.Marshal(app); strings.Contains(string(raw), "from-env") {
		t.Fatalf("the secret is in the JSON config: %s", raw)
	}
	c, err := app.core()
	if err != nil || c.Peers[0].Password != "from-env" {
		t.Fatalf("password %q, %v", c.Peers[0].Password, err)
	}
	t.Setenv("EDGEPROXY_TEST_BGP_PW", "")
	if _, err := app.core(); err == nil || !strings.Contains(err.Error(), "peer 198.51.100.1: password {env.EDGEPROXY_TEST_BGP_PW} is empty") {
		t.Fatalf("unset variable: %v", err)
	}
}

func TestDrainDefaults(t *testing.T) {
	app, err := parse(t, `bgp {
		asn 65101
		router_id 198.51.100.2
		peer 198.51.100.1 {
			remote_as 65000
		}
		announce 192.0.2.1/32
	}`)
	if err != nil {
		t.Fatal(err)
	}
	c, err := app.core()
	if err != nil {
		t.Fatal(err)
	}
	if c.Drain.Wait != 10*time.Second || len(c.Drain.Communities) != 1 || c.Drain.Communities[0] != anycast.GracefulShutdown {
		t.Fatalf("drain defaults: %+v", c.Drain)
	}
	if c.Announces[0].When != "" || c.Announces[0].Min != 0 {
		t.Fatalf("unconditional announce: %+v", c.Announces[0])
	}
}

// TestBadInput: each bad value is refused when the config loads, naming
// the option.
func TestBadInput(t *testing.T) {
	base := func(global, peer, announce string) string {
		return "bgp {\n" + global + "\npeer 198.51.100.1 {\n" + peer + "\n}\nannounce 192.0.2.1/32 {\n" + announce + "\n}\n}"
	}
	good := []string{"asn 65101\nrouter_id 198.51.100.2", "remote_as 65000", "when myapp"}
	cases := []struct {
		name            string
		global, peer, a string
		want            string
	}{
		{"asn zero", "asn 0\nrouter_id 198.51.100.2", "", "", "asn: AS 0 is reserved"},
		{"asn text", "asn big\nrouter_id 198.51.100.2", "", "", `asn: "big" is not an AS number`},
		{"asn too big", "asn 4294967296\nrouter_id 198.51.100.2", "", "", "asn: "},
		{"router id v6", "asn 65101\nrouter_id 2001:db8::1", "", "", "router_id: "},
		{"router id junk", "asn 65101\nrouter_id nope", "", "", "router_id: "},
		{"no remote_as", "", "hold 9s", "", "peer 198.51.100.1: remote_as is required"},
		{"remote_as bad", "", "remote_as 23456", "", "peer 198.51.100.1: remote_as: AS 23456"},
		{"prefix", "", "", "", ""},
		{"community", "", "", "communities 65536:1", "communities: \"65536:1\""},
		{"large community", "", "", "large_communities 1:2", "large_communities: \"1:2\""},
		{"duration", "", "remote_as 65000\nhold 9x", "", "hold: \"9x\" is not a duration"},
		{"hold too short", "", "remote_as 65000\nhold 1s", "", "hold must be whole seconds"},
		{"drain wait", "asn 65101\nrouter_id 198.51.100.2\ndrain {\nwait soon\n}", "", "", "drain: wait: \"soon\" is not a duration"},
		{"passive, listen off", "", "remote_as 65000\npassive", "", "passive needs a listener, but listen is off"},
		{"family", "", "remote_as 65000\nfamilies ipx", "", "families: \"ipx\" is not a family"},
		{"twice", "asn 65101\nasn 65102\nrouter_id 198.51.100.2", "", "", "asn given twice"},
		{"peer option twice", "", "remote_as 65000\nhold 9s\nhold 9s", "", "hold given twice"},
		{"when min", "", "", "when myapp min 0", "min \"0\" is not a number of at least 1"},
		{"next_hop", "", "", "next_hop nowhere", "next_hop: \"nowhere\" is not an IP address"},
		{"unknown", "asn 65101\nrouter_id 198.51.100.2\nrouterid 1.2.3.4", "", "", `unknown option "routerid"`},
		{"v6 prefix self over v4 session", "", "remote_as 65000\nfamilies ipv4 ipv6", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, p, a := good[0], good[1], good[2]
			if c.global != "" {
				g = c.global
				if !strings.Contains(g, "asn") {
					g = good[0] + "\n" + g
				}
			}
			if c.peer != "" {
				p = c.peer
			}
			if c.a != "" {
				a = c.a + "\n" + good[2]
				if strings.HasPrefix(c.a, "when") {
					a = c.a
				}
			}
			src := base(g, p, a)
			want := c.want
			switch c.name {
			case "prefix":
				src = strings.Replace(src, "192.0.2.1/32", "192.0.2.1/40", 1)
				want = `announce: "192.0.2.1/40" is not a prefix`
			case "v6 prefix self over v4 session":
				src = strings.Replace(src, "192.0.2.1/32", "192.0.2.1/32 2001:db8:100::1/128", 1)
				want = "announce 2001:db8:100::1/128: next_hop self cannot be sent over the ipv4 session to 198.51.100.1"
			}
			app, err := parse(t, src)
			if err == nil {
				_, err = app.core()
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v, want an error containing %q\n%s", err, want, src)
			}
		})
	}
}
