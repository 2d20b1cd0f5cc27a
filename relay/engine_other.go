//go:build !linux

package relay

import (
	"errors"
	"net"
	"net/netip"
	"time"
)

// Result is what one relayed connection moved, and why it ended.
type Result struct {
	ClientToBackend int64
	BackendToClient int64
	Err             error
}

// ErrIdle ends a connection on which no byte moved for the idle timeout.
var ErrIdle = errors.New("relay: idle timeout")

var errUnsupported = errors.New("relay: the event-loop engine needs Linux")

// Engine is unavailable off Linux; callers fall back to copying with
// goroutines.
type Engine struct{}

// Shared reports that no engine is available here.
func Shared() (*Engine, error) { return nil, errUnsupported }

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
