package mesh

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/wgctrl"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// kernel is the kernel's WireGuard device, configured through wgctrl.
type kernel struct {
	name string
	c    *wgctrl.Client
}

func openKernel(cfg Config) (wg, link, error) {
	la := netlink.NewLinkAttrs()
	la.Name = cfg.Interface
	la.MTU = cfg.MTU
	if err := netlink.LinkAdd(&netlink.Wireguard{LinkAttrs: la}); err != nil {
		l, lerr := netlink.LinkByName(cfg.Interface)
		if lerr != nil || l.Type() != "wireguard" {
			return nil, nil, fmt.Errorf("mesh: creating the kernel WireGuard link %s: %w", cfg.Interface, err)
		}
		// A link left by an earlier run of this process: take it over.
	}
	c, err := wgctrl.New()
	if err != nil {
		netlink.LinkDel(&netlink.Wireguard{LinkAttrs: la})
		return nil, nil, fmt.Errorf("mesh: opening wgctrl: %w", err)
	}
	return &kernel{name: cfg.Interface, c: c}, nlLink{name: cfg.Interface}, nil
}

func (k *kernel) configure(c wgtypes.Config) error { return k.c.ConfigureDevice(k.name, c) }

func (k *kernel) state() (*wgtypes.Device, error) { return k.c.Device(k.name) }

func (k *kernel) close() error { return k.c.Close() }
