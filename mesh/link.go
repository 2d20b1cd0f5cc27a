package mesh

import (
	"errors"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// link is the network interface side of a device.
type link interface {
	setMTU(mtu int) error
	addAddr(a netip.Addr) error
	delAddr(a netip.Addr)
	addRoute(p netip.Prefix, src netip.Addr) error
	delRoute(p netip.Prefix)
	up() error
	remove() error
}

// nlLink sets the link through netlink, looking it up by name each time so
// that it is never held across the link's removal.
type nlLink struct{ name string }

func (l nlLink) get() (netlink.Link, error) { return netlink.LinkByName(l.name) }

func (l nlLink) setMTU(mtu int) error {
	nl, err := l.get()
	if err != nil {
		return err
	}
	return netlink.LinkSetMTU(nl, mtu)
}

func hostPrefix(a netip.Addr) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(a.BitLen(), a.BitLen())}
}

func (l nlLink) addAddr(a netip.Addr) error {
	nl, err := l.get()
	if err != nil {
		return err
	}
	// No duplicate address detection: the address is the POP's alone by
	// the address plan, and DAD would hold it tentative (unusable as a
	// route source) for a second or more.
	return netlink.AddrReplace(nl, &netlink.Addr{IPNet: hostPrefix(a), Flags: unix.IFA_F_NODAD})
}

func (l nlLink) delAddr(a netip.Addr) {
	if nl, err := l.get(); err == nil {
		netlink.AddrDel(nl, &netlink.Addr{IPNet: hostPrefix(a)})
	}
}

func (l nlLink) route(p netip.Prefix, src netip.Addr) (*netlink.Route, error) {
	nl, err := l.get()
	if err != nil {
		return nil, err
	}
	r := &netlink.Route{LinkIndex: nl.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Scope: netlink.SCOPE_LINK}
	// Traffic into the mesh leaves from the POP's own 6PN address, which
	// the far POP routes back through its peer entry for this POP.
	if src.IsValid() && src.Is6() == p.Addr().Is6() {
		r.Src = src.AsSlice()
	}
	return r, nil
}

func (l nlLink) addRoute(p netip.Prefix, src netip.Addr) error {
	r, err := l.route(p, src)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(r)
}

func (l nlLink) delRoute(p netip.Prefix) {
	if r, err := l.route(p, netip.Addr{}); err == nil {
		netlink.RouteDel(r)
	}
}

func (l nlLink) up() error {
	nl, err := l.get()
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(nl)
}

func (l nlLink) remove() error {
	nl, err := l.get()
	if err != nil {
		// A TUN link goes away with its file descriptor.
		return nil
	}
	if err := netlink.LinkDel(nl); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.ENODEV) {
		return err
	}
	return nil
}
