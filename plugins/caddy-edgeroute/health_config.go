package edgeroute

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/edgeproxy/edgeproxy/health"
	"github.com/edgeproxy/edgeproxy/pop"
)

// HealthConfig is a `health <app>` block: active health checks of one app's
// backends, the passive ejection policy and RTT-aware tie breaking.
type HealthConfig struct {
	// Check is tcp (default), http or grpc.
	Check string `json:"check,omitempty"`
	// Path and Status of an http check: GET Path must answer Status
	// (default: any 2xx or 3xx).
	Path   string `json:"path,omitempty"`
	Status int    `json:"status,omitempty"`
	// Host header of an http check; TLS makes it https (unverified).
	Host string `json:"host,omitempty"`
	TLS  bool   `json:"tls,omitempty"`
	// Service asked about by a grpc check ("" = the whole server).
	Service string `json:"service,omitempty"`
	// Interval between checks of one backend (default 5s), Timeout of one
	// check (default 1s).
	Interval caddy.Duration `json:"interval,omitempty"`
	Timeout  caddy.Duration `json:"timeout,omitempty"`
	// Rise successes bring a down backend back; Fall failures take it
	// out (defaults 2 and 2).
	Rise int `json:"rise,omitempty"`
	Fall int `json:"fall,omitempty"`
	// PreferRTT breaks ties between equally scored backends of this app
	// by the measured round-trip time instead of table order.
	PreferRTT bool `json:"prefer_rtt,omitempty"`
	// Passive ejection: EjectAfter consecutive dial failures eject a
	// backend for EjectFor, doubling on each ejection up to MaxEject
	// (defaults 3, 5s, 5m). EjectAfter -1 turns passive ejection off.
	EjectAfter int            `json:"eject_after,omitempty"`
	EjectFor   caddy.Duration `json:"eject_for,omitempty"`
	MaxEject   caddy.Duration `json:"max_eject,omitempty"`

	checker health.Checker
}

