package internal

import (
	"context"
	"fmt"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// load builds the records of a table and publishes them.
func (in *Internal) load(ctx context.Context, t *routing.Table, warnings []string) error {
	return in.follow(ctx, t, store.Delta{Full: true}, warnings)
}

// follow is load after the change d. When the journal described it (d
// not Full), only the health rows of the backends it names are read
// again, and only the names of the apps, regions and backends it touches
// are built again (incremental.go).
func (in *Internal) follow(ctx context.Context, t *routing.Table, d store.Delta, warnings []string) error {
	prev := in.snap.Load()
	var down map[string]bool
	switch {
	case d.Full || prev == nil:
		// The health rows are read right after the table's snapshot; see
		// store.DownBackends for why the two converge.
		var err error
		if down, err = in.store.DownBackends(ctx); err != nil {
			return fmt.Errorf("reading the health rows: %w", err)
		}
	case len(d.Health) > 0:
		now, err := in.store.DownOf(ctx, d.Health)
		if err != nil {
			return fmt.Errorf("reading the health rows: %w", err)
		}
		down = make(map[string]bool, len(prev.down)+len(now))
		for id := range prev.down {
			down[id] = true
		}
		for _, id := range d.Health {
			if now[id] {
				down[id] = true
			} else {
				delete(down, id)
			}
		}
	default:
		down = prev.down
	}
	s, ok := rebuild(in.build, prev, t, d, down)
	var problems []string
	if !ok {
		s, problems = build(in.build, t, down)
	}
	in.warn(append(warnings, problems...))
	in.snap.Store(s)
	snapshotSerial.WithLabelValues(in.db).Set(float64(s.serial))
	return nil
}

// warn logs the table's problems, each once for as long as it lasts: a row
// that cannot be served is reported when it appears, not at every reload.
func (in *Internal) warn(lines []string) {
	now := make(map[string]bool, len(lines))
	for _, l := range lines {
		if !in.warned[l] && !now[l] {
			log.Warningf("routing table %s: %s", in.db, l)
		}
		now[l] = true
	}
	in.warned = now
}

// start watches the table for commits. It runs on the server's startup.
func (in *Internal) start() error {
	ctx, cancel := context.WithCancel(context.Background())
	in.cancel = cancel
	in.stopped = make(chan struct{})
	failing := false
	go func() {
		defer close(in.stopped)
		in.store.Watch(ctx, store.Watcher{
			// The default interval: a commit is followed at once, and at
			// most every few milliseconds in a burst (every 50 ms where
			// the whole table has to be read).
			From:  in.snap.Load().table,
			Stats: &in.stats,
			OnDelta: func(t *routing.Table, d store.Delta, warnings []string) {
				if failing {
					// The records in use are older than the change
					// d follows: build everything.
					d = store.Delta{Full: true}
				}
				if err := in.follow(ctx, t, d, warnings); err != nil {
					in.failed(err)
					failing = true
					return
				}
				if failing {
					failing = false
					log.Infof("routing table %s readable again: serving serial %d", in.db, in.snap.Load().serial)
				}
			},
			OnSlowerFollow: func(err error) {
				log.Warningf("following %s at a higher cost per commit: %v", in.db, err)
			},
			// The watcher reports each distinct error once while it lasts
			// and keeps retrying; the last good snapshot stays in use.
			OnError: func(err error) {
				in.failed(err)
				failing = true
			},
		})
	}()
	return nil
}

func (in *Internal) failed(err error) {
	reloadErrors.WithLabelValues(in.db).Inc()
	s := in.snap.Load()
	log.Errorf("%v; still serving serial %d, read %s ago", err, s.serial, time.Since(s.loadedAt).Round(time.Millisecond))
}

// stop ends the watch and releases the files. It runs on shutdown and
// reload; a reload has already set up the next instance.
func (in *Internal) stop() error {
	if in.cancel != nil {
		in.cancel()
		<-in.stopped
	}
	unregister(in)
	in.geo.Close()
	return in.store.Close()
}
