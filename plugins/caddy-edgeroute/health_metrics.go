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

type healthCollector struct{ m *healthManager }

func (c healthCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descChecks, descCheckHealthy, descRTT, descEjected, descEjections, descEjectionsAll, descExpired} {
		ch <- d
	}
}

func (c healthCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	for app, mon := range m.monitors {
		for _, st := range mon.Statuses() {
			ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(st.Checks-st.Failures), app, st.ID, "ok")
			ch <- prometheus.MustNewConstMetric(descChecks, prometheus.CounterValue, float64(st.Failures), app, st.ID, "fail")
			healthy := 0.0
			if st.Healthy {
				healthy = 1
			}
			ch <- prometheus.MustNewConstMetric(descCheckHealthy, prometheus.GaugeValue, healthy, app, st.ID)
			ch <- prometheus.MustNewConstMetric(descRTT, prometheus.GaugeValue, st.RTT.Seconds(), app, st.ID)
		}
	}
	for _, b := range m.a.Table().Backends() {
		o, configured := m.outliers[b.App]
		if !configured {
			o = m.defaultO
		}
		if o == nil {
			continue
		}
		info := o.Info(b.ID)
		ejected := 0.0
		if b.Load.DownReasons()&routing.DownEjected != 0 {
			ejected = 1
		}
		ch <- prometheus.MustNewConstMetric(descEjected, prometheus.GaugeValue, ejected, b.App, b.ID)
		ch <- prometheus.MustNewConstMetric(descEjections, prometheus.CounterValue, float64(info.Total), b.App, b.ID)
	}
	ch <- prometheus.MustNewConstMetric(descEjectionsAll, prometheus.CounterValue, float64(m.ejections.Load()))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(m.expired.Load()))
}

func registerHealthMetrics(ctx caddy.Context, m *healthManager) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(healthCollector{m})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}
