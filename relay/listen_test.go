//go:build linux

package relay

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testnet"
)

// scripted is a Router that sends each client to the next address of a
// list, and records what the engine reported back.
type scripted struct {
	mu      sync.Mutex
	targets []netip.AddrPort
	head    []byte
	timeout time.Duration
	results []Result
	seen    []int // c.Tried at each call
	done    chan Result
}

func (s *scripted) Route(c *Client) (Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = append(s.seen, c.Tried)
	if c.Tried >= len(s.targets) {
		return Target{}, false
	}
	return Target{
		Addr:        s.targets[c.Tried],
		DialTimeout: s.timeout,
		Head:        s.head,
		Done: func(r Result) {
			s.mu.Lock()
			s.results = append(s.results, r)
			s.mu.Unlock()
			if s.done != nil {
				s.done <- r
			}
		},
	}, true
}

func (s *scripted) snapshot() ([]Result, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.results...), append([]int(nil), s.seen...)
}

// serveRouter starts a listener on a loopback port served by e.
func serveRouter(t *testing.T, e *Engine, r Router) (*Listener, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l, err := e.ListenFile(f, r)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, l.Addr().String()
}

// upperBackend answers each connection with everything it read, upper-cased,
// after the client half-closes; then it closes.
func upperBackend(t *testing.T) netip.AddrPort {
	t.Helper()
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil { // out of descriptors, as net/http's server does
				time.Sleep(5 * time.Millisecond)
				continue
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(bytes.ToUpper(b))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// refusedAddr is a loopback port nothing listens on.
func refusedAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	ln := listen(t)
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	return addr
}

func exchange(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestListenerRelaysAndHalfCloses(t *testing.T) {
	e := engine(t)
	r := &scripted{targets: []netip.AddrPort{upperBackend(t)}, done: make(chan Result, 1)}
	_, addr := serveRouter(t, e, r)
	got, err := exchange(t, addr, "hello through the listener")
	if err != nil || got != "HELLO THROUGH THE LISTENER" {
		t.Fatalf("got %q, %v", got, err)
	}
	res := <-r.done
	if res.DialFailed || res.Err != nil || res.ClientToBackend != 26 || res.BackendToClient != 26 {
		t.Fatalf("result %+v", res)
	}
}

func TestListenerSendsHeadFirst(t *testing.T) {
	e := engine(t)
	r := &scripted{targets: []netip.AddrPort{upperBackend(t)}, head: []byte("proxy header;")}
	_, addr := serveRouter(t, e, r)
	got, err := exchange(t, addr, "payload")
	if err != nil || got != "PROXY HEADER;PAYLOAD" {
		t.Fatalf("got %q, %v", got, err)
	}
	// A client that sends nothing still gets the head to its backend.
	got, err = exchange(t, addr, "")
	if err != nil || got != "PROXY HEADER;" {
		t.Fatalf("silent client: got %q, %v", got, err)
	}
}

func TestListenerTriesTheNextBackendWhenADialFails(t *testing.T) {
	e := engine(t)
	dead := refusedAddr(t)
	r := &scripted{targets: []netip.AddrPort{dead, upperBackend(t)}, head: []byte(">"), done: make(chan Result, 2)}
	_, addr := serveRouter(t, e, r)
	got, err := exchange(t, addr, "retry")
	if err != nil || got != ">RETRY" {
		t.Fatalf("got %q, %v", got, err)
	}
	first := <-r.done
	if !first.DialFailed || !errors.Is(first.Err, syscall.ECONNREFUSED) {
		t.Fatalf("the dead backend's result: %+v", first)
	}
	if second := <-r.done; second.DialFailed || second.Err != nil {
		t.Fatalf("the live backend's result: %+v", second)
	}
	if _, seen := r.snapshot(); len(seen) != 2 || seen[0] != 0 || seen[1] != 1 {
		t.Fatalf("Route saw Tried %v, want [0 1]", seen)
	}
}

func TestListenerDialTimeout(t *testing.T) {
	e := engine(t)
	hung := testnet.HungListener(t)
	r := &scripted{targets: []netip.AddrPort{hung, upperBackend(t)}, timeout: 200 * time.Millisecond, done: make(chan Result, 2)}
	_, addr := serveRouter(t, e, r)
	start := time.Now()
	got, err := exchange(t, addr, "late")
	if err != nil || got != "LATE" {
		t.Fatalf("got %q, %v", got, err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 3*time.Second {
		t.Fatalf("served after %v, want just past the 200ms dial timeout", took)
	}
	if first := <-r.done; !first.DialFailed || !errors.Is(first.Err, ErrDialTimeout) {
		t.Fatalf("the hung backend's result: %+v", first)
	}
}

func TestListenerClosesAClientNoBackendTakes(t *testing.T) {
	e := engine(t)
	r := &scripted{targets: []netip.AddrPort{refusedAddr(t), refusedAddr(t)}}
	_, addr := serveRouter(t, e, r)
	start := time.Now()
	got, err := exchange(t, addr, "anyone?")
	if got != "" || time.Since(start) > 2*time.Second {
		t.Fatalf("got %q, %v after %v; want the connection closed at once", got, err, time.Since(start))
	}
	results, seen := r.snapshot()
	if len(results) != 2 || !results[0].DialFailed || !results[1].DialFailed || len(seen) != 3 {
		t.Fatalf("results %+v, Route calls %v", results, seen)
	}
}

func TestListenerCloseKeepsConnectionsInFlight(t *testing.T) {
	e := engine(t)
	back := listen(t)
	r := &scripted{targets: []netip.AddrPort{netip.MustParseAddrPort(back.Addr().String())}}
	l, addr := serveRouter(t, e, r)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	bc, err := back.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	l.Close()
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("the closed listener still accepts")
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	bc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(bc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("backend read %q, %v", buf, err)
	}
	io.WriteString(bc, "pong")
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "pong" {
		t.Fatalf("client read %q, %v", buf, err)
	}
}

func TestListenerUnderManyClients(t *testing.T) {
	e := engine(t)
	r := &scripted{targets: []netip.AddrPort{upperBackend(t)}}
	_, addr := serveRouter(t, e, r)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := string(rune('a'+i%26)) + "-message"
			got, err := exchange(t, addr, msg)
			if err != nil || got != string(bytes.ToUpper([]byte(msg))) {
				errs <- errors.New("client " + msg + ": got " + got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Done runs just after the last byte reaches each client.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		results, _ := r.snapshot()
		if len(results) == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results for 200 clients", len(results))
		}
	}
}

// failures is a scripted Router that also hears of accept failures.
type failures struct {
	*scripted
	mu   sync.Mutex
	errs []error
}

func (f *failures) AcceptFailed(_ netip.AddrPort, err error, _ time.Duration) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *failures) count() (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.errs) == 0 {
		return 0, nil
	}
	return len(f.errs), f.errs[0]
}

// Out of descriptors, a loop cannot take a waiting connection off the
// queue, and the listener stays readable: the loop stops accepting for a
// while instead of spinning, reports why, and takes the connection once
// descriptors are free again.
func TestListenerPausesWhileOutOfDescriptors(t *testing.T) {
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	e, err := New(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	r := &failures{scripted: &scripted{targets: []netip.AddrPort{upperBackend(t)}}}
	_, addr := serveRouter(t, e, r)

	// Lower the limit to just above the descriptors in use and fill it.
	var fillers []*os.File
	release := func() {
		for _, f := range fillers {
			f.Close()
		}
		fillers = nil
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit)
	}
	defer release()
	low := limit
	low.Cur = uint64(highestFD(t) + 32)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatal(err)
			}
			break
		}
		fillers = append(fillers, f)
	}
	// One descriptor for the client; the loop's accept gets none.
	fillers[len(fillers)-1].Close()
	fillers = fillers[:len(fillers)-1]
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	time.Sleep(500 * time.Millisecond)
	n, first := r.count()
	if !errors.Is(first, syscall.EMFILE) {
		t.Fatalf("accept failure reported: %v, want EMFILE", first)
	}
	// A loop spinning on the readable listener would fail thousands of
	// times; one that pauses 100 ms between tries, about five.
	if n > 10 {
		t.Fatalf("%d accept failures in 500 ms: the loop spins instead of pausing", n)
	}
	t.Logf("%d accept failures reported in 500 ms out of descriptors", n)

	release()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "served after all")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "SERVED AFTER ALL" {
		t.Fatalf("once descriptors are free: got %q, %v", got, err)
	}
}

// highestFD is the highest descriptor the process has open.
func highestFD(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	high := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > high {
			high = n
		}
	}
	return high
}
