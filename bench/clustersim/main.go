// Command clustersim runs N cluster nodes in one process — the real
// cluster and store code, real memberlist, each node with its own SQLite
// file — over a simulated network that adds latency per pair of regions
// (2–10 ms within a region, 50–200 ms across, with jitter), loss and
// partitions, and prints one table of figures per size:
//
//	go run ./bench/clustersim -pops 10,100,1000
//
// Only the network is simulated (cluster.Config.Transport). A change is
// an UPDATE committed on a random POP by a separate connection to its
// file, as the sqlite3 CLI would; it has reached a POP when that POP's
// replicator merged it into its file.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
	_ "github.com/mattn/go-sqlite3"

	"github.com/edgeproxy/edgeproxy/cluster"
	"github.com/edgeproxy/edgeproxy/store"
)

var (
	flagPops    = flag.String("pops", "10,100", "cluster sizes to simulate, comma-separated")
	flagChanges = flag.Int("changes", 50, "changes committed per size, one at a time")
	flagSettle  = flag.Duration("settle", 10*time.Second, "wait after the changes before measuring idle traffic")
	flagIdle    = flag.Duration("idle", 10*time.Second, "idle measurement window")
	flagCut     = flag.Duration("cut", 30*time.Second, "how long one region is cut off")
	flagDir     = flag.String("dir", "/dev/shm", "where the SQLite files go (tmpfs)")
	flagLoss    = flag.Float64("loss", 0, "packet loss probability during the changes")
	flagRegions = flag.Int("regions", 0, "regions (0: 3 up to 10 POPs, 6 up to 100, 10 beyond)")

	flagVerbose  = flag.Bool("v", false, "log progress to stderr")
	flagLatency  = flag.Float64("latency", 1, "multiplies every latency (0: none, to compare with bench/cluster's processes on loopback)")
	flagProf     = flag.String("profile", "", "memberlist profile of every node, lan or wan (empty: lan up to 10 POPs, wan beyond)")
	flagProfile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flagBatch    = flag.Int("batch", 25, "POPs started at once; each batch joins 3 POPs already started, and the next waits until the batch sees every POP so far alive")
	flagBatchMax = flag.Duration("batchwait", 15*time.Second, "longest wait for a batch to see every POP so far alive")
	flagHealProf = flag.String("healprofile", "", "write a CPU profile of the convergence after the heal here")
	flagIdleProf = flag.String("idleprofile", "", "write a CPU profile of the idle measurement window here")
	flagChgProf  = flag.String("changeprofile", "", "write a CPU profile of the changes here")
	flagHeapProf = flag.String("heapprofile", "", "write a heap profile here whenever the process gets SIGUSR1")
	flagTrace    = flag.Int("trace", -1, "log every debug line of this POP's node to stderr (with -v)")
	flagBridges  = flag.Int("bridges", 0, "0: one cluster of every POP; k > 0: a cluster per region, whose first k POPs bridge it to a global cluster of bridges")
)

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", a...)
}

func fail(format string, a ...any) {
	logf("clustersim: "+format, a...)
	os.Exit(1)
}

type pop struct {
	i      int
	region int
	path   string
	st     *store.Store
	tr     *simTransport
	node   *cluster.Node
	// A bridge's node in the global cluster, on the same file.
	gtr   *simTransport
	gnode *cluster.Node
	// Propagation: when the change being timed was merged here.
	merged atomic.Int64 // unix nanos of the first merge past base; 0: not yet
	armed  atomic.Bool
	// Convergence after the heal: the vector every file must reach, and
	// when this POP's first did (unix nanos; 0: not yet).
	target    atomic.Pointer[goal]
	converged atomic.Int64
}

type result struct {
	pops, regions, changes             int
	bridges                            int
	profile                            string
	p50, p99, max, allP99              time.Duration
	missed                             int
	replPerChange, wirePerChange       float64 // bytes per change per POP
	idleWire, idleRepl                 float64 // bytes/s per POP
	cpuIdle, cpuChanges                float64 // % of one core per POP
	heapPerPop, rssPerPop              float64 // bytes
	converge                           time.Duration
	simSat                             float64 // process CPU / (wall × cores) during the changes
	lateP50, lateP99, tickP99, tickMax time.Duration
	setup                              time.Duration
}

