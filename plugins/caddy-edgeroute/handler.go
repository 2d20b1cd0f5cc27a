package edgeroute

import (
	"fmt"
	"net"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/mholt/caddy-l4/layer4"

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
	Options

	r      *router
	dialer net.Dialer
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
	if err := h.validate("edgeroute handler"); err != nil {
		return err
	}
	h.dialer = net.Dialer{Timeout: time.Duration(h.DialTimeout)}
	appIface, err := ctx.App("edgeroute")
	if err != nil {
		return fmt.Errorf("edgeroute handler: %v", err)
	}
	h.r = appIface.(*App).router(&h.Options, ctx.Logger())
	return nil
}

// Handle routes and proxies one connection.
func (h *Handler) Handle(cx *layer4.Connection, _ layer4.Handler) error {
	ip := clientAddr(cx.RemoteAddr())
	client := h.r.app.Locate(ip)

	// A plain TCP client is relayed by the shared event-loop engine; its
	// backend is then dialled straight into the engine too.
	var eng *relay.Engine
	if _, raw := cx.Conn.(*net.TCPConn); raw {
		eng, _ = relay.Shared()
	}

	var skipBuf [maxTries]*routing.Backend
	skip := skipBuf[:0]
	for range h.Tries {
		b := h.r.acquire(ip, client, skip)
		if b == nil {
			break
		}
		up, err := h.dial(cx, b, eng != nil)
		if err != nil {
			h.r.dialFailed(b, ip, err)
			skip = append(skip, b)
			continue
		}
		b.Load.DialSucceeded()
		h.proxy(cx, eng, up, func(in, out int64, err error) { h.r.finished(b, in, out, err) })
		return nil
	}
	h.r.refuse(ip, client, len(skip))
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
	seen := options{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.once(d, "edgeroute "+h.App); err != nil {
			return err
		}
		if err := h.unmarshalOption(d, "dial_timeout, tries, proxy_protocol, idle_timeout"); err != nil {
			return err
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
