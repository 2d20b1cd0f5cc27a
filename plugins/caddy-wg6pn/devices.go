package wg6pn

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/mesh"
)

// devices holds the process's WireGuard devices by interface name. A
// device outlives config reloads: the new config takes it over and changes
// only what differs, so peers keep their sessions. It is closed when the
// last config using it is cleaned up.
var devices = caddy.NewUsagePool()

type pooledDevice struct {
	*mesh.Device
	mode string // the mode it was asked for
}

func (p *pooledDevice) Destruct() error { return p.Close() }
