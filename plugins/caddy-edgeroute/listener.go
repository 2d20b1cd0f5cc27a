package edgeroute

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/relay"
	"github.com/edgeproxy/edgeproxy/routing"
)

// Listener is a port the app serves itself: every connection on it goes to
// one app's backends. The relay engine accepts, routes, dials and relays
// it on its event loops, with no goroutine and no hand-over between
// threads per connection, which makes new connections cheaper than
// through the layer4 app. Use it for a port that needs no layer4
// matching; behind matchers, the layer4 handler routes the same way.
type Listener struct {
	// Listen is the addresses to accept on, in Caddy's network address
	// form: ":8080", "tcp4/10.0.0.1:8080", "tcp6/[::]:8080".
	Listen []string `json:"listen"`
	Options

	addrs []caddy.NetworkAddress
	r     *router
	lns   []*relay.Listener
}

// listenerEngine is where listeners are served, on Linux.
var listenerEngine = relay.Serving

func (ls *Listener) provision(ctx caddy.Context, a *App, i int) error {
	what := fmt.Sprintf("edgeroute: listener %d", i)
	if len(ls.Listen) == 0 {
		return fmt.Errorf("%s: no address to listen on", what)
	}
	for _, addr := range ls.Listen {
		na, err := caddy.ParseNetworkAddress(addr)
		if err != nil {
			return fmt.Errorf("%s: %v", what, err)
		}
		if !isTCPNetwork(na.Network) && !caddy.IsFdNetwork(na.Network) {
			return fmt.Errorf("%s: %s: only TCP addresses can be listened on", what, addr)
		}
		ls.addrs = append(ls.addrs, na)
	}
	if err := ls.validate(what); err != nil {
		return err
	}
	ls.r = a.router(&ls.Options, ctx.Logger().With(zap.Strings("listen", ls.Listen)))
	return nil
}

// start opens the sockets. They are bound with SO_REUSEPORT, as Caddy's
// own are, so a reloaded config listens beside the one it replaces until
// that one stops.
func (ls *Listener) start() error {
	eng, err := listenerEngine()
	if err != nil {
		return fmt.Errorf("edgeroute: listen %v: %v", ls.Listen, err)
	}
	for i, na := range ls.addrs {
		for port := uint(0); port < na.PortRangeSize(); port++ {
			f, err := listenFile(na, port)
			if err != nil {
				return fmt.Errorf("edgeroute: listen %s: %v", ls.Listen[i], err)
			}
			rl, err := eng.ListenFile(f, ls.r)
			if !caddy.IsFdNetwork(na.Network) {
				f.Close() // an inherited socket stays open for the next config
			}
			if err != nil {
				return fmt.Errorf("edgeroute: listen %s: %v", ls.Listen[i], err)
			}
			ls.lns = append(ls.lns, rl)
			ls.r.logger.Info("listening", zap.String("app", ls.App), zap.Stringer("addr", rl.Addr()))
		}
	}
	return nil
}

// listenFile opens the listening socket of one port of na, as a file the
// engine takes its own descriptor from: the Go runtime never watches it.
func listenFile(na caddy.NetworkAddress, port uint) (*os.File, error) {
	if caddy.IsFdNetwork(na.Network) {
		fd, err := strconv.ParseUint(na.Host, 0, strconv.IntSize)
		if err != nil {
			return nil, fmt.Errorf("invalid file descriptor: %v", err)
		}
		return inheritedSocket(uintptr(fd), na.String()), nil
	}
	lc := net.ListenConfig{Control: reusePort}
	// Multipath TCP is Go's default for listeners; the engine relays plain
	// TCP, as the peers it is measured against do.
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), na.Network, na.JoinHostPort(port))
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	return ln.(*net.TCPListener).File()
}

func isTCPNetwork(n string) bool { return n == "tcp" || n == "tcp4" || n == "tcp6" }

var (
	inheritedMu sync.Mutex
	inherited   = map[uintptr]*os.File{}
)

// inheritedSocket wraps a descriptor the process was started with once,
// so that a reload finds it open.
func inheritedSocket(fd uintptr, name string) *os.File {
	inheritedMu.Lock()
	defer inheritedMu.Unlock()
	f, ok := inherited[fd]
	if !ok {
		f = os.NewFile(fd, name)
		inherited[fd] = f
	}
	return f
}

func (ls *Listener) stop() error {
	var errs []error
	for _, ln := range ls.lns {
		errs = append(errs, ln.Close())
	}
	ls.lns = nil
	return errors.Join(errs...)
}

// Route picks the backend for a client the engine accepted; it runs on an
// event loop.
func (r *router) Route(c *relay.Client) (relay.Target, bool) {
	ip := c.Addr.Addr().Unmap()
	client := r.app.Locate(ip)
	skip, _ := c.State.([]*routing.Backend)
	var b *routing.Backend
	if c.Tried < r.Tries {
		b = r.acquire(ip, client, skip)
	}
	if b == nil {
		r.refuse(ip, client, c.Tried)
		return relay.Target{}, false
	}
	t := relay.Target{
		Addr:        b.Addr,
		DialTimeout: time.Duration(r.DialTimeout),
		IdleTimeout: time.Duration(r.IdleTimeout),
		Done: func(res relay.Result) {
			if res.DialFailed {
				r.dialFailed(b, ip, res.Err)
				c.State = append(skip, b)
				return
			}
			// The engine does not report the handshake on its own, so a
			// backend's run of failures is ended here.
			b.Load.DialSucceeded()
			r.finished(b, res.ClientToBackend, res.BackendToClient, res.Err)
		},
	}
	if r.ProxyProtocol != "" {
		head, err := proxyHeader(r.ProxyProtocol, net.TCPAddrFromAddrPort(c.Addr), net.TCPAddrFromAddrPort(c.Local()))
		if err != nil {
			b.Load.Release()
			r.logger.Error("PROXY protocol header", zap.Error(err))
			return relay.Target{}, false
		}
		t.Head = head
	}
	return t, true
}

// unmarshalListener reads a `listen` block of the app. Syntax:
//
//	listen <address...> {
//		app            <app>
//		dial_timeout   <duration>
//		tries          <n>
//		proxy_protocol v1|v2
//		idle_timeout   <duration>
//	}
func (a *App) unmarshalListener(d *caddyfile.Dispenser) error {
	ls := &Listener{Listen: d.RemainingArgs()}
	if len(ls.Listen) == 0 {
		return d.Err("edgeroute: listen needs at least one address")
	}
	seen := options{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.once(d, "edgeroute: listen"); err != nil {
			return err
		}
		if d.Val() == "app" {
			if !d.AllArgs(&ls.App) {
				return d.Err("edgeroute: app takes exactly one value")
			}
			continue
		}
		if err := ls.unmarshalOption(d, "app, dial_timeout, tries, proxy_protocol, idle_timeout"); err != nil {
			return err
		}
	}
	if ls.App == "" {
		return d.Errf("edgeroute: listen %v: no app: add `app <name>` to the block", ls.Listen)
	}
	a.Listeners = append(a.Listeners, ls)
	return nil
}

var _ relay.Router = (*router)(nil)

// AcceptFailed reports an accept failure (out of descriptors, say): the
// loop that met it stops accepting on that socket for pause.
func (r *router) AcceptFailed(addr netip.AddrPort, err error, pause time.Duration) {
	r.logger.Error("accept failed; pausing the listener", zap.Stringer("addr", addr), zap.Error(err), zap.Duration("pause", pause))
}

var _ relay.AcceptErrorReporter = (*router)(nil)
