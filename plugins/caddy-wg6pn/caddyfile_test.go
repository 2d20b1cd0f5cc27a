package wg6pn

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func parse(t *testing.T, src string) (*App, error) {
	t.Helper()
	a := new(App)
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(src))
	return a, err
}

func TestCaddyfileAsDesigned(t *testing.T) {
	a, err := parse(t, `wg6pn {
		network     fdaa:0:1::/48
		subnet      2a
		listen_port 51820
		endpoint    203.0.113.7:51820
		interface   wg6pn1
		mtu         1400
		keepalive   10s
		private_key_file /etc/edgeproxy/wg.key
		routes      10.50.1.0/24 10.50.2.0/24
		mode        userspace
	}`)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a)
	want := `{"network":"fdaa:0:1::/48","subnet":"2a","listen_port":51820,"endpoint":"203.0.113.7:51820","interface":"wg6pn1","mtu":1400,"keepalive":10000000000,"private_key_file":"/etc/edgeproxy/wg.key","routes":["10.50.1.0/24","10.50.2.0/24"],"mode":"userspace"}`
	if string(got) != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
	c := a.Config.withDefaults()
	if _, err := c.validate(); err != nil {
		t.Fatal(err)
	}
	a, err = parse(t, "wg6pn {\n network fdaa:0:1::/48\n keepalive off\n}")
	if err != nil {
		t.Fatal(err)
	}
	c = a.Config.withDefaults()
	s, err := c.validate()
	if err != nil || s.keepalive != 0 || c.Interface != "wg6pn0" || c.MTU != 1420 || c.ListenPort != 51820 || c.Mode != "auto" ||
		!strings.HasSuffix(c.PrivateKeyFile, "/wg6pn/private.key") || !strings.HasPrefix(c.PrivateKeyFile, caddy.AppDataDir()) {
		t.Fatalf("defaults: %+v %+v %v", c, s, err)
	}
}

func TestCaddyfileAndConfigErrorsNameTheOption(t *testing.T) {
	for src, want := range map[string]string{
		"wg6pn {\n network fdaa:0:1::/48\n network fdaa:0:2::/48\n}": "network given twice",
		"wg6pn {\n bogus 1\n}":       `unknown option "bogus"`,
		"wg6pn {\n mtu big\n}":       `mtu "big" is not a number`,
		"wg6pn {\n keepalive -5s\n}": "keepalive",
		"wg6pn {\n routes\n}":        "routes takes one or more prefixes",
		"wg6pn {\n endpoint a b\n}":  "endpoint takes exactly one value",
	} {
		if _, err := parse(t, src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
	for cfg, want := range map[string]string{
		`{}`:                          "network is required",
		`{"network":"fdaa:0:1::/64"}`: "must be a /48",
		`{"network":"2001:db8::/48"}`: "not a unique local",
		`{"network":"fdaa:0:1::/48","subnet":"xyz"}`:                           "subnet",
		`{"network":"fdaa:0:1::/48","endpoint":"203.0.113.7"}`:                 "endpoint",
		`{"network":"fdaa:0:1::/48","mtu":1000}`:                               "mtu 1000",
		`{"network":"fdaa:0:1::/48","mode":"fast"}`:                            `mode "fast"`,
		`{"network":"fdaa:0:1::/48","routes":["10.50.1.1/24"]}`:                "host bits",
		`{"network":"fdaa:0:1::/48","routes":["fdaa:0:1:5::/64"]}`:             "inside the network",
		`{"network":"fdaa:0:1::/48","interface":"a-very-long-interface-name"}`: "interface",
		`{"network":"fdaa:0:1::/48","listen_port":70000}`:                      "listen_port",
	} {
		var c Config
		if err := json.Unmarshal([]byte(cfg), &c); err != nil {
			t.Fatal(err)
		}
		c = c.withDefaults()
		if _, err := c.validate(); err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "wg6pn: ") {
			t.Errorf("%s: %v, want %q", cfg, err, want)
		}
	}
}
