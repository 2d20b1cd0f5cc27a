package edgeroute

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// runtimes holds one runtime per database path, shared by the old and the
// new config during a reload.
var runtimes = caddy.NewUsagePool()

// runtime is the long-lived state of one routing table file.
type runtime struct {
	store    *store.Store
	table    atomic.Pointer[routing.Table]
	affinity *routing.Affinity
	stats    *stats
	logger   atomic.Pointer[zap.Logger]
	ttl      atomic.Int64                 // affinity TTL of the newest config, nanoseconds
	cluster  atomic.Pointer[clusterState] // cluster.go; nil when the POP runs alone
	wake     chan struct{}                // cluster.go: reload now

	cancel context.CancelFunc
	done   chan struct{}
}

// openRuntime opens the file and takes the first snapshot, so a bad file is
// a config error at load time rather than a failure at the first connection.
func openRuntime(path string, logger *zap.Logger) (*runtime, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return nil, err
	}
	tbl, warnings, err := st.Snapshot(ctx)
	if err != nil {
		st.Close()
		return nil, err
	}
	rt := &runtime{store: st, stats: newStats(), done: make(chan struct{}), wake: make(chan struct{}, 1)}
	rt.logger.Store(logger)
	rt.affinity = routing.NewAffinity(time.Duration(1<<62), nil)
	rt.table.Store(tbl)
	rt.logWarnings(warnings)
	return rt, nil
}

// start begins watching the file for commits and sweeping expired bindings.
func (rt *runtime) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel = cancel
	go func() {
		defer close(rt.done)
		// The watcher's first delivery is its baseline, normally the
		// table Provision already loaded: not worth an info line.
		first := true
		rt.store.Watch(ctx, store.Watcher{
			Interval: interval,
			Wake:     rt.wake, // cluster.go: replicated merges
			OnTable: func(t *routing.Table, warnings []string) {
				prev := rt.table.Swap(t)
				rt.logWarnings(warnings)
				log := rt.logger.Load().Info
				if first {
					log, first = rt.logger.Load().Debug, false
				}
				log("routing table reloaded",
					zap.String("db", rt.store.Path()),
					zap.Uint64("generation", t.Generation),
					zap.Int("backends", len(t.Backends())),
					zap.Int("previous_backends", len(prev.Backends())))
				rt.store.Loads().Forget(func(id string) bool { return t.Backend(id) != nil })
			},
			OnError: func(err error) {
				rt.stats.reloadErrors.Add(1)
				rt.logger.Load().Error("reading routing table; still routing with the last good snapshot",
					zap.String("db", rt.store.Path()), zap.Error(err))
			},
		})
	}()
	go rt.sweep(ctx)
}

func (rt *runtime) sweep(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rt.affinity.Sweep()
		}
	}
}

func (rt *runtime) logWarnings(warnings []string) {
	for _, w := range warnings {
		rt.logger.Load().Warn("routing table row ignored", zap.String("db", rt.store.Path()), zap.String("problem", w))
	}
}

// Destruct stops the watcher and closes the file once no config uses it.
func (rt *runtime) Destruct() error {
	rt.stopCluster() // cluster.go
	if rt.cancel != nil {
		rt.cancel()
		<-rt.done
	}
	return rt.store.Close()
}

var _ caddy.Destructor = (*runtime)(nil)
