// Command cluster measures replication between POPs: real Caddy processes
// with the edgeroute cluster block on 127.0.0.x loopback addresses.
//
//	go run ./bench/cluster -caddy bin/caddy [-pops 3,10] [-changes 100]
//
// For each cluster size it commits changes on random POPs (a separate
// process writing the SQLite file, as the sqlite3 CLI would) and measures
// the delay until every other POP's file holds the change (commit to
// visible in the file) and until its admin API shows it (visible in the
// routing table, which follows the file with the default 50ms watch).
// As root it also cuts one POP off with nftables, writes on both sides,
// heals the cut and measures the time until every file is identical.
// Before the changes it leaves the cluster idle (-idle, 20s) and reports
// the CPU each POP used meanwhile, from /proc/PID/stat. With -idleonly it
// reports only that (with -nocluster, for POPs without a cluster block).
// It prints a Markdown table.
//
//	go run ./bench/cluster -caddy bin/caddy -join 100000
//
// instead measures a new POP catching up on a large table (join.go); with
// -profile DIR it also writes CPU profiles of both POPs over the first
// seconds of the catch-up.
package main

import (
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

func main() {
	bin := flag.String("caddy", "bin/caddy", "the caddy binary built from ./builds/caddy")
	sizes := flag.String("pops", "3,10", "cluster sizes")
	changes := flag.Int("changes", 100, "changes per cluster size")
	gap := flag.Duration("gap", 60*time.Millisecond, "pause between changes")
	idle := flag.Duration("idle", 20*time.Second, "idle span over which CPU per POP is measured (0: skip)")
	idleOnlyFlag := flag.Bool("idleonly", false, "only measure idle CPU")
	noCluster := flag.Bool("nocluster", false, "with -idleonly: POPs without a cluster block")
	join := flag.Int("join", 0, "instead: a new POP joins one that serves a table of this many backends")
	profile := flag.String("profile", "", "with -join: write CPU profiles of both POPs over the catch-up into this directory")
	flag.Parse()
	if _, err := os.Stat(*bin); err != nil {
		fail("caddy binary: %v (build it with make build)", err)
	}
	if *join > 0 {
		joinBackends(*bin, *join, *profile)
		return
	}
	var rows []string
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 || n > 60 {
			fail("bad cluster size %q", s)
		}
		if *idleOnlyFlag {
			idleOnly(*bin, n, *idle, *noCluster)
			continue
		}
		rows = append(rows, run(*bin, n, *changes, *gap, *idle))
	}
	if *idleOnlyFlag {
		return
	}
	fmt.Println()
	fmt.Println("| POPs | changes | file p50 | file p99 | routing p50 | routing p99 | bytes/change pushed | bytes/change, all replication messages | convergence after heal | idle CPU per POP |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Println(r)
	}
}

func fail(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "bench/cluster: "+format+"\n", v...)
	os.Exit(1)
}

type cluster struct {
	dir  string
	pops []*popctl.POP
	dbs  []*sql.DB
}

func start(bin string, n int) *cluster { return startOpts(bin, n, false) }

