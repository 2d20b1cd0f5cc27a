//go:build linux

// Package netns builds throwaway networks of Linux network namespaces for
// tests and benchmarks: namespaces joined by veth links, commands run
// inside them, and everything removed afterwards. Names carry the owning
// process id, so a later run removes what a crashed run left behind.
//
// Namespaces get documentation and ULA addresses only and no default
// route: no packet leaves the machine.
package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Net is one test's set of namespaces.
type Net struct {
	prefix string
	id     int

	mu       sync.Mutex
	n        int
	cleanups []func()
}

// Root reports whether this process can build namespaces; the error says
// why not.
func Root() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (iproute2) is missing")
	}
	return nil
}

// New starts a set of namespaces whose names begin with prefix (a few
// letters). Leftovers of earlier runs with that prefix whose process is
// gone are removed first.
func New(prefix string) *Net {
	CleanupStale(prefix)
	return &Net{prefix: prefix, id: os.Getpid()}
}

// CleanupStale removes namespaces named prefix-<pid>-* whose pid is no
// longer running, with every process inside them.
func CleanupStale(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, prefix+"-")
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || alive(pid) {
			continue
		}
		remove(name)
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func remove(name string) {
	out, _ := exec.Command("ip", "netns", "pids", name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	exec.Command("ip", "netns", "del", name).Run()
}

// Close removes everything the Net made, last made first.
func (n *Net) Close() {
	n.mu.Lock()
	c := n.cleanups
	n.cleanups = nil
	n.mu.Unlock()
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

func (n *Net) defer_(f func()) {
	n.mu.Lock()
	n.cleanups = append(n.cleanups, f)
	n.mu.Unlock()
}

func (n *Net) next() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n++
	return n.n
}

// IfName is a link name unique on the host (WireGuard interface names and
// UAPI sockets are global, whatever the namespace): tag, then this
// process's id and a counter, at most 15 characters.
// The UAPI socket a userspace WireGuard device of that name leaves behind
// when killed is removed when the Net closes.
func (n *Net) IfName(tag string) string {
	s := fmt.Sprintf("%s%x%x", tag, n.id&0xfffff, n.next())
	if len(s) > 15 {
		s = s[len(s)-15:]
	}
	n.defer_(func() { os.Remove("/var/run/wireguard/" + s + ".sock") })
	return s
}

// NS is one namespace.
type NS struct {
	Name string
	net  *Net
}

// Add makes a namespace with loopback up.
func (n *Net) Add(tag string) (*NS, error) {
	name := fmt.Sprintf("%s-%d-%s%d", n.prefix, n.id, tag, n.next())
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

// Cmd is a command run inside the namespace.
func (ns *NS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its output.
func (ns *NS) Run(name string, args ...string) (string, error) {
	var out bytes.Buffer
	c := ns.Cmd(name, args...)
	c.Stdout, c.Stderr = &out, &out
	if err := c.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s in %s: %v: %s", name, strings.Join(args, " "), ns.Name, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// Link joins two namespaces with a veth pair and gives each end its
// addresses (CIDR notation, e.g. 198.51.100.1/24).
func (n *Net) Link(a *NS, aAddrs []string, b *NS, bAddrs []string) error {
	ea, eb := n.IfName("va"), n.IfName("vb")
	if out, err := exec.Command("ip", "link", "add", ea, "netns", a.Name, "type", "veth", "peer", "name", eb, "netns", b.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("veth %s-%s: %v: %s", ea, eb, err, out)
	}
	for _, side := range []struct {
		ns    *NS
		dev   string
		addrs []string
	}{{a, ea, aAddrs}, {b, eb, bAddrs}} {
		for _, ad := range side.addrs {
			args := []string{"addr", "add", ad, "dev", side.dev}
			if strings.Contains(ad, ":") {
				args = append(args, "nodad")
			}
			if _, err := side.ns.Run("ip", args...); err != nil {
				return err
			}
		}
		if _, err := side.ns.Run("ip", "link", "set", side.dev, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Start starts a long-running command in the namespace; it is killed when
// the Net closes.
func (ns *NS) Start(c *exec.Cmd) error {
	if err := c.Start(); err != nil {
		return err
	}
	ns.net.defer_(func() {
		c.Process.Kill()
		c.Wait()
	})
	return nil
}

// Bridge makes a bridge named br in hub, for a shared segment.
func (n *Net) Bridge(hub *NS, br string) error {
	if _, err := hub.Run("ip", "link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	_, err := hub.Run("ip", "link", "set", br, "up")
	return err
}

// Attach links ns to the bridge br in hub, giving ns's end the addresses.
func (n *Net) Attach(hub *NS, br string, ns *NS, addrs []string) error {
	ea, eb := n.IfName("va"), n.IfName("vb")
	if out, err := exec.Command("ip", "link", "add", ea, "netns", hub.Name, "type", "veth", "peer", "name", eb, "netns", ns.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("veth %s-%s: %v: %s", ea, eb, err, out)
	}
	if _, err := hub.Run("ip", "link", "set", ea, "master", br, "up"); err != nil {
		return err
	}
	for _, ad := range addrs {
		args := []string{"addr", "add", ad, "dev", eb}
		if strings.Contains(ad, ":") {
			args = append(args, "nodad")
		}
		if _, err := ns.Run("ip", args...); err != nil {
			return err
		}
	}
	_, err := ns.Run("ip", "link", "set", eb, "up")
	return err
}
