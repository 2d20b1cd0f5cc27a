package edgeroute

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// ClusterConfig is the `cluster` block: replication of the routing table
// between POPs. Not implemented yet.
type ClusterConfig struct{}

func (a *App) unmarshalCluster(d *caddyfile.Dispenser) error {
	return d.Err("edgeroute: cluster: replication between POPs is not available in this build yet")
}

func (a *App) provisionCluster(ctx caddy.Context) error { return nil }
func (a *App) startCluster() error                      { return nil }
func (a *App) stopCluster() error                       { return nil }
