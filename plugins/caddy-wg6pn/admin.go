package wg6pn

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the mesh on Caddy's admin endpoint:
//
//	GET  /wg6pn/         this POP's key, prefix, endpoint and every peer
//	POST /wg6pn/rotate   a new private key, published; peers follow
type adminAPI struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wg6pn",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision finds the wg6pn app if this config has one.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	if app, err := ctx.AppIfConfigured("wg6pn"); err == nil {
		a.app = app.(*App)
	}
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/wg6pn/", Handler: caddy.AdminHandlerFunc(a.serve)},
	}
}

func (a *adminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	if a.app == nil || a.app.dev == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the wg6pn app is not configured")}
	}
	switch r.URL.Path {
	case "/wg6pn/", "/wg6pn/status":
		if r.Method != http.MethodGet {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("GET only")}
		}
		v, err := a.app.view()
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return writeJSON(w, v)
	case "/wg6pn/rotate":
		if r.Method != http.MethodPost {
			return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("POST only")}
		}
		k, err := a.app.Rotate()
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return writeJSON(w, map[string]string{"public_key": k.String()})
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no such wg6pn endpoint")}
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
