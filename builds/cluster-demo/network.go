//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/netns"
)

// network is the demo's namespaces and the processes started in them.
type network struct {
	n      *netns.Net
	inet   *netns.NS
	client *netns.NS
	pop    map[string]*netns.NS
	be     map[string]*netns.NS

	mu    sync.Mutex
	procs []*exec.Cmd
}

func removeNS(name string) { netns.Remove(name) }

// buildNetwork makes the namespaces and links of layout.go.
func buildNetwork() (*network, error) {
	nw := &network{n: netns.New("edgecl"), pop: map[string]*netns.NS{}, be: map[string]*netns.NS{}}
	var err error
	if nw.inet, err = nw.n.AddNamed(nsPrefix + "inet"); err != nil {
		return nw, err
	}
	if nw.client, err = nw.n.AddNamed(nsPrefix + "client"); err != nil {
		return nw, err
	}
	// The POPs' segment: a bridge in the router's namespace, which holds
	// the router's own address.
	if err := nw.n.Bridge(nw.inet, "ix0"); err != nil {
		return nw, err
	}
	if err := nw.run(nw.inet, "ip", "addr", "add", routerIP+"/24", "dev", "ix0"); err != nil {
		return nw, err
	}
	if err := nw.n.Link(nw.inet, []string{clientGW + "/24"}, nw.client, []string{clientIP + "/24"}); err != nil {
		return nw, err
	}
	if err := nw.run(nw.inet, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return nw, err
	}
	// The client reaches the anycast address and the POPs' segment through
	// the router, and nothing else.
	for _, dst := range []string{"192.0.2.0/24", "198.51.100.0/24"} {
		if err := nw.run(nw.client, "ip", "route", "add", dst, "via", clientGW); err != nil {
			return nw, err
		}
	}
	for _, p := range pops {
		ns, err := nw.n.AddNamed(p.ns())
		if err != nil {
			return nw, err
		}
		nw.pop[p.name] = ns
		if err := nw.n.Attach(nw.inet, "ix0", ns, []string{p.ip + "/24"}); err != nil {
			return nw, err
		}
		if err := nw.run(ns, "ip", "route", "add", "203.0.113.0/24", "via", routerIP); err != nil {
			return nw, err
		}
		if !p.backend {
			continue
		}
		// The backend's LAN holds the rest of the POP's 6PN /64; the POP
		// forwards between it and the mesh.
		be, err := nw.n.AddNamed(p.beNS())
		if err != nil {
			return nw, err
		}
		nw.be[p.name] = be
		if err := nw.n.Link(ns, []string{p.lan6() + "/64"}, be, []string{p.backend6() + "/64"}); err != nil {
			return nw, err
		}
		if err := nw.run(be, "ip", "-6", "route", "add", network6, "via", p.lan6()); err != nil {
			return nw, err
		}
		if err := nw.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"); err != nil {
			return nw, err
		}
	}
	return nw, nil
}

func (nw *network) run(ns *netns.NS, name string, args ...string) error {
	_, err := ns.Run(name, args...)
	return err
}

// start runs a long-lived process in ns with its output in logf.
func (nw *network) start(ns *netns.NS, logf, bin string, args ...string) error {
	return nw.startEnv(ns, logf, nil, bin, args...)
}

func (nw *network) startEnv(ns *netns.NS, logf string, env []string, bin string, args ...string) error {
	out, err := os.Create(logf)
	if err != nil {
		return err
	}
	cmd := ns.Cmd(bin, args...)
	dir := filepath.Dir(logf)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = out, out
	// Its own process group: Ctrl-C in the terminal reaches the demo,
	// which stops the processes in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting %s in %s: %v", filepath.Base(bin), ns.Name, err)
	}
	go func() { cmd.Wait(); out.Close() }()
	nw.mu.Lock()
	nw.procs = append(nw.procs, cmd)
	nw.mu.Unlock()
	return nil
}

// close asks every process to stop (SIGINT, as an operator would), waits a
// little, then removes the namespaces with whatever still runs in them.
func (nw *network) close() {
	nw.mu.Lock()
	procs := nw.procs
	nw.procs = nil
	nw.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i].Process != nil {
			procs[i].Process.Signal(os.Interrupt)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range procs {
		for time.Now().Before(deadline) && c.Process != nil && c.Process.Signal(syscall.Signal(0)) == nil {
			time.Sleep(50 * time.Millisecond)
		}
	}
	nw.n.Close()
}

// Dial connects from inside ns.
func dialIn(ns *netns.NS, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return ns.DialContext(ctx, network, addr)
}
