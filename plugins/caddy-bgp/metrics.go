package bgp

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgeproxy/edgeproxy/anycast"
)

var (
	descSession = prometheus.NewDesc("bgp_peer_session_established",
		"1 while the BGP session with the peer is Established.", []string{"peer"}, nil)
	descPeerState = prometheus.NewDesc("bgp_peer_state",
		"1 for the BGP FSM state the session with the peer is in.", []string{"peer", "state"}, nil)
	descUpdatesSent = prometheus.NewDesc("bgp_peer_updates_sent_total",
		"UPDATE messages sent to the peer during the current session.", []string{"peer"}, nil)
	descWithdrawalsSent = prometheus.NewDesc("bgp_peer_withdrawals_sent_total",
		"Prefixes withdrawn towards the peer during the current session.", []string{"peer"}, nil)
	descReceived = prometheus.NewDesc("bgp_peer_prefixes_received",
		"Prefixes the peer sent (every one is rejected on import).", []string{"peer"}, nil)
	descAnnounced = prometheus.NewDesc("bgp_prefix_announced",
		"1 while the prefix is announced (normally or draining).", []string{"prefix", "state"}, nil)
	descSince = prometheus.NewDesc("bgp_prefix_state_seconds",
		"Seconds since the prefix last changed state.", []string{"prefix"}, nil)
	descRIBChanges = prometheus.NewDesc("bgp_rib_changes_total",
		"Announcements and withdrawals this POP made, each sent to every established peer.", []string{"kind"}, nil)
)

// collector reads the speaker at scrape time: no metric is updated on the
// decision path.
type collector struct{ m *anycast.Manager }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSession, descPeerState, descUpdatesSent, descWithdrawalsSent, descReceived,
		descAnnounced, descSince, descRIBChanges} {
		ch <- d
	}
}

var fsmStates = []string{"idle", "connect", "active", "opensent", "openconfirm", "established"}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st := c.m.Status(ctx)
	if !st.Running {
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range st.Peers {
		gauge(descSession, b(p.State == "established"), p.Address)
		for _, s := range fsmStates {
			gauge(descPeerState, b(p.State == s), p.Address, s)
		}
		counter(descUpdatesSent, p.UpdatesSent, p.Address)
		counter(descWithdrawalsSent, p.WithdrawalsSent, p.Address)
		gauge(descReceived, float64(p.Received), p.Address)
	}
	for _, p := range st.Prefixes {
		gauge(descAnnounced, b(p.Phase != anycast.Withdrawn), p.Prefix.String(), string(p.Phase))
		gauge(descSince, p.SinceSeconds, p.Prefix.String())
	}
	counter(descRIBChanges, st.Announcements, "announce")
	counter(descRIBChanges, st.Withdrawals, "withdraw")
}

func b(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func registerMetrics(ctx caddy.Context, m *anycast.Manager) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(collector{m})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}
