package edgeroute

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// HealthConfig is a `health <app>` block: active health checks of one app's
// backends. Not implemented yet.
type HealthConfig struct{}

func (a *App) unmarshalHealth(d *caddyfile.Dispenser) error {
	return d.Err("edgeroute: health: active health checks are not available in this build yet")
}

func (a *App) provisionHealth(ctx caddy.Context) error { return nil }
func (a *App) startHealth() error                      { return nil }
func (a *App) stopHealth() error                       { return nil }
