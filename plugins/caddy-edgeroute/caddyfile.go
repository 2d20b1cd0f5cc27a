package edgeroute

import (
	"errors"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("edgeroute", parseGlobalOption)
}

func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("edgeroute: the global option may appear only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "edgeroute", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the `edgeroute` global option.
// Syntax:
//
//	edgeroute {
//		db             <path>
//		node           <name>
//		region         <region>
//		country        <ISO 3166 code>
//		geoip          <path to .mmdb>
//		affinity       <duration>|off
//		watch_interval <duration>
//		drain_file     <path>       # the POP drains while this file exists
//		stop_delay     <duration>   # listeners stay open this long on exit
//		backend_metrics used|all|off # which backends have series of their own
//		region_map {
//			<country> <region>
//			...
//		}
//		cluster { ... }             # see CLUSTER.md
//		health <app> { ... }        # see DISCOVERY.md
//		listen <address...> {
//			app            <app>
//			dial_timeout   <duration>
//			tries          <n>
//			proxy_protocol v1|v2
//			idle_timeout   <duration>
//		}
//	}
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := options{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "health" && opt != "listen" {
			if err := seen.once(d, "edgeroute"); err != nil {
				return err
			}
		}
		switch opt {
		case "drain_file":
			var v string
			if !d.AllArgs(&v) {
				return d.Err("edgeroute: drain_file takes exactly one path")
			}
			a.DrainFile = v
		case "backend_metrics":
			var v string
			if !d.AllArgs(&v) {
				return d.Err("edgeroute: backend_metrics takes exactly one of used, all, off")
			}
			if v != BackendMetricsUsed && v != BackendMetricsAll && v != BackendMetricsOff {
				return d.Errf("edgeroute: backend_metrics %q: want used, all or off", v)
			}
			a.BackendMetrics = v
		case "stop_delay":
			var v string
			if !d.AllArgs(&v) {
				return d.Err("edgeroute: stop_delay takes exactly one duration")
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("edgeroute: stop_delay %q: not a duration of 0 or more", v)
			}
			a.StopDelay = caddy.Duration(dur)
		case "db", "node", "region", "country", "geoip":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("edgeroute: %s takes exactly one value", opt)
			}
			switch opt {
			case "db":
				a.DB = v
			case "node":
				a.Node = v
			case "region":
				a.Region = v
			case "country":
				a.Country = v
			case "geoip":
				a.GeoIP = v
			}
		case "affinity", "watch_interval":
			var v string
			if !d.AllArgs(&v) {
				return d.Errf("edgeroute: %s takes exactly one duration", opt)
			}
			dur, err := parseDuration(v, opt == "affinity")
			if err != nil {
				return d.Errf("edgeroute: %s: %v", opt, err)
			}
			if opt == "affinity" {
				a.Affinity = dur
			} else {
				a.WatchInterval = dur
			}
		case "region_map":
			if d.NextArg() {
				return d.ArgErr()
			}
			if a.Regions == nil {
				a.Regions = map[string]string{}
			}
			countries := options{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				country := strings.ToUpper(d.Val())
				if countries[country] {
					return d.Errf("edgeroute: region_map: %s given twice", country)
				}
				countries[country] = true
				var region string
				if !d.AllArgs(&region) {
					return d.Errf("edgeroute: region_map: %s needs exactly one region", country)
				}
				a.Regions[strings.ToUpper(country)] = region
			}
		case "cluster":
			if err := a.unmarshalCluster(d); err != nil {
				return err
			}
		case "health":
			if err := a.unmarshalHealth(d); err != nil {
				return err
			}
		case "listen":
			if err := a.unmarshalListener(d); err != nil {
				return err
			}
		default:
			return d.Errf("edgeroute: unknown option %q (known: db, node, region, country, geoip, affinity, watch_interval, drain_file, stop_delay, backend_metrics, region_map, cluster, health, listen)", opt)
		}
	}
	return nil
}

// parseDuration accepts Caddy durations; "off" (where allowed) disables.
func parseDuration(s string, offAllowed bool) (caddy.Duration, error) {
	if offAllowed && (s == "off" || s == "0") {
		return caddy.Duration(-1), nil
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if dur <= 0 {
		return 0, errPositive
	}
	return caddy.Duration(dur), nil
}

var errPositive = errors.New("must be positive")

// options remembers which options a block has given: an option given twice
// is an error, as in caddy-l4, rather than the last one silently winning.
type options map[string]bool

func (o options) once(d *caddyfile.Dispenser, where string) error {
	opt := d.Val()
	if o[opt] {
		return d.Errf("%s: %s given twice", where, opt)
	}
	o[opt] = true
	return nil
}

var _ caddyfile.Unmarshaler = (*App)(nil)
