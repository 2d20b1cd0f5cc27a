package bgp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/anycast"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the speaker's state on Caddy's admin endpoint:
//
//	GET /bgp/    peers (state, uptime, prefixes sent and received, last
//	             error) and every prefix (state and reason)
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.bgp",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Routes returns the admin routes.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/bgp/", Handler: caddy.AdminHandlerFunc(status)}}
}

func status(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if r.URL.Path != "/bgp/" && r.URL.Path != "/bgp/status" {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such resource %s", r.URL.Path)}
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	st := anycast.Process().Status(ctx)
	if !st.Running {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errNoApp}
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}

var _ caddy.AdminRouter = adminAPI{}
