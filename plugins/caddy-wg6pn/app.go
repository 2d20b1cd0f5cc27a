// Package wg6pn is the Caddy app `wg6pn`: an IPv6 WireGuard mesh between
// POPs (6PN), its peers learnt from the replicated pops table, so backends
// in far regions are reached through it.
package wg6pn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgeproxy/edgeproxy/mesh"
	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/sixpn"
	"github.com/edgeproxy/edgeproxy/store"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App runs this POP's WireGuard device and keeps its peers equal to the
// other POPs in the routing table.
type App struct {
	Config

	set    settings
	pop    pop.POP
	popApp any
	logger *zap.Logger
	dev    *pooledDevice

	mu       sync.Mutex
	key      wgtypes.Key // never logged
	node     string
	prefix   netip.Prefix
	problems []string // refused rows, as last logged
	cancel   context.CancelFunc
	done     chan struct{}
	kick     chan struct{}
	// unreport removes the mesh's section of the POP's status page.
	unreport func()
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "wg6pn",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision validates the config, finds the POP, reads (or creates) the
// private key and opens the device, so every problem is reported when the
// config loads.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.Config = a.Config.withDefaults()
	s, err := a.Config.validate()
	if err != nil {
		return err
	}
	a.set = s
	app, err := ctx.App("edgeroute")
	if err != nil {
		return fmt.Errorf("wg6pn: needs the edgeroute app (the POP whose table lists the peers): %v", err)
	}
	p, ok := app.(pop.POP)
	if !ok {
		return errors.New("wg6pn: the edgeroute app does not offer the POP interface")
	}
	a.pop, a.popApp = p, app
	key, created, err := mesh.LoadOrCreateKey(a.PrivateKeyFile)
	if err != nil {
		return fmt.Errorf("wg6pn: private_key_file: %v", err)
	}
	if created {
		a.logger.Info("created the WireGuard private key", zap.String("file", a.PrivateKeyFile), zap.String("public_key", key.PublicKey().String()))
	}
	a.key = key
	if err := mesh.CheckPrivileges(); err != nil {
		return fmt.Errorf("wg6pn: %v", err)
	}
	val, _, err := devices.LoadOrNew(a.Interface, func() (caddy.Destructor, error) {
		d, err := mesh.Open(a.deviceConfig(netip.Addr{}))
		if err != nil {
			return nil, err
		}
		return &pooledDevice{Device: d, mode: a.Mode}, nil
	})
	if err != nil {
		return fmt.Errorf("wg6pn: %v", err)
	}
	a.dev = val.(*pooledDevice)
	if a.dev.mode != a.Mode {
		a.logger.Warn("the device keeps the mode it was opened with until a restart", zap.String("interface", a.Interface), zap.String("running", a.dev.Mode()), zap.String("configured", a.Mode))
	}
	return registerMetrics(ctx, a)
}

func (a *App) deviceConfig(addr netip.Addr) mesh.Config {
	addr4, _ := sixpn.Self4(a.set.routes)
	return mesh.Config{
		Address4:   addr4,
		Interface:  a.Interface,
		Mode:       a.Mode,
		MTU:        a.MTU,
		ListenPort: a.ListenPort,
		PrivateKey: a.key,
		Address:    addr,
		Keepalive:  a.set.keepalive,
		Logger:     slog.New(zapslog.NewHandler(a.logger.Core())),
	}
}

// nodeName is this POP's node name. The POP's identity is set when the
// edgeroute app starts, and Caddy starts apps in no fixed order: before
// that, the name is read from the edgeroute app's exported Node field
// (already defaulted when it was provisioned), without importing it.
func (a *App) nodeName() string {
	if n := a.pop.Identity().Node; n != "" {
		return n
	}
	v := reflect.ValueOf(a.popApp)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		v = v.Elem()
	}
	if v.Kind() == reflect.Struct {
		if f := v.FieldByName("Node"); f.IsValid() && f.Kind() == reflect.String {
			return f.String()
		}
	}
	return ""
}

