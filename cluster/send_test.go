package cluster

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// writtenElsewhere returns the segments of rows inserted into a file that
// is no member of the cluster: one segment per batch of rows, each too
// large for a packet.
func writtenElsewhere(t *testing.T, batches, rows int) []store.Segment {
	t.Helper()
	ctx := context.Background()
	src, err := store.Open(ctx, filepath.Join(t.TempDir(), "elsewhere.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var segs []store.Segment
	var from uint64
	for b := range batches {
		for r := range rows {
			if _, err := src.DB().Exec(`INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'elsewhere', '192.0.2.1', ?)`,
				fmt.Sprintf("b%d-r%d", b, r), 1000+r); err != nil {
				t.Fatal(err)
			}
		}
		to, err := src.DBVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ch, err := src.ChangesSince(ctx, src.SiteID(), from, to)
		if err != nil {
			t.Fatal(err)
		}
		segs = append(segs, store.Segment{Origin: src.SiteID(), From: from, To: to, Changes: ch})
		from = to
	}
	return segs
}

// After a heal a node sends a member the changes it lacks and, right
// behind, its vector asking for what the member has: both large, both
// over a stream. The second must wait for the first, not be dropped
// (which left the member's half of the exchange to a later period).
func TestLargeMessagesToOneMemberWaitForTheStream(t *testing.T) {
	nodes := startCluster(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	segs := writtenElsewhere(t, 3, 10)
	var to = b.Node.ml.LocalNode()
	for _, s := range segs {
		msg := encodeChanges([]store.Segment{s})
		if len(msg) <= maxPacket {
			t.Fatalf("a segment of %d bytes travels as a packet; the test needs streams", len(msg))
		}
		a.send(to, msg, len(s.Changes))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := strings.Count(b.dump(), "|elsewhere|")
		if got == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d of the 30 rows sent to it in three large messages at once (skipped streams: %d)",
				b.name, got, a.Stats.StreamsSkipped.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := a.Stats.StreamsSkipped.Load(); s != 0 {
		t.Errorf("%d large messages dropped", s)
	}
}

// A member that receives changes it already holds (the same changes from
// every member it exchanged with after a heal) does not merge them again:
// its file sees no write at all. What it lacks is still merged.
func TestChangesAlreadyHeldAreNotMergedAgain(t *testing.T) {
	ctx := context.Background()
	nodes := startCluster(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	segs := writtenElsewhere(t, 2, 10)
	to := b.Node.ml.LocalNode()
	waitRows := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(b.dump(), "|elsewhere|") != want {
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d rows, want %d", b.name, strings.Count(b.dump(), "|elsewhere|"), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	a.send(to, encodeChanges(segs[:1]), len(segs[0].Changes))
	waitRows(10)
	// data_version moves when another connection commits to the file.
	db, err := sql.Open("sqlite3", "file:"+b.path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	version := func() int64 {
		var v int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	before, stale := version(), b.Stats.ChangesStale.Load()
	for range 3 {
		a.send(to, encodeChanges(segs[:1]), len(segs[0].Changes))
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats.ChangesStale.Load()-stale < 3*uint64(len(segs[0].Changes)) {
		if time.Now().After(deadline) {
			t.Fatalf("the repeats did not arrive: %d stale changes", b.Stats.ChangesStale.Load()-stale)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if after := version(); after != before {
		t.Errorf("the file was written to for changes it held (data_version %d -> %d)", before, after)
	}
	applied := b.Stats.ChangesApplied.Load()
	a.send(to, encodeChanges(segs), len(segs[0].Changes)+len(segs[1].Changes))
	waitRows(20)
	if got, want := b.Stats.ChangesApplied.Load()-applied, uint64(len(segs[1].Changes)); got != want {
		t.Errorf("%d changes merged for the two batches, want %d (the second only)", got, want)
	}
}

func TestTrimKeepsOnlyWhatTheVectorLacks(t *testing.T) {
	ch := func(seqs ...uint64) []store.Change {
		var out []store.Change
		for _, s := range seqs {
			out = append(out, store.Change{Table: "backends", Seq: s})
		}
		return out
	}
	segs := []store.Segment{
		{Origin: "self", From: 0, To: 9, Changes: ch(9)},     // own: left to the store
		{Origin: "a", From: 0, To: 5, Changes: ch(1, 3, 5)},  // held
		{Origin: "b", From: 2, To: 6, Changes: ch(3, 4, 6)},  // partly held (b at 4)
		{Origin: "b", From: 6, To: 8, Changes: ch(7, 8)},     // follows the one before
		{Origin: "b", From: 6, To: 8, Changes: ch(7, 8)},     // a copy of it
		{Origin: "c", From: 10, To: 12, Changes: ch(11, 12)}, // a gap: merged, vector unmoved
		{Origin: "d", From: 0, To: 2, Changes: ch(1, 2)},     // new origin
		{Origin: "a", From: 5, To: 5, Changes: nil},          // empty, held
		{Origin: "c", From: 12, To: 13, Changes: ch(13)},     // after the gap
	}
	var sites siteTable
	sites.id("d") // numbered before the others, as a node may have
	have := sites.compact(store.Vector{"a": 5, "b": 4, "c": 3})
	held := slices.Clone(have)
	ahead := map[int]uint64{}
	out, dropped := sites.trim(segs, have, ahead, "self")
	var b strings.Builder
	for _, s := range out {
		fmt.Fprintf(&b, "%s(%d,%d]", s.Origin, s.From, s.To)
		for _, c := range s.Changes {
			fmt.Fprintf(&b, " %d", c.Seq)
		}
		b.WriteString("; ")
	}
	want := "self(0,9] 9; b(4,6] 6; b(6,8] 7 8; c(10,12] 11 12; d(0,2] 1 2; c(12,13] 13; "
	if b.String() != want {
		t.Errorf("trimmed:\n got %s\nwant %s", b.String(), want)
	}
	if dropped != 3+2+2 {
		t.Errorf("dropped %d changes, want 7", dropped)
	}
	after := slices.Clone(have)
	for i, x := range ahead {
		after = after.set(i, x)
	}
	if v := sites.vector(after); !reflect.DeepEqual(v, store.Vector{"a": 5, "b": 8, "c": 3, "d": 2}) {
		t.Errorf("vector after: %v", v)
	}
	if !have.equal(held) {
		t.Errorf("the vector held was changed: %v, was %v", sites.vector(have), sites.vector(held))
	}
}
