package shardindex

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

type item struct{ key, val string }

func itemKey(i *item) string { return i.key }

// An index finds what a map would, built from values in order (of two
// with one key, the later) and after random edits, and an edit shares
// every shard it does not touch with the index before it.
func TestIndexAgreesWithAMapAndSharesShards(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	want := map[string]*item{}
	var values []*item
	for i := range 3000 {
		v := &item{key: fmt.Sprintf("k%d", rng.IntN(2500)), val: fmt.Sprint(i)} // some keys twice
		values = append(values, v)
		want[v.key] = v
	}
	x := Build(values, 16, itemKey)
	check := func(step string) {
		t.Helper()
		for k, v := range want {
			if got, ok := x.Get(k); !ok || got != v {
				t.Fatalf("%s: Get(%s) = %v, %v; want %v", step, k, got, ok, v)
			}
		}
		n := 0
		x.Each(func(*item) { n++ })
		if n != len(want) {
			t.Fatalf("%s: Each visits %d values, want %d", step, n, len(want))
		}
		if x.Len() != len(want) {
			t.Fatalf("%s: Len is %d, want %d", step, x.Len(), len(want))
		}
		if _, ok := x.Get("absent"); ok {
			t.Fatalf("%s: found a key no value has", step)
		}
	}
	check("built")
	for step := range 200 {
		var gone []string
		var put []*item
		for range 1 + rng.IntN(4) {
			k := fmt.Sprintf("k%d", rng.IntN(2600))
			if rng.IntN(3) == 0 {
				gone = append(gone, k)
				delete(want, k)
			}
		}
		for range rng.IntN(4) {
			v := &item{key: fmt.Sprintf("k%d", rng.IntN(2600)), val: fmt.Sprint("s", step)}
			put = append(put, v)
			want[v.key] = v
		}
		before := x
		x = x.With(gone, put)
		check(fmt.Sprintf("step %d", step))
		shared := 0
		for i := range uint64(x.Shards()) {
			if a, b := x.shard(i), before.shard(i); len(a) > 0 && len(b) > 0 && &a[0] == &b[0] {
				shared++
			} else if len(a) == 0 && len(b) == 0 {
				shared++
			}
		}
		if touched := len(gone) + len(put); shared < x.Shards()-touched {
			t.Fatalf("step %d: an edit of %d keys shared %d of %d shards", step, touched, shared, x.Shards())
		}
	}
	var empty Index[*item]
	if _, ok := empty.Get("k1"); ok {
		t.Fatal("the zero Index found a key")
	}
}

// An edit of one key copies one page of the shard directory, whatever the
// number of shards.
func TestEditCopiesOnePageOfTheDirectory(t *testing.T) {
	values := make([]*item, 40000)
	for i := range values {
		values[i] = &item{key: fmt.Sprintf("k%d", i)}
	}
	x := Build(values, 1, itemKey)
	y := x.With(nil, []*item{{key: "k7", val: "new"}})
	shared := 0
	for p := range x.pages {
		if &x.pages[p][0] == &y.pages[p][0] {
			shared++
		}
	}
	if len(x.pages) < 100 || shared != len(x.pages)-1 {
		t.Fatalf("an edit of one key shared %d of %d pages of the directory, want all but one", shared, len(x.pages))
	}
	if v, ok := y.Get("k7"); !ok || v.val != "new" {
		t.Fatalf("Get(k7) after the edit: %v %v", v, ok)
	}
}

