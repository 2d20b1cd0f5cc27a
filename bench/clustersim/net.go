package main

import (
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// simNet is the simulated network: every node's packets and streams pass
// through it and arrive after the latency of the pair of regions, with
// jitter; it loses packets (and stream dials) with a probability and cuts
// one region off from the others on demand. It is the only part of the
// cluster that is not real.
type simNet struct {
	seed   uint64
	mu     sync.RWMutex
	nodes  map[string]*simTransport // by address
	loss   float64
	cutOff int     // region cut from every other; -1: none
	scale  float64 // latencies are multiplied by it (0: none added, as on loopback)

	// The simulator's own delay: how late timers deliver packets and
	// stream data compared to when they were due (sampled).
	lateMu  sync.Mutex
	late    []time.Duration
	lateN   atomic.Uint64
	packets atomic.Uint64
}

func newSimNet(seed uint64) *simNet {
	return &simNet{seed: seed, nodes: map[string]*simTransport{}, cutOff: -1, scale: 1}
}

// baseLatency is the one-way latency of a pair of nodes: within a region
// 2–10 ms, across regions 50–200 ms, fixed per pair (a path does not
// change its length) and the same both ways.
func (s *simNet) baseLatency(a, b *simTransport) time.Duration {
	x, y := a.addr, b.addr
	if x > y {
		x, y = y, x
	}
	h := fnv.New64a()
	h.Write([]byte(x))
	h.Write([]byte{0})
	h.Write([]byte(y))
	f := float64(h.Sum64()%10000) / 10000
	if a.region == b.region {
		return time.Duration(float64(2*time.Millisecond) + f*float64(8*time.Millisecond))
	}
	// Across regions: the region pair sets the distance, the node pair
	// varies it by ±10 %.
	r1, r2 := min(a.region, b.region), max(a.region, b.region)
	rh := fnv.New64a()
	rh.Write([]byte{byte(r1), byte(r2), byte(s.seed)})
	rf := float64(rh.Sum64()%10000) / 10000
	d := 50*time.Millisecond + time.Duration(rf*float64(150*time.Millisecond))
	return time.Duration(float64(d) * (0.9 + 0.2*f))
}

// latency is one packet's one-way delay: the pair's base plus jitter
// (exponential, mean 5 % of the base).
func (s *simNet) latency(a, b *simTransport) time.Duration {
	base := time.Duration(float64(s.baseLatency(a, b)) * s.scale)
	return base + time.Duration(rand.ExpFloat64()*0.05*float64(base))
}

func (s *simNet) cut(a, b *simTransport) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cutOff >= 0 && a.region != b.region && (a.region == s.cutOff || b.region == s.cutOff)
}

func (s *simNet) lost() bool {
	s.mu.RLock()
	l := s.loss
	s.mu.RUnlock()
	return l > 0 && rand.Float64() < l
}

// Partition cuts region r off from all others; -1 heals.
func (s *simNet) Partition(r int) {
	s.mu.Lock()
	s.cutOff = r
	s.mu.Unlock()
}

func (s *simNet) SetLoss(p float64) {
	s.mu.Lock()
	s.loss = p
	s.mu.Unlock()
}

func (s *simNet) lookup(addr string) *simTransport {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nodes[addr]
}

// noteLate records how late the simulator delivered something due at due.
func (s *simNet) noteLate(due time.Time) {
	if s.lateN.Add(1)%16 != 0 {
		return
	}
	d := time.Since(due)
	s.lateMu.Lock()
	s.late = append(s.late, d)
	s.lateMu.Unlock()
}

// takeLate returns and forgets the lateness samples.
func (s *simNet) takeLate() []time.Duration {
	s.lateMu.Lock()
	defer s.lateMu.Unlock()
	out := s.late
	s.late = nil
	return out
}

// simTransport is one node's memberlist transport on the simulated network.
type simTransport struct {
	net      *simNet
	addr     string // host:port
	ip       net.IP
	port     int
	region   int
	packetCh chan *memberlist.Packet
	streamCh chan net.Conn
	sent     atomic.Uint64 // bytes handed to the network, packets and streams
	closed   atomic.Bool
}

func (s *simNet) add(ip net.IP, port, region int) *simTransport {
	t := &simTransport{net: s, ip: ip, port: port, region: region,
		addr:     net.JoinHostPort(ip.String(), itoa(port)),
		packetCh: make(chan *memberlist.Packet, 1024), streamCh: make(chan net.Conn, 1024)}
	s.mu.Lock()
	s.nodes[t.addr] = t
	s.mu.Unlock()
	return t
}

var _ memberlist.NodeAwareTransport = (*simTransport)(nil)

type simAddr string

func (a simAddr) Network() string { return "sim" }
func (a simAddr) String() string  { return string(a) }

func (t *simTransport) FinalAdvertiseAddr(string, int) (net.IP, int, error) {
	return t.ip, t.port, nil
}

