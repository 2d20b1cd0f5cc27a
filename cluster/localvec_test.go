package cluster

import (
	"fmt"
	"maps"
	"reflect"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// The vector a node holds is its file's: right after each merge of its
// own (taken forward from the one it held, with no read of every site),
// and soon after a merge by another handle on the file (a bridge's other
// node) or a local write. A stale one would make members send what the
// file holds, and one ahead of the file would make them keep from it what
// it lacks.
func TestHeldVectorIsTheFiles(t *testing.T) {
	nd := startCluster(t, 1, nil, nil)[0]
	segs := writtenElsewhere(t, 3, 2)
	file := func() store.Vector {
		t.Helper()
		v, err := nd.st.Vector(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		maps.DeleteFunc(v, func(_ string, x uint64) bool { return x == 0 }) // as a site never written
		return v
	}
	held := func() (store.Vector, uint64) {
		nd.vecMu.Lock()
		defer nd.vecMu.Unlock()
		return nd.sites.vector(nd.held.vec), nd.held.digest
	}
	mergedHere := func(step string, s store.Segment) {
		t.Helper()
		if _, _, err := nd.localVector(); err != nil {
			t.Fatal(err)
		}
		nd.apply(inbound{direct: []store.Segment{s}})
		want := file()
		if got, d := held(); !reflect.DeepEqual(got, want) || d != digestOf(want) {
			t.Fatalf("%s: the node holds %v (digest %x), the file has %v (%x)", step, got, d, want, digestOf(want))
		}
	}
	soon := func(step string) {
		t.Helper()
		var got, want store.Vector
		for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			v, d, err := nd.localVector()
			if err != nil {
				t.Fatal(err)
			}
			got, want = nd.sites.vector(v), file()
			if reflect.DeepEqual(got, want) && d == digestOf(want) {
				return
			}
		}
		t.Fatalf("%s: the node holds %v, the file has %v", step, got, want)
	}

	mergedHere("a first merge", segs[0])
	other, err := store.Open(t.Context(), nd.path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Apply(t.Context(), segs[1:2], time.Now()); err != nil {
		t.Fatal(err)
	}
	soon("a merge by another handle")
	nd.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('local', 'app', '192.0.2.7', 80)`)
	soon("a local write")
	mergedHere("a merge after both", segs[2])
}

// A member's digest taken from what is known (the base of an empty
// difference, this node's own vector) is the one hashing its vector
// gives.
func TestMemberDigestIsTheVectorsDigest(t *testing.T) {
	n := &Node{recent: map[uint64]vclock{}, known: map[string]*peer{}}
	mine := store.Vector{"a": 3, "b": 5}
	n.held = localVec{vec: n.sites.compact(mine), digest: digestOf(mine)}
	n.sites.id("c") // numbered after: a vector read now is longer, with c at 0
	other := store.Vector{"a": 3, "b": 6}
	for _, c := range []struct {
		name string
		m    syncMsg
		want store.Vector
	}{
		{"an empty difference", syncMsg{Base: digestOf(other), Vector: store.Vector{}}, other},
		{"this node's vector, whole", syncMsg{Vector: store.Vector{"a": 3, "b": 5, "c": 0}}, mine},
		{"another vector, whole", syncMsg{Vector: other}, other},
	} {
		vec := n.sites.compact(c.want)
		if got := n.memberDigest(vec, c.m); got != digestOf(c.want) {
			t.Errorf("%s: digest %x, want %x", c.name, got, digestOf(c.want))
		}
	}
}

// The node's own merges, and local writes once the push loop has looked
// at their reports, leave the vector it holds standing for the file: the
// next reader reads nothing. At a thousand POPs every change costs every
// node a merge, and reading the file's versions again after each one was
// a tenth of the replicator's work.
func TestMergesAndLocalWritesNeedNoVectorRead(t *testing.T) {
	nd := startCluster(t, 1, nil, nil)[0]
	segs := writtenElsewhere(t, 6, 1)
	if _, _, err := nd.localVector(); err != nil {
		t.Fatal(err)
	}
	reads := nd.Stats.VectorReads.Load()
	for i, s := range segs {
		nd.apply(inbound{direct: []store.Segment{s}})
		if i%2 == 1 {
			nd.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'app', '192.0.2.7', 80)`, fmt.Sprintf("local%d", i))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The push loop's looks at the reports end 256 ms after the last.
	time.Sleep(400 * time.Millisecond)
	v, d, err := nd.localVector()
	if err != nil {
		t.Fatal(err)
	}
	want, err := nd.st.Vector(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	maps.DeleteFunc(want, func(_ string, x uint64) bool { return x == 0 })
	if got := nd.sites.vector(v); !reflect.DeepEqual(got, want) || d != digestOf(want) {
		t.Fatalf("the node holds %v (digest %x), the file has %v (%x)", got, d, want, digestOf(want))
	}
	// One read is allowed for a reader that loaded the generation just
	// before the push loop moved it.
	if got := nd.Stats.VectorReads.Load() - reads; got > 1 {
		t.Fatalf("%d merges and %d local writes cost %d reads of the file's versions, want none", len(segs), len(segs)/2, got)
	}
}
