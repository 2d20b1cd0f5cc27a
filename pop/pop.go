// Package pop is one POP's runtime, free of Caddy and CoreDNS: the routing
// table file and its watch, client affinity, health checks, the cluster
// node, and the POP's health signal that other apps (anycast, the mesh)
// follow.
//
// Other apps find the POP through the POP interface, which the Caddy app
// `edgeroute` satisfies: `ctx.App("edgeroute")` returns it, and the caller
// asserts pop.POP without importing the plugin.
package pop

import (
	"context"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// POP is what another app needs of this POP.
type POP interface {
	// Identity names this POP.
	Identity() Identity
	// Signal is the POP's health now.
	Signal() Signal
	// Watch delivers the newest signal after every change, starting with
	// the current one. Deliveries coalesce: a slow reader gets the newest
	// signal, never a backlog. stop ends the subscription and closes the
	// channel, as does the release of the POP's runtime.
	Watch() (updates <-chan Signal, stop func())
	// Table is the current routing table snapshot (backends and pops).
	Table() *routing.Table
	// SetPop writes columns of this POP's own pops row, which replicates
	// to every POP. An unchanged row is not rewritten.
	SetPop(ctx context.Context, u store.PopUpdate) error
	// BeginStop moves the POP to Stopping, for an app whose own Stop runs
	// first when the process exits. It is idempotent.
	BeginStop(reason string)
	// Hold keeps the POP's listeners open after it moved to Stopping,
	// until release is called or max passes: an app announcing the POP
	// drains its announcements first.
	Hold(name string, max time.Duration) (release func())
	// Report registers a function whose value the POP's status page shows
	// under name (BGP sessions, mesh handshakes...), called on every read
	// of the page and so never on a hot path. remove unregisters it.
	Report(name string, f func() any) (remove func())
}

// Identity names a POP.
type Identity struct {
	Node    string `json:"node"`
	Region  string `json:"region"`
	Country string `json:"country"`
}
