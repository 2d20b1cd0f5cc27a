// Package mesh runs one POP's WireGuard device for the 6PN mesh, free of
// Caddy: the kernel device through wgctrl where the kernel has WireGuard,
// otherwise the embedded userspace device on a TUN with its UAPI socket
// (so `wg show` works either way); the link, its address, MTU and routes
// through netlink; and peers changed by difference, so peers whose rows did
// not change keep their sessions.
package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// Config is the device as one configuration wants it.
type Config struct {
	Interface  string      // link name, e.g. wg6pn0
	Mode       string      // auto, kernel or userspace
	MTU        int         // link MTU
	ListenPort int         // UDP port; 0 picks one
	PrivateKey wgtypes.Key // never logged
	Address    netip.Addr  // the POP's own 6PN address, put on the link as a /128
	// Address4 is the POP's own IPv4 address in the mesh, when it has IPv4
	// routes: put on the link as a /32 and used as the source of IPv4
	// traffic into the mesh, so the far POP's peer entry for this POP
	// (which allows this POP's routes) accepts it.
	Address4  netip.Addr
	Keepalive time.Duration // persistent keepalive of every peer; 0 is off
	Logger    *slog.Logger
}

// Modes of a device.
const (
	ModeAuto      = "auto"
	ModeKernel    = "kernel"
	ModeUserspace = "userspace"
)

// wg is the WireGuard side of a device: the kernel through wgctrl, or the
// embedded userspace device through its UAPI.
type wg interface {
	configure(c wgtypes.Config) error
	state() (*wgtypes.Device, error)
	close() error
}

// Device is a running WireGuard device with its link. Its methods are safe
// for concurrent use.
type Device struct {
	name string
	mode string
	log  *slog.Logger

	mu        sync.Mutex
	wg        wg
	link      link
	keepalive time.Duration
	address   netip.Addr
	address4  netip.Addr
	mtu       int
	routes    map[netip.Prefix]bool // installed routes into the link
	peers     map[wgtypes.Key]Peer  // as last applied
	closed    bool
}

// Name is the link name.
func (d *Device) Name() string { return d.name }

// Mode says which device runs: kernel or userspace.
func (d *Device) Mode() string { return d.mode }

// Open creates the device and its link, and applies cfg.
func Open(cfg Config) (*Device, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Interface == "" {
		return nil, errors.New("mesh: no interface name")
	}
	d := &Device{name: cfg.Interface, log: cfg.Logger, routes: map[netip.Prefix]bool{}, peers: map[wgtypes.Key]Peer{}}
	var err error
	switch cfg.Mode {
	case ModeKernel:
		d.wg, d.link, err = openKernel(cfg)
		d.mode = ModeKernel
	case ModeUserspace:
		d.wg, d.link, err = openUserspace(cfg)
		d.mode = ModeUserspace
	case ModeAuto, "":
		d.wg, d.link, err = openKernel(cfg)
		d.mode = ModeKernel
		if err != nil {
			cfg.Logger.Info("kernel WireGuard unavailable, running the userspace device", "interface", cfg.Interface, "reason", err.Error())
			d.wg, d.link, err = openUserspace(cfg)
			d.mode = ModeUserspace
		}
	default:
		return nil, fmt.Errorf("mesh: mode %q: want auto, kernel or userspace", cfg.Mode)
	}
	if err != nil {
		return nil, err
	}
	return d.start(cfg)
}

// start applies the first configuration of a device whose wg and link are
// set.
func (d *Device) start(cfg Config) (*Device, error) {
	if err := d.Reconfigure(cfg); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// Reconfigure applies a new device configuration (key, port, MTU, address,
// keepalive) as a difference: what is unchanged is not touched. The mode
// and interface of a running device do not change.
func (d *Device) Reconfigure(cfg Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("mesh: device closed")
	}
	cur, err := d.wg.state()
	if err != nil {
		return fmt.Errorf("mesh: reading %s: %w", d.name, err)
	}
	var c wgtypes.Config
	if cur.PrivateKey != cfg.PrivateKey {
		c.PrivateKey = &cfg.PrivateKey
	}
	if cfg.ListenPort != 0 && cur.ListenPort != cfg.ListenPort {
		c.ListenPort = &cfg.ListenPort
	}
	if c.PrivateKey != nil || c.ListenPort != nil {
		if err := d.wg.configure(c); err != nil {
			return fmt.Errorf("mesh: configuring %s: %w", d.name, err)
		}
	}
	if cfg.MTU != 0 && cfg.MTU != d.mtu {
		if err := d.link.setMTU(cfg.MTU); err != nil {
			return fmt.Errorf("mesh: MTU of %s: %w", d.name, err)
		}
		d.mtu = cfg.MTU
	}
	if cfg.Address != d.address {
		if d.address.IsValid() {
			d.link.delAddr(d.address)
		}
		if cfg.Address.IsValid() {
			if err := d.link.addAddr(cfg.Address); err != nil {
				return fmt.Errorf("mesh: address %s on %s: %w", cfg.Address, d.name, err)
			}
		}
		d.address = cfg.Address
		// Routes carry the source address: put them again.
		for p := range d.routes {
			d.link.addRoute(p, d.srcFor(p))
		}
	}
	if cfg.Address4 != d.address4 {
		if d.address4.IsValid() {
			d.link.delAddr(d.address4)
		}
		if cfg.Address4.IsValid() {
			if err := d.link.addAddr(cfg.Address4); err != nil {
				return fmt.Errorf("mesh: address %s on %s: %w", cfg.Address4, d.name, err)
			}
		}
		d.address4 = cfg.Address4
		for p := range d.routes {
			d.link.addRoute(p, d.srcFor(p))
		}
	}
	if err := d.link.up(); err != nil {
		return fmt.Errorf("mesh: bringing %s up: %w", d.name, err)
	}
	if cfg.Keepalive != d.keepalive {
		d.keepalive = cfg.Keepalive
		// Every peer takes the new interval, in place.
		var pc []wgtypes.PeerConfig
		for k := range d.peers {
			ka := d.keepalive
			pc = append(pc, wgtypes.PeerConfig{PublicKey: k, UpdateOnly: true, PersistentKeepaliveInterval: &ka})
		}
		if len(pc) > 0 {
			if err := d.wg.configure(wgtypes.Config{Peers: pc}); err != nil {
				return fmt.Errorf("mesh: keepalive on %s: %w", d.name, err)
			}
		}
	}
	return nil
}

// srcFor is the source address of routes to p: this POP's own address of
// p's family.
func (d *Device) srcFor(p netip.Prefix) netip.Addr {
	if p.Addr().Is4() {
		return d.address4
	}
	return d.address
}

// PublicKey is the device's public key now.
func (d *Device) PublicKey() (wgtypes.Key, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.wg.state()
	if err != nil {
		return wgtypes.Key{}, err
	}
	return s.PublicKey, nil
}

// ListenPort is the UDP port the device listens on.
func (d *Device) ListenPort() (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, err := d.wg.state()
	if err != nil {
		return 0, err
	}
	return s.ListenPort, nil
}

// State reads the device as WireGuard reports it: peers, handshakes, bytes.
func (d *Device) State() (*wgtypes.Device, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, errors.New("mesh: device closed")
	}
	return d.wg.state()
}

// Close removes the device and its link.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.wg.close()
	if lerr := d.link.remove(); err == nil {
		err = lerr
	}
	return err
}