func main() {
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*flagPops, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fail("-pops: %q is not a size of at least 2", s)
		}
		sizes = append(sizes, n)
	}
	if !*flagVerbose {
		slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	}
	if *flagProfile != "" {
		f, err := os.Create(*flagProfile)
		if err != nil {
			fail("%v", err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if *flagHeapProf != "" {
		go heapOnSignal(*flagHeapProf)
	}
	var rs []result
	for _, n := range sizes {
		rs = append(rs, run(n))
		printTable(rs) // so far, in case a larger size does not finish
	}
}

// startProfile profiles the CPU into path, if given and no profile of the
// whole run is under way, until the returned function is first called.
func startProfile(path string) (stop func()) {
	if path == "" || *flagProfile != "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fail("%v", err)
	}
	pprof.StartCPUProfile(f)
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		f.Close()
	})
}

// heapOnSignal writes a heap profile to path at every SIGUSR1: a look at
// what a run holds when its memory grows.
func heapOnSignal(path string) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	for range sig {
		f, err := os.Create(path)
		if err != nil {
			logf("heap profile: %v", err)
			continue
		}
		pprof.WriteHeapProfile(f)
		f.Close()
		logf("heap profile written to %s", path)
	}
}

func regionsFor(n int) int {
	if *flagRegions > 0 {
		return *flagRegions
	}
	switch {
	case n <= 10:
		return 3
	case n <= 100:
		return 6
	}
	return 10
}

// raiseInotify makes room for one inotify instance per node: a real POP
// is one process with one, the simulation is one process with N.
func raiseInotify(n int) {
	const p = "/proc/sys/fs/inotify/max_user_instances"
	b, err := os.ReadFile(p)
	if err != nil {
		return
	}
	cur, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if cur >= n+128 {
		return
	}
	if err := os.WriteFile(p, []byte(strconv.Itoa(n+128)), 0o644); err != nil {
		logf("inotify instances limited to %d (%v): nodes beyond it poll their file every 5 ms", cur, err)
		return
	}
	logf("raised %s from %d to %d (one per simulated node)", p, cur, n+128)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rss() float64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb * 1024
		}
	}
	return 0
}

type sim struct {
	n, regions int
	bridges    int // per region; 0: one cluster
	profile    string
	net        *simNet
	pops       []*pop
	dir        string
	key        []byte
}

func (s *sim) wireBytes() uint64 {
	var t uint64
	for _, p := range s.pops {
		t += p.tr.sent.Load()
		if p.gtr != nil {
			t += p.gtr.sent.Load()
		}
	}
	return t
}

func (s *sim) replBytes() uint64 { return s.sum(bytesSent) }

// sum adds up one counter of every node's Stats.
func (s *sim) sum(counter func(*cluster.Stats) *atomic.Uint64) uint64 {
	var t uint64
	for _, p := range s.pops {
		t += counter(&p.node.Stats).Load()
		if p.gnode != nil {
			t += counter(&p.gnode.Stats).Load()
		}
	}
	return t
}

func vectorReads(st *cluster.Stats) *atomic.Uint64      { return &st.VectorReads }
func changesApplied(st *cluster.Stats) *atomic.Uint64   { return &st.ChangesApplied }
func changesStale(st *cluster.Stats) *atomic.Uint64     { return &st.ChangesStale }
func messagesSent(st *cluster.Stats) *atomic.Uint64     { return &st.MessagesSent }
func messagesRefused(st *cluster.Stats) *atomic.Uint64  { return &st.MessagesRefused }
func changesForwarded(st *cluster.Stats) *atomic.Uint64 { return &st.ChangesForwarded }
func changesRelayed(st *cluster.Stats) *atomic.Uint64   { return &st.ChangesRelayed }
func bytesSent(st *cluster.Stats) *atomic.Uint64        { return &st.BytesSent }
func streamsSkipped(st *cluster.Stats) *atomic.Uint64   { return &st.StreamsSkipped }

// bridge tells whether POP i bridges its region to the global cluster:
// the first s.bridges POPs of each region.
func (s *sim) bridge(i int) bool { return s.bridges > 0 && i < s.bridges*s.regions }

// peers is how many POPs (itself included) POP i should see alive once
// the first end POPs have started: all of them in one cluster, those of
// its region in regional clusters.
func (s *sim) peers(i, end int) int {
	if s.bridges == 0 {
		return end
	}
	r := i % s.regions
	if r >= end {
		return 0
	}
	return (end-1-r)/s.regions + 1
}

// globalAddr is the address of a bridge's node in the global cluster.
func globalAddr(i int) (net.IP, int) {
	return net.ParseIP(fmt.Sprintf("fd00:e6::%x", i+1)), 7946
}