// Start puts this config on the device: key, port, MTU, the POP's address
// in its /64 (chosen now), publishes the POP's row and follows the table.
func (a *App) Start() error {
	node := a.nodeName()
	if node == "" {
		return errors.New("wg6pn: the POP has no node name")
	}
	var claims []sixpn.Claim
	var own netip.Prefix
	for _, row := range a.pop.Table().Pops() {
		c, err := sixpn.ParseColumn(row.Node, row.Prefix6)
		if err != nil {
			continue
		}
		if row.Node == node {
			own = c.Prefix
		}
		claims = append(claims, c)
	}
	prefix, err := a.set.plan.Choose(node, a.set.subnet, a.set.explicit, own, claims)
	if err != nil {
		return fmt.Errorf("wg6pn: %v", err)
	}
	a.mu.Lock()
	a.node, a.prefix = node, prefix
	a.mu.Unlock()
	current.Store(a.Interface, a)
	if err := a.dev.Reconfigure(a.deviceConfig(sixpn.Self(prefix))); err != nil {
		return fmt.Errorf("wg6pn: %v", err)
	}
	// The POP writes rows under its identity, which it takes when the
	// edgeroute app starts; if that comes after this app, the row is
	// written by the follow loop as soon as the POP signals it started.
	if a.pop.Identity().Node != "" {
		if err := a.publish(); err != nil {
			return fmt.Errorf("wg6pn: publishing this POP's row: %v", err)
		}
	}
	if a.Endpoint == "" {
		a.logger.Warn("no endpoint: other POPs cannot dial this one and wait for it to dial them")
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel, a.done, a.kick = cancel, make(chan struct{}), make(chan struct{}, 1)
	a.sync(true)
	go a.follow(ctx)
	// The POP's status page shows the peers and their handshakes, as
	// GET /wg6pn/.
	a.unreport = a.pop.Report("wg6pn", func() any {
		v, err := a.view()
		if err != nil {
			return map[string]string{"error": err.Error()}
		}
		return v
	})
	a.logger.Info("wg6pn started",
		zap.String("interface", a.Interface),
		zap.String("mode", a.dev.Mode()),
		zap.String("node", node),
		zap.String("prefix", prefix.String()),
		zap.String("address", sixpn.Self(prefix).String()),
		zap.String("endpoint", a.Endpoint),
		zap.String("public_key", a.key.PublicKey().String()))
	return nil
}

// column is what this POP publishes in its row's prefix6 column.
func (a *App) column() string {
	return sixpn.FormatColumn(a.prefix, a.set.routes)
}

// publish writes this POP's key, endpoint and prefix to its pops row,
// which replicates to every POP. An unchanged row is not rewritten.
func (a *App) publish() error {
	a.mu.Lock()
	u := store.PopUpdate{PublicKey: store.Str(a.key.PublicKey().String()), Endpoint: store.Str(a.Endpoint), Prefix6: store.Str(a.column())}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return a.pop.SetPop(ctx, u)
}

// follow applies every new table to the device, and looks again every ten
// seconds in case a change was missed.
func (a *App) follow(ctx context.Context) {
	defer close(a.done)
	updates, stop := a.pop.Watch()
	defer stop()
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case _, ok := <-updates:
			if !ok {
				return
			}
		case <-a.kick:
			force = true
		case <-tick.C:
			force = true
		}
		a.sync(force)
	}
}

var lastGeneration sync.Map // interface -> table generation last applied

// current is, per interface, the app of the newest config. Caddy starts a
// new config's apps before it stops the old ones: until then, the old
// app's loop would see this POP's row saying what the new config wrote
// (a new endpoint, say) and write its own again, and the two would take
// turns. Only the current app writes the row and the peers; an app whose
// successor failed to start and was stopped takes the place back.
var current sync.Map // interface -> *App

