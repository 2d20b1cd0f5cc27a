package cluster

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sumSent is the replication messages the nodes have sent.
func sumSent(nodes []*tnode) uint64 {
	var s uint64
	for _, n := range nodes {
		s += n.Stats.MessagesSent.Load()
	}
	return s
}

// An idle cluster sends no replication messages once every member has
// confirmed it holds what the others hold; a commit afterwards still
// reaches everyone, and the cluster falls quiet again.
func TestIdleClusterFallsQuiet(t *testing.T) {
	nodes := startCluster(t, 3, nil, nil)
	nodes[0].exec(t, `INSERT INTO backends (id, app) VALUES ('b1','app')`)
	converge(t, nodes, 3*time.Second)
	quiet := func() {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			before := sumSent(nodes)
			time.Sleep(time.Second) // ten anti-entropy periods
			sent := sumSent(nodes) - before
			if sent == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the idle cluster still sends: %d messages in the last second", sent)
			}
		}
	}
	quiet()
	nodes[2].exec(t, `UPDATE backends SET weight = 4 WHERE id = 'b1'`)
	converge(t, nodes, 3*time.Second)
	if got := nodes[0].dump(); got != "b1|app|||0|4\n" {
		t.Fatalf("after the update: %q", got)
	}
	quiet()
}

