package edgeroute

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalClusterBlock(t *testing.T) {
	t.Setenv("EDGE_TEST_CLUSTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	a := new(App)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`edgeroute {
		cluster {
			bind 10.50.0.1:4001
			advertise 10.50.0.1:4001
			join 10.50.0.2:4001 10.50.0.3:4001
			key  {env.EDGE_TEST_CLUSTER_KEY} AAECAwQFBgcICQoLDA0ODw==
			name prod
			sync_interval 250ms
			profile wan
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	c := a.Cluster
	if c == nil || c.Profile != "wan" || c.Bind != "10.50.0.1:4001" || c.Advertise != "10.50.0.1:4001" || len(c.Join) != 2 || c.Name != "prod" || len(c.Keys) != 2 {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.keys) != 2 || len(c.keys[0]) != 32 || len(c.keys[1]) != 16 {
		t.Fatalf("keys not decoded: %d", len(c.keys))
	}
}

// A profile other than lan or wan is refused naming the option.
func TestClusterProfileRejected(t *testing.T) {
	a := new(App)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`edgeroute {
		cluster {
			bind 127.0.0.1:4001
			profile metro
		}
	}`))
	if err == nil || !strings.Contains(err.Error(), "profile takes lan or wan") {
		t.Fatalf("error %v", err)
	}
}

func TestClusterValidateRejects(t *testing.T) {
	for want, c := range map[string]ClusterConfig{
		"use host:port":             {Bind: "nohost"},
		"bad port":                  {Bind: "1.2.3.4:99999"},
		"must be an IP address":     {Bind: ":4001", Advertise: "example.com:4001"},
		"is not base64":             {Bind: ":4001", Keys: []string{"!!!"}},
		"must be 16, 24 or 32":      {Bind: ":4001", Keys: []string{"AAEC"}},
		"environment variable set?": {Bind: ":4001", Keys: []string{"{env.EDGE_TEST_UNSET_VARIABLE}"}},
		"join \"x\": use host:port": {Bind: ":4001", Join: []string{"x"}},
		"profile \"metro\"":         {Bind: "127.0.0.1:4001", Profile: "metro"},
	} {
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: error %v, want it to say %q", c, err, want)
		}
	}
}

// A bridge block parses into the global cluster's listener, takes the
// cluster's keys, and defaults to memberlist's WAN timings.
func TestUnmarshalBridgeBlock(t *testing.T) {
	a := new(App)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`edgeroute {
		cluster {
			bind 10.50.0.1:4001
			key  AAECAwQFBgcICQoLDA0ODw==
			name eu
			bridge {
				bind 10.50.0.1:4002
				join 10.60.0.1:4002 10.70.0.1:4002
				name global
			}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	b := a.Cluster.Bridge
	if b == nil || b.Bind != "10.50.0.1:4002" || len(b.Join) != 2 || b.Name != "global" {
		t.Fatalf("parsed %+v", b)
	}
	if err := a.Cluster.validate(); err != nil {
		t.Fatal(err)
	}
	pc := a.Cluster.popConfig()
	if pc.Bridge == nil || pc.Bridge.Profile != "wan" || pc.Bridge.Name != "global" || len(pc.Keys) != 1 {
		t.Fatalf("as the runtime takes it: %+v %+v", pc, pc.Bridge)
	}
}

func TestBridgeRejects(t *testing.T) {
	for want, src := range map[string]string{
		"unknown option \"key\"":               "bind 127.0.0.1:4002\n name g\n key x",
		"bridge: join needs":                   "bind 127.0.0.1:4002\n name g\n join",
		"bridge takes a block":                 "",
		"bind given twice":                     "bind 127.0.0.1:4002\n bind 127.0.0.1:4003\n name g",
		"bridge: bind <host:port> is":          "name g",
		"bridge: bind \"x\"":                   "bind x\n name g",
		"the cluster's own listener":           "bind 127.0.0.1:4001\n name g",
		"other than the region's (\"eu\")":     "bind 127.0.0.1:4002\n name eu",
		"bridge: profile \"metro\"":            "bind 127.0.0.1:4002\n name g\n profile metro",
		"bind 10.9.9.9:4002 is not a loopback": "bind 10.9.9.9:4002\n name g",
	} {
		block := "bridge {\n" + src + "\n}"
		if src == "" {
			block = "bridge 127.0.0.1:4002"
		}
		a := new(App)
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute {\n cluster {\n bind 127.0.0.1:4001\n name eu\n " + block + "\n }\n}"))
		if err == nil {
			err = a.Cluster.validate()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", src, err, want)
		}
	}
}
