package edgeroute

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/routing"
)

// Options is what the layer4 handler and the app's own listeners share: the
// app whose backends take the connections, and how they are dialled and
// relayed.
type Options struct {
	// App is the application whose backends receive the connections.
	App string `json:"app"`
	// DialTimeout bounds each dial to a backend. Default 3s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Tries is how many backends are dialled, best first, before the
	// connection is given up. Default 3.
	Tries int `json:"tries,omitempty"`
	// ProxyProtocol sends a PROXY protocol header ("v1" or "v2") to the
	// backend so it sees the client's address.
	ProxyProtocol string `json:"proxy_protocol,omitempty"`
	// IdleTimeout closes a connection on which no byte moved in either
	// direction for this long. Default: none.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
}

// validate checks the options and fills in the defaults; what names the
// configuration being checked in errors.
func (r *Options) validate(what string) error {
	if r.App == "" {
		return fmt.Errorf("%s: no app name", what)
	}
	switch r.ProxyProtocol {
	case "", "v1", "v2":
	default:
		return fmt.Errorf("%s: proxy_protocol %q: must be v1 or v2", what, r.ProxyProtocol)
	}
	if r.Tries == 0 {
		r.Tries = DefaultTries
	}
	if r.Tries < 1 || r.Tries > maxTries {
		return fmt.Errorf("%s: tries %d: must be between 1 and %d", what, r.Tries, maxTries)
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = caddy.Duration(DefaultDialTimeout)
	}
	if r.DialTimeout < 0 || r.IdleTimeout < 0 {
		return fmt.Errorf("%s: timeouts must be positive", what)
	}
	return nil
}

// unmarshalOption reads one of the options an Options has from a Caddyfile
// block; known lists the options of the enclosing block for the error on
// an unknown one.
func (r *Options) unmarshalOption(d *caddyfile.Dispenser, known string) error {
	opt := d.Val()
	var v string
	if !d.AllArgs(&v) {
		return d.Errf("edgeroute: %s takes exactly one value", opt)
	}
	switch opt {
	case "dial_timeout", "idle_timeout":
		dur, err := parseDuration(v, false)
		if err != nil {
			return d.Errf("edgeroute: %s %q: %v", opt, v, err)
		}
		if opt == "dial_timeout" {
			r.DialTimeout = dur
		} else {
			r.IdleTimeout = dur
		}
	case "tries":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxTries {
			return d.Errf("edgeroute: tries %q: must be a number from 1 to %d", v, maxTries)
		}
		r.Tries = n
	case "proxy_protocol":
		if v != "v1" && v != "v2" {
			return d.Errf("edgeroute: proxy_protocol %q: must be v1 or v2", v)
		}
		r.ProxyProtocol = v
	default:
		return d.Errf("edgeroute: unknown option %q (known: %s)", opt, known)
	}
	return nil
}

// router is an Options bound to the running app: it picks backends and keeps
// their accounts, for the handler and for the listeners alike.
type router struct {
	*Options
	app    *App
	scorer routing.Scorer
	stats  *appStats
	logger *zap.Logger
}

func (a *App) router(r *Options, logger *zap.Logger) *router {
	rt := &router{Options: r, app: a, scorer: a.scorerFor(r.App), stats: a.rt.stats.forApp(r.App), logger: logger}
	if len(a.Table().App(r.App)) == 0 {
		logger.Warn("app has no backends yet; its connections are refused until one is added",
			zap.String("app", r.App), zap.String("db", a.rt.Store().Path()))
	}
	return rt
}

// acquire picks the best eligible backend for a client, not one in skip,
// and counts a connection on it; nil when there is none.
func (r *router) acquire(ip netip.Addr, client routing.Client, skip []*routing.Backend) *routing.Backend {
	d := r.scorer.Acquire(r.app.rt.Table(), r.app.rt.Affinity(), r.App, ip, client, skip)
	if d.Backend != nil {
		r.stats.decisions[d.Tier].Add(1)
	}
	return d.Backend
}

// dialFailed returns the connection acquire counted on b, whose dial
// failed, and moves the client's affinity off it.
func (r *router) dialFailed(b *routing.Backend, ip netip.Addr, err error) {
	b.Load.Release()
	b.Load.DialFailed()
	r.app.rt.Affinity().Forget(r.App, ip)
	r.logger.Warn("dial failed; trying the next backend",
		zap.String("app", r.App), zap.String("backend", b.ID),
		zap.Stringer("addr", b.Addr), zap.Error(err))
}

// finished accounts for a relayed connection to b that ended: in bytes
// went to the backend, out to the client.
func (r *router) finished(b *routing.Backend, in, out int64, err error) {
	b.Load.AddBytes(uint64(in), uint64(out))
	if out == 0 && errors.Is(err, syscall.ECONNRESET) {
		b.Load.ConnReset() // reset before sending a byte: counts against it
	}
	b.Load.Release()
	if err != nil && r.logger.Core().Enabled(zap.DebugLevel) {
		r.logger.Debug("connection ended with an error", zap.String("backend", b.ID), zap.Error(err))
	}
}

// refuse counts and logs a client no backend took; tried is how many
// backends failed to answer it.
func (r *router) refuse(ip netip.Addr, client routing.Client, tried int) {
	r.stats.refused.Add(1)
	reason := "no eligible backend"
	if tried > 0 {
		reason = "every backend tried failed to answer"
	}
	r.logger.Warn("connection refused: "+reason,
		zap.String("app", r.App),
		zap.String("client", ip.String()),
		zap.String("client_country", client.Country),
		zap.Int("tried", tried))
}
