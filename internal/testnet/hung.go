//go:build linux

// Package testnet holds network fixtures shared by the tests of several
// packages: real sockets in states that are awkward to reach.
package testnet

import (
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// HungListener listens on 127.0.0.1 with the smallest backlog and fills
// it, so the kernel drops further SYNs: a backend that is up but never
// completes a handshake. Everything is closed when t ends.
func HungListener(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
	for range 4 {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatal("the kernel kept completing handshakes on a full backlog")
	return addr
}
