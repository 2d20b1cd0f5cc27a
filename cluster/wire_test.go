package cluster

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/edgeproxy/edgeproxy/store"
)

func TestWireRoundTrip(t *testing.T) {
	segs := []store.Segment{{Origin: "site-a", From: 3, To: 9, Changes: []store.Change{
		{Table: "backends", PK: `["b1"]`, Column: "app", Value: "myapp", HLC: 1 << 40, Seq: 4, CL: 1, Site: "site-a"},
		{Table: "backends", PK: `["b1"]`, Column: "port", Value: int64(-8080), HLC: 1<<40 + 1, Seq: 5, CL: 1, Site: "site-a"},
		{Table: "health", PK: `["b1","gru"]`, Column: "rtt", Value: 1.5, HLC: 7, Seq: 6, CL: 1, Site: "site-a"},
		{Table: "pops", PK: `["gru"]`, Column: "key", Value: []byte{0, 1, 2}, HLC: 8, Seq: 7, CL: 1, Site: "site-a"},
		{Table: "pops", PK: `["x"]`, Column: "", Value: nil, HLC: 9, Seq: 9, CL: 2, Site: "site-a"},
	}}}
	got, err := decode(encodeChanges(segs))
	if err != nil || !reflect.DeepEqual(got, segs) {
		t.Fatalf("changes: %v\n%#v\n%#v", err, got, segs)
	}
	got, err = decode(encodeRelay("gru-bridge", segs))
	if rm, ok := got.(relayMsg); err != nil || !ok || rm.From != "gru-bridge" || !reflect.DeepEqual(rm.Segs, segs) {
		t.Fatalf("relay: %v %#v", err, got)
	}
	if _, err := decode(encodeRelay("", segs)); err == nil {
		t.Fatal("a relay without a sender decoded")
	}
	m := syncMsg{From: "gru-1", WantReply: true, Vector: store.Vector{"a": 1, "b": 1 << 50}}
	got, err = decode(encodeSync(m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("sync: %v %#v", err, got)
	}
	for _, dm := range []digestMsg{
		{From: "gru-1", WantReply: true, Digest: digestOf(m.Vector)},
		{From: "gru-1", Ack: true, Digest: digestOf(m.Vector)},
	} {
		got, err = decode(encodeDigest(dm))
		if err != nil || got != dm {
			t.Fatalf("digest: %v %#v", err, got)
		}
	}
	for _, fm := range []floorMsg{
		{From: "gru-bridge", Vector: store.Vector{"a": 3}},
		{From: "gru-bridge", Global: true, Vector: store.Vector{"a": 3, "b": 1 << 50}},
		{From: "gru-bridge", Global: true, Vector: store.Vector{}},
		{From: "gru-bridge", Ask: true, Vector: store.Vector{"a": 3}},
		{From: "gru-1", Global: true, Ask: true, Vector: store.Vector{"a": 3}},
	} {
		got, err = decode(encodeFloor(fm))
		if err != nil || !reflect.DeepEqual(got, fm) {
			t.Fatalf("floor: %v %#v", err, got)
		}
	}
	if _, err := decode(encodeFloor(floorMsg{Vector: store.Vector{"a": 3}})); err == nil {
		t.Fatal("a floor without a sender decoded")
	}
	bad := encodeFloor(floorMsg{From: "gru-bridge", Vector: store.Vector{}})
	bad[4+1+len("gru-bridge")] = 9
	if _, err := decode(bad); err == nil || !strings.Contains(err.Error(), "floor kind 9") {
		t.Fatalf("a floor of an unknown kind: %v", err)
	}
	got, err = decode(encodeLeave("gru-1"))
	if err != nil || got != leaveMsg("gru-1") {
		t.Fatalf("leave: %v %#v", err, got)
	}
	// Every truncation of a valid message is an error, never a panic.
	floor := encodeFloor(floorMsg{From: "gru-bridge", Global: true, Vector: store.Vector{"a": 3, "b": 1 << 50}})
	for _, full := range [][]byte{encodeChanges(segs), encodeRelay("gru-bridge", segs), floor} {
		for i := range full {
			if _, err := decode(full[:i]); err == nil {
				t.Fatalf("truncated at %d decoded", i)
			}
		}
	}
}

// A vector sent as the difference from one the receiver announced is the
// same vector once resolved there, including sites the base has and the
// sender lacks, though the two nodes number their sites apart; one from
// a base the receiver no longer holds is not resolved (the receiver then
// sends its whole vector).
func TestVectorDifference(t *testing.T) {
	sender := &Node{cfg: Config{Name: "x"}, recent: map[uint64]vclock{}, known: map[string]*peer{}}
	receiver := &Node{recent: map[uint64]vclock{}, known: map[string]*peer{}}
	base := store.Vector{"a": 5, "b": 7, "c": 1, "gone": 2}
	mine := store.Vector{"a": 5, "b": 9, "c": 1, "d": 3}
	for i := range 50 { // sites both know alike
		base[fmt.Sprintf("site-%02d", i)] = uint64(i + 1)
		mine[fmt.Sprintf("site-%02d", i)] = uint64(i + 1)
	}
	for _, s := range []string{"d", "site-07", "c", "gone"} {
		sender.sites.id(s)
	}
	receiver.announce(receiver.sites.compact(base), digestOf(base))
	sender.known["r"] = &peer{name: "r", vector: sender.sites.compact(base), vectorDigest: digestOf(base)}
	enc := sender.vectorMsg("r", sender.sites.compact(mine), digestOf(mine), true)
	if full := encodeSync(syncMsg{From: "x", Vector: mine}); enc[3] != msgSyncDelta || len(enc) >= len(full) {
		t.Fatalf("type %d, %d bytes: not a difference smaller than the vector (%d bytes)", enc[3], len(enc), len(full))
	}
	got, err := decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	m := got.(syncMsg)
	vec, ok := receiver.resolve(m)
	if !ok || !reflect.DeepEqual(receiver.sites.vector(vec), mine) || !m.WantReply {
		t.Fatalf("resolved %v %v, want %v", ok, receiver.sites.vector(vec), mine)
	}
	if receiver.sites.digest(vec) != digestOf(mine) || digestOf(base) == digestOf(mine) {
		t.Fatal("digests do not tell the vectors apart")
	}
	if digestOf(store.Vector{"a": 1, "z": 0}) != digestOf(store.Vector{"a": 1}) {
		t.Fatal("a site at version 0 changes the digest")
	}
	for i := range recentVectors {
		v := store.Vector{"a": uint64(100 + i)}
		receiver.announce(receiver.sites.compact(v), digestOf(v))
	}
	if _, ok := receiver.resolve(m); ok {
		t.Fatal("resolved against a base no longer kept")
	}
}

// Whatever the bytes, decode returns a message or an error: no panic, no
// allocation beyond what the input can hold.
func FuzzDecode(f *testing.F) {
	f.Add(encodeChanges([]store.Segment{{Origin: "o", From: 0, To: 1, Changes: []store.Change{{Table: "t", PK: "[1]", Column: "c", Value: "v", HLC: 1, Seq: 1, CL: 1}}}}))
	f.Add(encodeSync(syncMsg{From: "n", Vector: store.Vector{"s": 3}}))
	f.Add([]byte("ER\x01\x01\xff\xff\xff\xff\x0f"))
	f.Add(encodeDigest(digestMsg{From: "n", Digest: 9}))
	f.Add(encodeSyncDelta(syncMsg{From: "n", Vector: store.Vector{"s": 3, "t": 0}}, 7))
	f.Add(encodeFloor(floorMsg{From: "b", Global: true, Vector: store.Vector{"s": 3}}))
	f.Add(encodeFloor(floorMsg{From: "p", Ask: true, Vector: store.Vector{"s": 3}}))
	f.Add(encodeRelay("b", []store.Segment{{Origin: "o", From: 0, To: 1, Changes: []store.Change{{Table: "t", PK: "[1]", Column: "c", Value: int64(2), HLC: 1, Seq: 1, CL: 1}}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		decode(b)
	})
}

// A member of an older release reads a sync's flags as "reply" only when
// they are exactly 1 and knows neither digests nor differences: it is
// sent whole vectors with the old flags, others get differences.
func TestOlderMemberGetsWholeVectors(t *testing.T) {
	n := &Node{cfg: Config{Name: "new"}, recent: map[uint64]vclock{}, known: map[string]*peer{}}
	base := store.Vector{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 10}
	mine := store.Vector{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6, "g": 7, "h": 8, "i": 9, "j": 11}
	n.known["old"] = &peer{name: "old", legacy: true, vector: n.sites.compact(base), vectorDigest: digestOf(base)}
	n.known["peer"] = &peer{name: "peer", vector: n.sites.compact(base), vectorDigest: digestOf(base)}
	old := n.vectorMsg("old", n.sites.compact(mine), digestOf(mine), true)
	if old[3] != msgSync || old[4+1+len("new")] != 1 {
		t.Fatalf("to an older member: type %d, flags %d", old[3], old[4+1+len("new")])
	}
	got, err := decode(old)
	if m, ok := got.(syncMsg); err != nil || !ok || !reflect.DeepEqual(m.Vector, mine) || !m.WantReply {
		t.Fatalf("%v %#v", err, got)
	}
	if cur := n.vectorMsg("peer", n.sites.compact(mine), digestOf(mine), true); cur[3] != msgSyncDelta {
		t.Fatalf("to a current member: type %d, want a difference", cur[3])
	}
}

// digestOf is the digest as the wire defines it (digest.go), spelled out
// over a map with hash/fnv: what a node of any release computes.
func digestOf(v store.Vector) uint64 {
	var sites []string
	for s, x := range v {
		if x != 0 {
			sites = append(sites, s)
		}
	}
	sort.Strings(sites)
	h := fnv.New64a()
	for _, s := range sites {
		h.Write(binary.AppendUvarint(nil, uint64(len(s))))
		h.Write([]byte(s))
		h.Write(binary.AppendUvarint(nil, v[s]))
	}
	return max(h.Sum64(), 1)
}

// A node's digest of a vector it holds by site number is the wire's, as
// sites come in any order, go, and drop to version 0.
func TestSiteTableDigestIsTheWiresDigest(t *testing.T) {
	var sites siteTable
	for _, s := range []string{"site-40", "site-03", "zz", "site-10"} {
		sites.id(s) // numbered out of name order
	}
	v := store.Vector{}
	for i := range 50 {
		v[fmt.Sprintf("site-%02d", i)] = uint64(i + 1)
	}
	steps := []func(){
		func() {},
		func() { v["site-07"]++ },                         // same sites
		func() { v["site-99"] = 4 },                       // a site more
		func() { delete(v, "site-03") },                   // a site less
		func() { v["site-98"] = 1; delete(v, "site-04") }, // as many, not the same
		func() { v["site-10"] = 0 },                       // at version 0: not there
		func() { v["site-10"] = 2 },
		func() { v["é\x00"] = 1 << 60 }, // any text, a long version
	}
	for i, step := range steps {
		step()
		if got, want := sites.digest(sites.compact(v)), digestOf(v); got != want {
			t.Fatalf("step %d: %x, the wire's %x", i, got, want)
		}
	}
}

// A digest hashed from the marks of the vector before it, as a node
// takes its own vector through merges, is the whole digest: for changes
// at one site or several anywhere in the name order, a site dropping to
// version 0, sites coming into the vector, and sites the node hears of
// that its vector does not hold (they move the places of the sites after
// theirs in the name order).
func TestDigestFromMarksIsTheWholeDigest(t *testing.T) {
	var sites siteTable
	rnd := rand.New(rand.NewPCG(1, 2))
	v := randomVector(rnd, 300)
	names := slices.Collect(maps.Keys(v))
	vec := sites.compact(v)
	d, marks := sites.digestMarked(vec, nil)
	if want := digestOf(v); d != want {
		t.Fatalf("the first digest %x, the wire's %x", d, want)
	}
	for step := range 400 {
		var changed []int
		next := slices.Clone(vec)
		for range 1 + rnd.IntN(3) {
			site := names[rnd.IntN(len(names))]
			if step%50 == 7 {
				site = fmt.Sprintf("%032x", rnd.Uint64()) // a site heard of now
				names = append(names, site)
			}
			x := v[site] + 1 + rnd.Uint64N(5)
			if step%17 == 3 {
				x = 0
			}
			v[site] = x
			i := sites.id(site)
			next = next.set(i, x)
			changed = append(changed, i)
		}
		if step%40 == 11 {
			sites.id(fmt.Sprintf("%032x", rnd.Uint64())) // heard of, at version 0 here
		}
		vec = next
		d, marks = sites.digestMarked(vec, marks, changed...)
		if want := digestOf(v); d != want {
			t.Fatalf("step %d (sites %v changed): %x, the wire's %x", step, changed, d, want)
		}
	}
}

// BenchmarkDigest is the digest of a node's vector of a thousand sites
// after a merge that moved one of them: whole, and from the marks of the
// vector before.
func BenchmarkDigest(b *testing.B) {
	var sites siteTable
	vec := sites.compact(randomVector(rand.New(rand.NewPCG(1, 2)), 1000))
	_, marks := sites.digestMarked(vec, nil)
	b.Run("whole", func(b *testing.B) {
		for i := range b.N {
			vec[i%len(vec)]++
			sites.digest(vec)
		}
	})
	b.Run("marked", func(b *testing.B) {
		for i := range b.N {
			vec[i%len(vec)]++
			_, marks = sites.digestMarked(vec, marks, i%len(vec))
		}
	})
}

// randomVector is a vector of n sites named as stores name them.
func randomVector(rnd *rand.Rand, n int) store.Vector {
	v := store.Vector{}
	for i := range n {
		v[fmt.Sprintf("%032x", rnd.Uint64())] = uint64(i + 1)
	}
	return v
}
