// Command idleconns measures what idle proxied TCP connections cost a proxy.
//
// It plays both ends of the path:
//
//	idleconns -listen 127.0.0.1:18190
//
// runs the backend: it accepts connections, answers the one-byte greeting
// of each (so the client knows the whole path is established) and then keeps
// the connection open, silent, until the peer closes it. It runs until
// SIGINT/SIGTERM.
//
//	idleconns -target 127.0.0.1:18191 -n 10000 -pid 1234
//
// runs the client: it reads the resident memory (VmRSS in /proc/PID/status)
// of the proxy process(es) named by -pid, opens -n connections to -target (a
// proxy that forwards to the backend), completes the greeting on each, waits
// -settle, reads VmRSS again, closes everything and prints one line of
// key=value pairs on stdout. It exits non-zero if any connection failed.
//
// Both modes can run in one process (-listen and -target together); that
// process then needs two descriptors per connection instead of one.
//
// Client sockets are bound round-robin to -sources loopback addresses
// (127.0.0.1, 127.0.0.2, ...) with IP_BIND_ADDRESS_NO_PORT, so the number of
// connections is not limited by one source address's ephemeral port range.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/procstat"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from <linux/in.h>; the
// syscall package does not define it.
const ipBindAddressNoPort = 24

const (
	greeting = 'x'
	answer   = 'y'
)

func main() {
	var (
		listen   = flag.String("listen", "", "run the backend on this address (accept, answer the greeting, hold)")
		target   = flag.String("target", "", "open connections to this address (the proxy)")
		n        = flag.Int("n", 10000, "number of connections to open and hold")
		pids     = flag.String("pid", "", "comma-separated PIDs whose VmRSS is reported (summed) before and after")
		sources  = flag.Int("sources", 4, "bind client sockets round-robin to 127.0.0.1 .. 127.0.0.N (0: let the kernel choose)")
		parallel = flag.Int("parallel", 32, "connections being opened at the same time")
		timeout  = flag.Duration("timeout", 10*time.Second, "time allowed for one connection to connect and complete the greeting")
		settle   = flag.Duration("settle", 2*time.Second, "wait after the last connection is established before reading VmRSS")
		hold     = flag.Duration("hold", 0, "keep the connections open this much longer after the measurement")
		maxFail  = flag.Int("maxfail", 10, "stop opening connections after this many failures")
		fit      = flag.Bool("fit", true, "with one -pid: after a probe batch, hold fewer than -n connections if the proxy's RLIMIT_NOFILE cannot take -n at the descriptors per connection it uses")
	)
	flag.Parse()
	if *listen == "" && *target == "" {
		fmt.Fprintln(os.Stderr, "idleconns: need -listen, -target or both")
		flag.Usage()
		os.Exit(2)
	}

	fds := 64
	if *listen != "" {
		fds += *n
	}
	if *target != "" {
		fds += *n
	}
	if err := raiseNofile(uint64(fds)); err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		os.Exit(1)
	}

	if *target == "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
			os.Exit(1)
		}
		go serve(ln)
		fmt.Fprintf(os.Stderr, "idleconns: backend listening on %s\n", ln.Addr())
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		return
	}

	var backend *backendStats
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
			os.Exit(1)
		}
		backend = serve(ln)
		defer ln.Close()
	}

	pidList, err := parsePIDs(*pids)
	if err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		os.Exit(2)
	}
	cfg := config{
		target: *target, n: *n, pids: pidList, sources: *sources, parallel: *parallel,
		timeout: *timeout, settle: *settle, hold: *hold, maxFail: *maxFail, fit: *fit,
	}
	if err := run(cfg, backend); err != nil {
		fmt.Fprintf(os.Stderr, "idleconns: %v\n", err)
		os.Exit(1)
	}
}

// raiseNofile lifts RLIMIT_NOFILE to at least want (the hard limit too, if
// the process may), or fails saying how many descriptors are missing.
func raiseNofile(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur >= want {
		return nil
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			return nil
		}
		return fmt.Errorf("need %d file descriptors but the hard RLIMIT_NOFILE is %d and cannot be raised (lower -n)", want, lim.Max)
	}
	lim.Cur = want
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

