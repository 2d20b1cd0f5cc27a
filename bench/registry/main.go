// Command registry measures registrations per second through the API and the CPU cost of health checks, against the built Caddy:
//
//	registry -caddy bin/caddy register [-for 10s] [-workers 32] [-preload 0]
//	    registrations per second through the edgeroute_api HTTP API,
//	    sustained, each a distinct backend written to the routing table,
//	    after preload registrations made the same way (unmeasured);
//
//	registry -caddy bin/caddy heartbeat -preload 10000 [-for 10s] [-workers 32]
//	    heartbeats per second through the same API against that many
//	    registered backends, each client heartbeating them in turn, and
//	    the Caddy process's CPU per heartbeat;
//
//	registry -caddy bin/caddy health [-backends 1000] [-interval 1s] [-for 30s] [-check tcp|http]
//	    CPU the Caddy process spends checking that many real backends,
//	    as a share of one core, next to the same process idle, to HAProxy
//	    checking the same backends and, for TCP, to a bare loop of the same
//	    connects (the kernel's share, which no checker avoids).
package main

import (
	"bytes"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/procstat"
	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

const token = "bench-token"

func main() {
	caddy := flag.String("caddy", "bin/caddy", "Caddy binary built with the edgeroute plugin")
	dur := flag.Duration("for", 0, "measurement length (default 10s for register, 30s for health)")
	workers := flag.Int("workers", 32, "register, heartbeat: concurrent clients")
	preload := flag.Int("preload", 0, "register, heartbeat: backends registered before the measurement")
	n := flag.Int("backends", 1000, "health: backends to check")
	interval := flag.Duration("interval", time.Second, "health: check interval")
	check := flag.String("check", "tcp", "health: tcp or http")
	flag.Parse()
	sub := flag.Arg(0)
	if flag.NArg() > 1 { // flags after the subcommand
		flag.CommandLine.Parse(flag.Args()[1:])
		if flag.NArg() > 0 {
			fmt.Fprintln(os.Stderr, "registry: unexpected arguments:", flag.Args())
			os.Exit(2)
		}
	}
	var err error
	switch sub {
	case "register":
		err = benchRegister(*caddy, orDefault(*dur, 10*time.Second), *workers, *preload)
	case "heartbeat":
		err = benchHeartbeat(*caddy, orDefault(*dur, 10*time.Second), *workers, *preload)
	case "health":
		err = benchHealth(*caddy, orDefault(*dur, 30*time.Second), *n, *interval, *check)
	case "connect-floor": // started by health -check tcp
		err = connectFloor(os.Getenv("FLOOR_PORTS"), *interval)
	default:
		err = fmt.Errorf("usage: registry -caddy BIN register|heartbeat|health")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

type server struct {
	cmd   *exec.Cmd
	dir   string
	db    string
	api   string
	admin string
	log   bytes.Buffer
}

// startCaddy starts Caddy, trying again when a port picked for it was taken
// meanwhile (other work on the machine opens connections too).
func startCaddy(caddy, global, site string) (*server, error) {
	var err error
	for range 3 {
		var s *server
		if s, err = startCaddyOnce(caddy, global, site); err == nil {
			return s, nil
		}
	}
	return nil, err
}

func startCaddyOnce(caddy, global, site string) (*server, error) {
	dir, err := os.MkdirTemp("", "edgeroute-bench")
	if err != nil {
		return nil, err
	}
	s := &server{dir: dir, db: filepath.Join(dir, "routing.db"),
		api: fmt.Sprintf("127.0.0.1:%d", freePort()), admin: fmt.Sprintf("127.0.0.1:%d", freePort())}
	cfg := fmt.Sprintf(`{
	admin %s
	metrics
	edgeroute {
		db %s
		node bench
		region eu
		country DE
		%s
	}
	log {
		level WARN
	}
}
http://%s {
	edgeroute_api {
		token %s
		heartbeat_ttl 60s
	}
}
%s
`, s.admin, s.db, global, s.api, token, site)
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	s.cmd = exec.Command(caddy, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
	s.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := http.Get("http://" + s.api + "/health")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		if time.Now().After(deadline) || exited(s.cmd) {
			log := s.log.String()
			s.stop()
			return nil, fmt.Errorf("caddy did not start: %s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func exited(cmd *exec.Cmd) bool {
	return cmd.Process.Signal(syscall.Signal(0)) != nil
}

func (s *server) stop() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
	os.RemoveAll(s.dir)
}

// cpuTime is the process's user plus system time, 0 where it cannot be
// read.
func cpuTime(pid int) time.Duration {
	t, _ := procstat.CPU(pid)
	return t.Total()
}

// profile writes a CPU profile of Caddy over the measurement, one second
// short of it, to the file BENCH_PPROF names, if it names one.
func profile(s *server, dur time.Duration) {
	out := os.Getenv("BENCH_PPROF")
	if out == "" {
		return
	}
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.admin, int(dur/time.Second)-1))
		if err == nil {
			f, _ := os.Create(out)
			io.Copy(f, resp.Body)
			f.Close()
			resp.Body.Close()
		}
	}()
}

func benchRegister(caddy string, dur time.Duration, workers, preload int) error {
	s, client, err := startPreloaded(caddy, workers, preload)
	if err != nil {
		return err
	}
	defer s.stop()
	perSecond := make([]atomic.Int64, int(dur/time.Second)+2)
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	profile(s, dur)
	cpu0, own0 := cpuTime(s.cmd.Process.Pid), cpuTime(os.Getpid())
	start := time.Now()
	res := drive(ctx, client, workers, func(w int, i int64) (string, string, int) {
		body := fmt.Sprintf(`{"id":"bench-%d","app":"bench%d","region":"eu","ip":"10.%d.%d.%d","port":%d}`,
			i, w%8, (i>>16)&255, (i>>8)&255, i&255, 1+i%65535)
		return "http://" + s.api + "/api/v1/register", body, http.StatusCreated
	}, func() { perSecond[int(time.Since(start)/time.Second)].Add(1) })
	elapsed := time.Since(start)
	cpu1, own1 := cpuTime(s.cmd.Process.Pid), cpuTime(os.Getpid())
	db, err := sql.Open("sqlite3", "file:"+s.db+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	var rows int64
	if err := db.QueryRow("SELECT count(*) FROM backends").Scan(&rows); err != nil {
		return err
	}
	pct := func(p float64) time.Duration { return percentile(res.lat, p) }
	minSec := int64(1 << 62)
	for i := range int(dur / time.Second) {
		minSec = min(minSec, perSecond[i].Load())
	}
	fmt.Printf("registrations through POST /api/v1/register, %d clients, %v:\n", workers, elapsed.Round(time.Millisecond))
	fmt.Printf("  %d registered (%d failed), %.0f/s mean, slowest whole second %d/s\n", res.ok, res.failed, float64(res.ok)/elapsed.Seconds(), minSec)
	fmt.Printf("  latency p50 %v p99 %v max %v\n", pct(0.5), pct(0.99), pct(1))
	fmt.Printf("  routing table rows: %d; caddy CPU %.0f%% of one core, %.0f us per registration; the clients (this process) %.0f%%\n",
		rows, procstat.PercentOfCore(cpu1-cpu0, elapsed), float64((cpu1-cpu0).Microseconds())/float64(max(res.ok, 1)), procstat.PercentOfCore(own1-own0, elapsed))
	// A request cut off by the end of the run may have been written.
	rows -= int64(preload)
	if rows < res.ok || rows > res.ok+int64(workers) {
		return fmt.Errorf("table holds %d rows, %d registrations answered 201", rows, res.ok)
	}
	return nil
}

// loadResult is what drive's clients got back.
type loadResult struct {
	ok, failed int64
	lat        []time.Duration // of the answered requests, in order
}

// drive runs workers clients, each sending request's next request (w is
// the client, i counts requests from 1 across them) and waiting for its
// answer, until ctx ends. answered, if set, is called after each request
// answered with the wanted status.
func drive(ctx context.Context, client *http.Client, workers int, request func(w int, i int64) (url, body string, want int), answered func()) loadResult {
	var (
		ok, failed atomic.Int64
		next       atomic.Int64
		mu         sync.Mutex
		lat        []time.Duration
		wg         sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			var mine []time.Duration
			for ctx.Err() == nil {
				url, body, want := request(w, next.Add(1))
				took, good := call(ctx, client, url, body, want)
				if !good {
					if ctx.Err() == nil {
						failed.Add(1)
					}
					continue
				}
				ok.Add(1)
				mine = append(mine, took)
				if answered != nil {
					answered()
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return loadResult{ok: ok.Load(), failed: failed.Load(), lat: lat}
}

// call makes one POST to the API with the bench's token and reports how
// long it took and whether it was answered with want.
func call(ctx context.Context, client *http.Client, url, body string, want int) (time.Duration, bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(t0), resp.StatusCode == want
}

// percentile of sorted latencies.
func percentile(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(p*float64(len(lat))))]
}

// startPreloaded starts Caddy with the API and registers preload backends
// through it, with a client for that many workers.
func startPreloaded(caddy string, workers, preload int) (*server, *http.Client, error) {
	s, err := startCaddy(caddy, "", "")
	if err != nil {
		return nil, nil, err
	}
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	if err := preloadBackends(s, client, workers, preload); err != nil {
		s.stop()
		return nil, nil, err
	}
	return s, client, nil
}

// preloadBackends registers n backends pre-1 ... pre-n spread over 100
// apps through the API, unmeasured.
func preloadBackends(s *server, client *http.Client, workers, preload int) error {
	if preload > 0 {
		// The table already holds preload registered backends, spread
		// over 100 apps; registering them is not measured.
		t0 := time.Now()
		var pre, preFailed atomic.Int64
		var pwg sync.WaitGroup
		for range workers {
			pwg.Add(1)
			go func() {
				defer pwg.Done()
				for {
					i := pre.Add(1)
					if i > int64(preload) {
						return
					}
					body := fmt.Sprintf(`{"id":"pre-%d","app":"app%d","region":"eu","ip":"10.200.%d.%d","port":%d}`, i, i%100, (i>>8)&255, i&255, 1+i%65535)
					req, _ := http.NewRequest(http.MethodPost, "http://"+s.api+"/api/v1/register", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token)
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						preFailed.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusCreated {
						preFailed.Add(1)
					}
				}
			}()
		}
		pwg.Wait()
		if preFailed.Load() > 0 {
			return fmt.Errorf("preload: %d of %d registrations failed", preFailed.Load(), preload)
		}
		fmt.Printf("preloaded %d registered backends in %v\n", preload, time.Since(t0).Round(time.Millisecond))
		time.Sleep(time.Second)
	}
	return nil
}

// benchHeartbeat measures heartbeats through the API against preload
// registered backends, each worker heartbeating them in turn.
func benchHeartbeat(caddy string, dur time.Duration, workers, preload int) error {
	if preload < 1 {
		return fmt.Errorf("heartbeat needs -preload backends to heartbeat")
	}
	s, client, err := startPreloaded(caddy, workers, preload)
	if err != nil {
		return err
	}
	defer s.stop()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	cpu0 := cpuTime(s.cmd.Process.Pid)
	start := time.Now()
	res := drive(ctx, client, workers, func(_ int, i int64) (string, string, int) {
		return fmt.Sprintf("http://%s/api/v1/heartbeat/pre-%d", s.api, i%int64(preload)+1), "", http.StatusOK
	}, nil)
	elapsed := time.Since(start)
	cpu1 := cpuTime(s.cmd.Process.Pid)
	pct := func(p float64) time.Duration { return percentile(res.lat, p) }
	fmt.Printf("heartbeats through POST /api/v1/heartbeat/{id}, %d backends, %d clients, %v:\n", preload, workers, elapsed.Round(time.Millisecond))
	fmt.Printf("  %d answered 200 (%d failed), %.0f/s\n", res.ok, res.failed, float64(res.ok)/elapsed.Seconds())
	fmt.Printf("  latency p50 %v p99 %v max %v\n", pct(0.5), pct(0.99), pct(1))
	fmt.Printf("  caddy CPU %.0f%% of one core, %.0f us per heartbeat\n", procstat.PercentOfCore(cpu1-cpu0, elapsed),
		float64((cpu1-cpu0).Microseconds())/float64(max(res.ok, 1)))
	if res.failed > 0 {
		return fmt.Errorf("%d heartbeats failed", res.failed)
	}
	return nil
}

func benchHealth(caddy string, dur time.Duration, n int, interval time.Duration, check string) error {
	// Real backends: n listeners answering TCP connects or HTTP GETs.
	lns := make([]net.Listener, n)
	var accepted atomic.Int64
	httpSrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { accepted.Add(1) })}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listener %d: %v (raise ulimit -n)", i, err)
		}
		lns[i] = ln
		if check == "http" {
			go httpSrv.Serve(ln)
			continue
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
	}
	// seen counts the checks the backends have seen: for HTTP the
	// requests they answered; for TCP the connections their kernel
	// answered (tcpAnswered), since HAProxy's TCP check never lets its
	// connection reach accept(2). Nothing else connects over the machine's
	// loopback meanwhile.
	seen := accepted.Load
	if check == "tcp" {
		seen = tcpAnswered
	}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	measure := func(withChecks bool) (float64, int64, error) {
		global := ""
		if withChecks {
			kind := "tcp"
			if check == "http" {
				kind = "http / 200"
			}
			global = fmt.Sprintf("health bench {\n\t\t\t%s\n\t\t\tinterval %v\n\t\t\ttimeout 500ms\n\t\t}", kind, interval)
		}
		s, err := startCaddy(caddy, global, "")
		if err != nil {
			return 0, 0, err
		}
		defer s.stop()
		db, err := sql.Open("sqlite3", "file:"+s.db)
		if err != nil {
			return 0, 0, err
		}
		defer db.Close()
		tx, _ := db.Begin()
		for i, ln := range lns {
			port := ln.Addr().(*net.TCPAddr).Port
			if _, err := tx.Exec(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES (?, 'bench', 'eu', 'DE', '127.0.0.1', ?)`,
				fmt.Sprintf("b%04d", i), port); err != nil {
				return 0, 0, err
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, 0, err
		}
		time.Sleep(3 * time.Second) // table reload, checks spread over the interval
		if withChecks {
			profile(s, dur)
		}
		a0 := seen()
		t0, _ := procstat.CPU(s.cmd.Process.Pid)
		start := time.Now()
		time.Sleep(dur)
		t1, _ := procstat.CPU(s.cmd.Process.Pid)
		el := time.Since(start)
		used := t1.Since(t0)
		if withChecks {
			fmt.Printf("  (caddy with checks: user %.1f%%, system %.1f%% of one core)\n", procstat.PercentOfCore(used.User, el), procstat.PercentOfCore(used.System, el))
		}
		checks := seen() - a0
		return procstat.PercentOfCore(used.Total(), el), int64(float64(checks) / el.Seconds()), nil
	}
	idle, _, err := measure(false)
	if err != nil {
		return err
	}
	busy, rate, err := measure(true)
	if err != nil {
		return err
	}
	hap, hapRate, hapErr := measureHAProxy(lns, dur, interval, check, seen)
	var floor float64
	var floorRate int64
	var floorErr error
	if check == "tcp" {
		floor, floorRate, floorErr = measureFloor(lns, dur, interval, seen)
	}
	fmt.Printf("active %s checks of %d real backends every %v, measured over %v:\n", check, n, interval, dur)
	fmt.Printf("  %d checks/s reached the backends\n", rate)
	fmt.Printf("  caddy CPU: %.1f%% of one core with checks, %.1f%% idle with the same table: %.1f%% for the checks\n", busy, idle, busy-idle)
	if hapErr != nil {
		fmt.Printf("  haproxy anchor skipped: %v\n", hapErr)
	} else {
		fmt.Printf("  anchor: HAProxy 2 threads, same backends and interval: %.1f%% of one core (%d checks/s)\n", hap, hapRate)
	}
	if check == "tcp" {
		if floorErr != nil {
			fmt.Printf("  floor skipped: %v\n", floorErr)
		} else {
			fmt.Printf("  floor: a bare loop of the same connects and resets, in batches, no checker around it: %.1f%% of one core (%d connects/s)\n", floor, floorRate)
		}
	}
	return nil
}

// measureFloor runs connectFloor in a child process against the same
// backends: the kernel's share of a TCP check, which no checker avoids.
func measureFloor(lns []net.Listener, dur, interval time.Duration, seen func() int64) (float64, int64, error) {
	ports := make([]string, len(lns))
	for i, ln := range lns {
		ports[i] = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	cmd := exec.Command(os.Args[0], "-interval", interval.String(), "connect-floor")
	cmd.Env = append(os.Environ(), "FLOOR_PORTS="+strings.Join(ports, ","))
	cmd.Stderr = os.Stderr
	return measurePeer(cmd, 2*time.Second, dur, seen)
}

// connectFloor connects to every port once per interval, in ten batches
// per interval, with nothing but the system calls, made as edgeroute's
// checks make them: a non-blocking connect on a kept socket, poll, and a
// disconnect that resets the connection.
func connectFloor(list string, interval time.Duration) error {
	var addrs []*rawsock.Sockaddr
	for _, p := range strings.Split(list, ",") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("FLOOR_PORTS: %v", err)
		}
		addrs = append(addrs, rawsock.NewSockaddr(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(n))))
	}
	fds := make([]int, len(addrs))
	for i, sa := range addrs {
		fd, err := rawsock.Socket(sa)
		if err != nil {
			return err
		}
		rawsock.ResetOnClose(fd)
		fds[i] = fd
	}
	const batches = 10
	per := (len(addrs) + batches - 1) / batches
	tick := time.NewTicker(interval / batches)
	for next := 0; ; {
		<-tick.C
		for range per {
			i := next % len(addrs)
			next++
			if err := rawsock.Connect(fds[i], addrs[i]); err == unix.EINPROGRESS && rawsock.Ready(fds[i], unix.POLLOUT) == 0 {
				pfd := []unix.PollFd{{Fd: int32(fds[i]), Events: unix.POLLOUT}}
				unix.Poll(pfd, 500)
			}
			if err := rawsock.Disconnect(fds[i]); err != nil {
				return fmt.Errorf("disconnect: %v", err)
			}
		}
	}
}

// measureHAProxy runs HAProxy's own checks (`check inter`) against the same
// backends, for a side-by-side figure on this machine.
func measureHAProxy(lns []net.Listener, dur, interval time.Duration, check string, seen func() int64) (float64, int64, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			return 0, 0, err
		}
		bin = "/usr/sbin/haproxy"
	}
	dir, err := os.MkdirTemp("", "haproxy-checks")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "global\n    nbthread 2\ndefaults\n    mode tcp\n    timeout connect 500ms\n    timeout check 500ms\n    timeout client 5s\n    timeout server 5s\n")
	fmt.Fprintf(&cfg, "listen bench\n    bind 127.0.0.1:%d\n", freePort())
	if check == "http" {
		cfg.WriteString("    option httpchk GET /\n")
	}
	for i, ln := range lns {
		fmt.Fprintf(&cfg, "    server s%d %s check inter %dms\n", i, ln.Addr(), interval.Milliseconds())
	}
	path := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(path, []byte(cfg.String()), 0o644)
	cmd := exec.Command(bin, "-f", path, "-q")
	return measurePeer(cmd, 3*time.Second, dur, seen)
}

// measurePeer starts cmd, lets it settle, and returns its CPU as a share
// of one core over dur and the checks per second the backends saw.
func measurePeer(cmd *exec.Cmd, settle, dur time.Duration, seen func() int64) (float64, int64, error) {
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(settle)
	a0 := seen()
	c0, err := procstat.CPU(cmd.Process.Pid)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	time.Sleep(dur)
	c1, _ := procstat.CPU(cmd.Process.Pid)
	el := time.Since(t0)
	return procstat.PercentOfCore(c1.Since(c0).Total(), el), int64(float64(seen()-a0) / el.Seconds()), nil
}

// tcpAnswered is the connections the listening sockets of this network
// namespace answered, from /proc/net/snmp: the handshakes completed
// (PassiveOpens) and those reset before completing (AttemptFails). An
// edgeroute check completes the handshake and resets; HAProxy's holds
// back the handshake's last ACK and resets, so its checks show only in
// the second. 0 where the counters cannot be read.
func tcpAnswered() int64 {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0
	}
	var names []string
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Tcp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f // the header line comes first
			continue
		}
		var n int64
		for i, name := range names {
			if (name == "PassiveOpens" || name == "AttemptFails") && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				n += v
			}
		}
		return n
	}
	return 0
}
