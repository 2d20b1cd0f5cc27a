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
	// The health rows are read right after the table's snapshot; see
	// store.DownBackends for why the two converge.
	down, err := in.store.DownBackends(ctx)
	if err != nil {
		return fmt.Errorf("reading the health rows: %w", err)
	}
	s, problems := build(in.build, t, down)
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
			Interval: store.DefaultWatchInterval, // a commit is served within 200 ms
			OnTable: func(t *routing.Table, warnings []string) {
				if err := in.load(ctx, t, warnings); err != nil {
					in.failed(err)
					failing = true
					return
				}
				if failing {
					failing = false
					log.Infof("routing table %s readable again: serving serial %d", in.db, in.snap.Load().serial)
				}
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
