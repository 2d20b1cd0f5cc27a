//go:build !linux

package health

import (
	"context"
	"net"
	"net/netip"
)

// tcpDialer skips keep-alive setup: the connection closes at once.
var tcpDialer = net.Dialer{KeepAlive: -1}

func tcpConnect(ctx context.Context, addr netip.AddrPort) error {
	c, err := tcpDialer.DialTCP(ctx, "tcp", netip.AddrPort{}, addr)
	if err != nil {
		return err
	}
	c.SetLinger(0)
	return c.Close()
}
