package pop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/zap"
	"go.uber.org/zap/exp/zapslog"

	"github.com/edgeproxy/edgeproxy/cluster"
	"github.com/edgeproxy/edgeproxy/store"
)

// clusterState is the running cluster node of a runtime. It lives as long as
// the runtime, across reloads that keep its settings.
type clusterState struct {
	node        *cluster.Node
	bridge      *cluster.Node // in the global cluster, on a bridge; nil otherwise
	fingerprint string        // what a reload must match to keep the node running
	keys        [][]byte
}

// clusterFingerprint is what must stay equal for a reload to keep the node:
// keys may change in place (rotation), but turning encryption on or off
// restarts it.
func clusterFingerprint(node string, c *ClusterConfig) string {
	cc := *c
	cc.Keys = nil
	b, _ := json.Marshal(struct {
		Node      string
		C         ClusterConfig
		Encrypted bool
	}{node, cc, len(c.Keys) > 0})
	return string(b)
}

// Cluster is the running cluster node, nil when the POP runs alone.
func (rt *Runtime) Cluster() *cluster.Node {
	if cur := rt.cluster.Load(); cur != nil {
		return cur.node
	}
	return nil
}

// Bridge is the bridge's node in the global cluster, nil when this POP is
// no bridge.
func (rt *Runtime) Bridge() *cluster.Node {
	if cur := rt.cluster.Load(); cur != nil {
		return cur.bridge
	}
	return nil
}

// stop leaves both clusters, the global one first: its members stop
// counting on this bridge before its region does.
func (cs *clusterState) stop() error {
	var err error
	if cs.bridge != nil {
		err = cs.bridge.Stop()
	}
	return errors.Join(err, cs.node.Stop())
}

// setCluster makes the cluster match cfg: started, kept (keys rotated in
// place), restarted with new settings, or stopped. Its caller holds
// applyMu.
func (rt *Runtime) setCluster(cfg Config) error {
	log := rt.log()
	cur := rt.cluster.Load()
	if cfg.Cluster == nil {
		if cur != nil {
			rt.cluster.Store(nil)
			log.Info("cluster block removed: leaving the cluster")
			if err := cur.stop(); err != nil {
				return err
			}
		}
		return rt.publishPop(cfg, "")
	}
	fp := clusterFingerprint(cfg.Identity.Node, cfg.Cluster)
	if cur != nil && cur.fingerprint == fp {
		if err := rotateKeys(cur, cfg.Cluster.Keys); err != nil {
			return fmt.Errorf("cluster: rotating keys: %v", err)
		}
		return rt.publishPop(cfg, cur.node.Addr())
	}
	if cur != nil {
		rt.cluster.Store(nil)
		log.Info("cluster settings changed: restarting the cluster listener")
		if err := cur.stop(); err != nil {
			log.Warn("leaving the cluster", zap.Error(err))
		}
	}
	c := cfg.Cluster
	// The region's node and, on a bridge, the global one share every
	// setting but where they listen and which cluster they are in.
	shared := cluster.Config{
		Name:           cfg.Identity.Node,
		Keys:           c.Keys,
		SyncInterval:   c.SyncInterval,
		RejoinInterval: c.RejoinInterval,
		TombstoneAge:   c.TombstoneAge,
		OnMerge: func(rows bool) {
			if rows {
				rt.kick()
			}
		},
	}
	listen := func(logger, bind, advertise string, join []string, name, profile string) (*cluster.Node, error) {
		nc := shared
		nc.Bind, nc.Advertise, nc.Join, nc.Cluster, nc.Profile = bind, advertise, join, name, profile
		nc.Logger = slog.New(zapslog.NewHandler(log.Named(logger).Core()))
		return cluster.Start(rt.st, nc)
	}
	node, err := listen("cluster", c.Bind, c.Advertise, c.Join, c.Name, c.Profile)
	if err != nil {
		return err
	}
	cs := &clusterState{node: node, fingerprint: fp, keys: c.Keys}
	if b := c.Bridge; b != nil {
		gn, err := listen("cluster.bridge", b.Bind, b.Advertise, b.Join, b.Name, b.Profile)
		if err == nil {
			err = cluster.Bridge(node, gn)
			if err != nil {
				gn.Stop()
			}
		}
		if err != nil {
			node.Stop()
			return fmt.Errorf("bridge: %w", err)
		}
		cs.bridge = gn
	}
	if from := rt.st.CopiedFrom(); from != "" {
		log.Warn("this routing table file is a copy of another POP's: it replicates under a new site id",
			zap.String("db", rt.st.Path()), zap.String("site", rt.st.SiteID()), zap.String("copied_from", from))
	}
	rt.cluster.Store(cs)
	return rt.publishPop(cfg, node.Addr())
}

// rotateKeys installs a new key list on a running node: new keys are added,
// the first becomes the one that encrypts, keys no longer listed go.
func rotateKeys(st *clusterState, keys [][]byte) error {
	if slices.EqualFunc(keys, st.keys, bytes.Equal) {
		return nil
	}
	if st.node.Keyring() == nil || len(keys) == 0 {
		return errors.New("turning encryption on or off needs a restart of the cluster: change bind or restart Caddy")
	}
	for _, n := range []*cluster.Node{st.node, st.bridge} {
		if n != nil {
			if err := rotate(n.Keyring(), keys); err != nil {
				return err
			}
		}
	}
	st.keys = keys
	return nil
}

// rotate installs keys on one node's keyring.
func rotate(kr *memberlist.Keyring, keys [][]byte) error {
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
	return nil
}

// publishPop writes this POP's own pops row (where it is and how the
// cluster reaches it); the triggers replicate it. A POP running alone keeps
// the row without a cluster address only when it has a node name.
func (rt *Runtime) publishPop(cfg Config, nodeAddr string) error {
	if cfg.Identity.Node == "" || cfg.Cluster == nil {
		return nil
	}
	addr := cfg.Cluster.Advertise
	if addr == "" {
		addr = nodeAddr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := rt.st.SetPop(ctx, cfg.Identity.Node, store.PopUpdate{
		Region: store.Str(cfg.Identity.Region), Country: store.Str(cfg.Identity.Country), Addr: store.Str(addr)})
	if err != nil {
		return fmt.Errorf("publishing this POP's row: %v", err)
	}
	return nil
}

// stopCluster leaves the cluster when the runtime is released.
func (rt *Runtime) stopCluster() {
	if cur := rt.cluster.Swap(nil); cur != nil {
		cur.stop()
	}
}
