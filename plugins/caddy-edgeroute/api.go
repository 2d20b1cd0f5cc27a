package edgeroute

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/discovery"
)

func init() {
	caddy.RegisterModule(new(APIHandler))
	httpcaddyfile.RegisterHandlerDirective("edgeroute_api", parseAPIHandler)
	// Ordered before the handlers that answer every request, so a site
	// needs no `order` line and can serve other paths as well.
	httpcaddyfile.RegisterDirectiveOrder("edgeroute_api", httpcaddyfile.Before, "respond")
}

// APIHandler serves edgeProxy v1's Auto-Discovery API on a Caddy site:
// backends register, heartbeat and deregister, and the rows go to the
// edgeroute app's routing table. Paths outside the API go to the next
// handler.
type APIHandler struct {
	// Token every request but GET /health must present as
	// `Authorization: Bearer <token>`. Placeholders such as
	// {env.EDGE_API_TOKEN} are expanded. Required.
	Token string `json:"token,omitempty"`
	// HeartbeatTTL removes a backend that sent no heartbeat for this long
	// (v1's EDGEPROXY_HEARTBEAT_TTL_SECS). Default 60s.
	HeartbeatTTL caddy.Duration `json:"heartbeat_ttl,omitempty"`

	api    *discovery.API
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*APIHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.edgeroute_api",
		New: func() caddy.Module { return new(APIHandler) },
	}
}

// Version is what GET /health reports.
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/edgeproxy/edgeproxy" && m.Version != "" && m.Version != "(devel)" {
				return strings.TrimPrefix(m.Version, "v")
			}
		}
		if v := bi.Main.Version; bi.Main.Path == "github.com/edgeproxy/edgeproxy" && v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "2.0.0-dev"
}

// Provision binds the handler to the edgeroute app's routing table.
func (h *APIHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	token := caddy.NewReplacer().ReplaceKnown(h.Token, "")
	if h.HeartbeatTTL < 0 {
		return fmt.Errorf("edgeroute_api: heartbeat_ttl must be positive")
	}
	appIface, err := ctx.App("edgeroute")
	if err != nil {
		return fmt.Errorf("edgeroute_api: %v", err)
	}
	app := appIface.(*App)
	svc := app.discovery()
	h.api = &discovery.API{
		Store:   svc.Store,
		Token:   token,
		TTL:     time.Duration(h.HeartbeatTTL),
		Country: svc.Country,
		Down:    svc.Down,
		Version: Version(),
		Started: processStart,
		OnChange: func(event, id string) {
			h.logger.Info("backend "+event, zap.String("backend", id))
		},
	}
	if err := h.api.Init(); err != nil {
		return fmt.Errorf("edgeroute_api: %v", err)
	}
	return nil
}

var processStart = time.Now()

// ServeHTTP answers API paths and passes the rest on.
func (h *APIHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if !discovery.Handles(r.URL.Path) {
		return next.ServeHTTP(w, r)
	}
	h.api.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile parses:
//
//	edgeroute_api {
//		token         <secret>
//		heartbeat_ttl <duration>
//	}
func (h *APIHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := options{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if err := seen.once(d, "edgeroute_api"); err != nil {
			return err
		}
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("edgeroute_api: %s takes exactly one value", opt)
		}
		switch opt {
		case "token":
			h.Token = v
		case "heartbeat_ttl":
			dur, err := parseDuration(v, false)
			if err != nil {
				return d.Errf("edgeroute_api: heartbeat_ttl %q: %v", v, err)
			}
			h.HeartbeatTTL = dur
		default:
			return d.Errf("edgeroute_api: unknown option %q (known: token, heartbeat_ttl)", opt)
		}
	}
	if h.Token == "" {
		return d.Err("edgeroute_api: token is required (e.g. token {env.EDGE_API_TOKEN})")
	}
	return nil
}

func parseAPIHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(APIHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*APIHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*APIHandler)(nil)
	_ caddyfile.Unmarshaler       = (*APIHandler)(nil)
)

// discovery is the registration service over the app's table, shared by
// the v1 API and the admin routes: backends this POP holds down read as
// unhealthy in both.
func (a *App) discovery() *discovery.Service {
	return &discovery.Service{
		Store:   a.rt.Store(),
		Country: a.geo.Country,
		Down: func(id string) bool {
			b := a.Table().Backend(id)
			return b != nil && b.Load.Down()
		},
	}
}
