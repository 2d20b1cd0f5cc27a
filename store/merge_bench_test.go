package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkApply is what a merge costs per change, as every POP pays it
// for every change made elsewhere: "update" is an edit of one column of
// an existing row, merged alone (a push); "row" is a new row, all its
// columns merged at once (a repair after a partition, a registration
// replicated). "sites=1000" is the update where the file has heard of a
// thousand sites, as every POP of a cluster of a thousand has, and its
// vector was read once before the merges, as the replicator reads it.
// The changes are made on another file beforehand; only the merges are
// timed. The context can be cancelled, as a node's is.
func BenchmarkApply(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	update := func(int) string {
		return "UPDATE backends SET weight = weight + 1 WHERE id = 'seed'"
	}
	for _, c := range []struct {
		name  string
		sites int
		write func(i int) string
	}{
		{"update", 1, update},
		{"update/sites=1000", 1000, update},
		{"row", 1, func(i int) string {
			return fmt.Sprintf("INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('b%d', 'app', 'eu', 'DE', '192.0.2.%d', %d)", i, i%250+1, 1000+i%1000)
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			dir := b.TempDir()
			src, err := Open(ctx, filepath.Join(dir, "src.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer src.Close()
			dst, err := Open(ctx, filepath.Join(dir, "dst.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer dst.Close()
			if c.sites > 1 {
				if _, err := dst.DB().ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
					INSERT INTO crdt_versions (site, version) SELECT printf('%032x', i), i FROM n`, c.sites-1); err != nil {
					b.Fatal(err)
				}
			}
			writes := []string{"INSERT INTO backends (id, app, wg_ip, port) VALUES ('seed', 'app', '192.0.2.1', 80)"}
			for i := range b.N {
				writes = append(writes, c.write(i))
			}
			var segs []Segment
			var from uint64
			for _, w := range writes {
				if _, err := src.DB().ExecContext(ctx, w); err != nil {
					b.Fatal(err)
				}
				to, err := src.DBVersion(ctx)
				if err != nil {
					b.Fatal(err)
				}
				ch, err := src.ChangesSince(ctx, src.SiteID(), from, to)
				if err != nil {
					b.Fatal(err)
				}
				segs = append(segs, Segment{Origin: src.SiteID(), From: from, To: to, Changes: ch})
				from = to
			}
			if _, err := dst.Apply(ctx, segs[:1], time.Now()); err != nil {
				b.Fatal(err)
			}
			if _, err := dst.Vector(ctx); err != nil {
				b.Fatal(err)
			}
			changes := 0
			b.ResetTimer()
			cpu := cpuTime()
			for _, s := range segs[1:] {
				res, err := dst.Apply(ctx, []Segment{s}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if res.Applied != len(s.Changes) {
					b.Fatalf("%d of %d changes applied", res.Applied, len(s.Changes))
				}
				changes += len(s.Changes)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(changes), "ns/change")
			b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(changes), "cpu-us/change")
		})
	}
}