func (a *App) isCurrent() bool {
	v, _ := current.LoadOrStore(a.Interface, a)
	return v == a
}

// sync makes the device's peers the table's POPs. Refused rows are logged
// when the set of refusals changes.
func (a *App) sync(force bool) {
	if !a.isCurrent() {
		return
	}
	tbl := a.pop.Table()
	if !force {
		if g, ok := lastGeneration.Load(a.Interface); ok && g.(uint64) == tbl.Generation {
			return
		}
	}
	a.mu.Lock()
	node, key, prefix, col := a.node, a.key, a.prefix, a.column()
	a.mu.Unlock()
	rows := tbl.Pops()
	if a.pop.Identity().Node == node {
		mine := false
		for _, r := range rows {
			if r.Node == node {
				mine = r.PublicKey == key.PublicKey().String() && r.Prefix6 == col && r.Endpoint == a.Endpoint
			}
		}
		// Not yet written (the POP had no identity at Start), or saying
		// something else (an operator's edit, a lost write): write it.
		if !mine {
			if err := a.publish(); err != nil {
				a.logger.Warn("publishing this POP's row", zap.Error(err))
			}
		}
	}
	// Installed peers are the device's, which outlive reloads.
	installed := make(map[string]bool)
	for _, p := range a.dev.Peers() {
		installed[p.Node] = true
	}
	peers, problems := mesh.PeersFromPops(a.set.plan, node, key.PublicKey(), rows, func(n string) bool { return installed[n] })
	msgs := make([]string, 0, len(problems))
	for _, p := range problems {
		msgs = append(msgs, p.Error())
	}
	a.mu.Lock()
	changed := strings.Join(msgs, "\n") != strings.Join(a.problems, "\n")
	a.problems = msgs
	a.mu.Unlock()
	if changed {
		for _, m := range msgs {
			a.logger.Error("pops row refused, not installed", zap.String("problem", m))
		}
	}
	ch, err := a.dev.SetPeers(peers)
	if err != nil {
		a.logger.Error("applying peers", zap.Error(err))
		return
	}
	lastGeneration.Store(a.Interface, tbl.Generation)
	if !ch.Empty() {
		a.logger.Info("mesh peers changed", zap.Strings("added", ch.Added), zap.Strings("removed", ch.Removed),
			zap.Strings("updated", ch.Updated), zap.Int("peers", len(peers)), zap.String("own_prefix", prefix.String()),
			zap.Uint64("generation", tbl.Generation))
	}
}

// Rotate makes a new private key, saves it, puts it on the device and
// publishes the public key; the other POPs follow when the row reaches
// them.
func (a *App) Rotate() (wgtypes.Key, error) {
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, err
	}
	if err := mesh.WriteKey(a.PrivateKeyFile, k); err != nil {
		return wgtypes.Key{}, fmt.Errorf("saving the new key: %v", err)
	}
	a.mu.Lock()
	a.key = k
	addr := sixpn.Self(a.prefix)
	a.mu.Unlock()
	if err := a.dev.Reconfigure(a.deviceConfig(addr)); err != nil {
		return wgtypes.Key{}, err
	}
	if err := a.publish(); err != nil {
		return wgtypes.Key{}, fmt.Errorf("publishing the new key: %v", err)
	}
	a.logger.Info("rotated the WireGuard key", zap.String("public_key", k.PublicKey().String()))
	return k.PublicKey(), nil
}

// Stop stops following the table. The device stays for the next config;
// Cleanup releases it.
func (a *App) Stop() error {
	if a.unreport != nil {
		a.unreport()
	}
	if a.cancel != nil {
		a.cancel()
		<-a.done
	}
	current.CompareAndDelete(a.Interface, a)
	return nil
}

// Cleanup closes the device once no config uses it.
func (a *App) Cleanup() error {
	if a.dev != nil {
		_, err := devices.Delete(a.Interface)
		return err
	}
	return nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
