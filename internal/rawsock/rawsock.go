//go:build linux

// Package rawsock makes the system calls of a non-blocking socket without
// telling the Go scheduler about them.
//
// A system call made through the syscall package enters and leaves the
// scheduler's "in a system call" state, and entering it wakes the
// runtime's monitor thread whenever the process was idle; the monitor then
// polls every 20 µs for a millisecond and more. For calls that cannot block
// (on a non-blocking socket, a connect whose handshake the kernel finishes
// inside the call, a close after SO_LINGER 0, a poll with no timeout) that
// bookkeeping costs more than the call. Calls that may block must not come
// here.
package rawsock

import (
	"net"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Sockaddr is a socket address in the kernel's layout.
type Sockaddr struct {
	family int
	in4    unix.RawSockaddrInet4
	in6    unix.RawSockaddrInet6
}

// NewSockaddr returns addr in the kernel's layout. The zone of a
// link-local IPv6 address names an interface; one that does not exist
// leaves the scope unset and the connect fails.
func NewSockaddr(addr netip.AddrPort) *Sockaddr {
	sa := &Sockaddr{}
	if ip := addr.Addr().Unmap(); ip.Is4() {
		sa.family = unix.AF_INET
		sa.in4 = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ip.As4()}
		putPort(&sa.in4.Port, addr.Port())
	} else {
		sa.family = unix.AF_INET6
		sa.in6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: ip.As16(), Scope_id: zoneIndex(addr.Addr().Zone())}
		putPort(&sa.in6.Port, addr.Port())
	}
	return sa
}

func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// DialError describes a failed connect to addr the way Go's dialer does
// ("dial tcp 10.0.0.1:80: connect: connection refused"); nil stays nil.
func DialError(addr netip.AddrPort, op string, err error) error {
	if err == nil {
		return nil
	}
	if errno, ok := err.(unix.Errno); ok {
		err = os.NewSyscallError(op, errno)
	}
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(addr), Err: err}
}

func (sa *Sockaddr) raw() (unsafe.Pointer, uintptr) {
	if sa.family == unix.AF_INET {
		return unsafe.Pointer(&sa.in4), unix.SizeofSockaddrInet4
	}
	return unsafe.Pointer(&sa.in6), unix.SizeofSockaddrInet6
}

// putPort stores a port in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}

// Socket opens a non-blocking, close-on-exec TCP socket of sa's family.
func Socket(sa *Sockaddr) (int, error) {
	return Retry(unix.SYS_SOCKET, uintptr(sa.family), unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP, 0, 0, 0)
}

// Connect starts connecting fd to sa: nil or EINPROGRESS on the way.
func Connect(fd int, sa *Sockaddr) error {
	p, n := sa.raw()
	_, err := Retry(unix.SYS_CONNECT, uintptr(fd), uintptr(p), n, 0, 0, 0)
	runtime.KeepAlive(sa)
	return err
}

// SetInt sets an integer socket option.
func SetInt(fd, level, opt, value int) error {
	v := int32(value)
	_, err := Retry(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(unsafe.Pointer(&v)), 4, 0)
	return err
}

// ResetOnClose sets SO_LINGER to zero: close sends a reset, at once,
// instead of a FIN, and leaves no TIME_WAIT behind.
func ResetOnClose(fd int) error {
	l := unix.Linger{Onoff: 1, Linger: 0}
	_, err := Retry(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_LINGER, uintptr(unsafe.Pointer(&l)), unsafe.Sizeof(l), 0)
	return err
}

