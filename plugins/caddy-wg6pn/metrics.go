package wg6pn

import (
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descPeers = prometheus.NewDesc("wg6pn_peers",
		"Peers on the mesh device (other POPs installed from the table).", nil, nil)
	descHandshakeAge = prometheus.NewDesc("wg6pn_peer_last_handshake_age_seconds",
		"Seconds since the last handshake with a peer; absent before the first one.", []string{"peer"}, nil)
	descBytes = prometheus.NewDesc("wg6pn_peer_bytes_total",
		"Bytes exchanged with a peer through the mesh; direction is rx or tx.", []string{"peer", "direction"}, nil)
	descRefused = prometheus.NewDesc("wg6pn_refused_rows",
		"Pops rows not installed because of a foreign or overlapping prefix or a bad or shared key.", nil, nil)
)

// collector reads the device when scraped: nothing is counted on the
// packet path.
type collector struct{ a *App }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeers
	ch <- descHandshakeAge
	ch <- descBytes
	ch <- descRefused
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	v, err := c.a.view()
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, float64(len(v.Peers)))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.GaugeValue, float64(len(v.Refused)))
	now := time.Now()
	for _, p := range v.Peers {
		name := p.Node
		if name == "" {
			name = p.PublicKey
		}
		if !p.LastHandshake.IsZero() {
			ch <- prometheus.MustNewConstMetric(descHandshakeAge, prometheus.GaugeValue, now.Sub(p.LastHandshake).Seconds(), name)
		}
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(p.RxBytes), name, "rx")
		ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(p.TxBytes), name, "tx")
	}
}

// registerMetrics adds the app's collector to the config's registry, which
// Caddy serves on the admin endpoint's /metrics.
func registerMetrics(ctx caddy.Context, a *App) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(collector{a})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}
