// Command table measures how the routing table's size weighs on a POP,
// against the built binaries (real processes, real sqlite3 CLI, real DNS):
//
//	table -caddy bin/caddy [-coredns bin/coredns] load [-sizes 1000,10000,100000]
//	    for each size, a table file of that many backends is opened by a
//	    fresh Caddy: time from the process start until a connection is
//	    routed to a live backend, and the process's resident memory next to
//	    the same process on an empty table; with -coredns, then by a fresh
//	    CoreDNS: time to its first answer for the live backend's app, and
//	    its memory;
//
//	table -caddy bin/caddy -coredns bin/coredns edits [-backends 10000] [-apps 100] [-rate 100] [-for 10s] [-compare BIN]
//	    single-row edits by one running sqlite3 CLI (each statement its own
//	    transaction) at that rate: the CPU the Caddy and CoreDNS processes
//	    spend on them (/proc/PID/stat, next to the same processes idle),
//	    then the time from each edit to the POP signal showing it
//	    (GET /edgeroute/pop?watch=1) and to DNS answering with it, and the
//	    CPU of as many commits to a table neither process holds (what any
//	    commit costs a reader of the file), next to two floors following
//	    the same commits: the least follower, in Go and in C (floor.go). With
//	    -profile DIR, CPU profiles of both processes over the edits are
//	    written there (caddy.pprof, coredns.pprof) for go tool pprof. With
//	    -compare BIN, a second CoreDNS built from BIN (another tree's)
//	    follows the same file, and its CPU is read over the same seconds:
//	    two builds compared on a machine whose speed varies between runs.
//
//	table -caddy bin/caddy scrape [-sizes 1000,10000,100000]
//	    for each size, after one connection was routed, a Prometheus
//	    scrape of Caddy's /metrics (its samples, bytes, time and the CPU
//	    Caddy spent on it) with the default backend_metrics (used: series
//	    of their own for the backends this POP used) and then with all
//	    (every backend of the table), set through the config API; and a
//	    refresh of the status page listing the default 25 backends an app,
//	    then all of them;
//
// The table has 100 apps (-apps) of equal size over five regions.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/internal/procstat"
	"github.com/edgeproxy/edgeproxy/store"
)

// apps is how many apps the table's backends are spread over.
var apps = 100

// dnsRound is the least time between two rounds of the DNS observer's
// queries about the edits still pending.
const dnsRound = 500 * time.Microsecond

var regions = []string{"sa", "eu", "us", "ap", "af"}
var countries = []string{"BR", "DE", "US", "JP", "ZA"}

func main() {
	caddy := flag.String("caddy", "bin/caddy", "Caddy binary built from builds/caddy")
	coredns := flag.String("coredns", "bin/coredns", "CoreDNS binary built from builds/coredns")
	sizes := flag.String("sizes", "1000,10000,100000", "load, scrape: table sizes")
	n := flag.Int("backends", 10000, "edits: table size")
	rate := flag.Int("rate", 100, "edits: single-row edits per second")
	dur := flag.Duration("for", 10*time.Second, "edits: length of each phase")
	profile := flag.String("profile", "", "edits: write CPU profiles of both processes under the edits into this directory")
	flag.IntVar(&apps, "apps", apps, "how many apps the backends are spread over")
	compare := flag.String("compare", "", "edits: a second CoreDNS binary (another build) following the same file, its CPU read over the same seconds")
	otherRate := flag.Int("other-rate", 0, "edits: commits per second to a table neither process holds (default: -rate)")
	flag.Parse()
	sub := flag.Arg(0)
	if flag.NArg() > 1 {
		flag.CommandLine.Parse(flag.Args()[1:])
	}
	var err error
	switch {
	case apps < 1:
		err = errors.New("-apps must be at least 1")
	case sub == "load":
		err = benchLoad(*caddy, *coredns, *sizes)
	case sub == "scrape":
		err = benchScrape(*caddy, *sizes)
	case sub == "edits":
		err = benchEdits(*caddy, *coredns, *compare, *n, *rate, *otherRate, *dur, *profile)
	case sub == floorMode:
		err = followFloor(flag.Arg(0)) // the file: the arguments after the mode were parsed again
	default:
		err = errors.New("usage: table -caddy BIN [-coredns BIN] load|edits|scrape")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "table:", err)
		os.Exit(1)
	}
}

