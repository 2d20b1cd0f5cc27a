package edgeroute

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalAppCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`edgeroute {
		db      /var/lib/edgeproxy/routing.db
		node    gru-1
		region  sa
		country BR
		geoip   /etc/edgeproxy/country.mmdb
		affinity 5m
		watch_interval 20ms
		backend_metrics all
		region_map {
			za af
			NG af
		}
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := App{DB: "/var/lib/edgeproxy/routing.db", Node: "gru-1", Region: "sa", Country: "BR",
		GeoIP: "/etc/edgeproxy/country.mmdb", Affinity: caddy.Duration(5 * time.Minute),
		WatchInterval: caddy.Duration(20 * time.Millisecond), BackendMetrics: "all", Regions: map[string]string{"ZA": "af", "NG": "af"}}
	got, _ := json.Marshal(a)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Fatalf("got  %s\nwant %s", got, exp)
	}
}

func TestUnmarshalAppAffinityOff(t *testing.T) {
	var a App
	if err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute {\n affinity off\n}")); err != nil {
		t.Fatal(err)
	}
	if a.Affinity >= 0 {
		t.Fatalf("affinity off parsed as %v", a.Affinity)
	}
}

func TestUnmarshalHandlerCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`edgeroute myapp {
		dial_timeout   2s
		tries          5
		proxy_protocol v2
		idle_timeout   5m
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if h.App != "myapp" || h.DialTimeout != caddy.Duration(2*time.Second) || h.Tries != 5 ||
		h.ProxyProtocol != "v2" || h.IdleTimeout != caddy.Duration(5*time.Minute) {
		t.Fatalf("parsed %+v", h)
	}
}

func TestUnmarshalListenBlock(t *testing.T) {
	d := caddyfile.NewTestDispenser(`edgeroute {
		region eu
		listen :8080 tcp6/[::]:8080 {
			app            myapp
			dial_timeout   2s
			tries          2
			proxy_protocol v1
			idle_timeout   1m
		}
		listen 10.0.0.1:5432 {
			app db
		}
	}`)
	var a App
	if err := a.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a.Listeners)
	want := `[{"listen":[":8080","tcp6/[::]:8080"],"app":"myapp","dial_timeout":2000000000,"tries":2,"proxy_protocol":"v1","idle_timeout":60000000000},` +
		`{"listen":["10.0.0.1:5432"],"app":"db"}]`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestUnmarshalRejectsBadInput(t *testing.T) {
	for input, want := range map[string]string{
		"edgeroute {\n db\n}":                                  "db takes exactly one value",
		"edgeroute {\n db a b\n}":                              "db takes exactly one value",
		"edgeroute extra":                                      "wrong argument count",
		"edgeroute {\n affinity -5m\n}":                        "must be positive",
		"edgeroute {\n region_map {\n FR\n }\n}":               "FR needs exactly one region",
		"edgeroute {\n cluster {\n join\n }\n}":                "join needs at least one",
		"edgeroute {\n cluster {\n name x\n }\n}":              "bind <host:port> is required",
		"edgeroute {\n cluster {\n bind a:1\n gossip x\n }\n}": `unknown option "gossip"`,
		"edgeroute {\n cluster {\n bind a:1 b:2\n }\n}":        "bind takes exactly one value",
		"edgeroute {\n cluster {\n bind a:1\n key\n }\n}":      "key needs a base64 key",
		"edgeroute {\n nodes x\n}":                             `unknown option "nodes"`,
		"edgeroute {\n backend_metrics some\n}":                `backend_metrics "some": want used, all or off`,
		"edgeroute {\n backend_metrics\n}":                     "backend_metrics takes exactly one of used, all, off",
		"edgeroute myapp other":                                `unexpected argument "other"`,
		"edgeroute myapp {\n tries many\n}":                    `tries "many"`,
		"edgeroute myapp {\n idle_timeout\n}":                  "idle_timeout takes exactly one value",
		"edgeroute myapp {\n proxy_protocol true\n}":           `proxy_protocol "true"`,
		"edgeroute myapp {\n dial_timeout 0s\n}":               "must be positive",
		"edgeroute myapp {\n bogus\n}":                         "bogus takes exactly one value",
		"edgeroute myapp {\n bogus 1\n}":                       `unknown option "bogus"`,
		"edgeroute {\n listen\n}":                              "listen needs at least one address",
		"edgeroute {\n listen :1 {\n tries 2\n }\n}":           "no app",
		"edgeroute {\n listen :1 {\n app\n }\n}":               "app takes exactly one value",
		"edgeroute {\n listen :1 {\n app a\n port 3\n }\n}":    `unknown option "port"`,
		"edgeroute {\n listen :1 {\n app a\n tries 99\n }\n}":  `tries "99"`,
	} {
		var err error
		d := caddyfile.NewTestDispenser(input)
		if strings.HasPrefix(input, "edgeroute myapp") {
			err = new(Handler).UnmarshalCaddyfile(d)
		} else {
			err = new(App).UnmarshalCaddyfile(d)
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to say %q", input, err, want)
		}
	}
}

// Whatever the tokens, parsing returns a config or an error; it never
// panics.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	f.Add("edgeroute {\n db x\n region_map {\n FR eu\n }\n}")
	f.Add("edgeroute myapp {\n tries 3\n}")
	f.Add("edgeroute {\n listen :1 {\n app a\n tries 2\n }\n}")
	f.Add("edgeroute {\n region_map {\n")
	f.Add("edgeroute {\n backend_metrics all\n stop_delay 1s\n}")
	f.Add("edgeroute_status {\n refresh 2s\n backends_per_app all\n}")
	f.Add("edgeroute_status {\n backends_per_app -1\n}")
	f.Fuzz(func(t *testing.T, input string) {
		new(App).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		new(Handler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		new(StatusHandler).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}
