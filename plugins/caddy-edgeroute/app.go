package edgeroute

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/geo"
	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/routing"
)

func init() {
	caddy.RegisterModule(new(App))
}

// DefaultAffinity is how long a client keeps its backend without using it,
// as in edgeProxy v1.
var DefaultAffinity = pop.DefaultConfig().Affinity

// Which backends have series of their own in the metrics (App.BackendMetrics).
const (
	BackendMetricsUsed = "used"
	BackendMetricsAll  = "all"
	BackendMetricsOff  = "off"
)

// App is the routing table of this POP: where it is, which file holds the
// table and how clients are located. Handlers named `edgeroute` route
// through it.
type App struct {
	// DB is the SQLite routing table. It is created if missing and an
	// edgeProxy v1 routing.db is migrated in place. Default:
	// edgeroute/routing.db in Caddy's data directory.
	DB string `json:"db,omitempty"`
	// Node names this POP. Default: the host name.
	Node string `json:"node,omitempty"`
	// Region is this POP's region (v1's EDGEPROXY_REGION): clients whose
	// own region has no backend go to backends here.
	Region string `json:"region,omitempty"`
	// Country is this POP's ISO 3166 country code.
	Country string `json:"country,omitempty"`
	// GeoIP is a MaxMind-format country database (GeoIP2/GeoLite2 or
	// DB-IP Lite shape). Default: the embedded DB-IP Country Lite.
	GeoIP string `json:"geoip,omitempty"`
	// Affinity is how long a client keeps its backend while unused.
	// Default 10m; a negative value disables affinity.
	Affinity caddy.Duration `json:"affinity,omitempty"`
	// Regions overrides the country to region map, e.g. {"ZA": "af"}.
	Regions map[string]string `json:"regions,omitempty"`
	// WatchInterval is how often the file is checked for commits.
	// Default 50ms.
	WatchInterval caddy.Duration `json:"watch_interval,omitempty"`
	// DrainFile drains the POP while the file exists (a maintenance
	// file): anycast announcements are drained and withdrawn while
	// listeners keep serving.
	DrainFile string `json:"drain_file,omitempty"`
	// StopDelay keeps listeners open this long after the process is told
	// to stop, with the POP signalling `stopping`, so routers and load
	// balancers move clients away first. Default 0.
	StopDelay caddy.Duration `json:"stop_delay,omitempty"`
	// Cluster replicates the routing table with other POPs. Without it
	// nothing listens and the POP runs alone.
	Cluster *ClusterConfig `json:"cluster,omitempty"`
	// Health configures active health checks per app.
	Health map[string]*HealthConfig `json:"health,omitempty"`
	// Listeners are ports the app accepts on itself, each for one app's
	// backends (see Listener).
	Listeners []*Listener `json:"listeners,omitempty"`
	// BackendMetrics says which backends have series of their own in the
	// metrics (connections, bytes, dial failures, routable): "used" (the
	// default), those this POP has sent a connection to or failed to
	// dial; "all", every backend of the table; "off", none (the per-app
	// series stay). With "all", a table of 100,000 backends is 600,000
	// series, and a scrape takes seconds of CPU and hundreds of MB.
	BackendMetrics string `json:"backend_metrics,omitempty"`

	scorer  routing.Scorer
	regions routing.RegionMap
	geo     *geo.Resolver
	rt      *runtime
	logger  *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "edgeroute",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision validates the config, opens the GeoIP database and the routing
// table and loads its first snapshot. Every problem with them is reported
// here, when the config loads.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.DB == "" {
		a.DB = filepath.Join(caddy.AppDataDir(), "edgeroute", "routing.db")
		if err := os.MkdirAll(filepath.Dir(a.DB), 0o700); err != nil {
			return fmt.Errorf("edgeroute: creating the default db directory: %v", err)
		}
	}
	if a.Node == "" {
		a.Node, _ = os.Hostname()
	}
	a.Region = strings.ToLower(strings.TrimSpace(a.Region))
	if c := strings.TrimSpace(a.Country); c != "" && (len(c) != 2 || !isLetters(c)) {
		return fmt.Errorf("edgeroute: country %q is not an ISO 3166 two-letter code", a.Country)
	}
	a.Country = strings.ToUpper(strings.TrimSpace(a.Country))
	regions, err := routing.WithOverrides(a.Regions)
	if err != nil {
		return fmt.Errorf("edgeroute: %v", err)
	}
	a.regions = regions
	if a.Region == "" && a.Country != "" {
		a.Region = regions.Region(a.Country)
	}
	if a.Region == "" {
		a.logger.Warn("no region set: clients whose own region has no backend will not prefer any region (set `region` as in v1's EDGEPROXY_REGION)")
	}
	a.scorer = routing.Scorer{LocalRegion: a.Region}
	if a.Affinity == 0 {
		a.Affinity = caddy.Duration(DefaultAffinity)
	}

	a.geo, err = geo.Open(a.GeoIP)
	if err != nil {
		return fmt.Errorf("edgeroute: %v", err)
	}

	if a.StopDelay < 0 {
		return fmt.Errorf("edgeroute: stop_delay must not be negative")
	}
	switch a.BackendMetrics {
	case "":
		a.BackendMetrics = BackendMetricsUsed
	case BackendMetricsUsed, BackendMetricsAll, BackendMetricsOff:
	default:
		return fmt.Errorf("edgeroute: backend_metrics %q: want used, all or off", a.BackendMetrics)
	}
	if a.DrainFile != "" {
		a.DrainFile = filepath.Clean(a.DrainFile)
	}
	val, _, err := runtimes.LoadOrNew(a.DB, func() (caddy.Destructor, error) {
		rt, err := pop.Open(a.DB, a.logger)
		if err != nil {
			return nil, err
		}
		return &runtime{Runtime: rt, stats: newStats()}, nil
	})
	if err != nil {
		a.geo.Close()
		return fmt.Errorf("edgeroute: %v", err)
	}
	a.rt = val.(*runtime)
	if err := a.provisionCluster(ctx); err != nil {
		return err
	}
	if err := a.provisionHealth(ctx); err != nil {
		return err
	}
	for i, ls := range a.Listeners {
		if err := ls.provision(ctx, a, i); err != nil {
			return err
		}
	}
	return registerMetrics(ctx, a)
}

