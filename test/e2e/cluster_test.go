package e2e

// Multi-process tests of replication: several POPs (the built Caddy binary)
// on 127.0.0.x, their routing.db files edited with the real sqlite3 CLI.

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

var caddyBin string

func TestMain(m *testing.M) {
	if _, err := exec.LookPath("sqlite3"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the sqlite3 CLI is required (apt-get install sqlite3)")
		os.Exit(1)
	}
	bin, cleanup, err := popctl.CaddyBinary("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	caddyBin = bin
	code := m.Run()
	cleanup()
	os.Exit(code)
}

func newKey(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// ipBase hands each test its own 127.0.0.x addresses.
var (
	ipMu   sync.Mutex
	ipNext = 20
)

func nextIP() string {
	ipMu.Lock()
	defer ipMu.Unlock()
	ipNext++
	return fmt.Sprintf("127.0.0.%d", ipNext)
}

type cluster struct {
	t    *testing.T
	pops []*popctl.POP
	key  string
}

// startPOPs starts n POPs that join the first one.
func startPOPs(t *testing.T, n int, mod func(i int, o *popctl.Options)) *cluster {
	t.Helper()
	c := &cluster{t: t, key: newKey(t)}
	var seed string
	for i := range n {
		o := popctl.Options{Bin: caddyBin, Dir: filepath.Join(t.TempDir(), fmt.Sprint("pop", i)),
			Name: fmt.Sprintf("pop%d", i), IP: nextIP(), Key: c.key, Cluster: "e2e",
			ClusterExtra: "sync_interval 200ms\n\t\t\trejoin_interval 500ms", WatchInterval: "10ms"}
		if seed != "" {
			o.Join = []string{seed}
		}
		if mod != nil {
			mod(i, &o)
		}
		p, err := popctl.New(o)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			seed = p.ClusterAddr
		}
		c.start(p)
		c.pops = append(c.pops, p)
	}
	c.waitMembers(n, 15*time.Second)
	return c
}

func (c *cluster) start(p *popctl.POP) {
	c.t.Helper()
	if err := p.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		p.Kill()
		if c.t.Failed() {
			c.t.Logf("%s log:\n%s", p.Opts.Name, tail(p.Logs(), 60))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (c *cluster) waitMembers(n int, within time.Duration) {
	c.t.Helper()
	eventually(c.t, within, func() string {
		for _, p := range c.pops {
			st, err := p.Cluster()
			if err != nil {
				return err.Error()
			}
			if st.Counts["alive"] != n {
				return fmt.Sprintf("%s sees %d alive members, want %d", p.Opts.Name, st.Counts["alive"], n)
			}
		}
		return ""
	})
}

func (c *cluster) sql(p *popctl.POP, stmt string) string {
	c.t.Helper()
	out, err := p.SQL(stmt)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// converge waits until query gives the same answer on every POP's file.
func (c *cluster) converge(query string, within time.Duration) string {
	c.t.Helper()
	var want string
	eventually(c.t, within, func() string {
		want = c.sql(c.pops[0], query)
		for _, p := range c.pops[1:] {
			if got := c.sql(p, query); got != want {
				return fmt.Sprintf("%s has %q, %s has %q", c.pops[0].Opts.Name, want, p.Opts.Name, got)
			}
		}
		return ""
	})
	return want
}

func eventually(t *testing.T, within time.Duration, f func() string) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < within {
		if last = f(); last == "" {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s", within, last)
	return 0
}

func greeter(t *testing.T, name string) int {
	ln, err := popctl.Greeter(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

const rowsQuery = `SELECT id, app, wg_ip, port, weight FROM backends ORDER BY id`

func TestSqliteInsertOnOnePOPRoutesOnAnother(t *testing.T) {
	c := startPOPs(t, 3, nil)
	port := greeter(t, "be-1")
	start := time.Now()
	c.sql(c.pops[0], fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('be-1','myapp','sa','BR','127.0.0.1',%d)`, port))
	d := eventually(t, 2*time.Second, func() string {
		if got := c.pops[2].Via(); got != "be-1" {
			return fmt.Sprintf("pop2 routed to %q", got)
		}
		return ""
	})
	t.Logf("an insert on pop0 routed on pop2 after %v", time.Since(start).Round(time.Millisecond))
	_ = d
	if got := c.sql(c.pops[1], `SELECT id, port FROM backends`); got != fmt.Sprintf("be-1|%d", port) {
		t.Fatalf("pop1's file: %q", got)
	}
	// Every POP published its own row, and every file has all of them.
	pops := c.converge(`SELECT node, region, country, addr FROM pops ORDER BY node`, 3*time.Second)
	if strings.Count(pops, "\n") != 2 {
		t.Fatalf("pops rows: %q", pops)
	}
	for _, p := range c.pops {
		if !strings.Contains(pops, p.Opts.Name+"|sa|BR|"+p.ClusterAddr) {
			t.Fatalf("pops rows lack %s: %q", p.Opts.Name, pops)
		}
	}
	st, err := c.pops[1].Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if st.Site == "" || len(st.Members) != 2 || st.Changes["applied"] == 0 {
		t.Fatalf("cluster status: %+v", st)
	}
	eventually(t, 3*time.Second, func() string {
		m, err := c.pops[1].Metrics()
		if err != nil {
			return err.Error()
		}
		for _, want := range []string{`edgeroute_cluster_members{state="alive"} 3`, `edgeroute_cluster_changes_total{result="applied"}`,
			`edgeroute_cluster_changes_total{result="forwarded"}`, `edgeroute_cluster_bytes_total{direction="received"}`, `edgeroute_cluster_replication_lag_seconds{member="pop0"}`,
			`edgeroute_cluster_versions_behind{member="pop2"}`} {
			if !strings.Contains(m, want) {
				return "metrics lack " + want
			}
		}
		return ""
	})
}

func TestConcurrentColumnUpdatesBothSurviveAndDeletePropagates(t *testing.T) {
	c := startPOPs(t, 3, nil)
	c.sql(c.pops[0], `INSERT INTO backends (id, app, wg_ip, port) VALUES ('x','myapp','10.0.0.1',80)`)
	c.converge(rowsQuery, 3*time.Second)
	var wg sync.WaitGroup
	for i, stmt := range []string{`UPDATE backends SET weight = 9 WHERE id = 'x'`, `UPDATE backends SET port = 8443 WHERE id = 'x'`} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.pops[i+1].SQL(stmt); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := c.converge(rowsQuery, 3*time.Second); got != "x|myapp|10.0.0.1|8443|9" {
		t.Fatalf("after concurrent updates: %q", got)
	}
	c.sql(c.pops[2], `DELETE FROM backends WHERE id = 'x'`)
	if got := c.converge(rowsQuery, 3*time.Second); got != "" {
		t.Fatalf("after delete: %q", got)
	}
	// Re-insert after delete (causal length 3) wins everywhere too.
	c.sql(c.pops[1], `INSERT INTO backends (id, app, wg_ip, port) VALUES ('x','again','10.0.0.2',81)`)
	if got := c.converge(rowsQuery, 3*time.Second); got != "x|again|10.0.0.2|81|2" {
		t.Fatalf("after re-insert: %q", got)
	}
}

func TestKilledPOPCatchesUpAfterRestart(t *testing.T) {
	c := startPOPs(t, 3, nil)
	c.sql(c.pops[0], `INSERT INTO backends (id, app) VALUES ('a','myapp'), ('b','myapp')`)
	c.converge(rowsQuery, 3*time.Second)
	victim := c.pops[2]
	victim.Kill()
	c.sql(c.pops[0], `INSERT INTO backends (id, app) VALUES ('c','myapp')`)
	c.sql(c.pops[1], `DELETE FROM backends WHERE id = 'a'`)
	c.sql(c.pops[1], `UPDATE backends SET weight = 5 WHERE id = 'b'`)
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	c.start(victim)
	got := c.converge(rowsQuery, 10*time.Second)
	t.Logf("restarted POP caught up %v after starting", time.Since(start).Round(time.Millisecond))
	if got != "b|myapp||0|5\nc|myapp||0|2" {
		t.Fatalf("after restart: %q", got)
	}
}

func TestCutOffPOPKeepsServingAndConvergesAfterHeal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cutting a POP off uses nftables: run as root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed")
	}
	c := startPOPs(t, 3, nil)
	port := greeter(t, "be-1")
	c.sql(c.pops[0], fmt.Sprintf(`INSERT INTO backends (id, app, wg_ip, port) VALUES ('be-1','myapp','127.0.0.1',%d)`, port))
	c.converge(rowsQuery, 3*time.Second)
	victim := c.pops[2]
	cut, err := popctl.CutOff(victim, c.pops[:2])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cut.Heal() })
	c.sql(c.pops[0], `UPDATE backends SET weight = 4 WHERE id = 'be-1'`)
	c.sql(c.pops[0], `INSERT INTO backends (id, app, wg_ip, port) VALUES ('new','otherapp','127.0.0.1',1)`)
	c.sql(victim, `INSERT INTO backends (id, app, wg_ip, port) VALUES ('island','otherapp','127.0.0.1',2)`)
	time.Sleep(3 * time.Second)
	// The cut-off POP still routes with its last table.
	if got := victim.Via(); got != "be-1" {
		t.Fatalf("cut-off POP routed to %q", got)
	}
	if got := c.sql(victim, `SELECT group_concat(id) FROM backends`); strings.Contains(got, "new") {
		t.Fatalf("a change crossed the cut: %q", got)
	}
	st, _ := victim.Cluster()
	t.Logf("during the cut, %s sees %v", victim.Opts.Name, st.Counts)
	if err := cut.Heal(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got := c.converge(rowsQuery, 15*time.Second)
	t.Logf("converged %v after the cut healed", time.Since(start).Round(time.Millisecond))
	if got != "be-1|myapp|127.0.0.1|"+fmt.Sprint(port)+"|4\nisland|otherapp|127.0.0.1|2|2\nnew|otherapp|127.0.0.1|1|2" {
		t.Fatalf("after heal: %q", got)
	}
	c.waitMembers(3, 20*time.Second)
}

func TestHostileClusterInputIsRefused(t *testing.T) {
	c := startPOPs(t, 2, nil)
	c.sql(c.pops[0], `INSERT INTO backends (id, app, wg_ip, port) VALUES ('keep','myapp','10.0.0.1',80)`)
	c.converge(rowsQuery, 3*time.Second)
	target := c.pops[0]
	// Garbage datagrams and streams, one oversized.
	for _, proto := range []string{"udp", "tcp"} {
		conn, err := net.Dial(proto, target.ClusterAddr)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 30 {
			junk := make([]byte, 1+i*40)
			rand.Read(junk)
			conn.Write(junk)
		}
		if proto == "tcp" {
			big := make([]byte, 4<<20)
			rand.Read(big)
			conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			conn.Write(big)
		}
		conn.Close()
	}
	// A POP with the wrong key, one without a key, one with the wrong
	// cluster name: none becomes a member or gets a row in.
	for i, mod := range []func(o *popctl.Options){
		func(o *popctl.Options) { o.Key = newKey(t) },
		func(o *popctl.Options) { o.Key = "" },
		func(o *popctl.Options) { o.Cluster = "other" },
	} {
		o := popctl.Options{Bin: caddyBin, Dir: filepath.Join(t.TempDir(), "intruder"), Name: fmt.Sprint("intruder", i),
			IP: nextIP(), Key: c.key, Cluster: "e2e", Join: []string{target.ClusterAddr}}
		mod(&o)
		p, err := popctl.New(o)
		if err != nil {
			t.Fatal(err)
		}
		c.start(p)
		if _, err := p.SQL(`INSERT INTO backends (id, app, wg_ip, port) VALUES ('evil','myapp','10.6.6.6',80)`); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1500 * time.Millisecond)
		st, err := target.Cluster()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if strings.HasPrefix(m.Name, "intruder") && m.State == "alive" {
				t.Fatalf("%s became a member: %+v", m.Name, st)
			}
		}
		p.Kill()
	}
	// Nothing got in, the cluster still replicates, the POP still serves.
	c.sql(c.pops[1], `UPDATE backends SET weight = 3 WHERE id = 'keep'`)
	if got := c.converge(rowsQuery, 3*time.Second); got != "keep|myapp|10.0.0.1|80|3" {
		t.Fatalf("table after hostile input: %q", got)
	}
	logs := target.Logs()
	if !strings.Contains(logs, "cluster") || !(strings.Contains(logs, "decrypt") || strings.Contains(logs, "label") || strings.Contains(logs, "refused")) {
		t.Fatalf("no refusal logged:\n%s", tail(logs, 40))
	}
}

// Keys rotate through config reloads, without restarting the cluster:
// install the new key, switch to it, retire the old one.
func TestKeyRotationByReload(t *testing.T) {
	c := startPOPs(t, 3, nil)
	before, err := c.pops[0].Cluster()
	if err != nil {
		t.Fatal(err)
	}
	old, next := c.key, newKey(t)
	step := func(keys string, probe string) {
		t.Helper()
		for _, p := range c.pops {
			p.Opts.Key = keys
			if err := p.Reload(); err != nil {
				t.Fatal(err)
			}
		}
		c.sql(c.pops[2], fmt.Sprintf(`INSERT INTO backends (id, app) VALUES ('%s','myapp')`, probe))
		c.converge(rowsQuery, 3*time.Second)
		c.waitMembers(3, 5*time.Second)
	}
	step(old+" "+next, "installed") // new key accepted everywhere, old still used
	step(next+" "+old, "switched")  // new key used, old still accepted
	step(next, "retired")           // old key gone
	after, err := c.pops[0].Cluster()
	if err != nil {
		t.Fatal(err)
	}
	if after.Site != before.Site {
		t.Fatal("a reload changed the site id")
	}
	for _, p := range c.pops {
		if strings.Contains(p.Logs(), "restarting the cluster listener") {
			t.Fatalf("%s restarted its cluster on a key rotation", p.Opts.Name)
		}
	}
	// A POP still on the old key is refused now.
	o := popctl.Options{Bin: caddyBin, Dir: filepath.Join(t.TempDir(), "stale"), Name: "stale",
		IP: nextIP(), Key: old, Cluster: "e2e", Join: []string{c.pops[0].ClusterAddr}}
	p, err := popctl.New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.start(p)
	time.Sleep(1500 * time.Millisecond)
	st, _ := c.pops[0].Cluster()
	if st.Counts["alive"] != 3 {
		t.Fatalf("a POP with the retired key joined: %v", st.Counts)
	}
}

// A POP started on a copy of another POP's file (sqlite3 .backup) gets a
// new site id, and both replicate.
func TestCopiedFileGetsNewSiteID(t *testing.T) {
	c := startPOPs(t, 2, nil)
	c.sql(c.pops[0], `INSERT INTO backends (id, app) VALUES ('orig','myapp')`)
	c.converge(rowsQuery, 3*time.Second)
	dir := filepath.Join(t.TempDir(), "copy")
	os.MkdirAll(dir, 0o755)
	c.sql(c.pops[0], `.backup `+filepath.Join(dir, "routing.db"))
	o := popctl.Options{Bin: caddyBin, Dir: dir, Name: "copy", IP: nextIP(), Key: c.key, Cluster: "e2e",
		Join: []string{c.pops[0].ClusterAddr}, ClusterExtra: "sync_interval 200ms", WatchInterval: "10ms"}
	p, err := popctl.New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.start(p)
	c.pops = append(c.pops, p)
	c.waitMembers(3, 10*time.Second)
	orig, _ := c.pops[0].Cluster()
	cp, _ := p.Cluster()
	if cp.Site == "" || cp.Site == orig.Site {
		t.Fatalf("the copy kept site id %q", cp.Site)
	}
	if !strings.Contains(p.Logs(), "is a copy") {
		t.Fatal("the copy was not logged")
	}
	c.sql(p, `INSERT INTO backends (id, app) VALUES ('fromcopy','myapp')`)
	c.sql(c.pops[0], `INSERT INTO backends (id, app) VALUES ('fromorig','myapp')`)
	if got := c.converge(`SELECT group_concat(id) FROM (SELECT id FROM backends ORDER BY id)`, 3*time.Second); got != "fromcopy,fromorig,orig" {
		t.Fatalf("after the copy joined: %q", got)
	}
}
