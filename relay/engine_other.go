//go:build !linux

package relay

import (
	"errors"
	"net"
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

// Relay is never reached: Shared fails.
func (e *Engine) Relay(client, backend *net.TCPConn, idle time.Duration, done func(Result)) error {
	return errUnsupported
}
