//go:build linux

package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Dial connects to a backend and returns the socket ready for RelayFD.
//
// The connect is a plain blocking one, bounded by SO_SNDTIMEO, on a socket
// the Go runtime never sees: a connection handed to the engine anyway would
// otherwise be registered with the runtime's poller, duplicated and
// unregistered again, which costs more system calls than the proxying of a
// short connection.
func Dial(addr netip.AddrPort, timeout time.Duration) (int, error) {
	family, sa := unix.AF_INET, unix.Sockaddr(nil)
	if ip := addr.Addr().Unmap(); ip.Is4() {
		sa = &unix.SockaddrInet4{Port: int(addr.Port()), Addr: ip.As4()}
	} else {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: int(addr.Port()), Addr: ip.As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return -1, dialError(addr, err)
	}
	if timeout > 0 {
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EINPROGRESS) || errors.Is(err, unix.EAGAIN) {
			err = os.ErrDeadlineExceeded // SO_SNDTIMEO expired
		}
		return -1, dialError(addr, err)
	}
	return fd, nil
}

func dialError(addr netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: os.NewSyscallError("connect", err)}
}

// WriteAll writes b to a socket from Dial before it is handed over (a
// PROXY protocol header, bytes a matcher already read).
func WriteAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("relay: writing to the backend: %w", err)
		}
		b = b[n:]
	}
	return nil
}

// CloseFD closes a socket from Dial that was not handed over.
func CloseFD(fd int) { unix.Close(fd) }
