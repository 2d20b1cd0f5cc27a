package edgeroute

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/pop"
)

// runtimes holds one POP runtime per database path, shared by the old and
// the new config during a reload.
var runtimes = caddy.NewUsagePool()

// runtime is the POP's runtime with the counters of this plugin that must
// outlive reloads as it does.
type runtime struct {
	*pop.Runtime
	stats *stats
}

var _ caddy.Destructor = (*runtime)(nil)
