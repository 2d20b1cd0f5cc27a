package edgeroute

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/pop"
	"github.com/edgeproxy/edgeproxy/routing"
)

// stats are the counters of one routing table that are not per backend.
// Per-backend counts live in routing.Load; everything is read at scrape
// time, so a connection pays for atomics only, never for a metric lookup.
type stats struct {
	mu   sync.Mutex
	apps map[string]*appStats
}

type appStats struct {
	decisions [len(routing.Tiers)]atomic.Uint64
	refused   atomic.Uint64
}

func newStats() *stats { return &stats{apps: map[string]*appStats{}} }

func (s *stats) forApp(app string) *appStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[app]
	if !ok {
		a = new(appStats)
		s.apps[app] = a
	}
	return a
}

var (
	descDecisions = prometheus.NewDesc("edgeroute_decisions_total",
		"Connections routed, by app and the geo tier of the chosen backend.", []string{"app", "geo_tier"}, nil)
	descRefused = prometheus.NewDesc("edgeroute_refused_connections_total",
		"Connections closed because no backend was eligible or every one tried failed.", []string{"app"}, nil)
	descActive = prometheus.NewDesc("edgeroute_backend_active_connections",
		"Connections currently proxied to a backend from this POP.", []string{"app", "backend"}, nil)
	descConns = prometheus.NewDesc("edgeroute_backend_connections_total",
		"Connections proxied to a backend from this POP.", []string{"app", "backend"}, nil)
	descBytes = prometheus.NewDesc("edgeroute_backend_bytes_total",
		"Bytes proxied, counted when a connection ends; direction is to_backend or to_client.", []string{"app", "backend", "direction"}, nil)
	descDialFailures = prometheus.NewDesc("edgeroute_backend_dial_failures_total",
		"Failed dials to a backend.", []string{"app", "backend"}, nil)
	descEligible = prometheus.NewDesc("edgeroute_backend_routable",
		"1 when the table lets the backend receive traffic (healthy, not deleted, valid address).", []string{"app", "backend"}, nil)
	descGeneration = prometheus.NewDesc("edgeroute_table_generation",
		"Generation of the routing table snapshot in use.", nil, nil)
	descAge = prometheus.NewDesc("edgeroute_table_age_seconds",
		"Seconds since the routing table snapshot in use was loaded.", nil, nil)
	descReloadErrors = prometheus.NewDesc("edgeroute_table_reload_errors_total",
		"Failed attempts to read the routing table file.", nil, nil)
	descSnapshots = prometheus.NewDesc("edgeroute_table_snapshots_total",
		"Routing table snapshots taken; read is changes (only the rows the change journal named) or whole (the whole table).", []string{"read"}, nil)
	descSnapshotSeconds = prometheus.NewDesc("edgeroute_table_snapshot_read_seconds_total",
		"Seconds spent reading routing table snapshots and building their tables, by how they were read.", []string{"read"}, nil)
	descSnapshotRows = prometheus.NewDesc("edgeroute_table_snapshot_rows_total",
		"Backend and health rows read by snapshots that followed the change journal.", nil, nil)
	descTableLooks = prometheus.NewDesc("edgeroute_table_looks_total",
		"The watcher's own looks at the routing table file for commits: one a second (the safety poll), and one per commit of any kind where the commit watch does not run.", nil, nil)
	descPopState = prometheus.NewDesc("edgeroute_pop_state",
		"1 for the state the POP is in (serving, draining, stopping), 0 for the others.", []string{"state"}, nil)
	descStale = prometheus.NewDesc("edgeroute_table_stale",
		"1 while the table file cannot be read and routing uses the last good snapshot.", nil, nil)
	descAppRoutable = prometheus.NewDesc("edgeroute_app_routable_backends",
		"Backends of an app a connection could go to now (healthy, not deleted, under the hard limit, not ejected).", []string{"app"}, nil)
)

// collector exposes one runtime's counters, with series of their own for
// the backends the config's backend_metrics names.
type collector struct {
	rt       *runtime
	backends string // BackendMetricsUsed, All or Off
}

// hasSeries tells whether a backend has series of its own under the
// config's backend_metrics (checked: this POP checks it actively, which
// the health series count as use). Under "used", a handful of a large
// table's: those this POP has sent a connection to or tried to.
func hasSeries(backendMetrics string, b *routing.Backend, checked bool) bool {
	switch backendMetrics {
	case BackendMetricsAll:
		return true
	case BackendMetricsOff:
		return false
	}
	l := b.Load
	return checked || l.Total() > 0 || l.Active() > 0 || l.DialFailures() > 0
}

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDecisions, descRefused, descActive, descConns, descBytes,
		descDialFailures, descEligible, descGeneration, descAge, descReloadErrors,
		descSnapshots, descSnapshotSeconds, descSnapshotRows, descTableLooks, descPopState, descStale, descAppRoutable} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	c.rt.stats.mu.Lock()
	for app, s := range c.rt.stats.apps {
		for _, tier := range routing.Tiers {
			counter(descDecisions, s.decisions[tier].Load(), app, tier.String())
		}
		counter(descRefused, s.refused.Load(), app)
	}
	c.rt.stats.mu.Unlock()

	t := c.rt.Table()
	c.collectBackends(t, counter, gauge)
	gauge(descGeneration, float64(t.Generation))
	gauge(descAge, time.Since(t.LoadedAt).Seconds())
	counter(descReloadErrors, c.rt.ReloadErrors.Load())
	for _, r := range c.rt.Snapshots.Reads() {
		counter(descSnapshots, r.Snapshots, r.Read)
		ch <- prometheus.MustNewConstMetric(descSnapshotSeconds, prometheus.CounterValue, r.Seconds, r.Read)
	}
	counter(descSnapshotRows, c.rt.Snapshots.FollowedRows.Load())
	counter(descTableLooks, c.rt.Snapshots.Looks.Load())
	sig := c.rt.Signal()
	for _, st := range []pop.State{pop.Serving, pop.Draining, pop.Stopping} {
		gauge(descPopState, boolGauge(sig.State == st), string(st))
	}
	gauge(descStale, boolGauge(sig.Stale))
	for app, a := range sig.Apps.All() {
		gauge(descAppRoutable, float64(a.Routable), app)
	}
}

// registerMetrics adds the app's collector to the config's registry, which
// Caddy serves on the admin endpoint's /metrics.
func registerMetrics(ctx caddy.Context, a *App) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(collector{a.rt, a.BackendMetrics})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}

// collectBackends writes the series of the backends the config names.
func (c collector) collectBackends(t *routing.Table, counter func(*prometheus.Desc, uint64, ...string), gauge func(*prometheus.Desc, float64, ...string)) {
	if c.backends == BackendMetricsOff {
		return // no backend has any: spare the walk of the table
	}
	for b := range t.Rows().All() {
		if !hasSeries(c.backends, b, false) {
			continue
		}
		gauge(descActive, float64(b.Load.Active()), b.App, b.ID)
		counter(descConns, b.Load.Total(), b.App, b.ID)
		counter(descBytes, b.Load.BytesIn(), b.App, b.ID, "to_backend")
		counter(descBytes, b.Load.BytesOut(), b.App, b.ID, "to_client")
		counter(descDialFailures, b.Load.DialFailures(), b.App, b.ID)
		gauge(descEligible, boolGauge(b.Routable()), b.App, b.ID)
	}
}
