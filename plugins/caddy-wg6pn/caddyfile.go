package wg6pn

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("wg6pn", parseGlobalOption)
}

func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("wg6pn: the global option may appear only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "wg6pn", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the `wg6pn` global option.
// Syntax:
//
//	wg6pn {
//		network          <ULA /48>          # required, e.g. fdaa:0:1::/48
//		subnet           <hex>              # this POP's /64; default: derived from node
//		listen_port      <port>             # default 51820
//		endpoint         <host:port>        # what other POPs dial; published
//		interface        <name>             # default wg6pn0
//		mtu              <n>                # default 1420
//		keepalive        <duration>|off     # default 25s
//		private_key_file <path>             # default <data dir>/wg6pn/private.key
//		routes           <prefix>...        # IPv4 backends behind this POP (v1)
//		mode             auto|kernel|userspace
//	}
//
// Each option may be given once.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("wg6pn: %s given twice", opt)
		}
		seen[opt] = true
		args := d.RemainingArgs()
		for _, v := range args {
			if v == "{" {
				return d.Errf("wg6pn: %s takes no block", opt)
			}
		}
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("wg6pn: %s takes exactly one value", opt)
			}
			return args[0], nil
		}
		num := func() (int, error) {
			v, err := one()
			if err != nil {
				return 0, err
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, d.Errf("wg6pn: %s %q is not a number", opt, v)
			}
			return n, nil
		}
		var err error
		switch opt {
		case "network":
			a.Network, err = one()
		case "subnet":
			a.Subnet, err = one()
		case "listen_port":
			a.ListenPort, err = num()
		case "endpoint":
			a.Endpoint, err = one()
		case "interface":
			a.Interface, err = one()
		case "mtu":
			a.MTU, err = num()
		case "keepalive":
			var v string
			if v, err = one(); err == nil {
				if v == "off" {
					a.Keepalive = caddy.Duration(-1)
				} else {
					var dur time.Duration
					if dur, err = caddy.ParseDuration(v); err != nil {
						return d.Errf("wg6pn: keepalive %q: %v", v, err)
					}
					if dur <= 0 {
						return d.Errf("wg6pn: keepalive %q: positive, or off", v)
					}
					a.Keepalive = caddy.Duration(dur)
				}
			}
		case "private_key_file":
			a.PrivateKeyFile, err = one()
		case "routes":
			if len(args) == 0 {
				return d.Err("wg6pn: routes takes one or more prefixes")
			}
			a.Routes = args
		case "mode":
			a.Mode, err = one()
		default:
			return d.Errf("wg6pn: unknown option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*App)(nil)
