package store

import (
	"encoding/binary"
	"reflect"
	"slices"
	"testing"
)

// encodeAhead writes entries and rows as the commit watch's thread does.
func encodeAhead(entries []aheadEntry, rows []backendRow) []byte {
	var b []byte
	text := func(s string) {
		b = binary.NativeEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, byte(slices.Index(aheadTables, e.table)))
		text(e.key)
	}
	b = binary.NativeEndian.AppendUint32(b, uint32(len(rows)))
	for _, r := range rows {
		for _, v := range []int64{r.rowid, r.port, r.healthy, r.weight, r.soft, r.hard, r.del} {
			b = binary.NativeEndian.AppendUint64(b, uint64(v))
		}
		for _, s := range []string{r.id, r.app, r.region, r.country, r.ip} {
			text(s)
		}
	}
	return b
}

var aheadSeed = encodeAhead(
	[]aheadEntry{{"backends", "b1"}, {"health", "b1"}, {"backends", "é"}},
	[]backendRow{{rowid: 7, id: "b1", app: "myapp", region: "eu", country: "DE", ip: "10.0.0.1", port: 80, healthy: 1, weight: 2, soft: 100, hard: 150}},
)

func TestDecodeAheadReadsWhatTheThreadWrites(t *testing.T) {
	entries, rows, ok := decodeAhead(aheadSeed)
	if !ok {
		t.Fatal("a well-formed read ahead did not decode")
	}
	if want := []aheadEntry{{"backends", "b1"}, {"health", "b1"}, {"backends", "é"}}; !reflect.DeepEqual(entries, want) {
		t.Fatalf("entries %+v, want %+v", entries, want)
	}
	if len(rows) != 1 || rows[0].id != "b1" || rows[0].rowid != 7 || rows[0].ip != "10.0.0.1" || rows[0].hard != 150 {
		t.Fatalf("rows %+v", rows)
	}
	for _, cut := range []int{0, 3, 10, len(aheadSeed) - 1} {
		if _, _, ok := decodeAhead(aheadSeed[:cut]); ok {
			t.Errorf("a read ahead cut to %d bytes decoded", cut)
		}
	}
	if _, _, ok := decodeAhead(append(aheadSeed[:len(aheadSeed):len(aheadSeed)], 0)); ok {
		t.Error("a read ahead with a byte left over decoded")
	}
}

// A buffer that does not parse is refused (the follower then reads the
// rows itself), never a panic; one that parses encodes back to itself.
func FuzzDecodeAhead(f *testing.F) {
	f.Add(aheadSeed)
	f.Add([]byte{})
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, buf []byte) {
		entries, rows, ok := decodeAhead(buf)
		if !ok {
			return
		}
		if again := encodeAhead(entries, rows); string(again) != string(buf) {
			t.Fatalf("decoded %x as %+v %+v, which encodes as %x", buf, entries, rows, again)
		}
	})
}
