package discovery

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// DefaultTTL is v1's heartbeat TTL (EDGEPROXY_HEARTBEAT_TTL_SECS).
const DefaultTTL = 60 * time.Second

// API serves v1's endpoints over a routing table file:
//
//	GET    /health                  status, version, backends, uptime (no token)
//	POST   /api/v1/register         register or update a backend
//	POST   /api/v1/heartbeat/{id}   keep a backend alive for another TTL
//	GET    /api/v1/backends         list backends
//	GET    /api/v1/backends/{id}    one backend
//	DELETE /api/v1/backends/{id}    deregister
//
// Every endpoint but /health needs `Authorization: Bearer <token>`.
type API struct {
	Store *store.Store
	// Token is the shared secret. It is compared in constant time and
	// never logged. Must not be empty.
	Token string
	// TTL after which a backend that stopped heartbeating is removed.
	TTL time.Duration
	// Country locates an address for registrations without a country
	// (GeoIP). May be nil.
	Country func(netip.Addr) string
	// Down reports whether this POP currently holds a backend down
	// (health checks, ejection). May be nil.
	Down func(id string) bool
	// Version is reported by /health.
	Version string
	// Started is when the API began serving, for uptime_secs.
	Started time.Time
	// OnChange is told about every successful write, for logs: what
	// happened ("registered", "deregistered") and the backend ID.
	OnChange func(event, id string)
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	tokenSum [32]byte
	svc      *Service
}

// Init checks the configuration and precomputes what requests need.
func (a *API) Init() error {
	if a.Store == nil {
		return errors.New("no routing table")
	}
	if strings.TrimSpace(a.Token) == "" {
		return errors.New("token is empty: every endpoint but /health needs a bearer token (set `token`, e.g. token {env.EDGE_API_TOKEN}, and make sure the variable is set)")
	}
	if a.TTL <= 0 {
		a.TTL = DefaultTTL
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Started.IsZero() {
		a.Started = a.Now()
	}
	a.tokenSum = sha256.Sum256([]byte(strings.TrimSpace(a.Token)))
	// The service reads the API's fields at each call: they may be set
	// after Init (a test's clock, say).
	a.svc = &Service{Store: a.Store, Now: func() time.Time { return a.Now() },
		Country: func(ip netip.Addr) string {
			if a.Country == nil {
				return ""
			}
			return a.Country(ip)
		},
		Down: func(id string) bool { return a.Down != nil && a.Down(id) },
		OnChange: func(event, id string) {
			if a.OnChange != nil {
				a.OnChange(event, id)
			}
		}}
	return nil
}

// Handles reports whether the request's path belongs to the API, so an
// adapter can pass other paths on.
func Handles(path string) bool {
	return path == "/health" || path == "/api/v1/register" || path == "/api/v1/backends" ||
		strings.HasPrefix(path, "/api/v1/backends/") || strings.HasPrefix(path, "/api/v1/heartbeat/")
}

// BackendStatus is one backend in v1's list and get answers, plus the
// routing fields v1 did not return.
type BackendStatus struct {
	ID                string `json:"id"`
	App               string `json:"app"`
	Region            string `json:"region"`
	Country           string `json:"country"`
	IP                string `json:"ip"`
	Port              int    `json:"port"`
	Healthy           bool   `json:"healthy"`
	LastHeartbeatSecs uint64 `json:"last_heartbeat_secs"`
	RegisteredSecs    uint64 `json:"registered_secs"`
	Weight            int    `json:"weight"`
	SoftLimit         int    `json:"soft_limit"`
	HardLimit         int    `json:"hard_limit"`
	// Heartbeat is false for backends that never heartbeat (written with
	// SQL or the admin API): they do not expire.
	Heartbeat bool `json:"heartbeat"`
}

// ServeHTTP answers one request; paths outside the API get 404.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	if path == "/health" {
		if !method(w, r, http.MethodGet, http.MethodHead) {
			return
		}
		a.health(w, r)
		return
	}
	if !Handles(r.URL.Path) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found"})
		return
	}
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="edgeroute"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
		return
	}
	ctx := r.Context()
	switch {
	case path == "/api/v1/register":
		if method(w, r, http.MethodPost) {
			a.register(ctx, w, r)
		}
	case path == "/api/v1/backends":
		if method(w, r, http.MethodGet, http.MethodHead) {
			a.list(ctx, w)
		}
	case strings.HasPrefix(path, "/api/v1/heartbeat/"):
		id, ok := pathID(w, path, "/api/v1/heartbeat/")
		if ok && method(w, r, http.MethodPost, http.MethodPut) {
			a.heartbeat(ctx, w, id)
		}
	default:
		id, ok := pathID(w, path, "/api/v1/backends/")
		if !ok {
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			a.get(ctx, w, id)
		case http.MethodDelete:
			a.deregister(ctx, w, id)
		default:
			methodNotAllowed(w, http.MethodGet, http.MethodDelete)
		}
	}
}

func (a *API) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