// exec commits q on POP i's file through a connection of its own, as the
// sqlite3 CLI would. It takes the write lock first (BEGIN IMMEDIATE): a
// statement that starts reading and then writes fails at once, without
// waiting, when the replicator commits a merge in between.
func (s *sim) exec(i int, q string, args ...any) {
	db, err := sql.Open("sqlite3", "file:"+s.pops[i].path+"?_busy_timeout=60000&_journal_mode=WAL&_txlock=immediate")
	if err != nil {
		fail("%v", err)
	}
	defer db.Close()
	tx, err := db.Begin()
	if err == nil {
		if _, err = tx.Exec(q, args...); err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
	}
	if err != nil {
		fail("pop %d: %v", i, err)
	}
}

func addrOf(i int) (net.IP, int) {
	ip := net.ParseIP(fmt.Sprintf("fd00:e5::%x", i+1))
	return ip, 7946
}

func setup(n int) *sim {
	ctx := context.Background()
	raiseInotify(n)
	dir, err := os.MkdirTemp(*flagDir, "clustersim-")
	if err != nil {
		fail("%v", err)
	}
	s := &sim{n: n, regions: regionsFor(n), bridges: *flagBridges, net: newSimNet(uint64(n)), dir: dir, key: make([]byte, 32)}
	s.net.scale = *flagLatency
	s.profile = *flagProf
	if s.profile == "" {
		s.profile = "lan"
		if n > 10 {
			s.profile = "wan"
		}
	}
	for i := range s.key {
		s.key[i] = byte(i*7 + 1)
	}
	// Files: one per POP, each holding what a template's segments carry:
	// the bench row and a change of it from each of n sites, so the
	// vector has an entry per POP, as in a cluster where every POP once
	// wrote (registered backends, reported health). They are merged into
	// fresh files rather than copied from one: a copy takes a site id of
	// its own when opened and stamps a version of its own, so every POP
	// would start with a vector no other has, and the start would be an
	// exchange between every pair of POPs.
	segs := s.template(ctx)
	s.pops = make([]*pop, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				// A directory per POP, as on a real host: the store learns
				// of commits from inotify on the file's directory, and with
				// every file in one directory each node was woken by every
				// other node's writes (N² wake-ups, most of a 1,000-POP
				// run's CPU).
				pdir := filepath.Join(dir, fmt.Sprintf("pop%04d", i))
				if err := os.Mkdir(pdir, 0o755); err != nil {
					fail("%v", err)
				}
				p := &pop{i: i, region: i % s.regions, path: filepath.Join(pdir, "routing.db")}
				// Idle connections stay open for the run. A store closes
				// a connection five minutes unused, and each close walks
				// the driver's registrations of every connection in the
				// process: here those of a thousand stores, where a POP's
				// process holds one store. Five minutes after setup, a
				// thousand such closes were 11 % of the simulator's CPU
				// in whichever timed phase they fell into.
				st, err := store.Open(ctx, p.path, store.Options{KeepIdleConns: true})
				if err != nil {
					fail("%v", err)
				}
				if res, err := st.Apply(ctx, segs, time.Now()); err != nil || len(res.Refused) > 0 {
					fail("pop %d: %v %v", i, err, res.Refused)
				}
				var pageSize int
				if err := st.DB().QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
					fail("pop %d: %v", i, err)
				}
				if err := presizeWAL(p.path, pageSize); err != nil {
					fail("pop %d: presizing the WAL: %v", i, err)
				}
				p.st = st
				s.pops[i] = p
			}
		}()
	}
	wg.Wait()
	logf("   files ready; starting nodes")
	// Nodes: all join the first POP of the first three regions.
	var seeds []string
	for r := range min(3, s.regions) {
		ip, port := addrOf(r)
		seeds = append(seeds, net.JoinHostPort(ip.String(), strconv.Itoa(port)))
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if *flagVerbose {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	onMerge := func(p *pop) func(bool) {
		return func(rows bool) {
			if t := p.target.Load(); t != nil && p.converged.Load() == 0 {
				// Checked at the merge, where the POP reaches it: a
				// pass over a thousand files takes seconds on a busy
				// machine, and would time the pass, not the POP.
				if v, err := p.st.Vector(context.Background()); err == nil && t.reachedBy(v) {
					p.converged.CompareAndSwap(0, time.Now().UnixNano())
				}
			}
			if !rows || !p.armed.Load() || p.merged.Load() != 0 {
				return
			}
			// Called after a merge that changed the file: with one
			// change in flight at a time, that change.
			p.merged.CompareAndSwap(0, time.Now().UnixNano())
		}
	}
	label := func(p *pop) string {
		if s.bridges == 0 {
			return "sim"
		}
		return fmt.Sprintf("sim-region%d", p.region)
	}
	start := func(p *pop, seeds []string) {
		ip, port := addrOf(p.i)
		p.tr = s.net.add(ip, port, p.region)
		lg := logger
		if *flagVerbose && p.i == *flagTrace {
			lg = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("trace", p.i)
		}
		cfg := cluster.Config{Name: fmt.Sprintf("pop%04d", p.i), Bind: p.tr.addr, Join: seeds,
			Keys: [][]byte{s.key}, Cluster: label(p), Logger: lg, Transport: p.tr, Profile: s.profile, OnMerge: onMerge(p)}
		nd, err := cluster.Start(p.st, cfg)
		if err != nil {
			fail("pop %d: %v", p.i, err)
		}
		p.node = nd
	}
	first := min(3, s.regions)
	if s.bridges > 0 {
		// Each region's first POP starts its cluster.
		first, seeds = s.regions, nil
	}
	for _, p := range s.pops[:first] {
		start(p, seeds)
	}
	// The rest in batches, each POP joining three POPs started before it
	// (the first of three regions, then any): the joins spread over the
	// cluster instead of all landing on the same seeds, and a batch's
	// joins are gossiped to everyone before the next batch adds more.
	for i := first; i < n; i += *flagBatch {
		end := min(n, i+*flagBatch)
		var wg sync.WaitGroup
		for _, p := range s.pops[i:end] {
			join := seeds
			switch {
			case s.bridges > 0:
				// Three POPs of its region started before it.
				var before []int
				for k := p.region; k < i; k += s.regions {
					before = append(before, k)
				}
				rand.Shuffle(len(before), func(a, b int) { before[a], before[b] = before[b], before[a] })
				join = nil
				for _, k := range before[:min(3, len(before))] {
					join = append(join, s.pops[k].tr.addr)
				}
			case i >= 30:
				join = nil
				for _, k := range rand.Perm(i)[:3] {
					join = append(join, s.pops[k].tr.addr)
				}
			}
			wg.Add(1)
			go func() { defer wg.Done(); start(p, join) }()
		}
		wg.Wait()
		// A sample: Brief reads the vector from the file, a cost of
		// the simulator's that grows with N.
		sample := append([]*pop(nil), s.pops[i:min(end, i+5)]...)
		for _, k := range rand.Perm(i)[:min(i, 5)] {
			sample = append(sample, s.pops[k])
		}
		t0 := time.Now()
		for time.Since(t0) < *flagBatchMax {
			short := 0
			for _, p := range sample {
				if p.node.Brief(ctx).Counts["alive"] < s.peers(p.i, end) {
					short++
				}
			}
			if short == 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if *flagVerbose {
			logf("   %d POPs started (batch settled in %v)", end, time.Since(t0).Round(10*time.Millisecond))
		}
	}
	// Bridges: a second node on the same file in the global cluster, each
	// joining up to three bridges started before it.
	var globals []string
	for _, p := range s.pops {
		if !s.bridge(p.i) {
			continue
		}
		ip, port := globalAddr(p.i)
		p.gtr = s.net.add(ip, port, p.region)
		join := append([]string(nil), globals...)
		rand.Shuffle(len(join), func(a, b int) { join[a], join[b] = join[b], join[a] })
		cfg := cluster.Config{Name: fmt.Sprintf("global%04d", p.i), Bind: p.gtr.addr, Join: join[:min(3, len(join))],
			Keys: [][]byte{s.key}, Cluster: "sim-global", Logger: logger, Transport: p.gtr, Profile: s.profile, OnMerge: onMerge(p)}
		nd, err := cluster.Start(p.st, cfg)
		if err != nil {
			fail("pop %d: global node: %v", p.i, err)
		}
		if err := cluster.Bridge(p.node, nd); err != nil {
			fail("pop %d: %v", p.i, err)
		}
		p.gnode = nd
		globals = append(globals, p.gtr.addr)
	}
	logf("   nodes started; waiting for full membership")
	// Every POP sees every other of its cluster alive.
	deadline := time.Now().Add(time.Duration(n)*100*time.Millisecond + time.Minute)
	for {
		short, fewest := 0, n
		for _, p := range s.pops {
			if c := p.node.Brief(ctx).Counts["alive"]; c < s.peers(p.i, n) {
				short++
				fewest = min(fewest, c)
			}
			if p.gnode != nil {
				if c := p.gnode.Brief(ctx).Counts["alive"]; c < len(globals) {
					short++
					fewest = min(fewest, c)
				}
			}
		}
		if short == 0 {
			break
		}
		if *flagVerbose {
			logf("   %d POPs see fewer than %d alive", short, n)
		}
		if time.Now().After(deadline) {
			logf("   %d POPs do not see all %d members alive (the fewest: %d); going on", short, n, fewest)
			break
		}
		time.Sleep(time.Second)
	}
	return s
}

// template returns the segments every file starts from: the bench row
// (inserted on another file) and one change of it from each of s.n sites.
func (s *sim) template(ctx context.Context) []store.Segment {
	src, err := store.Open(ctx, filepath.Join(s.dir, "template.db"), store.Options{})
	if err != nil {
		fail("%v", err)
	}
	if _, err := src.DB().Exec(`INSERT INTO backends (id, app, wg_ip, port, weight) VALUES ('bench','bench','127.0.0.1',9,1)`); err != nil {
		fail("%v", err)
	}
	v, err := src.DBVersion(ctx)
	if err != nil {
		fail("%v", err)
	}
	ch, err := src.ChangesSince(ctx, src.SiteID(), 0, v)
	if err != nil || len(ch) == 0 {
		fail("bench row: %v", err)
	}
	segs := []store.Segment{{Origin: src.SiteID(), From: 0, To: v, Changes: ch}}
	src.Close()
	old := store.MakeHLC(time.Now().Add(-time.Hour), 0)
	for i := range s.n {
		site := fmt.Sprintf("%032x", uint64(i+1)*0x9e3779b97f4a7c15)
		segs = append(segs, store.Segment{Origin: site, From: 0, To: 1, Changes: []store.Change{{
			Table: "backends", PK: ch[0].PK, Column: "weight", Value: int64(1), HLC: old, Seq: 1, CL: 1}}})
	}
	return segs
}

func (s *sim) stop() {
	for _, p := range s.pops {
		p.tr.Shutdown()
		if p.gtr != nil {
			p.gtr.Shutdown()
		}
	}
	var wg sync.WaitGroup
	for _, p := range s.pops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if p.gnode != nil {
				p.gnode.Kill()
			}
			p.node.Kill()
			p.st.Close()
		}()
	}
	wg.Wait()
	os.RemoveAll(s.dir)
}