func (t *simTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *simTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	t.sent.Add(uint64(len(b)))
	to := t.net.lookup(a.Addr)
	if to == nil || t.net.cut(t, to) || t.net.lost() {
		return now, nil // lost on the wire
	}
	buf := append([]byte(nil), b...)
	due := now.Add(t.net.latency(t, to))
	t.net.packets.Add(1)
	time.AfterFunc(time.Until(due), func() {
		t.net.noteLate(due)
		if to.closed.Load() || t.net.cut(t, to) {
			return
		}
		select {
		case to.packetCh <- &memberlist.Packet{Buf: buf, From: simAddr(t.addr), Timestamp: time.Now()}:
		default: // a full socket buffer drops
		}
	})
	return now, nil
}

func (t *simTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }

func (t *simTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

var (
	errUnreachable = errors.New("simulated network: unreachable")
	errRefused     = errors.New("simulated network: connection refused")
)

// DialAddressTimeout opens a stream after a round trip (the handshake);
// a cut, a lost dial or a closed listener fails after the timeout, as a
// dial into a black hole does.
func (t *simTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	to := t.net.lookup(a.Addr)
	if to == nil || to.closed.Load() || t.closed.Load() {
		return nil, errRefused
	}
	if t.net.cut(t, to) || t.net.lost() {
		time.Sleep(timeout)
		return nil, errUnreachable
	}
	rtt := 2 * t.net.latency(t, to)
	if rtt > timeout {
		time.Sleep(timeout)
		return nil, errUnreachable
	}
	time.Sleep(rtt)
	c, s := newSimConnPair(t, to)
	select {
	case to.streamCh <- s:
	default:
		return nil, errUnreachable // backlog full
	}
	return c, nil
}

func (t *simTransport) StreamCh() <-chan net.Conn { return t.streamCh }

func (t *simTransport) Shutdown() error {
	t.closed.Store(true)
	return nil
}

// pipe is one direction of a stream: chunks become readable at their due
// time, in order.
type pipe struct {
	mu     sync.Mutex
	chunks []chunk
	closed bool
	wake   chan struct{}
}

type chunk struct {
	b   []byte
	due time.Time
}

func newPipe() *pipe { return &pipe{wake: make(chan struct{}, 1)} }

func (p *pipe) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// simConn is one end of a stream.
type simConn struct {
	from, to *simTransport
	in, out  *pipe
	rdMu     sync.Mutex
	rdDL     time.Time
	lastDue  time.Time
}

func newSimConnPair(a, b *simTransport) (*simConn, *simConn) {
	ab, ba := newPipe(), newPipe()
	return &simConn{from: a, to: b, in: ba, out: ab}, &simConn{from: b, to: a, in: ab, out: ba}
}

func (c *simConn) Read(b []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		c.in.mu.Lock()
		if len(c.in.chunks) > 0 && !time.Now().Before(c.in.chunks[0].due) {
			ch := &c.in.chunks[0]
			c.from.net.noteLate(ch.due)
			n := copy(b, ch.b)
			ch.b = ch.b[n:]
			if len(ch.b) == 0 {
				c.in.chunks = c.in.chunks[1:]
			}
			c.in.mu.Unlock()
			return n, nil
		}
		if len(c.in.chunks) == 0 && c.in.closed {
			c.in.mu.Unlock()
			return 0, io.EOF
		}
		wait := time.Hour
		if len(c.in.chunks) > 0 {
			wait = time.Until(c.in.chunks[0].due)
		}
		c.in.mu.Unlock()
		c.rdMu.Lock()
		dl := c.rdDL
		c.rdMu.Unlock()
		if !dl.IsZero() {
			if until := time.Until(dl); until <= 0 {
				return 0, os.ErrDeadlineExceeded
			} else if until < wait {
				wait = until
			}
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-c.in.wake:
		case <-timer.C:
		}
	}
}

func (c *simConn) Write(b []byte) (int, error) {
	c.from.sent.Add(uint64(len(b)))
	if c.from.net.cut(c.from, c.to) {
		return len(b), nil // lost; the reader times out
	}
	c.out.mu.Lock()
	defer c.out.mu.Unlock()
	if c.out.closed {
		return 0, io.ErrClosedPipe
	}
	due := time.Now().Add(c.from.net.latency(c.from, c.to))
	if due.Before(c.lastDue) {
		due = c.lastDue // a stream keeps its order
	}
	c.lastDue = due
	c.out.chunks = append(c.out.chunks, chunk{b: append([]byte(nil), b...), due: due})
	c.out.signal()
	return len(b), nil
}

// Close ends both directions: the peer reads what was sent, then EOF
// (the FIN travels behind the data).
func (c *simConn) Close() error {
	for _, p := range []*pipe{c.out, c.in} {
		p.mu.Lock()
		p.closed = true
		p.signal()
		p.mu.Unlock()
	}
	return nil
}

func (c *simConn) LocalAddr() net.Addr  { return simAddr(c.from.addr) }
func (c *simConn) RemoteAddr() net.Addr { return simAddr(c.to.addr) }
func (c *simConn) SetDeadline(t time.Time) error {
	return c.SetReadDeadline(t)
}
func (c *simConn) SetReadDeadline(t time.Time) error {
	c.rdMu.Lock()
	c.rdDL = t
	c.rdMu.Unlock()
	c.in.signal()
	return nil
}
func (c *simConn) SetWriteDeadline(time.Time) error { return nil }

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	if i == 0 {
		return "0"
	}
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
