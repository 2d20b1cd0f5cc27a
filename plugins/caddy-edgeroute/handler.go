package edgeroute

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/relay"
	"github.com/edgeproxy/edgeproxy/routing"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Defaults of the handler.
const (
	DefaultDialTimeout = 3 * time.Second
	DefaultTries       = 3
	maxTries           = 16
)

// Handler routes each connection to the best backend of one app and proxies
// it. It dials, copies and counts connections itself: the copy is a kernel
// splice when both sides are plain TCP, and the active count of a backend
// goes down the moment its connection ends.
type Handler struct {
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

	app    *App
	scorer routing.Scorer
	stats  *appStats
	dialer net.Dialer
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "layer4.handlers.edgeroute",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision checks the options and binds the handler to the edgeroute app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.App == "" {
		return fmt.Errorf("edgeroute handler: no app name: use `edgeroute <app>`")
	}
	switch h.ProxyProtocol {
	case "", "v1", "v2":
	default:
		return fmt.Errorf("edgeroute handler: proxy_protocol %q: must be v1 or v2", h.ProxyProtocol)
	}
	if h.Tries == 0 {
		h.Tries = DefaultTries
	}
	if h.Tries < 1 || h.Tries > maxTries {
		return fmt.Errorf("edgeroute handler: tries %d: must be between 1 and %d", h.Tries, maxTries)
	}
	if h.DialTimeout == 0 {
		h.DialTimeout = caddy.Duration(DefaultDialTimeout)
	}
	if h.DialTimeout < 0 || h.IdleTimeout < 0 {
		return fmt.Errorf("edgeroute handler: timeouts must be positive")
	}
	h.dialer = net.Dialer{Timeout: time.Duration(h.DialTimeout)}

	appIface, err := ctx.App("edgeroute")
	if err != nil {
		return fmt.Errorf("edgeroute handler: %v", err)
	}
	h.app = appIface.(*App)
	h.scorer = h.app.scorerFor(h.App)
	h.stats = h.app.rt.stats.forApp(h.App)
	if len(h.app.Table().App(h.App)) == 0 {
		h.logger.Warn("app has no backends yet; its connections are refused until one is added",
			zap.String("app", h.App), zap.String("db", h.app.rt.store.Path()))
	}
	return nil
}

// Handle routes and proxies one connection.
func (h *Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	rt := h.app.rt
	tbl := rt.table.Load()
	ip := clientAddr(cx.RemoteAddr())
	client := h.app.Locate(ip)

	// A plain TCP client is relayed by the shared event-loop engine; its
	// backend is then dialled straight into the engine too.
	var eng *relay.Engine
	if _, raw := cx.Conn.(*net.TCPConn); raw {
		eng, _ = relay.Shared()
	}

	var skipBuf [maxTries]*routing.Backend
	skip := skipBuf[:0]
	for range h.Tries {
		d := h.scorer.Acquire(tbl, rt.affinity, h.App, ip, client, skip)
		b := d.Backend
		if b == nil {
			break
		}
		h.stats.decisions[d.Tier].Add(1)
		up, err := h.dial(cx, b, eng != nil)
		if err != nil {
			b.Load.Release()
			b.Load.DialFailed()
			rt.affinity.Forget(h.App, ip)
			h.logger.Warn("dial failed; trying the next backend",
				zap.String("app", h.App), zap.String("backend", b.ID),
				zap.Stringer("addr", b.Addr), zap.Error(err))
			skip = append(skip, b)
			continue
		}
		b.Load.DialSucceeded()
		backendID := b.ID
		h.proxy(cx, eng, up, func(in, out int64, err error) {
			b.Load.AddBytes(uint64(in), uint64(out))
			if out == 0 && errors.Is(err, syscall.ECONNRESET) {
				b.Load.ConnReset() // reset before sending a byte: counts against it
			}
			b.Load.Release()
			if err != nil && h.logger.Core().Enabled(zap.DebugLevel) {
				h.logger.Debug("connection ended with an error", zap.String("backend", backendID), zap.Error(err))
			}
		})
		return nil
	}
	h.stats.refused.Add(1)
	reason := "no eligible backend"
	if len(skip) > 0 {
		reason = "every backend tried failed to answer"
	}
	h.logger.Warn("connection refused: "+reason,
		zap.String("app", h.App),
		zap.String("client", ip.String()),
		zap.String("client_country", client.Country),
		zap.Int("tried", len(skip)))
	return nil
}

// upstream is a dialled backend: a raw socket for the relay engine, or a Go
// connection for copying with goroutines.
type upstream struct {
	fd   int
	conn *net.TCPConn
}

func (h *Handler) dial(cx *layer4.Connection, b *routing.Backend, forEngine bool) (upstream, error) {
	if forEngine {
		fd, err := relay.Dial(b.Addr, time.Duration(h.DialTimeout))
		return upstream{fd: fd}, err
	}
	c, err := h.dialer.DialContext(cx.Context, "tcp", b.Addr.String())
	if err != nil {
		return upstream{}, err
	}
	return upstream{fd: -1, conn: c.(*net.TCPConn)}, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	edgeroute <app> {
//		dial_timeout   <duration>
//		tries          <n>
//		proxy_protocol v1|v2
//		idle_timeout   <duration>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // handler name
	if !d.NextArg() {
		return d.Err("edgeroute: missing app name: use `edgeroute <app>`")
	}
	h.App = d.Val()
	if d.NextArg() {
		return d.Errf("edgeroute: unexpected argument %q after the app name", d.Val())
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
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
				h.DialTimeout = dur
			} else {
				h.IdleTimeout = dur
			}
		case "tries":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > maxTries {
				return d.Errf("edgeroute: tries %q: must be a number from 1 to %d", v, maxTries)
			}
			h.Tries = n
		case "proxy_protocol":
			if v != "v1" && v != "v2" {
				return d.Errf("edgeroute: proxy_protocol %q: must be v1 or v2", v)
			}
			h.ProxyProtocol = v
		default:
			return d.Errf("edgeroute: unknown option %q (known: dial_timeout, tries, proxy_protocol, idle_timeout)", opt)
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Handler)(nil)
	_ layer4.NextHandler    = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