type backendStats struct {
	accepted atomic.Int64 // connections accepted
	greeted  atomic.Int64 // connections that completed the greeting
	open     atomic.Int64 // connections currently open
}

// serve accepts connections on ln until it is closed. Each connection must
// send the one-byte greeting; it gets the answer and is then held open until
// the peer closes it. Connections that send something else, or nothing (a
// health check, say), are held the same way and simply not counted as greeted.
func serve(ln net.Listener) *backendStats {
	st := &backendStats{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				time.Sleep(10 * time.Millisecond) // EMFILE and the like
				continue
			}
			st.accepted.Add(1)
			st.open.Add(1)
			go func() {
				defer st.open.Add(-1)
				defer c.Close()
				var b [1]byte
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				if b[0] == greeting {
					if _, err := c.Write([]byte{answer}); err != nil {
						return
					}
					st.greeted.Add(1)
				}
				// Hold: block until the peer closes (or sends more, which is ignored).
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return st
}

func parsePIDs(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := strconv.Atoi(f)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("bad -pid %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}

// rssKB returns the sum of VmRSS (in kB) of the given processes, or -1 when
// no PID was given.
func rssKB(pids []int) (int64, error) {
	if len(pids) == 0 {
		return -1, nil
	}
	var total int64
	for _, p := range pids {
		kb, err := procstat.ResidentKB(p)
		if err != nil {
			return 0, err
		}
		total += kb
	}
	return total, nil
}

func dialer(src net.IP, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				// Pick the port at connect() time, per destination, not at bind().
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return d
}

// open connects once and completes the greeting.
func open(ctx context.Context, d *net.Dialer, target string, timeout time.Duration) (net.Conn, error) {
	c, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{greeting}); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("waiting for the backend's answer: %w", err)
	}
	if b[0] != answer {
		c.Close()
		return nil, fmt.Errorf("unexpected answer %q", b[0])
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// quiet reports whether c is still open with nothing to read: a
// non-blocking MSG_PEEK finds no data (EAGAIN) rather than EOF, an error or
// bytes.
func quiet(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(rerr, syscall.EAGAIN)
		return true // never wait for readiness
	})
	return err == nil && alive
}

type config struct {
	target            string
	n                 int
	pids              []int
	sources, parallel int
	timeout           time.Duration
	settle, hold      time.Duration
	maxFail           int
	fit               bool
}

// fdCount returns the number of open descriptors of the given processes.
func fdCount(pids []int) (int, error) {
	total := 0
	for _, p := range pids {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p))
		if err != nil {
			return 0, err
		}
		total += len(ents)
	}
	return total, nil
}

// nofileSoft returns the soft RLIMIT_NOFILE of a process (-1: unlimited).
func nofileSoft(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) < 1 {
				break
			}
			if f[0] == "unlimited" {
				return -1, nil
			}
			return strconv.Atoi(f[0])
		}
	}
	return 0, fmt.Errorf("no open files limit in /proc/%d/limits", pid)
}

type opener struct {
	cfg      config
	dialers  []*net.Dialer
	conns    []net.Conn
	failed   atomic.Int64
	errMu    sync.Mutex
	firstErr error
}

// open opens connections [lo, hi) with cfg.parallel workers, stopping early
// once cfg.maxFail connections have failed.
func (o *opener) open(lo, hi int) {
	var next atomic.Int64
	next.Store(int64(lo))
	var wg sync.WaitGroup
	ctx := context.Background()
	for w := 0; w < o.cfg.parallel; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= hi || o.failed.Load() >= int64(o.cfg.maxFail) {
					return
				}
				c, err := open(ctx, o.dialers[i%len(o.dialers)], o.cfg.target, o.cfg.timeout)
				if err != nil {
					o.failed.Add(1)
					o.errMu.Lock()
					if o.firstErr == nil {
						o.firstErr = err
					}
					o.errMu.Unlock()
					continue
				}
				o.conns[i] = c
			}
		}()
	}
	wg.Wait()
}

