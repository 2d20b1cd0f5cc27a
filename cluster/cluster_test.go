package cluster

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/edgeproxy/edgeproxy/store"
)

// syncBuffer collects a node's log for assertions.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type tnode struct {
	*Node
	name string
	path string
	st   *store.Store
	log  *syncBuffer
	cfg  Config
}

func fastMemberlist(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.SuspicionMult = 2
	c.GossipInterval = 50 * time.Millisecond
	c.PushPullInterval = 2 * time.Second
	c.TCPTimeout = time.Second
}

func testConfig(name string, faults *Faults, join []string) Config {
	return Config{Name: name, Bind: "127.0.0.1:0", Join: join, Faults: faults, Cluster: "test",
		SyncInterval: 100 * time.Millisecond, RejoinInterval: 300 * time.Millisecond, Memberlist: fastMemberlist}
}

func startNode(t *testing.T, path string, cfg Config) *tnode {
	t.Helper()
	st, err := store.Open(context.Background(), path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	buf := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := Start(st, cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	tn := &tnode{Node: n, name: cfg.Name, path: path, st: st, log: buf, cfg: cfg}
	t.Cleanup(func() {
		tn.Kill()
		tn.st.Close()
		if t.Failed() && testing.Verbose() {
			t.Logf("%s log:\n%s", tn.name, buf.String())
		}
	})
	return tn
}

func startCluster(t *testing.T, n int, faults *Faults, mod func(*Config)) []*tnode {
	t.Helper()
	dir := t.TempDir()
	var nodes []*tnode
	var join []string
	for i := range n {
		name := fmt.Sprintf("pop%d", i)
		cfg := testConfig(name, faults, join)
		if mod != nil {
			mod(&cfg)
		}
		nd := startNode(t, filepath.Join(dir, name+".db"), cfg)
		if i == 0 {
			join = []string{nd.Addr()}
		}
		nodes = append(nodes, nd)
	}
	waitMembers(t, nodes, n, 10*time.Second)
	return nodes
}

func waitMembers(t *testing.T, nodes []*tnode, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok := true
		for _, nd := range nodes {
			if len(nd.alive())+1 != want {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("membership did not reach %d nodes", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *tnode) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := n.st.DB().Exec(q, args...); err != nil {
		t.Fatalf("%s: %s: %v", n.name, q, err)
	}
}

func (n *tnode) dump() string {
	rows, err := n.st.DB().Query(`SELECT id, app, region, wg_ip, port, weight FROM backends ORDER BY id`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, app, region, ip string
		var port, w int64
		rows.Scan(&id, &app, &region, &ip, &port, &w)
		fmt.Fprintf(&b, "%s|%s|%s|%s|%d|%d\n", id, app, region, ip, port, w)
	}
	return b.String()
}

// converge waits until every node holds the same table and returns how long
// that took.
func converge(t *testing.T, nodes []*tnode, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		want := nodes[0].dump()
		same := true
		for _, n := range nodes[1:] {
			if n.dump() != want {
				same = false
				break
			}
		}
		if same {
			return time.Since(start)
		}
		if time.Since(start) > within {
			var b strings.Builder
			for _, n := range nodes {
				fmt.Fprintf(&b, "%s:\n%s\n", n.name, n.dump())
			}
			t.Fatalf("no convergence within %v:\n%s", within, b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPropagatesAndConverges(t *testing.T) {
	nodes := startCluster(t, 3, nil, nil)
	start := time.Now()
	nodes[0].exec(t, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('b1','myapp','sa','10.0.0.1',8080)`)
	for _, n := range nodes[1:] {
		for !strings.Contains(n.dump(), "b1|myapp") {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("%s did not get the insert: %q", n.name, n.dump())
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("insert visible on every node after %v", time.Since(start))
	// Concurrent updates of different columns of one row both survive.
	nodes[1].exec(t, `UPDATE backends SET weight = 5 WHERE id = 'b1'`)
	nodes[2].exec(t, `UPDATE backends SET port = 9090 WHERE id = 'b1'`)
	converge(t, nodes, 3*time.Second)
	if d := nodes[0].dump(); d != "b1|myapp|sa|10.0.0.1|9090|5\n" {
		t.Fatalf("after concurrent updates: %q", d)
	}
	nodes[2].exec(t, `DELETE FROM backends WHERE id = 'b1'`)
	converge(t, nodes, 3*time.Second)
	if d := nodes[0].dump(); d != "" {
		t.Fatalf("delete did not propagate: %q", d)
	}
	// health rows (a two-column key), written by their observer.
	nodes[1].exec(t, `INSERT INTO health (backend_id, observer, healthy, rtt_us) VALUES ('b1', 'pop1', 0, 1234)`)
	deadline := time.Now().Add(3 * time.Second)
	for {
		var got string
		nodes[2].st.DB().QueryRow(`SELECT backend_id || '|' || observer || '|' || healthy || '|' || rtt_us FROM health`).Scan(&got)
		if got == "b1|pop1|0|1234" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health row not replicated: %q", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := nodes[0].Status(context.Background())
	if len(st.Members) != 2 || st.Counts["alive"] != 3 {
		t.Fatalf("status: %+v", st)
	}
	// A node that stops gracefully is seen as left, one that dies as dead.
	nodes[2].Stop()
	nodes[1].Kill()
	deadline = time.Now().Add(5 * time.Second)
	for {
		st = nodes[0].Status(context.Background())
		if st.Counts["left"] == 1 && st.Counts["dead"] == 1 && st.Counts["alive"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member states: %v", st.Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// randomWrites makes n random writes on random nodes.
func randomWrites(t *testing.T, rng *rand.Rand, nodes []*tnode, n int) {
	for range n {
		nd := nodes[rng.IntN(len(nodes))]
		id := fmt.Sprint("b", rng.IntN(6))
		switch rng.IntN(5) {
		case 0, 1:
			nd.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'app', '10.0.0.1', ?) ON CONFLICT (id) DO UPDATE SET port = excluded.port`, id, rng.IntN(1000))
		case 2:
			nd.exec(t, `UPDATE backends SET weight = ? WHERE id = ?`, rng.IntN(10), id)
		case 3:
			nd.exec(t, `UPDATE backends SET region = ? WHERE id = ?`, fmt.Sprint("r", rng.IntN(10)), id)
		case 4:
			nd.exec(t, `DELETE FROM backends WHERE id = ?`, id)
		}
		time.Sleep(time.Duration(rng.IntN(3)) * time.Millisecond)
	}
}

func TestConvergesThroughLossDuplicationReorderAndDelay(t *testing.T) {
	faults := NewFaults(1)
	nodes := startCluster(t, 4, faults, nil)
	faults.Set(0.3, 0.3, 40*time.Millisecond)
	rng := rand.New(rand.NewPCG(7, 7))
	randomWrites(t, rng, nodes, 150)
	faults.Set(0, 0, 0)
	d := converge(t, nodes, 10*time.Second)
	t.Logf("converged %v after the faults stopped", d)
}

func TestPartitionKeepsBothSidesWorkingAndHeals(t *testing.T) {
	faults := NewFaults(2)
	nodes := startCluster(t, 3, faults, nil)
	nodes[0].exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('shared','app','10.0.0.1',80)`)
	converge(t, nodes, 3*time.Second)

	faults.Partition([]string{nodes[0].Addr(), nodes[1].Addr()}, []string{nodes[2].Addr()})
	nodes[0].exec(t, `UPDATE backends SET weight = 7 WHERE id = 'shared'`)
	nodes[2].exec(t, `UPDATE backends SET port = 81 WHERE id = 'shared'`)
	nodes[2].exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('island','app','10.0.0.2',80)`)
	nodes[1].exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('main','app','10.0.0.3',80)`)
	time.Sleep(1500 * time.Millisecond) // long enough for memberlist to declare the cut node dead
	if strings.Contains(nodes[2].dump(), "main") || strings.Contains(nodes[0].dump(), "island") {
		t.Fatal("a change crossed the partition")
	}
	converge(t, nodes[:2], 2*time.Second)

	faults.Heal()
	d := converge(t, nodes, 5*time.Second)
	t.Logf("converged %v after the partition healed", d)
	want := "island|app||10.0.0.2|80|2\nmain|app||10.0.0.3|80|2\nshared|app||10.0.0.1|81|7\n"
	if got := nodes[0].dump(); got != want {
		t.Fatalf("after heal:\n%s\nwant\n%s", got, want)
	}
	waitMembers(t, nodes, 3, 10*time.Second)
}

func TestRestartedNodeCatchesUp(t *testing.T) {
	nodes := startCluster(t, 3, nil, nil)
	nodes[0].exec(t, `INSERT INTO backends (id, app) VALUES ('before','app')`)
	converge(t, nodes, 3*time.Second)
	victim := nodes[2]
	addr := victim.Addr()
	victim.Kill()
	victim.st.Close()
	nodes[0].exec(t, `INSERT INTO backends (id, app) VALUES ('during','app')`)
	nodes[1].exec(t, `DELETE FROM backends WHERE id = 'before'`)
	time.Sleep(300 * time.Millisecond)
	cfg := victim.cfg
	cfg.Bind = addr
	cfg.Join = []string{nodes[0].Addr()}
	nodes[2] = startNode(t, victim.path, cfg)
	d := converge(t, nodes, 5*time.Second)
	t.Logf("restarted node caught up in %v", d)
	if got := nodes[2].dump(); got != "during|app|||0|2\n" {
		t.Fatalf("restarted node: %q", got)
	}
}

func TestHostileInputIsRefused(t *testing.T) {
	key := bytes.Repeat([]byte{1}, 32)
	dir := t.TempDir()
	a := startNode(t, filepath.Join(dir, "a.db"), func() Config {
		c := testConfig("a", nil, nil)
		c.Keys = [][]byte{key}
		c.MaxMessage = 64 << 10
		return c
	}())
	a.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('keep','app','10.0.0.1',80)`)
	before := a.dump()

	// Garbage packets and streams.
	for _, proto := range []string{"udp", "tcp"} {
		c, err := net.Dial(proto, a.Addr())
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			junk := make([]byte, 1+i*50)
			for j := range junk {
				junk[j] = byte(rand.IntN(256))
			}
			c.Write(junk)
		}
		c.Close()
	}
	// A node with the wrong key, one with no key, one with the wrong
	// cluster name: none may join or write.
	for _, mod := range []func(*Config){
		func(c *Config) { c.Keys = [][]byte{bytes.Repeat([]byte{2}, 32)} },
		func(c *Config) { c.Keys = nil },
		func(c *Config) { c.Keys = [][]byte{key}; c.Cluster = "other" },
	} {
		cfg := testConfig(fmt.Sprintf("intruder%d", rand.IntN(1000)), nil, []string{a.Addr()})
		mod(&cfg)
		x := startNode(t, filepath.Join(dir, cfg.Name+".db"), cfg)
		x.exec(t, `INSERT INTO backends (id, app) VALUES ('evil','app')`)
		time.Sleep(500 * time.Millisecond)
		if len(a.alive()) != 0 || len(x.alive()) != 0 {
			t.Fatalf("%s joined: %d %d members", cfg.Name, len(a.alive()), len(x.alive()))
		}
		x.Kill()
	}
	// A legitimate member sending an oversized message and undecodable ones.
	cfg := testConfig("b", nil, []string{a.Addr()})
	cfg.Keys = [][]byte{key}
	b := startNode(t, filepath.Join(dir, "b.db"), cfg)
	waitMembers(t, []*tnode{a, b}, 2, 5*time.Second)
	var toA *memberlist.Node
	for _, m := range b.alive() {
		toA = m
	}
	refused := a.Stats.MessagesRefused.Load()
	big := encodeChanges([]store.Segment{{Origin: "x", From: 0, To: 1, Changes: []store.Change{
		{Table: "backends", PK: `["big"]`, Column: "app", Value: strings.Repeat("x", 100<<10), HLC: 1, Seq: 1, CL: 1}}}})
	if err := b.ml.SendReliable(toA, big); err != nil {
		t.Fatal(err)
	}
	for _, junk := range [][]byte{[]byte("ER\x01\x01\xff\xff\xff\xff\xff\xff"), []byte("hello"), append(header(msgChanges), 200)} {
		b.ml.SendReliable(toA, junk)
	}
	// A change for a table this build does not have (a newer schema): refused, not seen.
	future := encodeChanges([]store.Segment{{Origin: "newer", From: 0, To: 1, Changes: []store.Change{
		{Table: "tomorrow", PK: `["x"]`, Column: "c", Value: int64(1), HLC: store.MakeHLC(time.Now(), 0), Seq: 1, CL: 1}}}})
	b.ml.SendReliable(toA, future)
	// A change from a clock far ahead.
	ahead := encodeChanges([]store.Segment{{Origin: "fast", From: 0, To: 1, Changes: []store.Change{
		{Table: "backends", PK: `["fast"]`, Column: "app", Value: "x", HLC: store.MakeHLC(time.Now().Add(time.Minute), 0), Seq: 1, CL: 1}}}})
	b.ml.SendReliable(toA, ahead)
	deadline := time.Now().Add(3 * time.Second)
	for a.Stats.MessagesRefused.Load() < refused+4 || a.Stats.ChangesRefused.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("hostile messages not refused: %d messages, %d changes", a.Stats.MessagesRefused.Load()-refused, a.Stats.ChangesRefused.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	vec, _ := a.st.Vector(context.Background())
	if vec["newer"] != 0 || vec["fast"] != 0 {
		t.Fatalf("refused changes marked as seen: %v", vec)
	}
	// b's own row still replicates, and nothing hostile got in.
	b.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('friend','app','10.0.0.2',80)`)
	converge(t, []*tnode{a, b}, 3*time.Second)
	if got := a.dump(); got != "friend|app||10.0.0.2|80|2\n"+before {
		t.Fatalf("table after hostile input: %q", got)
	}
	logs := a.log.String()
	for _, want := range []string{"too large", "message refused", "unknown table", "ahead of ours"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestTombstonesAreCollectedOnceEveryoneHasThem(t *testing.T) {
	nodes := startCluster(t, 3, nil, func(c *Config) {
		c.GCInterval = 100 * time.Millisecond
		c.TombstoneAge = time.Millisecond
	})
	nodes[0].exec(t, `INSERT INTO backends (id, app) VALUES ('gone','app')`)
	converge(t, nodes, 3*time.Second)
	nodes[1].exec(t, `DELETE FROM backends WHERE id = 'gone'`)
	converge(t, nodes, 3*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		total := int64(0)
		for _, n := range nodes {
			k, _ := n.st.Tombstones(context.Background())
			total += k
		}
		if total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tombstones left", total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTenNodePartitionHealConvergence measures, in one process, how long
// ten nodes take to converge after a partition heals, with the default
// anti-entropy period.
func TestTenNodePartitionHealConvergence(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	faults := NewFaults(3)
	nodes := startCluster(t, 10, faults, func(c *Config) { c.SyncInterval = 0; c.RejoinInterval = time.Second })
	var minority, majority []string
	for i, n := range nodes {
		if i >= 7 {
			minority = append(minority, n.Addr())
		} else {
			majority = append(majority, n.Addr())
		}
	}
	faults.Partition(majority, minority)
	for i, n := range nodes {
		n.exec(t, `INSERT INTO backends (id, app) VALUES (?, 'app')`, fmt.Sprint("row", i))
	}
	nodes[0].exec(t, `UPDATE backends SET weight = 9 WHERE id = 'row9'`)
	time.Sleep(3 * time.Second)
	faults.Heal()
	d := converge(t, nodes, 10*time.Second)
	t.Logf("10 nodes converged %v after the partition healed", d)
	// The target is 2s; on a loaded machine (this one runs ten nodes in
	// one process) only a gross miss fails the test.
	if d > 5*time.Second {
		t.Errorf("convergence after heal took %v, target 2s", d)
	}
}

// memberlist hands queued messages over newest first, so under load a
// member's goodbye can arrive after the departure it announces. It still
// counts as a leave: the member is shown as left and not dialled again.
func TestLateGoodbyeStillMeansLeft(t *testing.T) {
	nodes := startCluster(t, 2, nil, nil)
	a, b := nodes[0], nodes[1]
	b.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for a.Status(context.Background()).Counts["dead"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("pop1 not seen down: %v", a.Status(context.Background()).Counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
	(*delegate)(a.Node).NotifyMsg(encodeLeave(b.name))
	if c := a.Status(context.Background()).Counts; c["left"] != 1 || c["dead"] != 0 {
		t.Fatalf("after the late goodbye: %v", c)
	}
	dials := func() int { return strings.Count(a.log.String(), "failed to join "+b.Addr()) }
	before := dials()
	time.Sleep(4 * a.cfg.RejoinInterval)
	if n := dials() - before; n != 0 {
		t.Fatalf("pop0 dialled pop1 %d times after it left", n)
	}
}

// A change that loses to a newer value already here moves only the
// version vector: OnMerge says that no row changed, and the POP does not
// read its routing table again for it.
func TestALosingChangeMergesWithoutRows(t *testing.T) {
	faults := NewFaults(5)
	var withRows, vectorOnly atomic.Int32
	nodes := startCluster(t, 2, faults, func(c *Config) {
		if c.Name == "pop0" {
			c.OnMerge = func(rows bool) {
				if rows {
					withRows.Add(1)
				} else {
					vectorOnly.Add(1)
				}
			}
		}
	})
	nodes[0].exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('b1', 'app', '10.0.0.1', 80)`)
	converge(t, nodes, 3*time.Second)
	faults.Partition([]string{nodes[0].Addr()}, []string{nodes[1].Addr()})
	nodes[1].exec(t, `UPDATE backends SET weight = 7 WHERE id = 'b1'`)
	time.Sleep(5 * time.Millisecond)
	nodes[0].exec(t, `UPDATE backends SET weight = 9 WHERE id = 'b1'`)
	withRows.Store(0)
	vectorOnly.Store(0)
	faults.Heal()
	converge(t, nodes, 5*time.Second)
	if d := nodes[0].dump(); d != "b1|app||10.0.0.1|80|9\n" {
		t.Fatalf("the newer weight lost: %q", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for vectorOnly.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("pop0 merged pop1's losing change without telling OnMerge")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := withRows.Load(); n != 0 {
		t.Fatalf("pop0 merged only a losing change, and OnMerge said rows changed %d times", n)
	}
}
