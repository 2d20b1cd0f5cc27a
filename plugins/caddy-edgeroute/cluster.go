package edgeroute

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/edgeproxy/edgeproxy/cluster"
)

// clusterState is the running cluster of a runtime: it lives as long as the
// routing table file is in use, across config reloads.
type clusterState struct {
	node        *cluster.Node
	fingerprint string // what a reload must match to keep the node running
	keys        [][]byte
	name        string
}

// clusterMu serialises starting and stopping clusters (config loads).
var clusterMu sync.Mutex

func clusterFingerprint(a *App) string {
	c := *a.Cluster
	c.Keys, c.keys = nil, nil
	// Keys may change in place (rotation); turning encryption on or off
	// restarts the node.
	b, _ := json.Marshal(struct {
		Node      string
		C         ClusterConfig
		Encrypted bool
	}{a.Node, c, len(a.Cluster.keys) > 0})
	return string(b)
}

// setCluster makes the runtime's cluster match the config: started,
// kept (keys rotated in place), restarted with new settings, or stopped.
func (rt *runtime) setCluster(a *App, _ time.Time) error {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	cur := rt.cluster.Load()
	if a.Cluster == nil {
		if cur != nil {
			rt.cluster.Store(nil)
			a.logger.Info("cluster block removed: leaving the cluster")
			return cur.node.Stop()
		}
		return nil
	}
	fp := clusterFingerprint(a)
	if cur != nil && cur.fingerprint == fp {
		if err := rotateKeys(cur, a.Cluster.keys); err != nil {
			return fmt.Errorf("edgeroute: cluster: rotating keys: %v", err)
		}
		return rt.publishPop(a, cur.node)
	}
	if cur != nil {
		rt.cluster.Store(nil)
		a.logger.Info("cluster settings changed: restarting the cluster listener")
		if err := cur.node.Stop(); err != nil {
			a.logger.Warn("leaving the cluster", zap.Error(err))
		}
	}
	c := a.Cluster
	node, err := cluster.Start(rt.store, cluster.Config{
		Name:           a.Node,
		Bind:           c.Bind,
		Advertise:      c.Advertise,
		Join:           c.Join,
		Keys:           c.keys,
		Cluster:        c.Name,
		Logger:         slog.New(zapslog.NewHandler(a.logger.Named("cluster").Core())),
		SyncInterval:   time.Duration(c.SyncInterval),
		RejoinInterval: time.Duration(c.RejoinInterval),
		TombstoneAge:   time.Duration(c.TombstoneAge),
		OnMerge:        rt.kick,
	})
	if err != nil {
		return fmt.Errorf("edgeroute: %v", err)
	}
	if from := rt.store.CopiedFrom(); from != "" {
		a.logger.Warn("this routing table file is a copy of another POP's: it replicates under a new site id",
			zap.String("db", rt.store.Path()), zap.String("site", rt.store.SiteID()), zap.String("copied_from", from))
	}
	st := &clusterState{node: node, fingerprint: fp, keys: c.keys, name: c.Name}
	rt.cluster.Store(st)
	return rt.publishPop(a, node)
}

// rotateKeys installs a new key list on a running node: new keys are added,
// the first becomes the one that encrypts, keys no longer listed go.
func rotateKeys(st *clusterState, keys [][]byte) error {
	same := len(keys) == len(st.keys)
	for i := range keys {
		if same && !bytes.Equal(keys[i], st.keys[i]) {
			same = false
		}
	}
	if same {
		return nil
	}
	kr := st.node.Keyring()
	if kr == nil || len(keys) == 0 {
		return errors.New("turning encryption on or off needs a restart of the cluster: change bind or restart Caddy")
	}
	for _, k := range keys {
		if err := kr.AddKey(k); err != nil {
			return err
		}
	}
	if err := kr.UseKey(keys[0]); err != nil {
		return err
	}
	for _, old := range kr.GetKeys() {
		if !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, old) }) {
			if err := kr.RemoveKey(old); err != nil {
				return err
			}
		}
	}
	st.keys = keys
	return nil
}

// publishPop writes this POP's own pops row; the triggers replicate it. An
// unchanged row is not rewritten, so restarts cause no replication traffic.
func (rt *runtime) publishPop(a *App, node *cluster.Node) error {
	addr := a.Cluster.Advertise
	if addr == "" {
		addr = node.Addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := rt.store.DB().ExecContext(ctx, `INSERT INTO pops (node, region, country, addr) VALUES (?, ?, ?, ?)
		ON CONFLICT (node) DO UPDATE SET region = excluded.region, country = excluded.country, addr = excluded.addr
		WHERE pops.region IS NOT excluded.region OR pops.country IS NOT excluded.country OR pops.addr IS NOT excluded.addr`,
		a.Node, a.Region, a.Country, addr)
	if err != nil {
		return fmt.Errorf("edgeroute: publishing this POP's row: %v", err)
	}
	return nil
}

// kick makes the routing table follow a merge at once.
func (rt *runtime) kick() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

// stopCluster leaves the cluster when the runtime is released.
func (rt *runtime) stopCluster() {
	clusterMu.Lock()
	defer clusterMu.Unlock()
	if cur := rt.cluster.Swap(nil); cur != nil {
		cur.node.Stop()
	}
}

// --- metrics

var (
	descClusterMembers = prometheus.NewDesc("edgeroute_cluster_members",
		"Cluster members by state as this POP sees them (itself included, as alive).", []string{"state"}, nil)
	descClusterChanges = prometheus.NewDesc("edgeroute_cluster_changes_total",
		"Replicated changes: sent to members, applied (won the merge), stale (known or superseded), refused.", []string{"result"}, nil)
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
		"Tombstones of deleted rows forgotten once every member had them.", nil, nil)
)

type clusterCollector struct{ rt *runtime }

func (c clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descClusterMembers, descClusterChanges, descClusterMessages, descClusterBytes,
		descClusterLag, descClusterBehind, descClusterVersion, descClusterTombstones} {
		ch <- d
	}
}

func (c clusterCollector) Collect(ch chan<- prometheus.Metric) {
	cur := c.rt.cluster.Load()
	if cur == nil {
		return
	}
	n := cur.node
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st := n.Status(ctx)
	for state, k := range st.Counts {
		gauge(descClusterMembers, float64(k), state)
	}
	counter(descClusterChanges, n.Stats.ChangesSent.Load(), "sent")
	counter(descClusterChanges, n.Stats.ChangesApplied.Load(), "applied")
	counter(descClusterChanges, n.Stats.ChangesStale.Load(), "stale")
	counter(descClusterChanges, n.Stats.ChangesRefused.Load(), "refused")
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
