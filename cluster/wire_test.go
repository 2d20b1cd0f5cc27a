package cluster

import (
	"reflect"
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
	m := syncMsg{From: "gru-1", WantReply: true, Vector: store.Vector{"a": 1, "b": 1 << 50}}
	got, err = decode(encodeSync(m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("sync: %v %#v", err, got)
	}
	got, err = decode(encodeLeave("gru-1"))
	if err != nil || got != leaveMsg("gru-1") {
		t.Fatalf("leave: %v %#v", err, got)
	}
	// Every truncation of a valid message is an error, never a panic.
	full := encodeChanges(segs)
	for i := range full {
		if _, err := decode(full[:i]); err == nil {
			t.Fatalf("truncated at %d decoded", i)
		}
	}
}

// Whatever the bytes, decode returns a message or an error: no panic, no
// allocation beyond what the input can hold.
func FuzzDecode(f *testing.F) {
	f.Add(encodeChanges([]store.Segment{{Origin: "o", From: 0, To: 1, Changes: []store.Change{{Table: "t", PK: "[1]", Column: "c", Value: "v", HLC: 1, Seq: 1, CL: 1}}}}))
	f.Add(encodeSync(syncMsg{From: "n", Vector: store.Vector{"s": 3}}))
	f.Add([]byte("ER\x01\x01\xff\xff\xff\xff\x0f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		decode(b)
	})
}
