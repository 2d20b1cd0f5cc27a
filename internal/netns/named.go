//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"os/exec"
)

// AddNamed makes a namespace with exactly this name, for a demo whose
// printed commands name it (ip netns exec edge-client ...). A namespace of
// that name left by a crashed run is removed first, with every process in
// it. It is removed when the Net closes.
func (n *Net) AddNamed(name string) (*NS, error) {
	remove(name)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, out)
	}
	n.defer_(func() { remove(name) })
	ns := &NS{Name: name, net: n}
	if _, err := ns.Run("ip", "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	return ns, nil
}

// Remove deletes the namespace name, killing every process in it, if it
// exists: leftovers of a crashed run of a demo with fixed names.
func Remove(name string) { remove(name) }

// DialFrom connects from inside the namespace from the local address
// local (an address the namespace holds), for a client with several
// addresses.
func (ns *NS) DialFrom(ctx context.Context, network, local, addr string) (net.Conn, error) {
	la, err := net.ResolveTCPAddr(network, net.JoinHostPort(local, "0"))
	if err != nil {
		return nil, err
	}
	var c net.Conn
	err = ns.do(func() error {
		var err error
		c, err = (&net.Dialer{LocalAddr: la}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}
