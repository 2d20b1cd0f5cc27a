//go:build linux

package netns

import (
	"context"
	"fmt"
	"net"
	"runtime"

	"golang.org/x/sys/unix"
)

// do runs f on a thread moved into the namespace. Sockets f opens stay in
// the namespace after the thread moves back, so the test process can
// dial into and listen inside namespaces it has no link to.
func (ns *NS) do(f func() error) error {
	target, err := unix.Open("/var/run/netns/"+ns.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %v", ns.Name, err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	self, err := unix.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer unix.Close(self)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering namespace %s: %v", ns.Name, err)
	}
	ferr := f()
	if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the namespace: keep it locked so the
		// runtime discards it when this goroutine ends.
		return fmt.Errorf("leaving namespace %s: %v", ns.Name, err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// DialContext connects from inside the namespace (for http.Transport).
func (ns *NS) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := ns.do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens inside the namespace.
func (ns *NS) Listen(network, addr string) (net.Listener, error) {
	var l net.Listener
	err := ns.do(func() error {
		var err error
		l, err = net.Listen(network, addr)
		return err
	})
	return l, err
}
