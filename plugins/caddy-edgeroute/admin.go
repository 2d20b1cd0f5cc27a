package edgeroute

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/edgeproxy/edgeproxy/routing"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI serves the operator's view of the routing table on Caddy's admin
// endpoint (localhost only unless the operator moves it):
//
//	GET /edgeroute/backends[?app=A]                     the table as routing sees it, with live counts;
//	    [&limit=N][&after=ID]                           a page of it in ID order (admin_page.go)
//	GET /edgeroute/route?app=A&client=IP                a routing decision, explained
//	GET /edgeroute/pop, POST /edgeroute/drain|undrain   the POP's signal (admin_pop.go)
type adminAPI struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.edgeroute",
		New: func() caddy.Module { return new(adminAPI) },
	}
}

// Provision finds the edgeroute app if this config has one.
func (a *adminAPI) Provision(ctx caddy.Context) error {
	if app, err := ctx.AppIfConfigured("edgeroute"); err == nil {
		a.app = app.(*App)
	}
	return nil
}

// Routes returns the admin routes.
func (a *adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/edgeroute/backends", Handler: caddy.AdminHandlerFunc(a.backends)},
		{Pattern: "/edgeroute/route", Handler: caddy.AdminHandlerFunc(a.route)},
		{Pattern: "/edgeroute/cluster", Handler: caddy.AdminHandlerFunc(a.clusterStatus)}, // admin_cluster.go
		{Pattern: "/edgeroute/backends/", Handler: caddy.AdminHandlerFunc(a.backendByID)}, // admin_backends.go
		{Pattern: "/edgeroute/health", Handler: caddy.AdminHandlerFunc(a.healthView)},
		{Pattern: "/edgeroute/pop", Handler: caddy.AdminHandlerFunc(a.popStatus)}, // admin_pop.go
		{Pattern: "/edgeroute/drain", Handler: caddy.AdminHandlerFunc(a.drain)},
		{Pattern: "/edgeroute/undrain", Handler: caddy.AdminHandlerFunc(a.undrain)},
	}
}

// BackendView is one backend in GET /edgeroute/backends.
type BackendView struct {
	ID           string `json:"id"`
	App          string `json:"app"`
	Region       string `json:"region"`
	Country      string `json:"country"`
	Addr         string `json:"addr"`
	Healthy      bool   `json:"healthy"`
	Deleted      bool   `json:"deleted"`
	Routable     bool   `json:"routable"`
	Weight       int    `json:"weight"`
	SoftLimit    int    `json:"soft_limit"`
	HardLimit    int    `json:"hard_limit"`
	Active       int64  `json:"active_connections"`
	Total        uint64 `json:"total_connections"`
	BytesIn      uint64 `json:"bytes_to_backend"`
	BytesOut     uint64 `json:"bytes_to_client"`
	DialFailures uint64 `json:"dial_failures"`
}

// TableView is the body of GET /edgeroute/backends.
type TableView struct {
	Node       string        `json:"node"`
	Region     string        `json:"region"`
	DB         string        `json:"db"`
	Generation uint64        `json:"generation"`
	LoadedAt   time.Time     `json:"loaded_at"`
	Backends   []BackendView `json:"backends"`
	// Next, on a page (limit), is the after of the page that follows;
	// empty on the last.
	Next string `json:"next,omitempty"`
}

// RouteView is the body of GET /edgeroute/route.
type RouteView struct {
	App           string `json:"app"`
	Client        string `json:"client"`
	ClientCountry string `json:"client_country"`
	ClientRegion  string `json:"client_region"`
	PopRegion     string `json:"pop_region"`
	// AffinityTo is the backend the client is bound to: while it stays
	// eligible, the client's next connection goes there whatever the scores.
	AffinityTo string              `json:"affinity_backend,omitempty"`
	Chosen     string              `json:"chosen,omitempty"`
	Candidates []routing.Candidate `json:"candidates"`
}

func (a *adminAPI) ready() error {
	if a.app == nil || a.app.rt == nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the edgeroute app is not configured")}
	}
	return nil
}

func (a *adminAPI) backends(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodPost {
		return a.registerBackend(w, r) // admin_backends.go
	}
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if err := a.ready(); err != nil {
		return err
	}
	q := r.URL.Query()
	pq, err := parsePage(q)
	if err != nil {
		return err
	}
	t := a.app.Table()
	app := q.Get("app")
	view := TableView{Node: a.app.Node, Region: a.app.Region, DB: a.app.rt.Store().Path(),
		Generation: t.Generation, LoadedAt: t.LoadedAt, Backends: []BackendView{}}
	keep := func(b *routing.Backend) bool { return app == "" || b.App == app }
	list := t.Backends()
	if pq.paged {
		list, view.Next = pq.page(list, keep) // admin_page.go
	}
	for _, b := range list {
		if !keep(b) {
			continue
		}
		view.Backends = append(view.Backends, BackendView{
			ID: b.ID, App: b.App, Region: b.Region, Country: b.Country, Addr: b.Addr.String(),
			Healthy: b.Healthy, Deleted: b.Deleted, Routable: b.Routable(),
			Weight: b.Weight, SoftLimit: b.SoftLimit, HardLimit: b.HardLimit,
			Active: b.Load.Active(), Total: b.Load.Total(),
			BytesIn: b.Load.BytesIn(), BytesOut: b.Load.BytesOut(), DialFailures: b.Load.DialFailures(),
		})
	}
	return writeJSON(w, view)
}

func (a *adminAPI) route(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	if err := a.ready(); err != nil {
		return err
	}
	q := r.URL.Query()
	app := strings.TrimSpace(q.Get("app"))
	if app == "" {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: errors.New("missing query parameter: app")}
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(q.Get("client")))
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("query parameter client: %q is not an IP address", q.Get("client"))}
	}
	ip = ip.Unmap()
	client, cands := a.app.Explain(app, ip)
	if len(cands) == 0 {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("app %q has no backends", app)}
	}
	view := RouteView{App: app, Client: ip.String(), ClientCountry: client.Country, ClientRegion: client.Region,
		PopRegion: a.app.Region, AffinityTo: a.app.rt.Affinity().Peek(app, ip)}
	for _, c := range cands {
		view.Candidates = append(view.Candidates, c)
		if c.Chosen {
			view.Chosen = c.ID
		}
	}
	return writeJSON(w, view)
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminAPI)(nil)
	_ caddy.Provisioner = (*adminAPI)(nil)
)
