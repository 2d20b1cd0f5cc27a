package edgeroute

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/routing"
)

var (
	descChecks = prometheus.NewDesc("edgeroute_health_checks_total",
		"Active health checks of a backend by this POP, by result (ok or fail).", []string{"app", "backend", "result"}, nil)
	descCheckHealthy = prometheus.NewDesc("edgeroute_health_check_healthy",
		"1 when the backend passes its active health checks (after rise/fall), 0 when it is held out.", []string{"app", "backend"}, nil)
	descRTT = prometheus.NewDesc("edgeroute_health_rtt_seconds",
		"Smoothed round-trip time of the backend's health checks.", []string{"app", "backend"}, nil)
	descEjected = prometheus.NewDesc("edgeroute_backend_ejected",
		"1 while passive outlier detection holds the backend out after repeated connection failures.", []string{"app", "backend"}, nil)
	descEjections = prometheus.NewDesc("edgeroute_backend_ejections_total",
		"Passive ejections of a backend by this POP.", []string{"app", "backend"}, nil)
	descEjectionsAll = prometheus.NewDesc("edgeroute_ejections_total",
		"Passive ejections by this POP, all backends, since the config loaded.", nil, nil)
	descExpired = prometheus.NewDesc("edgeroute_heartbeat_expirations_total",
		"Backends removed because no heartbeat arrived within their TTL, since the config loaded.", nil, nil)
)

// healthCollector exposes the health of the backends the config's
// backend_metrics names: under "used", those this POP checks actively or
// has sent a connection to (a passive ejection follows failed
// connections).
type healthCollector struct {
	rt       *runtime
	backends string
}

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChecks, descCheckHealthy, descRTT, descEjected, descEjections, descEjectionsAll, descExpired} {
		ch <- d
	}
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.rt.HealthViewWhere("", func(b *routing.Backend, checked bool) bool { return hasSeries(c.backends, b, checked) })
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(x), labels...)
	}
	for _, app := range v.Apps {
		for _, b := range app.Backends {
			if b.Checked {
				counter(descChecks, b.Checks-b.Failures, app.App, b.ID, "ok")
				counter(descChecks, b.Failures, app.App, b.ID, "fail")
				gauge(descCheckHealthy, boolGauge(b.Healthy), app.App, b.ID)
				gauge(descRTT, b.RTTMs/1000, app.App, b.ID)
			}
			if b.Ejecting {
				gauge(descEjected, boolGauge(b.Ejection.Ejected), app.App, b.ID)
				counter(descEjections, b.Ejection.Total, app.App, b.ID)
			}
		}
	}
	counter(descEjectionsAll, v.Ejections)
	counter(descExpired, v.HeartbeatsExpired)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func registerHealthMetrics(ctx caddy.Context, rt *runtime, backends string) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(healthCollector{rt, backends})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}