// Error is the socket's pending error (SO_ERROR): nil once a connect has
// succeeded.
func Error(fd int) error {
	var v int32
	n := uint32(4)
	if _, err := Retry(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&n)), 0); err != nil {
		return err
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// Ready reports, without waiting, the poll events of fd among events
// (POLLOUT for a connect that has ended either way).
func Ready(fd int, events int16) int16 {
	pfd := unix.PollFd{Fd: int32(fd), Events: events}
	n, err := Retry(unix.SYS_POLL, uintptr(unsafe.Pointer(&pfd)), 1, 0, 0, 0, 0)
	if err != nil || n == 0 {
		return 0
	}
	return pfd.Revents
}

// Close closes fd. With a reset on close, or on a socket with nothing left
// to send, it does not block. It is not retried: Linux releases the
// descriptor even when interrupted.
func Close(fd int) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// Retry makes a system call without the scheduler's bookkeeping, again
// while it is interrupted.
//
// Callers pass pointers to their own stack variables as uintptr. It must
// not split its stack: a stack grown between the conversion and the call
// would move those variables and leave the kernel the old addresses.
//
//go:nosplit
func Retry(trap, a1, a2, a3, a4, a5, a6 uintptr) (int, error) {
	for {
		r, _, errno := unix.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		switch errno {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		default:
			return -1, errno
		}
	}
}

// Read reads from a non-blocking socket: EAGAIN when nothing is there.
// recvfrom skips the file layer a read(2) goes through.
func Read(fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := Retry(unix.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, 0, 0)
	return max(n, 0), err
}

// Write writes to a non-blocking socket: EAGAIN when there is no room. A
// peer that reset the connection gives EPIPE, without a SIGPIPE.
func Write(fd int, b []byte) (int, error) {
	return Send(fd, b, 0)
}

// Send is Write with send(2) flags: MSG_MORE holds a short segment back
// for the FIN a shutdown or close about to follow will send with it.
func Send(fd int, b []byte, flags int) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, err := Retry(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(flags|unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT), 0, 0)
	return max(n, 0), err
}

// Disconnect dissolves a TCP socket's connection (connect to AF_UNSPEC):
// an established one is reset, and the socket can connect again, which
// spares creating and destroying a socket per connection.
func Disconnect(fd int) error {
	sa := unix.RawSockaddr{Family: unix.AF_UNSPEC}
	_, err := Retry(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa), 0, 0, 0)
	runtime.KeepAlive(&sa)
	return err
}

// Acceptor takes connections off one non-blocking listening socket. It
// holds the address buffer the kernel fills, so it belongs to one
// goroutine.
type Acceptor struct {
	fd  int
	rsa unix.RawSockaddrAny
}

// NewAcceptor accepts on the listening socket fd.
func NewAcceptor(fd int) *Acceptor { return &Acceptor{fd: fd} }

// Accept returns the next waiting connection, non-blocking and
// close-on-exec, with its peer's address; EAGAIN when none is waiting.
func (a *Acceptor) Accept() (int, netip.AddrPort, error) {
	n := uint32(unsafe.Sizeof(a.rsa))
	fd, err := Retry(unix.SYS_ACCEPT4, uintptr(a.fd), uintptr(unsafe.Pointer(&a.rsa)), uintptr(unsafe.Pointer(&n)), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0, 0)
	if err != nil {
		return -1, netip.AddrPort{}, err
	}
	return fd, AddrPort(&a.rsa), nil
}

// AddrPort converts an IPv4 or IPv6 socket address; anything else is the
// zero AddrPort.
func AddrPort(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		in := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(in.Addr), port(in.Port))
	case unix.AF_INET6:
		in := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(in.Addr), port(in.Port))
	}
	return netip.AddrPort{}
}

// LocalAddr is the address a socket is bound to (getsockname).
func LocalAddr(fd int) netip.AddrPort {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	if _, err := Retry(unix.SYS_GETSOCKNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)), 0, 0, 0); err != nil {
		return netip.AddrPort{}
	}
	return AddrPort(&rsa)
}

func port(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// EpollCtl adds, changes (events) or removes fd in the epoll set epfd.
// Its events come back with fd and tag (in EpollEvent.Pad).
func EpollCtl(epfd, op, fd int, events, tag uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(tag)}
	_, err := Retry(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	return err
}

// Shutdown shuts down part of a full-duplex connection.
func Shutdown(fd, how int) error {
	_, err := Retry(unix.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0, 0, 0, 0)
	return err
}