// unmarshalHealth parses, with the dispenser on the `health` token:
//
//	health <app> {
//		tcp | http <path> [<status>] | grpc [<service>]
//		interval    <duration>
//		timeout     <duration>
//		rise        <n>
//		fall        <n>
//		host        <host header>     (http)
//		tls                           (http over TLS)
//		prefer_rtt
//		eject_after <n>|off
//		eject_for   <duration>
//		max_eject   <duration>
//	}
func (a *App) unmarshalHealth(d *caddyfile.Dispenser) error {
	if !d.NextArg() {
		return d.Err("edgeroute: health: missing app name: use `health <app> { ... }`")
	}
	app := d.Val()
	if d.NextArg() {
		return d.Errf("edgeroute: health %s: unexpected argument %q", app, d.Val())
	}
	if a.Health == nil {
		a.Health = map[string]*HealthConfig{}
	}
	if _, dup := a.Health[app]; dup {
		return d.Errf("edgeroute: health %s: the app already has a health block", app)
	}
	hc := new(HealthConfig)
	kinds := 0
	seen := options{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if err := seen.once(d, "edgeroute: health "+app); err != nil {
			return err
		}
		args := d.RemainingArgs()
		bad := func(format string, v ...any) error {
			return d.Errf("edgeroute: health %s: %s: %s", app, opt, fmt.Sprintf(format, v...))
		}
		switch opt {
		case "tcp":
			kinds++
			if len(args) != 0 {
				return bad("takes no argument")
			}
			hc.Check = "tcp"
		case "http":
			kinds++
			if len(args) < 1 || len(args) > 2 {
				return bad("use `http <path> [<status>]`")
			}
			if !strings.HasPrefix(args[0], "/") {
				return bad("path %q must start with /", args[0])
			}
			hc.Check, hc.Path = "http", args[0]
			if len(args) == 2 {
				n, err := strconv.Atoi(args[1])
				if err != nil || n < 100 || n > 599 {
					return bad("status %q is not an HTTP status code", args[1])
				}
				hc.Status = n
			}
		case "grpc":
			kinds++
			if len(args) > 1 {
				return bad("use `grpc [<service>]`")
			}
			hc.Check = "grpc"
			if len(args) == 1 {
				hc.Service = args[0]
			}
		case "interval", "timeout", "eject_for", "max_eject":
			if len(args) != 1 {
				return bad("takes exactly one duration")
			}
			dur, err := parseDuration(args[0], false)
			if err != nil {
				return bad("%q: %v", args[0], err)
			}
			switch opt {
			case "interval":
				hc.Interval = dur
			case "timeout":
				hc.Timeout = dur
			case "eject_for":
				hc.EjectFor = dur
			default:
				hc.MaxEject = dur
			}
		case "rise", "fall", "eject_after":
			if len(args) != 1 {
				return bad("takes exactly one number")
			}
			if opt == "eject_after" && args[0] == "off" {
				hc.EjectAfter = -1
				continue
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 || n > 1000 {
				return bad("%q must be a number from 1 to 1000", args[0])
			}
			switch opt {
			case "rise":
				hc.Rise = n
			case "fall":
				hc.Fall = n
			default:
				hc.EjectAfter = n
			}
		case "host":
			if len(args) != 1 {
				return bad("takes exactly one host name")
			}
			hc.Host = args[0]
		case "tls", "prefer_rtt":
			if len(args) != 0 {
				return bad("takes no argument")
			}
			if opt == "tls" {
				hc.TLS = true
			} else {
				hc.PreferRTT = true
			}
		default:
			return d.Errf("edgeroute: health %s: unknown option %q (known: tcp, http, grpc, interval, timeout, rise, fall, host, tls, prefer_rtt, eject_after, eject_for, max_eject)", app, opt)
		}
	}
	if kinds > 1 {
		return d.Errf("edgeroute: health %s: choose one check: tcp, http or grpc", app)
	}
	a.Health[app] = hc
	return nil
}

// validate fills defaults and builds the checker.
func (hc *HealthConfig) validate(app string) error {
	if hc.Interval < 0 || hc.Timeout < 0 || hc.EjectFor < 0 || hc.MaxEject < 0 || hc.Rise < 0 || hc.Fall < 0 {
		return fmt.Errorf("edgeroute: health %s: durations and counts must be positive", app)
	}
	if hc.Interval == 0 {
		hc.Interval = caddy.Duration(health.DefaultInterval)
	}
	if hc.Timeout == 0 {
		hc.Timeout = caddy.Duration(min(health.DefaultTimeout, time.Duration(hc.Interval)))
	}
	if hc.Timeout > hc.Interval {
		return fmt.Errorf("edgeroute: health %s: timeout %v is longer than the interval %v", app, time.Duration(hc.Timeout), time.Duration(hc.Interval))
	}
	if hc.Rise == 0 {
		hc.Rise = health.DefaultRise
	}
	if hc.Fall == 0 {
		hc.Fall = health.DefaultFall
	}
	switch hc.Check {
	case "", "tcp":
		hc.Check = "tcp"
		hc.checker = health.TCP{}
	case "http":
		if hc.Status != 0 && (hc.Status < 100 || hc.Status > 599) {
			return fmt.Errorf("edgeroute: health %s: status %d is not an HTTP status code", app, hc.Status)
		}
		hc.checker = health.NewHTTP(hc.Path, hc.Status, hc.Host, hc.TLS)
	case "grpc":
		hc.checker = health.GRPC{Service: hc.Service, Reconnect: time.Duration(hc.Interval)}
	default:
		return fmt.Errorf("edgeroute: health %s: check %q: must be tcp, http or grpc", app, hc.Check)
	}
	return nil
}

// healthSpecs is the config's health settings as the POP runtime takes
// them. Every app in the table gets passive ejection with the defaults
// unless its block turns it off.
func (a *App) healthSpecs() map[string]pop.HealthSpec {
	specs := make(map[string]pop.HealthSpec, len(a.Health))
	for app, hc := range a.Health {
		desc, _ := json.Marshal(hc)
		spec := pop.HealthSpec{PreferRTT: hc.PreferRTT, Describe: string(desc)}
		mc := health.Config{Checker: hc.checker, Interval: time.Duration(hc.Interval), Timeout: time.Duration(hc.Timeout), Rise: hc.Rise, Fall: hc.Fall}
		spec.Monitor = &mc
		if hc.EjectAfter >= 0 {
			oc := health.OutlierConfig{Failures: hc.EjectAfter, Base: time.Duration(hc.EjectFor), Max: time.Duration(hc.MaxEject)}
			spec.Outliers = &oc
		}
		specs[app] = spec
	}
	return specs
}

func (a *App) provisionHealth(ctx caddy.Context) error {
	for app, hc := range a.Health {
		if hc == nil {
			return fmt.Errorf("edgeroute: health %s: empty configuration", app)
		}
		if err := hc.validate(app); err != nil {
			return err
		}
	}
	return registerHealthMetrics(ctx, a.rt, a.BackendMetrics)
}
