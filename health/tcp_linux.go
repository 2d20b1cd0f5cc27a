//go:build linux

package health

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

// Probe implements Checker.
func (TCP) Probe(addr netip.AddrPort) Probe {
	return &tcpProbe{addr: addr, sa: rawsock.NewSockaddr(addr), fd: -1, spare: -1}
}

// tcpProbe opens a TCP connection to the backend and resets it at once.
//
// It speaks to the kernel directly: a non-blocking connect, then a poll
// with no timeout, which on a nearby backend already sees the handshake
// done. None of these calls can block, so none goes through the
// scheduler's system call bookkeeping (see internal/rawsock), and the
// monitor runs them on its own goroutine; only a connect still in flight
// is handed to the runtime's poller. Go's dialer would register every
// socket with the poller, set options, ask for both addresses and
// unregister it again, which costs more than the handshake itself when a
// thousand backends are checked every second.
//
// A passing check resets its connection by dissolving it, and keeps the
// socket for the next check: one descriptor per checked backend, and no
// socket created and destroyed each time.
type tcpProbe struct {
	addr  netip.AddrPort
	sa    *rawsock.Sockaddr
	fd    int // a connect in flight between start and wait, else -1
	spare int // a disconnected socket for the next check, else -1
}

func (p *tcpProbe) Check(ctx context.Context) error {
	if done, err := p.start(); done {
		return err
	}
	return p.wait(ctx)
}

func (p *tcpProbe) start() (bool, error) {
	fd := p.spare
	p.spare = -1
	if fd < 0 {
		var err error
		if fd, err = rawsock.Socket(p.sa); err != nil {
			return true, rawsock.DialError(p.addr, "socket", err)
		}
		// Close with a reset rather than a FIN: one packet instead of
		// four, and no TIME_WAIT left behind for every check.
		rawsock.ResetOnClose(fd)
	}
	err := rawsock.Connect(fd, p.sa)
	if err == unix.EINPROGRESS {
		if !connected(fd) {
			p.fd = fd
			return false, nil
		}
		err = rawsock.Error(fd)
	}
	if err != nil {
		rawsock.Close(fd)
		return true, rawsock.DialError(p.addr, "connect", err)
	}
	p.keep(fd)
	return true, nil
}

// keep resets the connection on fd and keeps the socket for the next
// check, or closes it when it cannot be reused.
func (p *tcpProbe) keep(fd int) {
	if rawsock.Disconnect(fd) != nil {
		rawsock.Close(fd)
		return
	}
	p.spare = fd
}

func (p *tcpProbe) wait(ctx context.Context) error {
	fd := p.fd
	p.fd = -1
	return waitConnect(ctx, fd, p.addr)
}

func (p *tcpProbe) Close() {
	for _, fd := range [...]*int{&p.fd, &p.spare} {
		if *fd >= 0 {
			rawsock.Close(*fd)
			*fd = -1
		}
	}
}

// waitConnect waits for a connect in flight through the runtime's poller,
// bounded by ctx.
func waitConnect(ctx context.Context, fd int, addr netip.AddrPort) error {
	f := os.NewFile(uintptr(fd), "health-check")
	defer f.Close()
	if dl, ok := ctx.Deadline(); ok {
		f.SetWriteDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { f.SetWriteDeadline(time.Unix(1, 0)) })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		return rawsock.DialError(addr, "connect", err)
	}
	var connErr error
	werr := rc.Write(func(fd uintptr) bool {
		if !connected(int(fd)) {
			return false // not yet: wait for the poller
		}
		connErr = rawsock.Error(int(fd))
		return true
	})
	if werr != nil {
		if ctx.Err() != nil && !errors.Is(werr, os.ErrDeadlineExceeded) {
			werr = ctx.Err()
		}
		return rawsock.DialError(addr, "connect", werr)
	}
	return rawsock.DialError(addr, "connect", connErr)
}

// connected reports whether a connect in flight has ended, either way: the
// socket is writable, or failed.
func connected(fd int) bool { return rawsock.Ready(fd, unix.POLLOUT) != 0 }