// seed writes a table file of n backends: created by store.Open (schema
// and change capture), filled by the sqlite3 CLI in one transaction.
func seed(path string, n int, extra string) error {
	ctx := context.Background()
	st, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return err
	}
	st.Close()
	var regionCase, countryCase strings.Builder
	for i := range regions {
		fmt.Fprintf(&regionCase, " WHEN %d THEN '%s'", i, regions[i])
		fmt.Fprintf(&countryCase, " WHEN %d THEN '%s'", i, countries[i])
	}
	stmt := fmt.Sprintf(`BEGIN;
WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit, deleted)
SELECT 'b' || i, 'app' || (i %% %d), CASE (i / %d) %% 5 %s END, CASE (i / %d) %% 5 %s END,
	'10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 8000 + i %% 1000, 1, 2, 100, 150, 0
FROM c WHERE %d > 0;
%s
COMMIT;`, n-1, apps, apps, regionCase.String(), apps, countryCase.String(), n, extra)
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", path, stmt).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sqlite3: %v: %s", err, out)
	}
	return nil
}

// region of backend i as seed lays it out.
func region(i int) string { return regions[(i/apps)%5] }

// rssKB is the process's VmRSS in kB, 0 where it cannot be read (the
// process gone).
func rssKB(pid int) int64 {
	kb, _ := procstat.ResidentKB(pid)
	return kb
}

// cpuDuring is each process's CPU over f, in % of one core; a process
// gone reads as none.
func cpuDuring(pids []int, f func()) []float64 {
	out, _ := procstat.Usage(pids, f)
	return out
}