// popConfig is what this config asks of the POP's runtime.
func (a *App) popConfig() pop.Config {
	affinity := time.Duration(a.Affinity)
	return pop.Config{
		Identity:      pop.Identity{Node: a.Node, Region: a.Region, Country: a.Country},
		Affinity:      affinity,
		WatchInterval: time.Duration(a.WatchInterval),
		DrainFile:     a.DrainFile,
		StopDelay:     time.Duration(a.StopDelay),
		Cluster:       a.Cluster.popConfig(),
		Health:        a.healthSpecs(),
		Logger:        a.logger,
	}
}

// Start applies this config to the POP's runtime (the first config starts
// it) and opens the app's own listeners.
func (a *App) Start() error {
	if err := a.rt.Apply(a.popConfig()); err != nil {
		return fmt.Errorf("edgeroute: %v", err)
	}
	for _, ls := range a.Listeners {
		if err := ls.start(); err != nil {
			a.stopListeners()
			return err
		}
	}
	tbl := a.rt.Table()
	a.logger.Info("edgeroute started",
		zap.String("node", a.Node),
		zap.String("region", a.Region),
		zap.String("country", a.Country),
		zap.String("db", a.rt.Store().Path()),
		zap.String("geoip", a.geo.Source()),
		zap.Int("backends", tbl.Rows().Len()),
		zap.Strings("apps", tbl.Apps()))
	return nil
}

// Stop stops what belongs to this config alone. The POP's runtime outlives
// the config so that a reload does not lose it; Cleanup releases it. When
// the process exits, the POP signals `stopping` first and keeps its
// listeners open for the stop delay and while apps that announce it (bgp)
// drain.
func (a *App) Stop() error {
	if caddy.Exiting() {
		a.rt.BeginStop("the process is exiting (caddy stop or a signal)")
		a.rt.WaitStop()
	}
	return a.stopListeners()
}

func (a *App) stopListeners() error {
	var errs []error
	for _, ls := range a.Listeners {
		errs = append(errs, ls.stop())
	}
	return errors.Join(errs...)
}

// Cleanup releases the routing table file once no config uses it.
func (a *App) Cleanup() error {
	if a.rt != nil {
		if _, err := runtimes.Delete(a.DB); err != nil {
			return err
		}
	}
	if a.geo != nil {
		return a.geo.Close()
	}
	return nil
}

// Table is the current routing table snapshot.
func (a *App) Table() *routing.Table { return a.rt.Table() }

// scorerFor is the scorer of one app: its connections and its explanations.
func (a *App) scorerFor(app string) routing.Scorer {
	s := a.scorer
	if hc := a.Health[app]; hc != nil && hc.PreferRTT {
		s.PreferRTT = true
	}
	return s
}

// Locate maps a client address to its country and region.
func (a *App) Locate(ip netip.Addr) routing.Client {
	cc := a.geo.Country(ip)
	return routing.Client{Country: cc, Region: a.regions.Region(cc)}
}

// Explain scores every backend of app for a client address, as a
// connection from that address would be routed now.
func (a *App) Explain(app string, ip netip.Addr) (routing.Client, []routing.Candidate) {
	c := a.Locate(ip)
	return c, a.scorerFor(app).Explain(a.Table().App(app), c)
}

func isLetters(s string) bool {
	for _, r := range s {
		if (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') {
			return false
		}
	}
	return true
}

// clientAddr is the IP a connection comes from.
func clientAddr(addr net.Addr) netip.Addr {
	switch a := addr.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	default:
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ pop.POP            = (*App)(nil)
)
