package edgeroute

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	descClusterMembers = prometheus.NewDesc("edgeroute_cluster_members",
		"Cluster members by state as this POP sees them (itself included, as alive).", []string{"state"}, nil)
	descClusterChanges = prometheus.NewDesc("edgeroute_cluster_changes_total",
		"Replicated changes: sent to members, applied (won the merge), stale (known or superseded), refused, forwarded (learnt by repair, passed on to a few members).", []string{"result"}, nil)
	descClusterMessages = prometheus.NewDesc("edgeroute_cluster_messages_total",
		"Replication messages sent, received, and refused (undecodable, oversized, inbox full).", []string{"result"}, nil)
	descClusterBytes = prometheus.NewDesc("edgeroute_cluster_bytes_total",
		"Bytes of replication messages, by direction (sent, received).", []string{"direction"}, nil)
	descClusterLag = prometheus.NewDesc("edgeroute_cluster_replication_lag_seconds",
		"Commit-to-merge delay of the newest change merged from each member.", []string{"member"}, nil)
	descClusterBehind = prometheus.NewDesc("edgeroute_cluster_versions_behind",
		"Local versions a member has not confirmed yet (from its last anti-entropy vector).", []string{"member"}, nil)
	descClusterVersion = prometheus.NewDesc("edgeroute_cluster_db_version",
		"Local version counter of the routing table (changes made on this POP).", nil, nil)
	descClusterTombstones = prometheus.NewDesc("edgeroute_cluster_tombstones_collected_total",
		"Tombstones of deleted rows forgotten once every POP had them (every region's, with bridges).", nil, nil)
	descBridgeMembers = prometheus.NewDesc("edgeroute_cluster_bridge_members",
		"Members of the global cluster of bridges by state, on a bridge (itself included, as alive).", []string{"state"}, nil)
	descBridgeRelayed = prometheus.NewDesc("edgeroute_cluster_bridge_relayed_changes_total",
		"Changes a bridge merged from one of its clusters and relayed to the other, by the cluster relayed to (region, global).", []string{"to"}, nil)
	descBridgeBytes = prometheus.NewDesc("edgeroute_cluster_bridge_bytes_total",
		"Bytes of replication messages in the global cluster, on a bridge, by direction (sent, received).", []string{"direction"}, nil)
)

type clusterCollector struct{ rt *runtime }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterMembers, descClusterChanges, descClusterMessages, descClusterBytes,
		descClusterLag, descClusterBehind, descClusterVersion, descClusterTombstones,
		descBridgeMembers, descBridgeRelayed, descBridgeBytes} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.rt.Cluster()
	if n == nil {
		return
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := n.Brief(ctx)
	for state, k := range st.Counts {
		gauge(descClusterMembers, float64(k), state)
	}
	counter(descClusterChanges, n.Stats.ChangesSent.Load(), "sent")
	counter(descClusterChanges, n.Stats.ChangesApplied.Load(), "applied")
	counter(descClusterChanges, n.Stats.ChangesStale.Load(), "stale")
	counter(descClusterChanges, n.Stats.ChangesRefused.Load(), "refused")
	counter(descClusterChanges, n.Stats.ChangesForwarded.Load(), "forwarded")
	counter(descClusterMessages, n.Stats.MessagesSent.Load(), "sent")
	counter(descClusterMessages, n.Stats.MessagesRecv.Load(), "received")
	counter(descClusterMessages, n.Stats.MessagesRefused.Load(), "refused")
	counter(descClusterBytes, n.Stats.BytesSent.Load(), "sent")
	counter(descClusterBytes, n.Stats.BytesRecv.Load(), "received")
	counter(descClusterTombstones, n.Stats.TombstonesGC.Load())
	gauge(descClusterVersion, float64(st.DBVersion))
	for _, m := range st.Members {
		if m.LagMS >= 0 {
			gauge(descClusterLag, m.LagMS/1000, m.Name)
		}
		if m.Behind >= 0 {
			gauge(descClusterBehind, float64(m.Behind), m.Name)
		}
	}
	if g := c.rt.Bridge(); g != nil {
		for state, k := range g.Brief(ctx).Counts {
			gauge(descBridgeMembers, float64(k), state)
		}
		counter(descBridgeRelayed, n.Stats.ChangesRelayed.Load(), "region")
		counter(descBridgeRelayed, g.Stats.ChangesRelayed.Load(), "global")
		counter(descBridgeBytes, g.Stats.BytesSent.Load(), "sent")
		counter(descBridgeBytes, g.Stats.BytesRecv.Load(), "received")
	}
}

func registerClusterMetrics(ctx caddy.Context, rt *runtime) error {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil
	}
	err := reg.Register(clusterCollector{rt})
	var already prometheus.AlreadyRegisteredError
	if err != nil && !errors.As(err, &already) {
		return err
	}
	return nil
}
