package edgeroute

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/discovery"
)

// The write side of the admin API, for operators on the box (the admin
// endpoint is local and has no token):
//
//	POST   /edgeroute/backends[?ttl=60s]                 register (v1 payload); with ttl it must heartbeat
//	GET    /edgeroute/backends/{id}                      one backend, v1's view
//	DELETE /edgeroute/backends/{id}                      deregister
//	POST   /edgeroute/backends/{id}/heartbeat[?ttl=60s]  heartbeat
//	GET    /edgeroute/health[?app=A]                     this POP's health view

func apiErr(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

func (a *adminAPI) discoveryAPI() *discovery.API {
	app := a.app
	return &discovery.API{Store: app.rt.Store(), Now: time.Now,
		Down: func(id string) bool {
			b := app.Table().Backend(id)
			return b != nil && b.Load.Down()
		}}
}

func queryTTL(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("ttl")
	if v == "" {
		return 0, nil
	}
	d, err := caddy.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, apiErr(http.StatusBadRequest, "query parameter ttl: %q is not a positive duration", v)
	}
	return d, nil
}

func (a *adminAPI) registerBackend(w http.ResponseWriter, r *http.Request) error {
	if err := a.ready(); err != nil {
		return err
	}
	ttl, err := queryTTL(r)
	if err != nil {
		return err
	}
	body, status, err := discovery.ReadBody(w, r)
	if err != nil {
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	reg, err := discovery.ParseRegistration(body, a.app.geo.Country)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if _, err := a.app.rt.Store().Register(r.Context(), reg, ttl, time.Now()); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	a.app.logger.Info("backend registered through the admin API", zapBackend(reg.ID))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	return writeJSON(w, map[string]any{"id": reg.ID, "registered": true, "message": "Backend registered successfully"})
}

// backendByID serves /edgeroute/backends/{id}[/heartbeat].
func (a *adminAPI) backendByID(w http.ResponseWriter, r *http.Request) error {
	if err := a.ready(); err != nil {
		return err
	}
	rest := strings.TrimPrefix(r.URL.EscapedPath(), "/edgeroute/backends/")
	heartbeat := strings.HasSuffix(rest, "/heartbeat")
	rest = strings.TrimSuffix(rest, "/heartbeat")
	id, err := url.PathUnescape(rest)
	if err == nil && id == "" {
		err = errors.New("empty")
	}
	if err == nil {
		err = discovery.CheckName("id", id)
	}
	if err != nil {
		return apiErr(http.StatusBadRequest, "backend id in the path: %v", err)
	}
	st := a.app.rt.Store()
	ctx := r.Context()
	switch {
	case heartbeat && r.Method == http.MethodPost:
		ttl, err := queryTTL(r)
		if err != nil {
			return err
		}
		if ttl == 0 {
			ttl = discovery.DefaultTTL
		}
		ok, err := st.Heartbeat(ctx, id, ttl, time.Now())
		if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		if !ok {
			return apiErr(http.StatusNotFound, "backend %q not registered", id)
		}
		return writeJSON(w, map[string]string{"id": id, "status": "ok"})
	case heartbeat:
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use POST", r.Method)
	case r.Method == http.MethodGet:
		reg, ok, err := st.GetRegistered(ctx, id)
		if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		if !ok {
			return apiErr(http.StatusNotFound, "backend %q not found", id)
		}
		return writeJSON(w, a.discoveryAPI().Status(reg))
	case r.Method == http.MethodDelete:
		ok, err := st.Deregister(ctx, id)
		if err != nil {
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		if !ok {
			return apiErr(http.StatusNotFound, "backend %q not found", id)
		}
		a.app.logger.Info("backend deregistered through the admin API", zapBackend(id))
		return writeJSON(w, map[string]any{"id": id, "deregistered": true})
	default:
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use GET or DELETE", r.Method)
	}
}

func (a *adminAPI) healthView(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed", r.Method)
	}
	if err := a.ready(); err != nil {
		return err
	}
	return writeJSON(w, a.app.rt.HealthView(r.URL.Query().Get("app")))
}

func zapBackend(id string) zap.Field { return zap.String("backend", id) }
