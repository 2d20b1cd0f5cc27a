package bgp

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/anycast"
	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/store"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App announces this POP's anycast prefixes over BGP while the POP can
// serve them, and drains and withdraws them when it cannot. The BGP
// speaker is one per process (anycast.Process): a reload applies the new
// config to it as a difference.
type App struct {
	// ASN is this POP's AS number.
	ASN ASN `json:"asn"`
	// RouterID is the BGP identifier, an IPv4 address.
	RouterID string `json:"router_id"`
	// Listen is where passive sessions are accepted: "off" (default; the
	// POP dials its peers), a port, addresses, or address:port.
	Listen []string `json:"listen,omitempty"`
	// Peers are the BGP neighbours.
	Peers []*PeerConfig `json:"peers,omitempty"`
	// Announce are the anycast prefixes.
	Announce []*AnnounceConfig `json:"announce,omitempty"`
	// Drain is how prefixes leave when the POP drains or stops.
	Drain *DrainConfig `json:"drain,omitempty"`

	cfg     anycast.Config
	pop     pop.POP
	mgr     *anycast.Manager
	handle  anycast.Handle
	release func()
	logger  *zap.Logger
	// unreport removes the speaker's section of the POP's status page.
	unreport func()
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "bgp",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision checks the config and finds the POP. Every problem with the
// config is reported here, when it loads.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.mgr = anycast.Process()
	cfg, err := a.core()
	if err != nil {
		return fmt.Errorf("bgp: %v", err)
	}
	a.cfg = cfg
	app, err := ctx.AppIfConfigured("edgeroute")
	if err != nil {
		return fmt.Errorf("bgp: the bgp app follows the POP of the edgeroute app, which is not configured: %v", err)
	}
	p, ok := app.(pop.POP)
	if !ok {
		return fmt.Errorf("bgp: the edgeroute app (%T) does not provide the POP interface", app)
	}
	a.pop = p
	known := map[string]bool{}
	for _, n := range p.Table().Apps() {
		known[n] = true
	}
	for n := range p.Signal().Apps.All() {
		known[n] = true
	}
	for _, n := range a.mgr.KnownApps() {
		known[n] = true
	}
	for _, an := range cfg.Announces {
		if an.When != "" && !known[an.When] {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return fmt.Errorf("bgp: announce %s: when %s: the routing table has no app %q (it has %v); a condition on an unknown app would never announce",
				an.Prefixes[0], an.When, an.When, names)
		}
	}
	return registerMetrics(ctx, a.mgr)
}

// Start applies the config to the process's speaker and holds the POP's
// listeners open, when it stops, until the prefixes are drained.
func (a *App) Start() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := a.pop
	node := p.Identity().Node
	logger := a.logger
	h, err := a.mgr.Apply(ctx, a.cfg, p, anycast.Options{
		Logger: logger,
		Publish: func(state string) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.SetPop(ctx, store.PopUpdate{Anycast: store.Str(state)}); err != nil {
				logger.Warn("recording the anycast state in the pops row", zap.String("node", node), zap.Error(err))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("bgp: %v", err)
	}
	a.handle = h
	a.release = p.Hold("bgp", a.mgr.StopWait(&a.cfg))
	// The POP's status page shows the sessions and prefixes, as GET /bgp/.
	a.unreport = p.Report("bgp", func() any {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return anycast.Process().Status(ctx)
	})
	a.mgr.OnDrained(h, a.release)
	logger.Info("bgp started", zap.Uint32("asn", a.cfg.ASN), zap.String("router_id", a.cfg.RouterID.String()),
		zap.Int("peers", len(a.cfg.Peers)), zap.Int("announce", len(a.cfg.Announces)))
	return nil
}

// Stop leaves the speaker to the next config on a reload. When the process
// exits, the POP moves to stopping, every prefix is drained (announced
// with GRACEFUL_SHUTDOWN for the drain wait) and withdrawn, and only then
// are the sessions closed.
func (a *App) Stop() error {
	if a.unreport != nil {
		a.unreport()
	}
	defer func() {
		if a.release != nil {
			a.release()
		}
	}()
	if !caddy.Exiting() {
		// A reload: a newer config took the speaker, or the bgp app was
		// removed and everything is withdrawn now.
		a.mgr.Release(context.Background(), a.handle)
		return nil
	}
	if !a.mgr.Current(a.handle) {
		return nil
	}
	a.pop.BeginStop("the process is exiting (caddy stop or a signal)")
	ctx, cancel := context.WithTimeout(context.Background(), a.mgr.StopWait(&a.cfg))
	defer cancel()
	err := a.mgr.WaitWithdrawn(ctx)
	a.mgr.Shutdown(context.Background())
	if err != nil {
		return fmt.Errorf("bgp: the drain did not finish before the sessions closed: %v", err)
	}
	a.logger.Info("bgp stopped: prefixes drained and withdrawn, sessions closed")
	return nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
)

var errNoApp = errors.New("the bgp app is not configured")
