//go:build linux

package netns

import (
	"fmt"
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