// schedDelay measures how late a 10 ms ticker fires while f runs: the
// simulator's own scheduling delay on a busy machine.
func schedDelay(stop <-chan struct{}) []time.Duration {
	var out []time.Duration
	const every = 10 * time.Millisecond
	t := time.NewTicker(every)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return out
		case now := <-t.C:
			_ = now
			n := time.Now()
			out = append(out, max(0, n.Sub(last)-every))
			last = n
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = append([]time.Duration(nil), d...)
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	k := int(math.Ceil(p*float64(len(d)))) - 1
	return d[max(0, min(k, len(d)-1))]
}

func run(n int) result {
	t0 := time.Now()
	logf("== %d POPs: setting up", n)
	s := setup(n)
	defer s.stop()
	r := result{pops: n, regions: s.regions, bridges: s.bridges, profile: s.profile, changes: *flagChanges, setup: time.Since(t0)}
	logf("   %d POPs up in %v; settling", n, r.setup.Round(time.Second))
	s.warmPools()
	time.Sleep(*flagSettle)

	// One change untimed first: a POP that has run a while has merged
	// edits before, and its connection holds the statements a merge of
	// one compiles (an UPDATE of backends compiles the table's triggers,
	// about half a millisecond, which a thousand POPs would otherwise all
	// pay on the first timed change).
	s.change(rand.IntN(n), 1_000_000)
	time.Sleep(*flagSettle)

	// Changes, one at a time, each on a random POP.
	s.net.SetLoss(*flagLoss)
	s.net.takeLate()
	stopTick := make(chan struct{})
	ticks := make(chan []time.Duration)
	go func() { ticks <- schedDelay(stopTick) }()
	var lat, all []time.Duration
	stopProfile := startProfile(*flagChgProf)
	w0, b0, c0, tc := s.wireBytes(), s.replBytes(), cpuTime(), time.Now()
	vr0 := s.sum(vectorReads)
	for k := range *flagChanges {
		origin := rand.IntN(n)
		c := s.change(origin, k+2)
		lat = append(lat, c.lat...)
		r.missed += c.missed
		all = append(all, c.last)
		if *flagVerbose {
			var b strings.Builder
			for region, d := range c.slowest {
				fmt.Fprintf(&b, " %d:%v", region, d.Round(time.Millisecond))
			}
			logf("   change %d on POP %d (region %d): the last POP of each region at%s", k, origin, s.pops[origin].region, b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wall := time.Since(tc)
	stopProfile()
	r.cpuChanges = 100 * (cpuTime() - c0).Seconds() / wall.Seconds() / float64(n)
	r.simSat = (cpuTime() - c0).Seconds() / wall.Seconds() / float64(runtime.NumCPU())
	close(stopTick)
	tk := <-ticks
	r.tickP99, r.tickMax = percentile(tk, 0.99), percentile(tk, 1)
	late := s.net.takeLate()
	r.lateP50, r.lateP99 = percentile(late, 0.5), percentile(late, 0.99)
	r.replPerChange = float64(s.replBytes()-b0) / float64(*flagChanges) / float64(n)
	r.wirePerChange = float64(s.wireBytes()-w0) / float64(*flagChanges) / float64(n)
	r.p50, r.p99, r.max = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 1)
	r.allP99 = percentile(all, 0.99)
	s.net.SetLoss(0)
	logf("   changes: p50 %v p99 %v max %v (all POPs p99 %v), missed %d, vector reads %.2f/change/POP", r.p50, r.p99, r.max, r.allP99, r.missed,
		float64(s.sum(vectorReads)-vr0)/float64(*flagChanges)/float64(n))

	// Idle: after the last change has settled.
	time.Sleep(*flagSettle)
	stopProfile = startProfile(*flagIdleProf)
	w0, b0, c0, tc = s.wireBytes(), s.replBytes(), cpuTime(), time.Now()
	time.Sleep(*flagIdle)
	stopProfile()
	wall = time.Since(tc)
	r.idleWire = float64(s.wireBytes()-w0) / wall.Seconds() / float64(n)
	r.idleRepl = float64(s.replBytes()-b0) / wall.Seconds() / float64(n)
	r.cpuIdle = 100 * (cpuTime() - c0).Seconds() / wall.Seconds() / float64(n)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r.heapPerPop = float64(ms.HeapInuse) / float64(n)
	r.rssPerPop = rss() / float64(n)
	logf("   idle: %.0f B/s per POP on the wire (%.0f replication), CPU %.2f %% per POP", r.idleWire, r.idleRepl, r.cpuIdle)

	// Partition: the last region cut off, writes on both sides, heal.
	if *flagCut > 0 {
		r.converge = s.partition()
		logf("   converged %v after the heal", r.converge)
	}
	return r
}

func (s *sim) partition() time.Duration {
	ctx := context.Background()
	island := s.regions - 1
	var main, cut []int
	for _, p := range s.pops {
		if p.region == island {
			cut = append(cut, p.i)
		} else {
			main = append(main, p.i)
		}
	}
	s.net.Partition(island)
	time.Sleep(*flagCut / 3)
	for k := range 20 {
		s.exec(main[rand.IntN(len(main))], `INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'cut', '127.0.0.1', ?)`, fmt.Sprint("main-", k), k+1)
	}
	for k := range 5 {
		s.exec(cut[rand.IntN(len(cut))], `INSERT INTO backends (id, app, wg_ip, port) VALUES (?, 'cut', '127.0.0.1', ?)`, fmt.Sprint("island-", k), k+1)
	}
	s.exec(cut[0], `UPDATE backends SET port = 7 WHERE id = 'bench'`)
	s.exec(main[0], `UPDATE backends SET port = 8 WHERE id = 'bench'`)
	time.Sleep(*flagCut - *flagCut/3)
	// Every write of the cut is committed: the union of the vectors is
	// what every file must reach.
	vectors := make([]store.Vector, len(s.pops))
	for i, p := range s.pops {
		v, err := p.st.Vector(ctx)
		if err != nil {
			fail("%v", err)
		}
		vectors[i] = v
	}
	target := goalOf(vectors)
	for _, p := range s.pops {
		p.converged.Store(0)
		p.target.Store(target)
	}
	stopProfile := startProfile(*flagHealProf)
	defer stopProfile()
	applied0, stale0, sent0, refused0 := s.sum(changesApplied), s.sum(changesStale), s.sum(messagesSent), s.sum(messagesRefused)
	relayed0, forwarded0 := s.sum(changesRelayed), s.sum(changesForwarded)
	defer func() {
		logf("   the heal: %d changes merged, %d already held or superseded, %d replication messages sent, %d refused (too large, undecodable or the inbox full); %d changes relayed by bridges, %d forwarded after a repair",
			s.sum(changesApplied)-applied0, s.sum(changesStale)-stale0, s.sum(messagesSent)-sent0, s.sum(messagesRefused)-refused0,
			s.sum(changesRelayed)-relayed0, s.sum(changesForwarded)-forwarded0)
	}()
	s.net.Partition(-1)
	healed := time.Now()
	skipped0 := s.sum(streamsSkipped)
	lastLog := healed
	var byPass int // POPs the pass found converged before their merge was seen
	// What the pass last compared of each POP: a file whose own version
	// and versions generation have not moved since holds the same vector,
	// and is not read whole again (a read of every POP's whole vector
	// every 50 ms was 8 % of the process's CPU in a 1000-POP heal).
	type versions struct {
		own uint64
		gen int64
	}
	passed := make([]versions, len(s.pops))
	for i := range passed {
		passed[i].gen = -1 // a generation is never negative: not compared yet
	}
	var lastRead time.Time
	for time.Since(healed) < 5*time.Minute {
		// A POP is timed at the merge that makes its vector the union
		// (onMerge, whether the merge changed rows or only versions);
		// the pass over those not there yet is a safety net, timed at
		// the pass, and counts what is left. It reads the files every
		// 250 ms: a read of each file every 50 ms was 9 % of the
		// process's CPU in a 1000-POP heal, for the few POPs of a run
		// that it times.
		read := time.Since(lastRead) >= 250*time.Millisecond
		if read {
			lastRead = time.Now()
		}
		for i, p := range s.pops {
			if read && p.converged.Load() == 0 {
				own, gen, err := p.st.OwnVersion(ctx)
				if err == nil && (versions{own, gen}) != passed[i] {
					passed[i] = versions{own, gen}
					if v, err := p.st.Vector(ctx); err == nil && target.reachedBy(v) && p.converged.CompareAndSwap(0, time.Now().UnixNano()) {
						byPass++
					}
				}
			}
		}
		// Counted after the pass, which takes seconds on a busy machine:
		// counted as it went, the POPs it read first were reported
		// behind long after they had converged.
		var behindMain, behindCut int
		var last time.Duration
		for _, p := range s.pops {
			if c := p.converged.Load(); c != 0 {
				last = max(last, time.Unix(0, c).Sub(healed))
				continue
			}
			if p.region == island {
				behindCut++
			} else {
				behindMain++
			}
		}
		if behindMain+behindCut == 0 {
			for _, p := range s.pops {
				p.target.Store(nil)
			}
			stopProfile()
			target.verify(ctx, s.pops)
			if *flagVerbose {
				logf("   every POP converged; %d of %d timed by the pass over the files, not at their merge", byPass, len(s.pops))
			}
			return last
		}
		if *flagVerbose && time.Since(lastLog) >= 500*time.Millisecond {
			lastLog = time.Now()
			skipped := s.sum(streamsSkipped)
			logf("   %.1f s after the heal: %d of %d POPs of the majority and %d of %d cut off not converged; %d streams skipped",
				time.Since(healed).Seconds(), behindMain, len(main), behindCut, len(cut), skipped-skipped0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return -1
}

// changed is how one change reached the POPs other than its origin: the
// time to each POP it reached, how many it did not reach within 10 s, the
// time to the last, and the time to the last of each region.
type changed struct {
	lat     []time.Duration
	missed  int
	last    time.Duration
	slowest []time.Duration
}

// change commits weight on POP origin's file and waits until every other
// POP has merged it, or 10 s.
func (s *sim) change(origin, weight int) changed {
	for _, p := range s.pops {
		p.merged.Store(0)
		p.armed.Store(true)
	}
	s.exec(origin, `UPDATE backends SET weight = ? WHERE id = 'bench'`, weight)
	committed := time.Now()
	c := changed{slowest: make([]time.Duration, s.regions)}
	for _, p := range s.pops {
		if p.i == origin {
			continue
		}
		for p.merged.Load() == 0 && time.Since(committed) < 10*time.Second {
			time.Sleep(time.Millisecond)
		}
		if m := p.merged.Load(); m != 0 {
			d := time.Unix(0, m).Sub(committed)
			c.lat = append(c.lat, d)
			c.last = max(c.last, d)
			c.slowest[p.region] = max(c.slowest[p.region], d)
		} else {
			c.missed++
		}
	}
	for _, p := range s.pops {
		p.armed.Store(false)
	}
	return c
}

// warmPools has every POP's store open the connections its reads at once
// use, before anything is timed. A connection's first statement parses
// the schema with its capture triggers, about 5 ms of CPU, which a POP
// pays once per connection as its reads first overlap; a thousand POPs in
// one process paid it within the timed changes, a tenth of their CPU.
func (s *sim) warmPools() {
	ctx := context.Background()
	for _, p := range s.pops {
		var conns []*sql.Conn
		for range warmConns {
			c, err := p.st.DB().Conn(ctx)
			if err != nil {
				fail("pop %d: %v", p.i, err)
			}
			if _, err := c.ExecContext(ctx, "SELECT v FROM crdt_meta WHERE k = 'db_version'"); err != nil {
				fail("pop %d: %v", p.i, err)
			}
			conns = append(conns, c)
		}
		for _, c := range conns {
			c.Close()
		}
	}
}

// warmConns is how many connections warmPools opens at once per store,
// besides the ones its merges and push loops keep: after a 1000-POP
// run's changes its stores held 3.5 connections each on average, and
// none more than the six a pool keeps idle.
const warmConns = 4

// goal is the vector every file must reach after the heal: the union of
// theirs. Most sites are at their union's version in every file already,
// and vectors only grow: a file has reached the goal when it holds the few
// others at theirs, unless something wrote after the union was taken,
// which verify finds once every POP is timed. Comparing every site at
// every merge was 14 % of the simulator's CPU in a 1000-POP heal.
type goal struct {
	union  store.Vector
	behind store.Vector // the sites some file lacks a version of, at the union's
}

func goalOf(vectors []store.Vector) *goal {
	g := &goal{union: store.Vector{}, behind: store.Vector{}}
	for _, v := range vectors {
		for site, x := range v {
			g.union[site] = max(g.union[site], x)
		}
	}
	for _, v := range vectors {
		for site, x := range g.union {
			if v[site] != x {
				g.behind[site] = x
			}
		}
	}
	return g
}

// reachedBy tells whether v holds the goal's versions of the sites some
// file lacked.
func (g *goal) reachedBy(v store.Vector) bool {
	for site, x := range g.behind {
		if v[site] != x {
			return false
		}
	}
	return true
}

// verify fails the run unless every POP's vector is the goal whole.
func (g *goal) verify(ctx context.Context, pops []*pop) {
	for _, p := range pops {
		v, err := p.st.Vector(ctx)
		if err != nil {
			fail("pop %d: %v", p.i, err)
		}
		if !equal(v, g.union) {
			fail("pop %d was timed at the union of the vectors after the heal, yet its vector differs from it elsewhere", p.i)
		}
	}
}

// equal compares two vectors; a site at version 0 is one not known (a
// POP that never wrote has its own site at 0, which others never heard of).
func equal(a, b store.Vector) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

var _ memberlist.NodeAwareTransport = (*simTransport)(nil)

func fms(d time.Duration) string {
	if d < 0 {
		return "not converged"
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func printTable(rs []result) {
	fmt.Println()
	fmt.Println("| POPs | regions | clusters | profile | changes | p50 | p99 | max | every POP, p99 | missed | replication bytes/change/POP | wire bytes/change/POP | idle wire B/s/POP | idle replication B/s/POP | CPU/POP idle | CPU/POP changes | heap/POP | RSS/POP | convergence after heal | sim: CPU use of 2 cores | sim: delivery lateness p50/p99 | sim: 10 ms ticker late p99/max |")
	fmt.Println("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		clusters := "one"
		if r.bridges > 0 {
			clusters = fmt.Sprintf("regional, %d bridges each", r.bridges)
		}
		fmt.Printf("| %d | %d | %s | %s | %d | %s | %s | %s | %s | %d | %.0f | %.0f | %.0f | %.0f | %.2f %% | %.2f %% | %.1f MB | %.1f MB | %s | %.0f %% | %s / %s | %s / %s |\n",
			r.pops, r.regions, clusters, r.profile, r.changes, fms(r.p50), fms(r.p99), fms(r.max), fms(r.allP99), r.missed,
			r.replPerChange, r.wirePerChange, r.idleWire, r.idleRepl, r.cpuIdle, r.cpuChanges,
			r.heapPerPop/1e6, r.rssPerPop/1e6, fms(r.converge), 100*r.simSat,
			fms(r.lateP50), fms(r.lateP99), fms(r.tickP99), fms(r.tickMax))
	}
}
