package cluster

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// startOn starts a second node on a running node's file: a bridge's node
// in its other cluster.
func startOn(t *testing.T, on *tnode, cfg Config) *tnode {
	t.Helper()
	buf := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n, err := Start(on.st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tn := &tnode{Node: n, name: cfg.Name, path: on.path, st: on.st, log: buf, cfg: cfg}
	t.Cleanup(func() { tn.Kill() }) // before the file closes: cleanups run last first
	return tn
}

// regions starts one cluster per region of size POPs, the first POP of
// each a bridge with a node in the cluster "global". Anti-entropy waits a
// minute, so what arrives within seconds was pushed or relayed; mod, if
// set, adjusts every node's config after that.
func regions(t *testing.T, names []string, size int, mod func(*Config)) (pops [][]*tnode, bridges []*tnode) {
	t.Helper()
	dir := t.TempDir()
	var globalJoin []string
	for _, r := range names {
		var join []string
		var region []*tnode
		for i := range size {
			name := fmt.Sprintf("%s%d", r, i)
			cfg := testConfig(name, nil, join)
			cfg.Cluster, cfg.SyncInterval = "test-"+r, time.Minute
			if mod != nil {
				mod(&cfg)
			}
			nd := startNode(t, filepath.Join(dir, name+".db"), cfg)
			if i == 0 {
				join = []string{nd.Addr()}
			}
			region = append(region, nd)
		}
		gcfg := testConfig("global-"+r, nil, globalJoin)
		gcfg.Cluster, gcfg.SyncInterval = "test-global", time.Minute
		if mod != nil {
			mod(&gcfg)
		}
		g := startOn(t, region[0], gcfg)
		if err := Bridge(region[0].Node, g.Node); err != nil {
			t.Fatal(err)
		}
		globalJoin = append(globalJoin, g.Addr())
		pops, bridges = append(pops, region), append(bridges, g)
	}
	for _, region := range pops {
		waitMembers(t, region, size, 10*time.Second)
	}
	waitMembers(t, bridges, len(names), 10*time.Second)
	return pops, bridges
}

// A commit in one region reaches every POP of the others through the
// bridges, pushed and relayed, while each POP's membership stays its own
// region's.
func TestBridgesRelayBetweenRegions(t *testing.T) {
	pops, bridges := regions(t, []string{"eu", "sa", "us"}, 3, nil)
	var all []*tnode
	for _, region := range pops {
		all = append(all, region...)
	}
	for _, nd := range all {
		if got := len(nd.alive()); got != 2 {
			t.Fatalf("%s sees %d other members; a region of 3 POPs should show 2", nd.name, got)
		}
	}
	start := time.Now()
	pops[0][2].exec(t, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('be1', 'myapp', 'eu', 'fdaa::1', 80)`)
	converge(t, all, 3*time.Second)
	t.Logf("eu2 to every POP of three regions: %v", time.Since(start))
	// And back from a POP that is no bridge in another region, while
	// the first change is acknowledged everywhere.
	pops[2][1].exec(t, `UPDATE backends SET port = 8080 WHERE id = 'be1'`)
	converge(t, all, 3*time.Second)
	if !strings.Contains(all[0].dump(), "|8080|") {
		t.Fatalf("the update from us1 did not arrive:\n%s", all[0].dump())
	}
	var relayed uint64
	for _, b := range bridges {
		relayed += b.Stats.ChangesRelayed.Load()
		if st := b.Status(t.Context()); st.Bridge == "" {
			t.Errorf("%s's status does not name the cluster it bridges to", b.name)
		}
	}
	for _, region := range pops {
		relayed += region[0].Stats.ChangesRelayed.Load()
	}
	if relayed == 0 {
		t.Fatal("no bridge relayed a change: they arrived some other way")
	}
}

// A POP cut off while a bridge relayed another region's change, and
// repaired after, forwards what it learnt of its own region only: the
// bridge relayed the other region's change to every member but it.
func TestRepairedChangesOfAnotherRegionAreNotForwarded(t *testing.T) {
	faults := NewFaults(11)
	// Only the bridge and the POP cut off run anti-entropy within the
	// test: the POP learns both changes from the bridge, and still takes
	// the other members to lack them.
	pops, bridges := regions(t, []string{"eu", "us"}, 6, func(c *Config) {
		c.Faults = faults
		if c.Name == "eu0" || c.Name == "eu5" {
			c.SyncInterval = 100 * time.Millisecond
		}
	})
	eu, us := pops[0], pops[1]
	cut := eu[5]
	var all, rest []*tnode
	for _, region := range pops {
		for _, nd := range region {
			all = append(all, nd)
			if nd != cut {
				rest = append(rest, nd)
			}
		}
	}
	var restAddrs []string
	for _, nd := range slices.Concat(rest, bridges) {
		restAddrs = append(restAddrs, nd.Addr())
	}
	faults.Partition([]string{cut.Addr()}, restAddrs)
	us[1].exec(t, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('from-us', 'myapp', 'us', 'fdaa::1', 80)`)
	eu[1].exec(t, `INSERT INTO backends (id, app, region, wg_ip, port) VALUES ('from-eu', 'myapp', 'eu', 'fdaa::2', 80)`)
	converge(t, rest, 5*time.Second)
	// Older than forwardAge: what the POP cut off learns now is repair.
	time.Sleep(forwardAge + 100*time.Millisecond)
	faults.Heal()
	converge(t, all, 10*time.Second)
	own, err := eu[1].st.ChangesSince(t.Context(), eu[1].st.SiteID(), 0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	if got := cut.Stats.ChangesForwarded.Load(); got != uint64(len(own)) {
		t.Fatalf("%s forwarded %d changes after its repair; want the %d of eu1's insert alone", cut.name, got, len(own))
	}
}

// A bridge forgets a tombstone only once the members of both its clusters
// have it: its region having it is not enough while a bridge of another
// region is cut off without it.
func TestBridgeKeepsTombstonesUntilBothClustersHaveThem(t *testing.T) {
	pops, bridges := regions(t, []string{"eu", "us"}, 2, func(c *Config) {
		c.SyncInterval, c.GCInterval, c.TombstoneAge = 100*time.Millisecond, 100*time.Millisecond, time.Millisecond
	})
	eu0, eu1 := pops[0][0], pops[0][1]
	all := append(append([]*tnode(nil), pops[0]...), pops[1]...)
	eu1.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('be1', 'myapp', 'fdaa::1', 80)`)
	converge(t, all, 3*time.Second)
	// us's bridge leaves the global cluster's reach: its last vector,
	// without the delete, stays eu's bridge's view of it.
	bridges[1].Kill()
	eu1.exec(t, `DELETE FROM backends WHERE id = 'be1'`)
	converge(t, pops[0], 3*time.Second)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if k, _ := eu0.st.Tombstones(t.Context()); k != 1 {
			t.Fatalf("eu's bridge holds %d tombstones while us's bridge lacks the delete: it forgot one its other cluster still needs", k)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Their status says why: us's bridge went before it sent a floor.
	if kept := eu0.Status(t.Context()).TombstonesKept; !strings.Contains(kept, "global-us") {
		t.Errorf("eu's bridge keeps its tombstone and says %q, not that global-us has not sent its floor", kept)
	}
	if kept := eu1.Status(t.Context()).TombstonesKept; !strings.Contains(kept, "no bridge of this region has sent") {
		t.Errorf("eu1 keeps its tombstone and says %q, not that it has no floor from its bridges", kept)
	}
}

// A POP forgets a tombstone only once every POP of every region has it,
// though it knows its own region only. Here eu1 deletes a row while us1,
// cut off from its region, updates it: had a POP of eu forgotten the
// delete, us1's update would bring the row back there when us1 returns.
// The delete reaches us's bridge, so eu learns that us1 lacks it only
// from the floor of its region that us's bridge passes on.
func TestRegionsForgetTombstonesOnlyOnceEveryRegionHasThem(t *testing.T) {
	faults := NewFaults(7)
	pops, _ := regions(t, []string{"eu", "us"}, 2, func(c *Config) {
		c.SyncInterval, c.GCInterval, c.TombstoneAge = 100*time.Millisecond, 100*time.Millisecond, time.Millisecond
		c.Faults = faults
	})
	eu0, eu1, us0, us1 := pops[0][0], pops[0][1], pops[1][0], pops[1][1]
	all := append(append([]*tnode(nil), pops[0]...), pops[1]...)
	tombstones := func() string {
		var b strings.Builder
		for _, nd := range all {
			k, _ := nd.st.Tombstones(t.Context())
			fmt.Fprintf(&b, " %s:%d", nd.name, k)
		}
		return b.String()
	}
	forgotten := func(within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for tombstones() != " eu0:0 eu1:0 us0:0 us1:0" {
			if time.Now().After(deadline) {
				t.Fatalf("tombstones every POP holds are not forgotten within %v:%s", within, tombstones())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// With every region reachable, the floors let every POP forget a
	// delete every POP holds.
	eu1.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('be0', 'myapp', 'fdaa::1', 80)`)
	eu1.exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('be1', 'myapp', 'fdaa::2', 80)`)
	converge(t, all, 3*time.Second)
	eu1.exec(t, `DELETE FROM backends WHERE id = 'be0'`)
	converge(t, all, 3*time.Second)
	forgotten(5 * time.Second)

	faults.Partition([]string{us1.Addr()}, []string{us0.Addr()})
	eu1.exec(t, `DELETE FROM backends WHERE id = 'be1'`)
	us1.exec(t, `UPDATE backends SET port = 9090 WHERE id = 'be1'`)
	converge(t, []*tnode{eu0, eu1, us0}, 3*time.Second)
	// Ten collection rounds: every POP has the delete but us1.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		for _, nd := range []*tnode{eu0, eu1, us0} {
			if k, _ := nd.st.Tombstones(t.Context()); k != 1 {
				t.Fatalf("%s holds %d tombstones while us1 lacks the delete: it forgot one a POP of another region still needs", nd.name, k)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}

	faults.Heal()
	converge(t, all, 10*time.Second)
	if d := eu0.dump(); strings.Contains(d, "be1") {
		t.Fatalf("the row deleted in eu came back with us1's update:\n%s", d)
	}
	forgotten(10 * time.Second)
}

// Floors travel in the rounds in which the bridges find old tombstones.
// us1 is cut off from its bridge through those rounds, after it got the
// delete: every other POP forgets the tombstone and sends no floor again.
// Back, us1 asks its bridge for the floor it missed, and forgets too.
func TestAPOPThatMissedTheFloorAsksForIt(t *testing.T) {
	pops, bridges, faults, held := deleteComingOfAge(t, 11)
	eu0, eu1, us0, us1 := pops[0][0], pops[0][1], pops[1][0], pops[1][1]
	// us0 must know that us1 has the delete before the cut.
	for deadline := time.Now().Add(3 * time.Second); ; {
		v, _ := us1.st.Vector(t.Context())
		if st := memberNamed(us0.Status(t.Context()), "us1"); vectorCovers(st.Vector, v) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("us0 never learnt us1's vector")
		}
		time.Sleep(10 * time.Millisecond)
	}
	faults.Partition([]string{us1.Addr()}, []string{us0.Addr(), eu0.Addr(), eu1.Addr(), bridges[0].Addr(), bridges[1].Addr()})
	held.wait(" eu0:0 eu1:0 us0:0 us1:1", tombstoneAgeOfTests+10*time.Second)
	faults.Heal()
	held.wait(" eu0:0 eu1:0 us0:0 us1:0", 10*time.Second)
}

// The same between bridges: eu's bridge cannot reach us's while the
// tombstone comes of age, though us's reaches eu's. eu forgets it, with the
// floor of us's region; us, without eu's, keeps it. Once the route is
// back, us's bridge asks eu's for the floor of its region, and us forgets.
func TestABridgeThatMissedARegionFloorAsksForIt(t *testing.T) {
	_, bridges, faults, held := deleteComingOfAge(t, 13)
	faults.CutOneWay(bridges[0].Addr(), bridges[1].Addr())
	held.wait(" eu0:0 eu1:0 us0:1 us1:1", tombstoneAgeOfTests+10*time.Second)
	faults.Heal()
	held.wait(" eu0:0 eu1:0 us0:0 us1:0", 10*time.Second)
}

// tombstoneAgeOfTests leaves deleteComingOfAge's caller time to cut a
// route before the tombstone is old enough to collect.
const tombstoneAgeOfTests = 3 * time.Second

// deleteComingOfAge starts two regions of two POPs, eu and us, on one
// Faults, and has eu1 delete a row every POP then holds; the tombstone
// becomes old enough to collect tombstoneAgeOfTests after the delete.
func deleteComingOfAge(t *testing.T, seed uint64) (pops [][]*tnode, bridges []*tnode, faults *Faults, held tombstonesHeld) {
	t.Helper()
	faults = NewFaults(seed)
	pops, bridges = regions(t, []string{"eu", "us"}, 2, func(c *Config) {
		c.SyncInterval, c.GCInterval, c.TombstoneAge = 100*time.Millisecond, 100*time.Millisecond, tombstoneAgeOfTests
		c.Faults = faults
	})
	all := []*tnode{pops[0][0], pops[0][1], pops[1][0], pops[1][1]}
	pops[0][1].exec(t, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('be0', 'myapp', 'fdaa::1', 80)`)
	converge(t, all, 3*time.Second)
	deleted := time.Now()
	pops[0][1].exec(t, `DELETE FROM backends WHERE id = 'be0'`)
	converge(t, all, 3*time.Second)
	if since := time.Since(deleted); since >= tombstoneAgeOfTests/2 {
		t.Fatalf("the delete took %v to reach every POP: the test needs it within half the tombstone age, %v", since, tombstoneAgeOfTests)
	}
	return pops, bridges, faults, tombstonesHeld{t, all}
}