func startOpts(bin string, n int, noCluster bool) *cluster {
	dir, err := os.MkdirTemp("", "bench-cluster")
	if err != nil {
		fail("%v", err)
	}
	kb := make([]byte, 32)
	rand.Read(kb)
	key := base64.StdEncoding.EncodeToString(kb)
	c := &cluster{dir: dir}
	var seeds []string
	for i := range n {
		o := popctl.Options{Bin: bin, Dir: filepath.Join(dir, fmt.Sprint("pop", i)), Name: fmt.Sprintf("pop%d", i),
			IP: fmt.Sprintf("127.0.1.%d", 10+i), Key: key, Cluster: "bench", Join: seeds, NoCluster: noCluster, DieWithParent: true}
		p, err := popctl.New(o)
		if err != nil {
			fail("%v", err)
		}
		if err := p.Start(); err != nil {
			c.stop()
			fail("%v", err)
		}
		if i < 2 {
			seeds = append(seeds, p.ClusterAddr)
		}
		c.pops = append(c.pops, p)
		db, err := sql.Open("sqlite3", "file:"+p.DB+"?_busy_timeout=5000&_journal_mode=WAL")
		if err != nil {
			fail("%v", err)
		}
		c.dbs = append(c.dbs, db)
	}
	if noCluster {
		return c
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, p := range c.pops {
			st, err := p.Cluster()
			if err != nil || st.Counts["alive"] != n {
				ok = false
			}
		}
		if ok {
			return c
		}
		if time.Now().After(deadline) {
			c.stop()
			fail("the %d POPs did not all see each other", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) stop() {
	for _, db := range c.dbs {
		db.Close()
	}
	for _, p := range c.pops {
		p.Kill()
	}
	os.RemoveAll(c.dir)
}

// bytesSent sums, over the POPs, the bytes of pushes of local commits and
// of all replication messages (pushes and anti-entropy).
func (c *cluster) bytesSent() (pushed, total uint64) {
	for _, p := range c.pops {
		st, _ := p.Cluster()
		pushed += st.Bytes["pushed"]
		total += st.Bytes["sent"]
	}
	return pushed, total
}

func (c *cluster) weight(i int) int64 {
	var w int64 = -1
	c.dbs[i].QueryRow(`SELECT weight FROM backends WHERE id = 'bench'`).Scan(&w)
	return w
}

func (c *cluster) routedWeight(i int) int {
	bs, err := c.pops[i].Backends()
	if err != nil {
		return -1
	}
	for _, b := range bs {
		if b.ID == "bench" {
			return b.Weight
		}
	}
	return -1
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	k := int(math.Ceil(p*float64(len(d)))) - 1
	return d[max(0, min(k, len(d)-1))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func run(bin string, n, changes int, gap, idle time.Duration) string {
	fmt.Fprintf(os.Stderr, "== %d POPs\n", n)
	c := start(bin, n)
	defer c.stop()
	if _, err := c.dbs[0].Exec(`INSERT INTO backends (id, app, wg_ip, port, weight) VALUES ('bench','bench','127.0.0.1',9,1)`); err != nil {
		fail("%v", err)
	}
	for i := range c.pops {
		for c.weight(i) != 1 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
	// Idle traffic (anti-entropy), to separate it out, and idle CPU.
	span := min(time.Duration(changes)*(gap+20*time.Millisecond), 5*time.Second)
	if idle > 0 {
		span = idle
	}
	_, idle0 := c.bytesSent()
	t0 := time.Now()
	idleCol := "-"
	if idle > 0 {
		cpu, err := idleCPU(c.pops, idle)
		if err != nil {
			fail("%v", err)
		}
		idleCol = idleSummary(cpu)
		fmt.Fprintf(os.Stderr, "   idle CPU per POP over %v (%% of one core): %.2f\n", idle, cpu)
	} else {
		time.Sleep(span)
	}
	_, idle1 := c.bytesSent()
	idleRate := float64(idle1-idle0) / time.Since(t0).Seconds()

	var fileLat, routeLat []time.Duration
	var mu sync.Mutex
	p0, b0 := c.bytesSent()
	t0 = time.Now()
	for k := range changes {
		origin := mrand.IntN(n)
		w := int64(k + 2)
		if _, err := c.dbs[origin].Exec(`UPDATE backends SET weight = ? WHERE id = 'bench'`, w); err != nil {
			fail("%v", err)
		}
		committed := time.Now()
		var wg sync.WaitGroup
		for i := range c.pops {
			if i == origin {
				continue
			}
			wg.Add(2)
			go func() {
				defer wg.Done()
				for c.weight(i) < w {
					if time.Since(committed) > 5*time.Second {
						return
					}
					time.Sleep(time.Millisecond)
				}
				mu.Lock()
				fileLat = append(fileLat, time.Since(committed))
				mu.Unlock()
			}()
			go func() {
				defer wg.Done()
				for c.routedWeight(i) < int(w) {
					if time.Since(committed) > 5*time.Second {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				mu.Lock()
				routeLat = append(routeLat, time.Since(committed))
				mu.Unlock()
			}()
		}
		wg.Wait()
		time.Sleep(gap)
	}
	elapsed := time.Since(t0)
	p1, b1 := c.bytesSent()
	pushed := float64(p1-p0) / float64(changes)
	total := float64(b1-b0) / float64(changes)
	net := (float64(b1-b0) - idleRate*elapsed.Seconds()) / float64(changes)
	fmt.Fprintf(os.Stderr, "   bytes per change: %.0f pushed (to %d members), %.0f all replication messages, %.0f net of idle anti-entropy (%.0f B/s idle)\n",
		pushed, n-1, total, net, idleRate)
	missing := changes*(n-1) - len(fileLat)
	fmt.Fprintf(os.Stderr, "   file: %d samples (%d missing), routing: %d samples\n", len(fileLat), missing, len(routeLat))

	heal := "skipped (needs root and nft)"
	if os.Geteuid() == 0 {
		if d, err := partitionAndHeal(c); err != nil {
			heal = "error: " + err.Error()
		} else {
			heal = ms(d)
		}
	}
	return fmt.Sprintf("| %d | %d | %s | %s | %s | %s | %.0f (%.0f per member) | %.0f | %s | %s |", n, changes,
		ms(percentile(fileLat, .5)), ms(percentile(fileLat, .99)),
		ms(percentile(routeLat, .5)), ms(percentile(routeLat, .99)), pushed, pushed/float64(n-1), total, heal, idleCol)
}

// partitionAndHeal cuts the last POP off long enough for the others to
// declare it dead, writes on both sides, heals, and times convergence of
// every file.
func partitionAndHeal(c *cluster) (time.Duration, error) {
	n := len(c.pops)
	victim := c.pops[n-1]
	cut, err := popctl.CutOff(victim, c.pops[:n-1])
	if err != nil {
		return 0, err
	}
	defer cut.Heal()
	for k := range 20 {
		i := mrand.IntN(n - 1)
		if _, err := c.dbs[i].Exec(`INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'cut', '127.0.0.1', ?)`, fmt.Sprint("main-", k), k+1); err != nil {
			return 0, err
		}
	}
	for k := range 5 {
		if _, err := c.dbs[n-1].Exec(`INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'cut', '127.0.0.1', ?)`, fmt.Sprint("island-", k), k+1); err != nil {
			return 0, err
		}
	}
	c.dbs[n-1].Exec(`UPDATE backends SET port = 7 WHERE id = 'bench'`)
	time.Sleep(8 * time.Second) // memberlist declares the victim dead
	st, _ := c.pops[0].Cluster()
	fmt.Fprintf(os.Stderr, "   during the cut pop0 sees %v\n", st.Counts)
	if err := cut.Heal(); err != nil {
		return 0, err
	}
	healed := time.Now()
	for {
		want := c.dump(0)
		same := true
		for i := 1; i < n && same; i++ {
			same = c.dump(i) == want
		}
		if same && strings.Contains(want, "island-4") && strings.Contains(want, "main-19") {
			return time.Since(healed), nil
		}
		if time.Since(healed) > 30*time.Second {
			return 0, fmt.Errorf("no convergence within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) dump(i int) string {
	rows, err := c.dbs[i].Query(`SELECT id, port, weight FROM backends ORDER BY id`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id string
		var p, w int64
		rows.Scan(&id, &p, &w)
		fmt.Fprintf(&b, "%s|%d|%d\n", id, p, w)
	}
	return b.String()
}
