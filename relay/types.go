package relay

import (
	"errors"
	"net/netip"
	"time"
)

// Result is what one relayed connection moved, and why it ended (nil for a
// clean close of both directions).
type Result struct {
	ClientToBackend int64
	BackendToClient int64
	Err             error
	// DialFailed is set when the backend never answered: Err says why,
	// and no byte moved.
	DialFailed bool
}

// ErrIdle ends a connection on which no byte moved for the idle timeout.
var ErrIdle = errors.New("relay: idle timeout")

// Router picks the backends for the connections a Listener accepts. Route
// runs on an event loop, so it must neither block nor take long.
type Router interface {
	// Route returns where the client's connection goes, or false to close
	// it at once. After a backend fails to answer (its Target's Done
	// reported DialFailed), Route is asked again with c.Tried one
	// higher.
	Route(c *Client) (Target, bool)
}

// Client is an accepted connection waiting for a backend.
type Client struct {
	// Addr is the client's address.
	Addr netip.AddrPort
	// Tried counts the backends that failed to answer this client.
	Tried int
	// State is the router's own, kept across the tries of one client.
	State any

	fd    int
	local netip.AddrPort
}

// Target is a backend chosen by a Router.
type Target struct {
	Addr netip.AddrPort
	// DialTimeout bounds the connect (zero: the kernel's own limit).
	DialTimeout time.Duration
	// IdleTimeout ends the connection when no byte moves either way for
	// this long (zero: never).
	IdleTimeout time.Duration
	// Head is sent to the backend before the client's bytes (a PROXY
	// protocol header).
	Head []byte
	// Done runs on the loop once: when the relay ends, or when the
	// backend did not answer (Result.DialFailed).
	Done func(Result)
}

// AcceptErrorReporter is a Router told of accept failures (out of
// descriptors, say). The loop that met one stops accepting for
// acceptPause (100 ms), rather than spin on a queue it cannot empty.
type AcceptErrorReporter interface {
	AcceptFailed(addr netip.AddrPort, err error, pause time.Duration)
}