// tombstonesHeld follows how many tombstones each of nodes holds.
type tombstonesHeld struct {
	t     *testing.T
	nodes []*tnode
}

func (h tombstonesHeld) String() string {
	var b strings.Builder
	for _, nd := range h.nodes {
		k, _ := nd.st.Tombstones(h.t.Context())
		fmt.Fprintf(&b, " %s:%d", nd.name, k)
	}
	return b.String()
}

// wait waits until String is want.
func (h tombstonesHeld) wait(want string, within time.Duration) {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for h.String() != want {
		if time.Now().After(deadline) {
			h.t.Fatalf("tombstones held after %v:%s, want%s", within, h, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBridgeRefusesNodesOnDifferentFilesOrOneCluster(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, filepath.Join(dir, "a.db"), testConfig("a", nil, nil))
	b := startNode(t, filepath.Join(dir, "b.db"), testConfig("b", nil, nil))
	if err := Bridge(a.Node, b.Node); err == nil || !strings.Contains(err.Error(), "same file") {
		t.Fatalf("nodes on two files: %v", err)
	}
	g := startOn(t, a, testConfig("a-again", nil, nil))
	if err := Bridge(a.Node, g.Node); err == nil || !strings.Contains(err.Error(), "labels") {
		t.Fatalf("two nodes of one cluster: %v", err)
	}
}

func memberNamed(st Status, name string) MemberStatus {
	for _, m := range st.Members {
		if m.Name == name {
			return m
		}
	}
	return MemberStatus{}
}
