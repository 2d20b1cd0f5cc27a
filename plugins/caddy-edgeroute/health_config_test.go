package edgeroute

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalHealthBlocks(t *testing.T) {
	var a App
	err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`edgeroute {
		health myapp {
			http /healthz 200
			interval 5s
			timeout 1s
			rise 3
			fall 2
			prefer_rtt
		}
		health rpc {
			grpc myapp.Echo
			eject_after off
		}
		health plain {
			tcp
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	h := a.Health["myapp"]
	if h == nil || h.Check != "http" || h.Path != "/healthz" || h.Status != 200 || h.Interval != caddy.Duration(5*time.Second) ||
		h.Timeout != caddy.Duration(time.Second) || h.Rise != 3 || h.Fall != 2 || !h.PreferRTT {
		t.Fatalf("myapp: %+v", h)
	}
	if g := a.Health["rpc"]; g == nil || g.Check != "grpc" || g.Service != "myapp.Echo" || g.EjectAfter != -1 {
		t.Fatalf("rpc: %+v", g)
	}
	for app, hc := range a.Health {
		if err := hc.validate(app); err != nil {
			t.Fatal(err)
		}
	}
	if p := a.Health["plain"]; p.Interval != caddy.Duration(5*time.Second) || p.Rise != 2 || p.Fall != 2 || p.checker.String() != "tcp connect" {
		t.Fatalf("defaults: %+v", p)
	}
}

func TestUnmarshalHealthErrors(t *testing.T) {
	for _, c := range []struct{ block, want string }{
		{"health {\n}", "missing app name"},
		{"health a {\n tcp\n http /x\n}", "choose one check"},
		{"health a {\n http healthz\n}", "must start with /"},
		{"health a {\n http /x 999\n}", "not an HTTP status code"},
		{"health a {\n interval soon\n}", "interval"},
		{"health a {\n rise 0\n}", "from 1 to 1000"},
		{"health a {\n bogus\n}", `unknown option "bogus"`},
		{"health a {\n tcp\n}\nhealth a {\n tcp\n}", "already has a health block"},
	} {
		var a App
		err := a.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute {\n" + c.block + "\n}"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.block, err, c.want)
		}
	}
	hc := &HealthConfig{Interval: caddy.Duration(time.Second), Timeout: caddy.Duration(2 * time.Second)}
	if err := hc.validate("a"); err == nil || !strings.Contains(err.Error(), "longer than the interval") {
		t.Errorf("timeout > interval: %v", err)
	}
}

func TestUnmarshalAPIHandler(t *testing.T) {
	var h APIHandler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute_api {\n token {env.EDGE_API_TOKEN}\n heartbeat_ttl 30s\n}")); err != nil {
		t.Fatal(err)
	}
	if h.Token != "{env.EDGE_API_TOKEN}" || h.HeartbeatTTL != caddy.Duration(30*time.Second) {
		t.Fatalf("%+v", h)
	}
	for _, bad := range []string{"edgeroute_api", "edgeroute_api {\n token\n}", "edgeroute_api {\n token x\n ttl 3s\n}", "edgeroute_api {\n token x\n heartbeat_ttl -1s\n}"} {
		var h APIHandler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
