package edgeroute

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(new(StatusHandler))
	httpcaddyfile.RegisterHandlerDirective("edgeroute_status", parseStatusHandler)
	// Ordered like edgeroute_api: before the handlers that answer every
	// request, so a site needs no `order` line.
	httpcaddyfile.RegisterDirectiveOrder("edgeroute_status", httpcaddyfile.Before, "respond")
}

// DefaultStatusRefresh is how often an open status page asks for news.
const DefaultStatusRefresh = time.Second

// DefaultStatusBackendsPerApp is how many backends of each app the status
// page lists. The page is read by a person and redrawn every second: a
// table of 100,000 backends listed whole was 26 MB and 1.5 s of CPU per
// refresh.
const DefaultStatusBackendsPerApp = 25

// StatusHandler serves the status page of the whole edge as this POP sees
// it: every POP with its region, health and anycast state, replication,
// every app with its backends, their health from each observing POP and
// their connections, and what other apps (bgp, wg6pn) report through
// pop.POP.Report. The page is a server-drawn picture and tables, refreshed
// in place by a small embedded script; `?format=json` is the same view as
// JSON. Everything is embedded: the page loads nothing from elsewhere.
//
// It answers every request that reaches it; protect it with Caddy's
// basic_auth (or any other access control) in front.
type StatusHandler struct {
	// Refresh is how often the open page asks for news. Default 1s.
	Refresh caddy.Duration `json:"refresh,omitempty"`
	// BackendsPerApp is how many backends of each app the page (and its
	// JSON) lists: those not routable from here first, then those with
	// connections from here; the others are counted. Default 25; a
	// negative value lists them all.
	BackendsPerApp int `json:"backends_per_app,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*StatusHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.edgeroute_status",
		New: func() caddy.Module { return new(StatusHandler) },
	}
}

// Provision binds the handler to the edgeroute app.
func (h *StatusHandler) Provision(ctx caddy.Context) error {
	if h.Refresh < 0 {
		return fmt.Errorf("edgeroute_status: refresh must be positive")
	}
	if h.Refresh == 0 {
		h.Refresh = caddy.Duration(DefaultStatusRefresh)
	}
	if h.BackendsPerApp == 0 {
		h.BackendsPerApp = DefaultStatusBackendsPerApp
	}
	appIface, err := ctx.App("edgeroute")
	if err != nil {
		return fmt.Errorf("edgeroute_status: %v", err)
	}
	h.app = appIface.(*App)
	return nil
}

//go:embed status
var statusFiles embed.FS

var statusTemplates = template.Must(template.New("").Funcs(statusFuncs).ParseFS(statusFiles, "status/*.html"))

// statusAssets are the page's script and style, served by the handler
// itself under ?asset=.
var statusAssets = map[string]string{"status.js": "text/javascript; charset=utf-8", "status.css": "text/css; charset=utf-8"}

// ServeHTTP answers with the page, its live part (?format=fragment), its
// JSON (?format=json) or one of its assets (?asset=).
func (h *StatusHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, fmt.Errorf("edgeroute_status: method %s not allowed", r.Method))
	}
	q := r.URL.Query()
	if a := q.Get("asset"); a != "" {
		ct, ok := statusAssets[a]
		if !ok {
			return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("edgeroute_status: no asset %q", a))
		}
		b, err := statusFiles.ReadFile("status/" + a)
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-cache")
		_, err = w.Write(b)
		return err
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	view := h.app.statusView(ctx, h.BackendsPerApp)
	w.Header().Set("Cache-Control", "no-store")
	// Nothing but this handler's own script, style and requests.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	switch f := q.Get("format"); f {
	case "json":
		return writeJSON(w, view)
	case "fragment", "":
		name := "page.html"
		if f == "fragment" {
			name = "live.html"
		}
		var buf bytes.Buffer
		page := statusPage{View: view, Refresh: time.Duration(h.Refresh).Milliseconds(), SVG: drawEdge(view)}
		if err := statusTemplates.ExecuteTemplate(&buf, name, page); err != nil {
			return err
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, err := w.Write(buf.Bytes())
		return err
	default:
		return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("edgeroute_status: unknown format %q (json, fragment, or none for the page)", f))
	}
}

// statusPage is what the templates render.
type statusPage struct {
	View    StatusView
	Refresh int64 // milliseconds between refreshes of the open page
	SVG     template.HTML
}

// UnmarshalCaddyfile parses:
//
//	edgeroute_status [<matcher>] {
//		refresh          <duration>  # how often the open page refreshes; default 1s
//		backends_per_app <n>|all     # backends listed per app; default 25
//	}
func (h *StatusHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.Errf("edgeroute_status: unexpected argument %q", d.Val())
	}
	seen := options{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if err := seen.once(d, "edgeroute_status"); err != nil {
			return err
		}
		var v string
		if !d.AllArgs(&v) {
			return d.Errf("edgeroute_status: %s takes exactly one value", opt)
		}
		switch opt {
		case "refresh":
			dur, err := parseDuration(v, false)
			if err != nil {
				return d.Errf("edgeroute_status: refresh %q: %v", v, err)
			}
			h.Refresh = dur
		case "backends_per_app":
			if v == "all" {
				h.BackendsPerApp = -1
				break
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return d.Errf("edgeroute_status: backends_per_app %q: want a number of 1 or more, or all", v)
			}
			h.BackendsPerApp = n
		default:
			return d.Errf("edgeroute_status: unknown option %q (known: refresh, backends_per_app)", opt)
		}
	}
	return nil
}

func parseStatusHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(StatusHandler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// Interface guards
var (
	_ caddy.Provisioner           = (*StatusHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*StatusHandler)(nil)
	_ caddyfile.Unmarshaler       = (*StatusHandler)(nil)
)
