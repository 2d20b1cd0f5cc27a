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
	for d.NextBlock(0) {
		opt := d.Val()
		switch opt {
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
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				country := d.Val()
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
			return d.Errf("edgeroute: unknown option %q (known: db, node, region, country, geoip, affinity, watch_interval, region_map, cluster, health, listen)", opt)
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

var _ caddyfile.Unmarshaler = (*App)(nil)