func benchLoad(caddy, corednsBin, sizes string) error {
	live, err := popctl.Greeter("live")
	if err != nil {
		return err
	}
	defer live.Close()
	port := live.Addr().(*net.TCPAddr).Port
	list := []int{0}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-sizes: %v", err)
		}
		list = append(list, n)
	}
	fmt.Println("| backends | seed (sqlite3) | start to first routed connection | table file | Caddy RSS | RSS over the empty table | CoreDNS start to first answer | CoreDNS RSS over the empty table |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|")
	var rss0, drss0 int64
	for _, n := range list {
		dir, err := os.MkdirTemp("", "edgeroute-table")
		if err != nil {
			return err
		}
		db := filepath.Join(dir, "routing.db")
		t0 := time.Now()
		if err := seed(db, n, fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('live', 'myapp', 'sa', 'BR', '127.0.0.1', %d);`, port)); err != nil {
			return err
		}
		seedTime := time.Since(t0)
		fi, _ := os.Stat(db)
		p, err := popctl.New(popctl.Options{Bin: caddy, Dir: dir, NoCluster: true, App: "myapp", Extra: "affinity off", DieWithParent: true})
		if err != nil {
			return err
		}
		start := time.Now()
		if err := p.Launch(); err != nil {
			return err
		}
		var routed time.Duration
		for deadline := start.Add(60 * time.Second); ; {
			if p.Via() == "live" {
				routed = time.Since(start)
				break
			}
			if p.Exited() || time.Now().After(deadline) {
				p.Kill()
				return fmt.Errorf("%d backends: never routed:\n%s", n, p.Logs())
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // settle: the watcher's baseline, the first signal
		rss := rssKB(p.PID())
		if n == 0 {
			rss0 = rss
		}
		p.Kill()
		// CoreDNS on the same file, alone: from its start to the first
		// answer naming the live backend, and its memory once answering.
		dnsCol := "| | "
		if corednsBin != "" {
			start := time.Now()
			cd, err := startCoreDNS(corednsBin, dir, db, false)
			if err != nil {
				return err
			}
			cl := &dns.Client{Timeout: 200 * time.Millisecond}
			var answered time.Duration
			for deadline := start.Add(60 * time.Second); ; {
				if ok, _ := hasA(cl, cd.addr, "myapp.internal."); ok {
					answered = time.Since(start)
					break
				}
				if time.Now().After(deadline) {
					cd.stop()
					return fmt.Errorf("%d backends: coredns never answered:\n%s", n, cd.log.String())
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			drss := rssKB(cd.cmd.Process.Pid)
			if n == 0 {
				drss0 = drss
			}
			cd.stop()
			dnsCol = fmt.Sprintf("| %v | %.1f MB |", answered.Round(time.Millisecond), float64(drss-drss0)/1024)
		}
		os.RemoveAll(dir)
		fmt.Printf("| %d | %v | %v | %.1f MB | %.1f MB | %.1f MB %s\n", n, seedTime.Round(time.Millisecond), routed.Round(time.Millisecond),
			float64(fi.Size())/1e6, float64(rss)/1024, float64(rss-rss0)/1024, dnsCol)
	}
	return nil
}

// corednsProc runs CoreDNS serving internal. from db on a free port.
type corednsProc struct {
	cmd   *exec.Cmd
	addr  string
	pprof string // the pprof plugin's address, when profiling
	log   bytes.Buffer
}

func startCoreDNS(bin, dir, db string, pprof bool) (*corednsProc, error) {
	port, err := popctl.FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	c := &corednsProc{addr: fmt.Sprintf("127.0.0.1:%d", port)}
	extra := ""
	if pprof {
		pp, err := popctl.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		c.pprof = fmt.Sprintf("127.0.0.1:%d", pp)
		extra = "\tpprof " + c.pprof + "\n"
	}
	conf := fmt.Sprintf("internal:%d {\n\tbind 127.0.0.1\n%s\tinternal {\n\t\tdb %s\n\t\tregion sa\n\t}\n}\n", port, extra, db)
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(bin, "-conf", path)
	popctl.DieWithParent(c.cmd)
	c.cmd.Dir = dir
	c.cmd.Stdout, c.cmd.Stderr = &c.log, &c.log
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *corednsProc) stop() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// hasA reports whether name has an A record at the server.
func hasA(cl *dns.Client, addr, name string) (bool, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	r, _, err := cl.Exchange(m, addr)
	if err != nil {
		return false, err
	}
	return len(r.Answer) > 0, nil
}

func dnsName(i int) string { return fmt.Sprintf("b%d.%s.backends.internal.", i, region(i)) }

type signalLine struct {
	Generation uint64 `json:"generation"`
	Apps       map[string]struct {
		Routable int `json:"routable"`
	} `json:"apps"`
}

func benchEdits(caddyBin, corednsBin, compareBin string, n, rate, otherRate int, dur time.Duration, profile string) error {
	if n < apps {
		return fmt.Errorf("-backends must be at least %d", apps)
	}
	dir, err := os.MkdirTemp("", "edgeroute-table")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "routing.db")
	// bench_other is a table the POP does not hold: commits to it show
	// what any commit to the file costs a reader, whatever it changed.
	if err := seed(db, n, "CREATE TABLE bench_other (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO bench_other VALUES (1, 0);"); err != nil {
		return err
	}
	p, err := popctl.New(popctl.Options{Bin: caddyBin, Dir: dir, NoCluster: true, App: "app0", DieWithParent: true})
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Kill()
	cd, err := startCoreDNS(corednsBin, dir, db, profile != "")
	if err != nil {
		return err
	}
	defer cd.stop()
	servers := []*corednsProc{cd}
	if compareBin != "" {
		cdir := filepath.Join(dir, "compare")
		if err := os.Mkdir(cdir, 0o755); err != nil {
			return err
		}
		other, err := startCoreDNS(compareBin, cdir, db, false)
		if err != nil {
			return err
		}
		defer other.stop()
		servers = append(servers, other)
	}
	cl := &dns.Client{Timeout: time.Second}
	for _, s := range servers {
		for deadline := time.Now().Add(60 * time.Second); ; {
			if ok, _ := hasA(cl, s.addr, dnsName(0)); ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s never answered %s:\n%s", s.cmd.Path, dnsName(0), s.log.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(2 * time.Second)

	cli := exec.Command("sqlite3", "-cmd", ".timeout 5000", db)
	popctl.DieWithParent(cli)
	stdin, err := cli.StdinPipe()
	if err != nil {
		return err
	}
	var cliOut bytes.Buffer
	cli.Stderr = &cliOut
	cliAnswers, err := cli.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cli.Start(); err != nil {
		return err
	}
	defer func() { stdin.Close(); cli.Wait() }()

	perApp := n / apps
	healthy := make([]bool, n)
	for i := range healthy {
		healthy[i] = true
	}
	routable := make([]int, apps)
	for a := range routable {
		routable[a] = perApp
	}
	next := 0
	// edit toggles the healthy flag of the next backend, visiting the apps
	// in turn so an app is edited once per 100 edits.
	edit := func() (backend, app, want int, up bool, err error) {
		app = next % apps
		backend = app + apps*((next/apps)%perApp)
		next++
		healthy[backend] = !healthy[backend]
		if healthy[backend] {
			routable[app]++
		} else {
			routable[app]--
		}
		v := 0
		if healthy[backend] {
			v = 1
		}
		_, err = fmt.Fprintf(stdin, "UPDATE backends SET healthy = %d WHERE id = 'b%d';\n", v, backend)
		return backend, app, routable[app], healthy[backend], err
	}
	pace := func(i int, start time.Time) {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d)
		}
	}

	// CPU: the processes idle, then under the edits.
	// The processes' CPU, % of a core: Caddy, CoreDNS, and the -compare
	// CoreDNS when there is one, read over the same seconds.
	pids := []int{p.PID()}
	for _, s := range servers {
		pids = append(pids, s.cmd.Process.Pid)
	}
	generation := func() uint64 {
		var v struct {
			Generation uint64 `json:"generation"`
		}
		p.Get("/edgeroute/pop", &v)
		return v.Generation
	}
	idle := cpuDuring(pids, func() { time.Sleep(dur) })
	gen0 := generation()
	edits := int(dur.Seconds() * float64(rate))
	var profiled sync.WaitGroup
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return err
		}
		secs := int(dur.Seconds())
		for name, url := range map[string]string{
			"caddy":   p.CPUProfileURL(secs),
			"coredns": "http://" + cd.pprof + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs),
		} {
			profiled.Add(1)
			go func() {
				defer profiled.Done()
				if err := popctl.SaveProfile(url, filepath.Join(profile, name+".pprof")); err != nil {
					fmt.Fprintf(os.Stderr, "table: %s profile: %v\n", name, err)
				}
			}()
		}
	}
	busy := cpuDuring(pids, func() {
		start := time.Now()
		for i := range edits {
			pace(i, start)
			if _, _, _, _, err = edit(); err != nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond) // the last edits' reloads
	})
	profiled.Wait()
	if err != nil {
		return fmt.Errorf("sqlite3: %v: %s", err, cliOut.String())
	}
	snapshots := generation() - gen0
	if otherRate <= 0 {
		otherRate = rate
	}
	others := int(dur.Seconds() * float64(otherRate))
	floors, skipped := startFloors(dir, db)
	defer stopFloors(floors)
	floorPIDs := make([]int, len(floors))
	for i, f := range floors {
		floorPIDs[i] = f.cmd.Process.Pid
	}
	time.Sleep(time.Second)
	floorIdle := cpuDuring(floorPIDs, func() { time.Sleep(2 * time.Second) })
	for _, f := range floors {
		if f.exited() {
			return fmt.Errorf("the %s floor stopped (its error is above)", f.name)
		}
	}
	// The servers' figures, then the floors', over the same seconds.
	other := cpuDuring(append(slices.Clone(pids), floorPIDs...), func() {
		start := time.Now()
		for i := range others {
			if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(otherRate))); d > 0 {
				time.Sleep(d)
			}
			if _, err = fmt.Fprintf(stdin, "UPDATE bench_other SET v = %d WHERE k = 1;\n", i+1); err != nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	})
	if err != nil {
		return fmt.Errorf("sqlite3: %v: %s", err, cliOut.String())
	}
	fmt.Printf("%d backends, %d single-row sqlite3 edits at %d/s (%d snapshots):\n", n, edits, rate, snapshots)
	names := []string{"caddy  ", "coredns", "coredns -compare"}
	for i := range pids {
		fmt.Printf("  %s CPU idle %.1f%%, under edits %.1f%% of one core: %.1f%% for the edits\n", names[i], idle[i], busy[i], busy[i]-idle[i])
	}
	fmt.Printf("  %d commits/s to a table neither holds, %% of one core over idle:", otherRate)
	for i := range pids {
		fmt.Printf(" %s %.1f%%", strings.TrimSpace(names[i]), other[i]-idle[i])
	}
	fmt.Println()
	if len(floors) > 0 {
		fmt.Printf("  the same commits to the least follower (a look at data_version 1 ms after the report), %% of one core over idle:")
		for i, f := range floors {
			fmt.Printf(" %s %.1f%%", f.name, other[len(pids)+i]-floorIdle[i])
		}
		fmt.Println()
	}
	for _, why := range skipped {
		fmt.Printf("  floor skipped: %s\n", why)
	}

	// Latency: the POP signal stream and DNS, per edit.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Admin+"/edgeroute/pop?watch=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	type pending struct{ seq, app, want int }
	var (
		mu      sync.Mutex
		waiting []pending
		dnsMiss int
		// When each edit was sent, committed, routed and answered, by
		// its number: the CLI answers a SELECT of the number after the
		// edit's commit (its WAL's sync included), so the product's
		// share of an edit's latency is told from the writer's.
		sentAt    = map[int]time.Time{}
		committed = map[int]time.Time{}
		routedAt  = map[int]time.Time{}
		answered  = map[int]time.Time{}
	)
	go func() {
		sc := bufio.NewScanner(cliAnswers)
		for sc.Scan() {
			now := time.Now()
			if seq, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "committed ")); err == nil {
				mu.Lock()
				committed[seq] = now
				mu.Unlock()
			}
		}
	}()
	go func() {
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		for sc.Scan() {
			now := time.Now()
			var s signalLine
			if json.Unmarshal(sc.Bytes(), &s) != nil {
				continue
			}
			mu.Lock()
			kept := waiting[:0]
			for _, w := range waiting {
				if s.Apps[fmt.Sprintf("app%d", w.app)].Routable == w.want {
					routedAt[w.seq] = now
				} else {
					kept = append(kept, w)
				}
			}
			waiting = kept
			mu.Unlock()
		}
	}()
	// One DNS observer asks about the pending edits in turn, one query
	// at a time, a round at most every dnsRound, and sleeps while no edit
	// is pending: its own load stays that of one modest client, on the
	// cores the servers need, and an answer is seen at most a round late.
	type dnsPending struct {
		seq  int
		name string
		up   bool
		sent time.Time
	}
	var dnsWaiting []dnsPending
	editsDone, dnsDone := make(chan struct{}), make(chan struct{})
	dnsKick := make(chan struct{}, 1)
	dnsQueries := 0
	go func() {
		defer close(dnsDone)
		cl := &dns.Client{Timeout: 200 * time.Millisecond}
		for {
			mu.Lock()
			list := append([]dnsPending(nil), dnsWaiting...)
			mu.Unlock()
			if len(list) == 0 {
				select {
				case <-dnsKick:
					continue
				case <-editsDone:
					mu.Lock()
					left := len(dnsWaiting)
					mu.Unlock()
					if left == 0 {
						return
					}
					continue
				}
			}
			round := time.Now()
			for _, w := range list {
				ok, err := hasA(cl, cd.addr, w.name)
				now := time.Now()
				mu.Lock()
				dnsQueries++
				if err == nil && ok == w.up {
					answered[w.seq] = now
					dnsWaiting = slices.DeleteFunc(dnsWaiting, func(p dnsPending) bool { return p.sent == w.sent })
				} else if now.Sub(w.sent) > 5*time.Second {
					dnsMiss++
					dnsWaiting = slices.DeleteFunc(dnsWaiting, func(p dnsPending) bool { return p.sent == w.sent })
				}
				mu.Unlock()
			}
			mu.Lock()
			pending := len(dnsWaiting) > 0
			mu.Unlock()
			if d := time.Until(round.Add(dnsRound)); pending && d > 0 {
				time.Sleep(d)
			}
		}
	}()
	time.Sleep(200 * time.Millisecond) // the stream's first line
	start := time.Now()
	for i := range edits {
		pace(i, start)
		mu.Lock()
		backend, app, want, up, err := edit()
		sent := time.Now()
		waiting = append(waiting, pending{i, app, want})
		sentAt[i] = sent
		mu.Unlock()
		if err == nil {
			_, err = fmt.Fprintf(stdin, "SELECT 'committed %d';\n", i)
		}
		if err != nil {
			return err
		}
		mu.Lock()
		dnsWaiting = append(dnsWaiting, dnsPending{i, dnsName(backend), up, sent})
		mu.Unlock()
		select {
		case dnsKick <- struct{}{}:
		default:
		}
	}
	close(editsDone)
	<-dnsDone
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	// between is the time from each edit's first event to its second,
	// for the edits both saw.
	between := func(from, to map[int]time.Time) (l []time.Duration) {
		for seq, t := range to {
			if f, ok := from[seq]; ok {
				l = append(l, t.Sub(f))
			}
		}
		return l
	}
	fmt.Printf("  edit to POP signal (routable count): %s; %d never seen\n", pct(between(sentAt, routedAt)), len(waiting))
	fmt.Printf("  edit to DNS answer (<id>.<region>.backends): %s; %d not seen within 5 s; %d queries\n", pct(between(sentAt, answered)), dnsMiss, dnsQueries)
	fmt.Printf("  the writer's own commit (edit to the sqlite3 CLI's answer after it, its WAL's sync included): %s\n", pct(between(sentAt, committed)))
	fmt.Printf("  commit to POP signal: %s\n", pct(between(committed, routedAt)))
	fmt.Printf("  commit to DNS answer: %s\n", pct(between(committed, answered)))
	return nil
}

func pct(l []time.Duration) string {
	if len(l) == 0 {
		return "none"
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(p float64) time.Duration {
		return l[min(len(l)-1, int(p*float64(len(l))))].Round(10 * time.Microsecond)
	}
	return fmt.Sprintf("p50 %v p99 %v max %v (%d edits)", at(0.5), at(0.99), at(1), len(l))
}
