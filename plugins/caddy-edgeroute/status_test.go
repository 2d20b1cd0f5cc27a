package edgeroute

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/edgeproxy/edgeproxy/pop"
)

func TestUnmarshalStatusHandler(t *testing.T) {
	var h StatusHandler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute_status {\n refresh 2s\n}")); err != nil {
		t.Fatal(err)
	}
	if h.Refresh != caddy.Duration(2*time.Second) {
		t.Fatalf("%+v", h)
	}
	for in, want := range map[string]int{"10": 10, "all": -1} {
		var h StatusHandler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("edgeroute_status {\n backends_per_app " + in + "\n}")); err != nil || h.BackendsPerApp != want {
			t.Errorf("backends_per_app %s: %d, %v; want %d", in, h.BackendsPerApp, err, want)
		}
	}
	for bad, want := range map[string]string{
		"edgeroute_status x":                              "unexpected argument",
		"edgeroute_status {\n refresh\n}":                 "refresh takes exactly one value",
		"edgeroute_status {\n refresh 1s\n refresh 2s\n}": "refresh given twice",
		"edgeroute_status {\n every 1s\n}":                "unknown option \"every\"",
		"edgeroute_status {\n refresh soon\n}":            "refresh \"soon\"",
		"edgeroute_status {\n backends_per_app 0\n}":      "backends_per_app \"0\": want a number of 1 or more, or all",
		"edgeroute_status {\n backends_per_app some\n}":   "backends_per_app \"some\"",
	} {
		var h StatusHandler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error naming %q", bad, err, want)
		}
	}
}

// Another POP's state comes from what reaches this one of it: membership
// first, then the signal it publishes, then its replicated anycast phases.
func TestPopStateOfOtherPOPs(t *testing.T) {
	sig := pop.Signal{State: pop.Serving}
	for _, c := range []struct {
		member, anycast string
		clustered       bool
		want            string
	}{
		{"alive", "192.0.2.1/32=announced", true, "alive"},
		{"alive", "192.0.2.1/32=draining,2001:db8::1/128=announced", true, "draining"},
		{"alive", "192.0.2.1/32=withdrawn,2001:db8::1/128=withdrawn", true, "withdrawn"},
		{"dead", "192.0.2.1/32=announced", true, "dead"},
		{"suspect", "", true, "suspect"},
		{"", "", true, "not a member"},
		{"", "", false, "unknown"},
		{"", "192.0.2.1/32=draining", false, "draining"},
	} {
		p := PopStatus{Node: "fra", Member: c.member, Anycast: parseAnycast(c.anycast)}
		if got := popState(p, sig, c.clustered); got != c.want {
			t.Errorf("member %q anycast %q clustered %v: %q, want %q", c.member, c.anycast, c.clustered, got, c.want)
		}
	}
	// The signal a POP publishes in its row wins over what its anycast
	// column suggests, while it is a live member.
	for _, c := range []struct {
		member, published, anycast string
		want                       string
	}{
		{"alive", "draining", "192.0.2.1/32=announced", "draining"},
		{"alive", "serving", "192.0.2.1/32=withdrawn", "serving"},
		{"alive", "serving,stale", "", "serving (stale table)"},
		{"dead", "serving", "", "dead"},
		{"", "stopping", "", "not a member"},
	} {
		p := PopStatus{Node: "fra", Member: c.member, Published: c.published, Anycast: parseAnycast(c.anycast)}
		if got := popState(p, sig, true); got != c.want {
			t.Errorf("member %q published %q anycast %q: %q, want %q", c.member, c.published, c.anycast, got, c.want)
		}
	}
	self := PopStatus{Node: "gru", Self: true, Member: "alive"}
	if got := popState(self, pop.Signal{State: pop.Draining}, true); got != "draining" {
		t.Errorf("this POP draining shows %q", got)
	}
	if got := popState(self, pop.Signal{State: pop.Serving, Stale: true}, true); got != "serving (stale table)" {
		t.Errorf("this POP with a stale table shows %q", got)
	}
}

// The picture escapes what the table carries: a node name is data.
func TestDrawEdgeEscapes(t *testing.T) {
	svg := string(drawEdge(StatusView{Pops: []PopStatus{{Node: `<script>x</script>`, Region: "eu", State: "alive"}}}))
	if strings.Contains(svg, "<script>") || !strings.Contains(svg, "&lt;script&gt;") {
		t.Fatalf("node name not escaped: %s", svg)
	}
}

// A report is drawn without knowing its type: plain fields on one line,
// lists of objects as tables, everything escaped.
func TestRenderReport(t *testing.T) {
	type peer struct {
		Address string  `json:"address"`
		State   string  `json:"state"`
		Uptime  float64 `json:"uptime_seconds"`
	}
	got := string(renderReport(struct {
		ASN   int    `json:"asn"`
		Note  string `json:"note"`
		Peers []peer `json:"peers"`
	}{65101, "<b>", []peer{{"198.51.100.1", "established", 12}}}))
	for _, want := range []string{"<b>asn</b> 65101", "&lt;b&gt;", `<table class="report" data-report="peers">`,
		"<th>address</th><th>state</th><th>uptime_seconds</th>", "<td>198.51.100.1</td><td>established</td><td>12</td>"} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<b><") {
		t.Errorf("a value was not escaped:\n%s", got)
	}
}