func run(cfg config, backend *backendStats) error {
	if cfg.parallel < 1 {
		cfg.parallel = 1
	}
	if cfg.maxFail < 1 {
		cfg.maxFail = 1
	}
	o := &opener{cfg: cfg, dialers: []*net.Dialer{dialer(nil, cfg.timeout)}}
	if cfg.sources > 0 {
		o.dialers = o.dialers[:0]
		for i := 0; i < cfg.sources; i++ {
			o.dialers = append(o.dialers, dialer(net.IPv4(127, 0, 0, byte(1+i)), cfg.timeout))
		}
	}

	before, err := rssKB(cfg.pids)
	if err != nil {
		return fmt.Errorf("reading VmRSS: %w", err)
	}
	fdsBefore, err := fdCount(cfg.pids)
	if err != nil {
		return fmt.Errorf("counting descriptors: %w", err)
	}

	n := cfg.n
	o.conns = make([]net.Conn, n)
	start := time.Now()
	cappedFrom := 0
	probe := 0
	if cfg.fit && len(cfg.pids) == 1 {
		probe = min(200, n)
		o.open(0, probe)
		if o.failed.Load() == 0 {
			fdsProbe, err := fdCount(cfg.pids)
			if err != nil {
				return fmt.Errorf("counting descriptors: %w", err)
			}
			limit, err := nofileSoft(cfg.pids[0])
			if err != nil {
				return err
			}
			per := float64(fdsProbe-fdsBefore) / float64(probe)
			if limit > 0 && per > 0 {
				margin := max(64, limit/200)
				fit := int(float64(limit-fdsBefore-margin) / per)
				if fit < n {
					fit = max(probe, fit/100*100)
					fmt.Fprintf(os.Stderr, "idleconns: the proxy uses %.2f descriptors per connection; its RLIMIT_NOFILE %d takes about %d, holding %d instead of %d\n",
						per, limit, int(float64(limit-fdsBefore)/per), fit, n)
					cappedFrom, n = n, fit
				}
			}
		}
	}
	if o.failed.Load() == 0 {
		o.open(probe, n)
	}
	setup := time.Since(start)
	conns := o.conns[:n]
	for _, c := range o.conns[n:] {
		if c != nil {
			c.Close()
		}
	}
	established := 0
	for _, c := range conns {
		if c != nil {
			established++
		}
	}

	time.Sleep(cfg.settle)
	// A connection the proxy dropped while we waited would make the figure
	// meaningless: check that every one is still open (a read must time out).
	var dropped int
	for _, c := range conns {
		if c != nil && !quiet(c) {
			dropped++
		}
	}
	after, err := rssKB(cfg.pids)
	if err != nil {
		return fmt.Errorf("reading VmRSS: %w", err)
	}
	fdsAfter, err := fdCount(cfg.pids)
	if err != nil {
		return fmt.Errorf("counting descriptors: %w", err)
	}
	var backendOpen int64 = -1
	if backend != nil {
		backendOpen = backend.open.Load()
	}
	time.Sleep(cfg.hold)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}

	held := established - dropped
	failed := o.failed.Load()
	fmt.Printf("target=%s n=%d established=%d failed=%d dropped=%d held=%d setup_ms=%d",
		cfg.target, n, established, failed, dropped, held, setup.Milliseconds())
	if cappedFrom > 0 {
		fmt.Printf(" capped_from=%d", cappedFrom)
	}
	if backendOpen >= 0 {
		fmt.Printf(" backend_open=%d", backendOpen)
	}
	if len(cfg.pids) > 0 {
		delta := after - before
		perK, perConn := 0.0, 0.0
		if held > 0 {
			perK = float64(delta) / 1024 / float64(held) * 1000
			perConn = float64(fdsAfter-fdsBefore) / float64(held)
		}
		fmt.Printf(" rss_before_kb=%d rss_after_kb=%d rss_delta_kb=%d mb_per_1k=%.2f fds_before=%d fds_after=%d fds_per_conn=%.2f",
			before, after, delta, perK, fdsBefore, fdsAfter, perConn)
	}
	fmt.Println()

	if failed > 0 {
		return fmt.Errorf("%d connections failed (gave up after %d); first error: %v", failed, cfg.maxFail, o.firstErr)
	}
	if dropped > 0 {
		return fmt.Errorf("%d of %d connections were closed while held", dropped, n)
	}
	return nil
}
