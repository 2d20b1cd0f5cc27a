package anycast

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// assignment is one anycast address on one interface.
type assignment struct {
	iface string
	addr  netip.Addr
}

func (a assignment) String() string { return a.addr.String() + " on " + a.iface }

// assigner keeps the addresses of `assign` on their interfaces. The app
// owns every address it is told to assign, also one already there: after
// a crash (kill -9) the addresses stay on the interface, and the next run
// must still remove them when it stops.
type assigner struct {
	ours map[assignment]bool
}

func newAssigner() *assigner { return &assigner{ours: map[assignment]bool{}} }

func wantedAssignments(c *Config) map[assignment]bool {
	want := map[assignment]bool{}
	for _, a := range c.Announces {
		if a.Assign == "" {
			continue
		}
		for _, p := range a.Prefixes {
			want[assignment{a.Assign, p.Addr()}] = true
		}
	}
	return want
}

// checkInterfaces reports an interface named by assign that does not exist.
func checkInterfaces(c *Config) error {
	for _, a := range c.Announces {
		if a.Assign == "" {
			continue
		}
		if _, err := netlink.LinkByName(a.Assign); err != nil {
			return fmt.Errorf("announce %s: assign %s: %v", a.Prefixes[0], a.Assign, err)
		}
	}
	return nil
}

// apply adds the wanted addresses and removes the ones it added that are
// no longer wanted.
func (s *assigner) apply(want map[assignment]bool) error {
	var errs []error
	keys := make([]assignment, 0, len(want))
	for a := range want {
		keys = append(keys, a)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	for _, a := range keys {
		if s.ours[a] {
			continue
		}
		if err := addAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("assign %s: %v", a, err))
			continue
		}
		s.ours[a] = true
	}
	for a := range s.ours {
		if want[a] {
			continue
		}
		if err := delAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %v", a, err))
		}
		delete(s.ours, a)
	}
	return errors.Join(errs...)
}

func hostNet(a netip.Addr) *net.IPNet {
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, bits)}
}

// addAddr puts the address on the interface as a host address; one that
// is there already is fine.
func addAddr(a assignment) error {
	link, err := netlink.LinkByName(a.iface)
	if err != nil {
		return err
	}
	err = netlink.AddrAdd(link, &netlink.Addr{IPNet: hostNet(a.addr)})
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func delAddr(a assignment) error {
	link, err := netlink.LinkByName(a.iface)
	if err != nil {
		return err
	}
	err = netlink.AddrDel(link, &netlink.Addr{IPNet: hostNet(a.addr)})
	if errors.Is(err, unix.EADDRNOTAVAIL) {
		return nil
	}
	return err
}