// A commit is pushed as soon as it is visible, whoever makes it: this
// process or another one (the sqlite3 CLI, which syncs the WAL before the
// commit becomes visible). Anti-entropy is off here, so only the push can
// carry it.
func TestCommitsArePushedAtOnce(t *testing.T) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		t.Fatal("the sqlite3 CLI is required (apt-get install sqlite3)")
	}
	nodes := startCluster(t, 2, nil, func(c *Config) { c.SyncInterval = time.Hour })
	src, dst := nodes[0], nodes[1]
	weight := func() int64 {
		var w int64 = -1
		dst.st.DB().QueryRow(`SELECT weight FROM backends WHERE id = 'p'`).Scan(&w)
		return w
	}
	src.exec(t, `INSERT INTO backends (id, app) VALUES ('p','app')`)
	var lat []time.Duration
	for i := range 20 {
		w := i + 10
		stmt := fmt.Sprintf(`UPDATE backends SET weight = %d WHERE id = 'p'`, w)
		var start time.Time
		if i%2 == 0 {
			start = time.Now()
			src.exec(t, stmt)
		} else {
			cmd := exec.Command("sqlite3", "-cmd", ".timeout 5000", src.path, stmt)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("sqlite3: %v: %s", err, out)
			}
			// The CLI's commit was visible when it exited; its start-up
			// is no part of the delay.
			start = time.Now()
		}
		for weight() != int64(w) {
			if time.Since(start) > 2*time.Second {
				t.Fatalf("commit %d not pushed within 2s (pushes: %d)", i, src.Stats.Pushes.Load())
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("commit to merged on the peer: median %v, max %v", lat[len(lat)/2], lat[len(lat)-1])
	// The replication target is 100 ms; a push is a few ms on an idle
	// machine, which this one need not be.
	if med := lat[len(lat)/2]; med > 50*time.Millisecond {
		t.Errorf("median push delay %v", med)
	}
	// Each update waited for the one before to arrive: each was a push
	// of its own (the insert may have shared the first one's).
	if n := src.Stats.Pushes.Load(); n < 20 {
		t.Errorf("%d pushes for 21 commits", n)
	}
}

// Start takes every field left zero from DefaultConfig.
func TestZeroFieldsTakeTheDefaults(t *testing.T) {
	nd := startNode(t, filepath.Join(t.TempDir(), "d.db"), Config{Name: "d", Bind: "127.0.0.1:0"})
	got, want := nd.Node.cfg, DefaultConfig()
	if got.PushPoll != want.PushPoll || got.PushSafetyPoll != want.PushSafetyPoll || got.SyncInterval != want.SyncInterval ||
		got.RejoinInterval != want.RejoinInterval || got.GCInterval != want.GCInterval || got.TombstoneAge != want.TombstoneAge ||
		got.MaxMessage != want.MaxMessage || got.StreamTimeout != want.StreamTimeout {
		t.Fatalf("config after Start: %+v\ndefaults: %+v", got, want)
	}
	if nd.ml.LocalNode().Name != "d" || !strings.HasPrefix(nd.Addr(), "127.0.0.1:") {
		t.Fatalf("node %q at %s", nd.ml.LocalNode().Name, nd.Addr())
	}
	st := nd.Status(context.Background())
	if st.Node != "d" || st.Counts["alive"] != 1 {
		t.Fatalf("status: %+v", st)
	}
}

// A seed that never shows among the members under the address given (a
// host name here) is joined once, not again every RejoinInterval.
func TestSeedByHostNameIsNotRejoinedOverAndOver(t *testing.T) {
	dir := t.TempDir()
	a := startNode(t, filepath.Join(dir, "a.db"), testConfig("a", nil, nil))
	_, port, err := splitHostPort(a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("b", nil, []string{fmt.Sprintf("localhost:%d", port)})
	cfg.RejoinInterval = 50 * time.Millisecond
	b := startNode(t, filepath.Join(dir, "b.db"), cfg)
	waitMembers(t, []*tnode{a, b}, 2, 5*time.Second)
	time.Sleep(time.Second) // twenty rejoin periods
	if k := strings.Count(b.log.String(), "cluster: rejoined"); k > 1 {
		t.Fatalf("the seed was joined again %d times:\n%s", k, b.log.String())
	}
	if len(b.alive()) != 1 {
		t.Fatalf("b sees %d members", len(b.alive()))
	}
}

// A member dead for longer than DeadPatience is sent anti-entropy only
// every DeadRetry; before that, every period (a cut that heals soon heals
// within one).
func TestLongDeadMemberIsTriedOnlyNowAndThen(t *testing.T) {
	nodes := startCluster(t, 2, nil, func(c *Config) {
		c.DeadPatience = 1500 * time.Millisecond
		c.DeadRetry = time.Hour
	})
	a, b := nodes[0], nodes[1]
	a.exec(t, `INSERT INTO backends (id, app) VALUES ('x','app')`)
	converge(t, nodes, 3*time.Second)
	b.Kill()
	a.exec(t, `INSERT INTO backends (id, app) VALUES ('y','app')`) // b now lacks something
	deadline := time.Now().Add(5 * time.Second)
	for a.Status(context.Background()).Counts["dead"] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("b not seen dead")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Freshly dead: a packet every period (100 ms here).
	s0 := a.Stats.MessagesSent.Load()
	time.Sleep(500 * time.Millisecond)
	if k := a.Stats.MessagesSent.Load() - s0; k < 3 {
		t.Fatalf("%d messages to a freshly dead member in 500ms", k)
	}
	// Dead for long: one more try when patience runs out, then none.
	time.Sleep(1500 * time.Millisecond)
	s1 := a.Stats.MessagesSent.Load()
	time.Sleep(time.Second)
	if k := a.Stats.MessagesSent.Load() - s1; k != 0 {
		t.Fatalf("%d messages to a member dead for long in 1s", k)
	}
}

// A commit costs the cluster its pushes and an acknowledgement from each
// member to the origin, not a confirmation between every pair of
// members: at a thousand POPs that was a million digests a commit.
func TestCommitIsConfirmedByAcknowledgementsOnly(t *testing.T) {
	const n = 8
	nodes := startCluster(t, n, nil, nil)
	nodes[0].exec(t, `INSERT INTO backends (id, app) VALUES ('b1','app')`)
	converge(t, nodes, 3*time.Second)
	waitQuiet := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			before := sumSent(nodes)
			time.Sleep(500 * time.Millisecond)
			if sumSent(nodes) == before {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the cluster does not fall quiet")
			}
		}
	}
	waitQuiet()
	before := sumSent(nodes)
	nodes[3].exec(t, `UPDATE backends SET weight = 4 WHERE id = 'b1'`)
	converge(t, nodes, 3*time.Second)
	waitQuiet()
	sent := sumSent(nodes) - before
	t.Logf("one commit on %d nodes: %d replication messages", n, sent)
	// n-1 pushes and n-1 acknowledgements, and a few digests of the
	// origin's anti-entropy racing the acknowledgements.
	if sent > 3*(n-1) {
		t.Errorf("one commit cost %d replication messages; want at most %d", sent, 3*(n-1))
	}
}
