package bgp

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("bgp", parseGlobalOption)
}

func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("bgp: the global option may appear only once")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "bgp", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from the `bgp` global option.
// Syntax:
//
//	bgp {
//		asn       <asn>
//		router_id <ipv4>
//		listen    off | <port> | <address>[:<port>]...
//		peer <address> {
//			remote_as     <asn>
//			local_address <address>
//			port          <port>
//			hold          <duration>            # keepalive = hold / 3
//			connect_retry <duration>
//			families      ipv4|ipv6...
//			multihop      <ttl>
//			password      <secret>              # TCP MD5
//			passive
//		}
//		announce <prefix...> {
//			when              <app> [min <n>]
//			assign            [<interface>]     # default lo
//			next_hop          self | <address>
//			med               <n>
//			communities       <high:low>...
//			large_communities <global:local1:local2>...
//			prepend           <n>
//			rise              <n>
//			fall              <n>
//			announce_delay    <duration>
//		}
//		drain {
//			communities       <high:low>...     # default 65535:0
//			large_communities <global:local1:local2>...
//			prepend           <n>
//			med               <n>
//			wait              <duration>
//		}
//	}
//
// Every option may be given once per block; peer once per address;
// announce as often as needed.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	peers := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "peer" && opt != "announce" {
			if seen[opt] {
				return d.Errf("bgp: %s given twice", opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "asn":
			v, err := oneArg(d, "asn")
			if err != nil {
				return err
			}
			a.ASN = ASN(v)
		case "router_id":
			v, err := oneArg(d, "router_id")
			if err != nil {
				return err
			}
			a.RouterID = v
		case "listen":
			a.Listen = d.RemainingArgs()
			if len(a.Listen) == 0 {
				return d.Err("bgp: listen needs off, a port or addresses")
			}
		case "peer":
			p, err := unmarshalPeer(d)
			if err != nil {
				return err
			}
			if peers[p.Address] {
				return d.Errf("bgp: peer %s given twice", p.Address)
			}
			peers[p.Address] = true
			a.Peers = append(a.Peers, p)
		case "announce":
			an, err := unmarshalAnnounce(d)
			if err != nil {
				return err
			}
			a.Announce = append(a.Announce, an)
		case "drain":
			dr, err := unmarshalDrain(d)
			if err != nil {
				return err
			}
			a.Drain = dr
		default:
			return d.Errf("bgp: unknown option %q (known: asn, router_id, listen, peer, announce, drain)", opt)
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, opt string) (string, error) {
	var v string
	if !d.AllArgs(&v) {
		return "", d.Errf("bgp: %s takes exactly one value", opt)
	}
	return v, nil
}

func intArg(d *caddyfile.Dispenser, opt string, lo, hi int) (int, error) {
	v, err := oneArg(d, opt)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, d.Errf("bgp: %s: %q is not a number from %d to %d", opt, v, lo, hi)
	}
	return n, nil
}

func durationArg(d *caddyfile.Dispenser, opt string, zeroOK bool) (caddy.Duration, error) {
	v, err := oneArg(d, opt)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("bgp: %s: %q is not a duration: %v", opt, v, err)
	}
	if dur < 0 || (dur == 0 && !zeroOK) {
		return 0, d.Errf("bgp: %s: %q must be positive", opt, v)
	}
	return caddy.Duration(dur), nil
}

func uint32Arg(d *caddyfile.Dispenser, opt string) (*uint32, error) {
	v, err := oneArg(d, opt)
	if err != nil {
		return nil, err
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return nil, d.Errf("bgp: %s: %q is not a number from 0 to 4294967295", opt, v)
	}
	u := uint32(n)
	return &u, nil
}

func listArg(d *caddyfile.Dispenser, opt string) ([]string, error) {
	vals := d.RemainingArgs()
	if len(vals) == 0 {
		return nil, d.Errf("bgp: %s needs at least one value", opt)
	}
	return vals, nil
}

