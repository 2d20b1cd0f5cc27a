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
		for i := range x.shards {
			if len(x.shards[i]) > 0 && len(before.shards[i]) > 0 && &x.shards[i][0] == &before.shards[i][0] {
				shared++
			} else if len(x.shards[i]) == 0 && len(before.shards[i]) == 0 {
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
