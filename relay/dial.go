//go:build linux

package relay

import (
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

// Dial connects to a backend and returns the non-blocking socket, ready
// for RelayFD.
//
// The socket is one the Go runtime never sees: a connection handed to the
// engine anyway would otherwise be registered with the runtime's poller,
// duplicated and unregistered again, which costs more system calls than the
// proxying of a short connection. The connect itself is non-blocking and
// made without telling the scheduler: to a nearby backend the handshake is
// over when it returns, and only a connect still in flight waits, in a poll
// bounded by timeout, as an ordinary blocking system call.
func Dial(addr netip.AddrPort, timeout time.Duration) (int, error) {
	fd, inFlight, err := startConnect(addr)
	if err != nil {
		return -1, rawsock.DialError(addr, "connect", err)
	}
	if inFlight && rawsock.Ready(fd, unix.POLLOUT) != unix.POLLOUT {
		if err := waitWritable(fd, timeout); err != nil {
			unix.Close(fd)
			return -1, rawsock.DialError(addr, "connect", err)
		}
	}
	return fd, nil
}

// startConnect opens a non-blocking socket to addr, with TCP_NODELAY, and
// starts its handshake; inFlight tells that the connect has not ended yet.
func startConnect(addr netip.AddrPort) (fd int, inFlight bool, err error) {
	sa := rawsock.NewSockaddr(addr)
	if fd, err = rawsock.Socket(sa); err != nil {
		return -1, false, err
	}
	rawsock.SetInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	switch err = rawsock.Connect(fd, sa); err {
	case nil:
		return fd, false, nil
	case unix.EINPROGRESS:
		return fd, true, nil
	}
	rawsock.Close(fd)
	return -1, false, err
}

// waitWritable waits, at most timeout (zero for no limit), for a connect
// in flight to end, and returns its outcome.
func waitWritable(fd int, timeout time.Duration) error {
	ms := -1
	if timeout > 0 {
		ms = int(max(timeout.Milliseconds(), 1))
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		n, err := unix.Poll(pfd, ms)
		if err == unix.EINTR {
			continue // a restart waits the whole timeout again, at worst
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return os.ErrDeadlineExceeded
		}
		break
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) == 0 {
		return nil
	}
	if err := rawsock.Error(fd); err != nil {
		return err
	}
	return unix.ECONNRESET // hung up without a pending error
}

// WriteAll writes b to a socket from Dial before it is handed over (a
// PROXY protocol header, bytes a matcher already read). A fresh
// connection's send buffer takes that at once; should it not, WriteAll
// waits up to writeAllTimeout for room.
func WriteAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		switch err {
		case nil:
			b = b[n:]
		case unix.EINTR:
		case unix.EAGAIN:
			if err := waitWritable(fd, writeAllTimeout); err != nil {
				return fmt.Errorf("relay: writing to the backend: %w", err)
			}
		default:
			return fmt.Errorf("relay: writing to the backend: %w", err)
		}
	}
	return nil
}

const writeAllTimeout = 10 * time.Second

// CloseFD closes a socket from Dial that was not handed over.
func CloseFD(fd int) { unix.Close(fd) }
