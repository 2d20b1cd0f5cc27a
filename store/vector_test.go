package store

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// The vector reads back what was merged, whatever the sites' text: one
// row per site or one string for all of them must not differ.
func TestVectorReadsBackEverySite(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := Vector{}
	var segs []Segment
	for i, site := range []string{"a", "site:with:colons", "comma,site", "12:34", "ünïcödé", fmt.Sprintf("%032x", 7)} {
		segs = append(segs, Segment{Origin: site, From: 0, To: uint64(i+1)<<40 + 3})
		want[site] = uint64(i+1)<<40 + 3
	}
	if _, err := s.Apply(ctx, segs, time.Now()); err != nil {
		t.Fatal(err)
	}
	own, err := s.DBVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want[s.SiteID()] = own
	got, err := s.Vector(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("vector %v (%v), want %v", got, err, want)
	}
	// Read again after a merge by another handle on the file (another
	// process), and after a local write: the vector read before is not
	// the file's any more.
	other, err := Open(ctx, s.Path(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Apply(ctx, []Segment{{Origin: "a", From: want["a"], To: want["a"] + 5}, {Origin: "late", From: 0, To: 2}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`INSERT INTO backends (id, app, wg_ip, port) VALUES ('b1', 'app', '10.0.0.1', 80)`); err != nil {
		t.Fatal(err)
	}
	want["a"] += 5
	want["late"] = 2
	if want[s.SiteID()], err = s.DBVersion(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = s.Vector(ctx)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after another merge and a local write: %v (%v), want %v", got, err, want)
	}
	got["a"] = 1 // the caller's own copy
	if again, _ := s.Vector(ctx); again["a"] != want["a"] {
		t.Fatalf("a caller's change leaked into the next read: %v", again)
	}
	// A merge of its own brings the vector it read up to date.
	if _, err := s.Apply(ctx, []Segment{{Origin: "late", From: 2, To: 9}, {Origin: "new", From: 0, To: 1}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	want["late"], want["new"] = 9, 1
	if got, err = s.Vector(ctx); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after a merge: %v (%v), want %v", got, err, want)
	}
	for _, bad := range []string{"x", "3:ab:1", "2:ab", "2:ab:", "2:ab:x", "-1::1", "9:ab:1"} {
		if v, err := parseVector(bad); err == nil {
			t.Errorf("parseVector(%q) = %v, want an error", bad, v)
		}
	}
}

// Merges take the vector read before them forward as differences; the
// vector read after any number of them is the file's, as a handle that
// never read it before reads it, and a caller changing a merge's result
// changes nothing the store keeps.
func TestVectorTakenForwardThroughMerges(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, err := s.Vector(ctx); err != nil {
		t.Fatal(err)
	}
	next := map[string]uint64{}
	for i := range 3*maxVectorDepth + 5 {
		site := fmt.Sprintf("site%d", i%(maxVectorDepth+7))
		res, err := s.Apply(ctx, []Segment{{Origin: site, From: next[site], To: next[site] + 2}}, time.Now())
		if err != nil || res.Advanced[site] != next[site]+2 {
			t.Fatalf("merge %d: advanced %v, %v", i, res.Advanced, err)
		}
		next[site] += 2
		res.Advanced[site] = 1
		if i%29 != 0 && i != 3*maxVectorDepth+4 {
			continue
		}
		got, err := s.Vector(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fresh := openT(t, s.Path())
		want, err := fresh.Vector(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after merge %d the vector reads %v, the file holds %v", i, got, want)
		}
		for site, v := range next {
			if got[site] != v {
				t.Fatalf("after merge %d: %s at %d, merged up to %d", i, site, got[site], v)
			}
		}
	}
}

func BenchmarkVector(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprint(n, "sites"), func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, filepath.Join(b.TempDir(), "t.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var segs []Segment
			for i := range n {
				segs = append(segs, Segment{Origin: fmt.Sprintf("%032x", i+1), From: 0, To: uint64(i + 1)})
			}
			if _, err := s.Apply(ctx, segs, time.Now()); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := s.Vector(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The versions generation moves with every merge that advances another
// site, and with nothing else: a local write leaves it, and a merge says
// what it advanced and the generations it went from and to.
func TestVersionsGenerationMovesWithOtherSitesOnly(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	v0, g0, err := s.VectorGen(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec(`INSERT INTO backends (id, app, wg_ip, port) VALUES ('b1', 'app', '10.0.0.1', 80)`); err != nil {
		t.Fatal(err)
	}
	own, g, err := s.OwnVersion(ctx)
	if err != nil || g != g0 || own <= v0[s.SiteID()] {
		t.Fatalf("after a local write: own %d (was %d), generation %d (was %d), %v", own, v0[s.SiteID()], g, g0, err)
	}
	res, err := s.Apply(ctx, []Segment{{Origin: "a", From: 0, To: 3}, {Origin: "b", From: 0, To: 2}, {Origin: "c", From: 4, To: 6}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res.Advanced, Vector{"a": 3, "b": 2}) || res.GenBefore != g0 || res.GenAfter == g0 {
		t.Fatalf("merge: advanced %v (want a:3 b:2; c has a gap), generations %d -> %d (from %d)", res.Advanced, res.GenBefore, res.GenAfter, g0)
	}
	if _, g, _ := s.OwnVersion(ctx); g != res.GenAfter {
		t.Fatalf("generation %d after the merge, which reported %d", g, res.GenAfter)
	}
	stale, err := s.Apply(ctx, []Segment{{Origin: "a", From: 0, To: 2}}, time.Now())
	if err != nil || len(stale.Advanced) != 0 || stale.GenBefore != res.GenAfter || stale.GenAfter != stale.GenBefore {
		t.Fatalf("a merge that advanced nothing: %+v, %v", stale, err)
	}
	// Another handle's merge (a bridge's other node, another process).
	other := openT(t, s.Path())
	if _, err := other.Apply(ctx, []Segment{{Origin: "a", From: 3, To: 4}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	v, g, err := s.VectorGen(ctx)
	if err != nil || g == res.GenAfter || v["a"] != 4 {
		t.Fatalf("after another handle's merge: generation %d (was %d), vector %v, %v", g, res.GenAfter, v, err)
	}
}
