//go:build !linux

package relay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
)

var errUnsupported = errors.New("relay: the event-loop engine needs Linux")

// Engine is unavailable off Linux; callers fall back to copying with
// goroutines.
type Engine struct{}

// Shared reports that no engine is available here.
func Shared() (*Engine, error) { return nil, errUnsupported }

// Serving reports that no engine is available here.
func Serving() (*Engine, error) { return nil, errUnsupported }

// Local is unavailable off Linux.
func (c *Client) Local() netip.AddrPort { return netip.AddrPort{} }

// Listener is unavailable off Linux.
type Listener struct{}

// ListenFile is never reached: Serving fails.
func (e *Engine) ListenFile(f *os.File, r Router) (*Listener, error) { return nil, errUnsupported }

// Addr is unavailable off Linux.
func (ln *Listener) Addr() netip.AddrPort { return netip.AddrPort{} }

// Close is unavailable off Linux.
func (ln *Listener) Close() error { return nil }

// RelayFD is never reached: Shared fails.
func (e *Engine) RelayFD(client *net.TCPConn, backendFD int, idle time.Duration, done func(Result)) error {
	return errUnsupported
}

// Dial is unavailable off Linux.
func Dial(addr netip.AddrPort, timeout time.Duration) (int, error) { return -1, errUnsupported }

// WriteAll is unavailable off Linux.
func WriteAll(fd int, b []byte) error { return errUnsupported }

// CloseFD is unavailable off Linux.
func CloseFD(fd int) {}

// Relay is never reached: Shared fails.
func (e *Engine) Relay(client, backend *net.TCPConn, idle time.Duration, done func(Result)) error {
	return errUnsupported
}
