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

// discovery is the registration service the v1 API uses too (api.go),
// without its token: the admin endpoint is local.
func (a *adminAPI) discovery() *discovery.Service { return a.app.discovery() }

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
	reg, err := a.discovery().Register(r.Context(), body, ttl)
	var bad *discovery.InputError
	switch {
	case errors.As(err, &bad):
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	case err != nil:
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
	svc := a.discovery()
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
		switch err := svc.Heartbeat(ctx, id, ttl); {
		case errors.Is(err, discovery.ErrNotFound):
			return apiErr(http.StatusNotFound, "backend %q not registered", id)
		case err != nil:
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		return writeJSON(w, map[string]string{"id": id, "status": "ok"})
	case heartbeat:
		return apiErr(http.StatusMethodNotAllowed, "method %s not allowed: use POST", r.Method)
	case r.Method == http.MethodGet:
		st, err := svc.Get(ctx, id)
		switch {
		case errors.Is(err, discovery.ErrNotFound):
			return apiErr(http.StatusNotFound, "backend %q not found", id)
		case err != nil:
			return apiErr(http.StatusInternalServerError, "%v", err)
		}
		return writeJSON(w, st)
	case r.Method == http.MethodDelete:
		switch err := svc.Deregister(ctx, id); {
		case errors.Is(err, discovery.ErrNotFound):
			return apiErr(http.StatusNotFound, "backend %q not found", id)
		case err != nil:
			return apiErr(http.StatusInternalServerError, "%v", err)
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