// Changed names every key an edit added, removed or gave a new value, each
// once, and few others; against an index built apart it names every key of
// either, each once.
func TestChangedNamesTheEditedKeys(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var values []*item
	for i := range 2000 {
		values = append(values, &item{key: fmt.Sprintf("k%d", i)})
	}
	x := Build(values, 8, itemKey)
	changed := func(x, prev Index[*item]) map[string]bool {
		t.Helper()
		seen := map[string]bool{}
		x.Changed(prev, func(k string) {
			if seen[k] {
				t.Fatalf("Changed named %s twice", k)
			}
			seen[k] = true
		})
		return seen
	}
	for step := range 100 {
		var gone []string
		var put []*item
		for range 1 + rng.IntN(3) {
			gone = append(gone, fmt.Sprintf("k%d", rng.IntN(2200)))
		}
		for range rng.IntN(3) {
			put = append(put, &item{key: fmt.Sprintf("k%d", rng.IntN(2200)), val: fmt.Sprint(step)})
		}
		y := x.With(gone, put)
		seen := changed(y, x)
		for _, k := range append(gone, itemKeys(put)...) {
			a, inY := y.Get(k)
			b, inX := x.Get(k)
			if (inX || inY) && (a != b || inX != inY) && !seen[k] {
				t.Fatalf("step %d: Changed missed %s (before %v, after %v)", step, k, b, a)
			}
		}
		if touched := len(gone) + len(put); len(seen) > touched*8*4 {
			t.Fatalf("step %d: an edit of %d keys named %d keys changed", step, touched, len(seen))
		}
		if same := changed(y, y); len(same) != 0 {
			t.Fatalf("step %d: an index against itself named %d keys changed", step, len(same))
		}
		x = y
	}
	for _, size := range []int{1500, 500} { // as many shards as x, and fewer
		apart := Build(values[:size], 8, itemKey)
		seen := changed(apart, x)
		x.Each(func(v *item) {
			if !seen[v.key] {
				t.Fatalf("against an index of %d built apart, Changed missed %s", size, v.key)
			}
		})
		apart.Each(func(v *item) {
			if !seen[v.key] {
				t.Fatalf("against an index of %d built apart, Changed missed %s", size, v.key)
			}
		})
	}
}

func itemKeys(items []*item) []string {
	out := make([]string, len(items))
	for i, v := range items {
		out[i] = v.key
	}
	return out
}

// An edit of an index: one key of 65,536 shards (the most it cuts), as a
// routing table's row among 100,000 backends' DNS names; and 25 keys of
// 1,024 shards, as the names of one app of 10,000 backends.
func BenchmarkWith(b *testing.B) {
	for _, c := range []struct{ keys, values, perShard int }{{1, 1 << 18, 4}, {25, 8192, 8}} {
		b.Run(fmt.Sprintf("keys=%d/shards=%d", c.keys, c.values/c.perShard), func(b *testing.B) {
			values := make([]*item, c.values)
			for i := range values {
				values[i] = &item{key: fmt.Sprintf("k%d", i)}
			}
			x := Build(values, c.perShard, itemKey)
			var put []*item
			for i := range c.keys {
				put = append(put, &item{key: fmt.Sprintf("k%d", i*7919%c.values), val: "new"})
			}
			b.ReportAllocs()
			for b.Loop() {
				x.With(nil, put)
			}
		})
	}
}

// An index built for 8 keys a shard has outgrown its shards once edits
// bring it past four times that, and not before; a directory of 1<<14
// shards is never outgrown.
func TestOutgrownAtFourTimesItsShards(t *testing.T) {
	var values []*item
	for i := range 64 {
		values = append(values, &item{key: fmt.Sprint("k", i)})
	}
	x := Build(values, 8, itemKey)
	if x.Shards() != 8 {
		t.Fatalf("64 keys at 8 a shard: %d shards", x.Shards())
	}
	if x.Outgrown(256, 8) || !x.Outgrown(257, 8) {
		t.Fatalf("8 shards of 8: outgrown at 256 %v, at 257 %v; want only past 256", x.Outgrown(256, 8), x.Outgrown(257, 8))
	}
	big := Build(values, 0, itemKey) // as many shards as allowed
	if big.Shards() < 1<<14 || big.Outgrown(1<<30, 8) {
		t.Fatalf("%d shards: outgrown %v", big.Shards(), big.Outgrown(1<<30, 8))
	}
}