func unmarshalPeer(d *caddyfile.Dispenser) (*PeerConfig, error) {
	p := new(PeerConfig)
	if !d.NextArg() {
		return nil, d.Err("bgp: peer needs an address")
	}
	p.Address = d.Val()
	if d.NextArg() {
		return nil, d.Errf("bgp: peer %s: one address per peer", p.Address)
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("bgp: peer %s: %s given twice", p.Address, opt)
		}
		seen[opt] = true
		var err error
		name := "peer " + p.Address + ": " + opt
		switch opt {
		case "remote_as":
			var v string
			v, err = oneArg(d, name)
			p.RemoteAS = ASN(v)
		case "local_address":
			p.LocalAddress, err = oneArg(d, name)
		case "port":
			p.Port, err = intArg(d, name, 1, 65535)
		case "hold":
			p.Hold, err = durationArg(d, name, false)
		case "connect_retry":
			p.ConnectRetry, err = durationArg(d, name, false)
		case "families":
			p.Families, err = listArg(d, name)
		case "multihop":
			p.Multihop, err = intArg(d, name, 1, 255)
		case "password":
			p.Password, err = oneArg(d, name)
		case "passive":
			if d.NextArg() {
				return nil, d.Errf("bgp: %s takes no value", name)
			}
			p.Passive = true
		default:
			return nil, d.Errf("bgp: peer %s: unknown option %q (known: remote_as, local_address, port, hold, connect_retry, families, multihop, password, passive)", p.Address, opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

func unmarshalAnnounce(d *caddyfile.Dispenser) (*AnnounceConfig, error) {
	an := new(AnnounceConfig)
	an.Prefixes = d.RemainingArgs()
	if len(an.Prefixes) == 0 {
		return nil, d.Err("bgp: announce needs at least one prefix")
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("bgp: announce %s: %s given twice", an.Prefixes[0], opt)
		}
		seen[opt] = true
		name := "announce " + an.Prefixes[0] + ": " + opt
		var err error
		switch opt {
		case "when":
			args := d.RemainingArgs()
			switch {
			case len(args) == 1:
				an.When = args[0]
			case len(args) == 3 && args[1] == "min":
				an.When = args[0]
				n, err := strconv.Atoi(args[2])
				if err != nil || n < 1 {
					return nil, d.Errf("bgp: %s: min %q is not a number of at least 1", name, args[2])
				}
				an.Min = n
			default:
				return nil, d.Errf("bgp: %s: syntax is when <app> [min <n>]", name)
			}
		case "assign":
			args := d.RemainingArgs()
			switch len(args) {
			case 0:
				an.Assign = "lo"
			case 1:
				an.Assign = args[0]
			default:
				return nil, d.Errf("bgp: %s takes at most one interface", name)
			}
		case "next_hop":
			an.NextHop, err = oneArg(d, name)
		case "med":
			an.MED, err = uint32Arg(d, name)
		case "communities":
			an.Communities, err = listArg(d, name)
		case "large_communities":
			an.LargeCommunities, err = listArg(d, name)
		case "prepend":
			an.Prepend, err = intArg(d, name, 0, 32)
		case "rise":
			an.Rise, err = intArg(d, name, 1, 1000)
		case "fall":
			an.Fall, err = intArg(d, name, 1, 1000)
		case "announce_delay":
			var dur caddy.Duration
			dur, err = durationArg(d, name, true)
			an.AnnounceDelay = &dur
		default:
			return nil, d.Errf("bgp: announce %s: unknown option %q (known: when, assign, next_hop, med, communities, large_communities, prepend, rise, fall, announce_delay)", an.Prefixes[0], opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return an, nil
}

func unmarshalDrain(d *caddyfile.Dispenser) (*DrainConfig, error) {
	dr := new(DrainConfig)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("bgp: drain: %s given twice", opt)
		}
		seen[opt] = true
		name := "drain: " + opt
		var err error
		switch opt {
		case "communities":
			dr.Communities, err = listArg(d, name)
		case "large_communities":
			dr.LargeCommunities, err = listArg(d, name)
		case "prepend":
			dr.Prepend, err = intArg(d, name, 0, 32)
		case "med":
			dr.MED, err = uint32Arg(d, name)
		case "wait":
			var dur caddy.Duration
			dur, err = durationArg(d, name, true)
			dr.Wait = &dur
		default:
			return nil, d.Errf("bgp: drain: unknown option %q (known: communities, large_communities, prepend, med, wait)", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return dr, nil
}

var _ caddyfile.Unmarshaler = (*App)(nil)