func method(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for _, m := range allowed {
		if r.Method == m {
			return true
		}
	}
	methodNotAllowed(w, allowed...)
	return false
}

func methodNotAllowed(w http.ResponseWriter, allowed ...string) {
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed; use " + strings.Join(allowed, " or ")})
}

// pathID takes the ID from the rest of the path, percent-decoded.
func pathID(w http.ResponseWriter, path, prefix string) (string, bool) {
	id, err := url.PathUnescape(strings.TrimPrefix(path, prefix))
	if err == nil && id == "" {
		err = errors.New("empty")
	}
	if err == nil {
		err = CheckName("id", id)
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("backend id in the path: %v", err)})
		return "", false
	}
	return id, true
}

// ReadBody reads at most MaxBodyBytes; a larger body is an error carrying
// status 413.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes is larger than the 1 MiB limit", r.ContentLength)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, http.StatusRequestEntityTooLarge, errors.New("request body is larger than the 1 MiB limit")
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the request body: %v", err)
	}
	return body, 0, nil
}

func (a *API) register(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	body, status, err := ReadBody(w, r)
	if err != nil {
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	reg, err := a.svc.Register(ctx, body, a.TTL)
	var bad *InputError
	switch {
	case errors.As(err, &bad):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case err != nil:
		a.internal(w, err)
	default:
		writeJSON(w, http.StatusCreated, map[string]any{"id": reg.ID, "registered": true, "message": "Backend registered successfully"})
	}
}

func (a *API) heartbeat(ctx context.Context, w http.ResponseWriter, id string) {
	switch err := a.svc.Heartbeat(ctx, id, a.TTL); {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"id": id, "error": "backend not registered"})
	case err != nil:
		a.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, map[string]string{"id": id, "status": "ok"})
	}
}

func (a *API) deregister(ctx context.Context, w http.ResponseWriter, id string) {
	switch err := a.svc.Deregister(ctx, id); {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"id": id, "error": "backend not found"})
	case err != nil:
		a.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "deregistered": true})
	}
}

func (a *API) list(ctx context.Context, w http.ResponseWriter) {
	out, err := a.svc.List(ctx)
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"backends": out, "total": len(out)})
}

func (a *API) get(ctx context.Context, w http.ResponseWriter, id string) {
	st, err := a.svc.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"id": id, "error": "backend not found"})
	case err != nil:
		a.internal(w, err)
	default:
		writeJSON(w, http.StatusOK, st)
	}
}

func secs(d time.Duration) uint64 {
	if d < 0 {
		return 0
	}
	return uint64(d / time.Second)
}

func (a *API) health(w http.ResponseWriter, r *http.Request) {
	rows, err := a.Store.ListRegistered(r.Context())
	if err != nil {
		a.internal(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":              "ok",
		"version":             a.Version,
		"backends":            len(rows),
		"registered_backends": len(rows), // the field name v1's binary used
		"uptime_secs":         secs(a.Now().Sub(a.Started)),
	})
}

func (a *API) internal(w http.ResponseWriter, err error) {
	writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "routing table: " + err.Error()})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// expiryLookGap is the least time between two looks for the next expiry
// while commits keep coming: a busy table (registrations, heartbeats,
// health rows) costs the loop a read at most this often, not one per
// commit.
const expiryLookGap = 250 * time.Millisecond

// RunExpiry removes backends whose heartbeat expired until ctx ends.
// onExpired (may be nil) receives the removed IDs; onError the failures.
//
// It sleeps until the next expiry is due, and looks again when the file
// changes (a registration, a heartbeat, a replicated lease), at most every
// expiryLookGap, so an idle POP reads nothing; every maxWait at the latest,
// and every maxWait where the kernel does not report changes to the file.
func RunExpiry(ctx context.Context, st *store.Store, maxWait time.Duration, onExpired func([]string), onError func(error)) {
	reports, err := st.NotifyChanges(ctx)
	if err != nil {
		reports = &store.ChangeReports{} // poll every maxWait
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	due := time.Now() // when the timer fires
	var looked time.Time
	reset := func(at time.Time) {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(max(time.Until(at), 0))
		due = at
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			ids, err := st.ExpireHeartbeats(ctx, time.Now())
			if err != nil {
				if onError != nil && ctx.Err() == nil {
					onError(err)
				}
			} else if len(ids) > 0 && onExpired != nil {
				onExpired(ids)
			}
		case <-reports.C:
			if next := looked.Add(expiryLookGap); time.Now().Before(next) {
				// Commits keep coming: look once the gap has passed.
				// Until then their reports wait in the kernel, and
				// wake no one.
				if next.Before(due) {
					reset(next)
				}
				continue
			}
		}
		reports.Drain()
		looked = time.Now()
		at := looked.Add(maxWait)
		if next, ok, err := st.NextExpiry(ctx); err == nil && ok {
			// A few milliseconds past the deadline: expiry is strict.
			if d := next.Add(5 * time.Millisecond); d.Before(at) {
				at = d
			}
		}
		reset(at)
	}
}
