//go:build !linux

package relay

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"time"
)

// Result is what one relayed connection moved, and why it ended.
type Result struct {
	ClientToBackend int64
	BackendToClient int64
	Err             error
	DialFailed      bool
}

// ErrIdle ends a connection on which no byte moved for the idle timeout.
var ErrIdle = errors.New("relay: idle timeout")

var errUnsupported = errors.New("relay: the event-loop engine needs Linux")

// Engine is unavailable off Linux; callers fall back to copying with
// goroutines.
type Engine struct{}

// Shared reports that no engine is available here.
func Shared() (*Engine, error) { return nil, errUnsupported }

// Serving reports that no engine is available here.
func Serving() (*Engine, error) { return nil, errUnsupported }

// Router picks backends for a Listener (Linux only).
type Router interface {
	Route(c *Client) (Target, bool)
}

// Client is an accepted connection waiting for a backend.
type Client struct {
	Addr  netip.AddrPort
	Tried int
	State any
}

// Local is unavailable off Linux.
func (c *Client) Local() netip.AddrPort { return netip.AddrPort{} }

// Target is a backend chosen by a Router.
type Target struct {
	Addr        netip.AddrPort
	DialTimeout time.Duration
	IdleTimeout time.Duration
	Head        []byte
	Done        func(Result)
}

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

// AcceptErrorReporter is a Router told of accept failures (Linux only).
type AcceptErrorReporter interface {
	AcceptFailed(addr netip.AddrPort, err error, pause time.Duration)
}
