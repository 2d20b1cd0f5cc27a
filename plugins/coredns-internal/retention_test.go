package internal

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/edgeproxy/edgeproxy/routing"
	"github.com/edgeproxy/edgeproxy/store"
)

// A snapshot that followed a change is freed once later ones replace it,
// whether or not its names were ever asked for. Records are written at the
// first ask; until then a name keeps what it needs to write them, and that
// must not be the zone it was built in: the zone holds every name, and the
// names built before it hold theirs, so each snapshot would keep every one
// before it, and a server following edits would grow without end.
func TestFollowedSnapshotsAreFreed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "routing.db")
	const apps, perApp = 4, 6
	regions := []string{"sa", "eu", "us"}
	var script strings.Builder
	for i := range apps * perApp {
		fmt.Fprintf(&script, "INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('b%d', 'app%d', '%s', '10.0.0.%d', 80);",
			i, i%apps, regions[i%len(regions)], i+1)
	}
	writeTable(t, path, script.String())
	in := newFollower(t, path, "internal.")
	r := in.store
	followed := make(chan bool, 64)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Watch(wctx, store.Watcher{OnDelta: func(tbl *routing.Table, d store.Delta, warnings []string) {
		if err := in.follow(wctx, tbl, d, warnings); err != nil {
			t.Error(err)
		}
		followed <- !d.Full
	}})
	next := func(step string) bool {
		t.Helper()
		select {
		case f := <-followed:
			return f
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no snapshot within 5 s", step)
			return false
		}
	}
	next("the baseline")

	// Each edit touches another app, so every snapshot holds names built
	// by the ones before it.
	healthy := 0
	edit := func(i int) {
		t.Helper()
		healthy = 1 - healthy
		sqlite(t, path, fmt.Sprintf("UPDATE backends SET healthy = %d WHERE id = 'b%d'", healthy, i%(apps*perApp)))
		if !next(fmt.Sprintf("edit %d", i)) {
			t.Fatalf("edit %d was read as a whole table, not followed", i)
		}
	}
	edit(0)
	first := weak.Make(in.snap.Load().zones[0])
	const later = 5 * apps
	for i := 1; i <= later; i++ {
		edit(i)
	}
	runtime.GC()
	runtime.GC()
	if first.Value() != nil {
		t.Fatalf("the zone of a snapshot replaced %d edits ago is still in memory: each followed snapshot keeps the ones before it", later)
	}
}
