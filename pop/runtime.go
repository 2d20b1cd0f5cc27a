package pop

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// Runtime is the long-lived state of one POP and its routing table file:
// the snapshot connections read, affinity, health checks, the cluster node
// and the health signal. It outlives configuration reloads; each config is
// applied to it as a difference.
type Runtime struct {
	st       *store.Store
	table    atomic.Pointer[routing.Table]
	affinity *routing.Affinity
	logger   atomic.Pointer[zap.Logger]
	ident    atomic.Pointer[Identity]

	// ReloadErrors counts failed reads of the table file.
	ReloadErrors atomic.Uint64
	// Snapshots counts the snapshots taken of the table file, and how
	// they were read.
	Snapshots store.WatchStats

	wake chan struct{} // the replicator's merges: reload now

	applyMu sync.Mutex // one Apply at a time
	cluster atomic.Pointer[clusterState]
	health  atomic.Pointer[healthManager]
	healthF string // fingerprint of the running health config
	signal  signalState
	reports reports // what other apps show on the POP's status (reports.go)

	cancel context.CancelFunc
	done   chan struct{}
}

// Open opens the table file and takes its first snapshot, so that a bad file
// is an error when the config loads rather than at the first connection.
func Open(path string, logger *zap.Logger) (*Runtime, error) {
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
	if logger == nil {
		logger = zap.NewNop()
	}
	rt := &Runtime{st: st, wake: make(chan struct{}, 1)}
	rt.logger.Store(logger)
	rt.ident.Store(&Identity{})
	rt.affinity = routing.NewAffinity(defaults.Affinity, nil)
	rt.table.Store(tbl)
	rt.signal.init(rt)
	rt.logWarnings(warnings)
	return rt, nil
}

// Apply makes the runtime follow cfg: the first call starts it, later ones
// change only what differs.
func (rt *Runtime) Apply(cfg Config) error {
	rt.applyMu.Lock()
	defer rt.applyMu.Unlock()
	if cfg.Logger != nil {
		rt.logger.Store(cfg.Logger)
	}
	id := cfg.Identity
	rt.ident.Store(&id)
	switch {
	case cfg.Affinity == 0:
		rt.affinity.SetTTL(defaults.Affinity)
	default:
		rt.affinity.SetTTL(cfg.Affinity)
	}
	if rt.cancel == nil {
		rt.start(cfg.WatchInterval)
	}
	rt.signal.configure(cfg.DrainFile, cfg.StopDelay)
	if err := rt.setCluster(cfg); err != nil {
		return err
	}
	rt.setHealth(cfg.Health)
	rt.signal.kick()
	return nil
}

func (rt *Runtime) log() *zap.Logger { return rt.logger.Load() }

// start begins following the file, sweeping affinity and keeping the
// signal current.
func (rt *Runtime) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	rt.cancel, rt.done = cancel, make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); rt.watch(ctx, interval) }()
	go func() { defer wg.Done(); rt.sweep(ctx) }()
	go func() { defer wg.Done(); rt.signal.run(ctx) }()
	go func() { wg.Wait(); close(rt.done) }()
}

func (rt *Runtime) watch(ctx context.Context, interval time.Duration) {
	// The watcher follows on from the table Open loaded (From). Where it
	// cannot, its first delivery is a baseline of that table, not worth an
	// info line; so the first delivery is a debug line either way, and
	// the next info line counts it.
	first := true
	// A busy table (registrations, heartbeats' health rows, an operator's
	// script) changes many times a second: one info line per
	// ReloadLogEvery says how many snapshots were taken meanwhile, and each
	// one is a debug line.
	var lastInfo time.Time
	var since int
	rt.st.Watch(ctx, store.Watcher{
		Interval: interval,
		Wake:     rt.wake,
		From:     rt.table.Load(),
		Stats:    &rt.Snapshots,
		OnTable: func(t *routing.Table, warnings []string) {
			prev := rt.table.Swap(t)
			rt.logWarnings(warnings)
			since++
			baseline := first
			info := !first && time.Since(lastInfo) >= defaults.ReloadLogEvery
			first = false
			log := rt.log().Debug
			if info {
				log = rt.log().Info
			}
			log("routing table reloaded",
				zap.String("db", rt.st.Path()),
				zap.Uint64("generation", t.Generation),
				zap.Int("backends", t.Rows().Len()),
				zap.Int("previous_backends", prev.Rows().Len()),
				zap.Int("snapshots_since_last_line", since))
			if info {
				lastInfo = time.Now()
			}
			if info || baseline {
				since = 0
			}
			rt.st.Loads().Forget(func(id string) bool { return t.Backend(id) != nil })
			// The signal is counted here, on the watcher's goroutine:
			// a kick of the signal's loop at every snapshot woke
			// another thread for it. The loop is kicked when there is
			// a state to write to the pops row.
			if rt.signal.setStale("") || rt.signal.recompute() {
				rt.signal.kick()
			}
		},
		OnSlowerFollow: func(err error) {
			rt.log().Warn("following the routing table at a higher cost per commit",
				zap.String("db", rt.st.Path()), zap.Error(err))
		},
		OnError: func(err error) {
			rt.ReloadErrors.Add(1)
			rt.log().Error("reading routing table; still routing with the last good snapshot",
				zap.String("db", rt.st.Path()), zap.Error(err))
			rt.signal.setStale(err.Error())
		},
	})
}

func (rt *Runtime) sweep(ctx context.Context) {
	t := time.NewTicker(defaults.AffinitySweep)
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

func (rt *Runtime) logWarnings(warnings []string) {
	for _, w := range warnings {
		rt.log().Warn("routing table row ignored", zap.String("db", rt.st.Path()), zap.String("problem", w))
	}
}

// Destruct stops everything and closes the file; the plugin calls it once
// no config uses the runtime.
func (rt *Runtime) Destruct() error {
	rt.applyMu.Lock()
	defer rt.applyMu.Unlock()
	if h := rt.health.Swap(nil); h != nil {
		h.stop()
	}
	rt.stopCluster()
	if rt.cancel != nil {
		rt.cancel()
		<-rt.done
	}
	rt.signal.close()
	return rt.st.Close()
}

// Table is the current routing table snapshot.
func (rt *Runtime) Table() *routing.Table { return rt.table.Load() }

// Store is the open table file.
func (rt *Runtime) Store() *store.Store { return rt.st }

// Affinity is the client-to-backend binding of this POP.
func (rt *Runtime) Affinity() *routing.Affinity { return rt.affinity }

// Identity names this POP as the newest config does.
func (rt *Runtime) Identity() Identity { return *rt.ident.Load() }

// SetPop writes columns of this POP's own pops row.
func (rt *Runtime) SetPop(ctx context.Context, u store.PopUpdate) error {
	node := rt.Identity().Node
	if node == "" {
		return errors.New("this POP has no node name")
	}
	return rt.st.SetPop(ctx, node, u)
}

// kick makes the table follow a replicated merge at once.
func (rt *Runtime) kick() {
	select {
	case rt.wake <- struct{}{}:
	default:
	}
}

var _ POP = (*Runtime)(nil)
