//go:build !linux

package health

import (
	"context"
	"net"
	"net/netip"
)

// Probe implements Checker.
func (TCP) Probe(addr netip.AddrPort) Probe { return tcpProbe{addr} }

type tcpProbe struct{ addr netip.AddrPort }

func (p tcpProbe) Check(ctx context.Context) error { return tcpConnect(ctx, p.addr) }

func (tcpProbe) Close() {}

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
