package popctl

import (
	"fmt"
	"strings"
)

// keyPlaceholder stands for the cluster key in the Caddyfile written to
// disk: the key travels through the environment, not the file.
const keyPlaceholder = "{env.EDGE_CLUSTER_KEY}"

// Caddyfile is the POP's configuration as Start writes it.
func (p *POP) Caddyfile() string {
	o := p.Opts
	var b strings.Builder
	line := func(indent int, format string, args ...any) {
		b.WriteString(strings.Repeat("\t", indent))
		fmt.Fprintf(&b, format, args...)
		b.WriteByte('\n')
	}
	// lines writes free text given by the caller verbatim (a token in
	// backquotes may span lines), indenting its first line.
	lines := func(indent int, text string) {
		if strings.TrimSpace(text) != "" {
			line(indent, "%s", text)
		}
	}
	line(0, "{")
	line(1, "admin %s", p.Admin)
	line(1, "edgeroute {")
	line(2, "db %s", p.DB)
	line(2, "node %s", o.Name)
	line(2, "region %s", o.Region)
	line(2, "country %s", o.Country)
	if o.GeoIP != "" {
		line(2, "geoip %s", o.GeoIP)
	}
	if o.WatchInterval != "" {
		line(2, "watch_interval %s", o.WatchInterval)
	}
	lines(2, o.Extra)
	if !o.NoCluster {
		line(2, "cluster {")
		line(3, "bind %s", p.ClusterAddr)
		if len(o.Join) > 0 {
			line(3, "join %s", strings.Join(o.Join, " "))
		}
		if o.Key != "" {
			line(3, "key %s", keyPlaceholder)
		}
		if o.Cluster != "" {
			line(3, "name %s", o.Cluster)
		}
		lines(3, o.ClusterExtra)
		line(2, "}")
	}
	if o.Listener {
		line(2, "listen %s {", p.Listen)
		line(3, "app %s", o.App)
		lines(3, o.Handler)
		line(2, "}")
	}
	line(1, "}")
	if !o.Listener {
		line(1, "layer4 {")
		line(2, "%s {", p.Listen)
		line(3, "route {")
		if strings.TrimSpace(o.Handler) == "" {
			line(4, "edgeroute %s", o.App)
		} else {
			line(4, "edgeroute %s {", o.App)
			lines(5, o.Handler)
			line(4, "}")
		}
		line(3, "}")
		line(2, "}")
		line(1, "}")
	}
	line(0, "}")
	b.WriteString(o.Sites)
	return b.String()
}
