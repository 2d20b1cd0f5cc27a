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
