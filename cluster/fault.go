package cluster

import (
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

// Faults is shared by the fault-injecting transports of a test cluster: it
// drops, duplicates and delays (hence reorders) packets, fails stream dials
// with the loss probability, and cuts traffic between groups of addresses.
// Both ends of a cut are enforced by the sender, so every node of the test
// must use a FaultTransport on the same Faults.
type Faults struct {
	mu       sync.Mutex
	loss     float64
	dup      float64
	maxDelay time.Duration
	side     map[string]int     // address -> partition group; 0 = every group
	oneWay   map[[2]string]bool // (from, to) addresses cut in that direction alone
	rng      *rand.Rand
}

// NewFaults returns a Faults that injects nothing until told to.
func NewFaults(seed uint64) *Faults {
	return &Faults{side: map[string]int{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Set sets the probability of losing a packet (or a stream dial), of
// duplicating one, and the largest random delay of a packet.
func (f *Faults) Set(loss, dup float64, maxDelay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loss, f.dup, f.maxDelay = loss, dup, maxDelay
}

// Partition cuts the listed groups of addresses (host:port) from one
// another, and removes every one-way cut. Addresses not listed reach
// everyone.
func (f *Faults) Partition(groups ...[]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.side, f.oneWay = map[string]int{}, nil
	for i, g := range groups {
		for _, a := range g {
			f.side[a] = i + 1
		}
	}
}

// Heal removes every partition and one-way cut.
func (f *Faults) Heal() { f.Partition() }

// CutOneWay loses what from sends to to, while to still reaches from: a
// route or a firewall rule broken in one direction.
func (f *Faults) CutOneWay(from, to string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.oneWay == nil {
		f.oneWay = map[[2]string]bool{}
	}
	f.oneWay[[2]string{from, to}] = true
}

func (f *Faults) cut(from, to string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, b := f.side[from], f.side[to]
	return a != 0 && b != 0 && a != b || f.oneWay[[2]string{from, to}]
}

// plan decides the fate of one packet: how many copies and their delays.
func (f *Faults) plan() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rng.Float64() < f.loss {
		return nil
	}
	n := 1
	if f.rng.Float64() < f.dup {
		n = 2
	}
	out := make([]time.Duration, n)
	for i := range out {
		if f.maxDelay > 0 {
			out[i] = time.Duration(f.rng.Int64N(int64(f.maxDelay)))
		}
	}
	return out
}

func (f *Faults) dialLost() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rng.Float64() < f.loss
}

// FaultTransport wraps memberlist's network transport: it dials streams
// from the bind address (so firewall rules can tell a POP's cluster traffic
// by its source, on multi-homed hosts and in tests on 127.0.0.x) and, with
// Faults set, injects faults.
type FaultTransport struct {
	inner *memberlist.NetTransport
	self  string
	f     *Faults // nil: no faults
	local net.IP  // nil: any source address
}

var _ memberlist.NodeAwareTransport = (*FaultTransport)(nil)

var errCut = errors.New("fault injection: partitioned")

func (t *FaultTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	return t.inner.FinalAdvertiseAddr(ip, port)
}

func (t *FaultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *FaultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	now := time.Now()
	if t.f == nil {
		return t.inner.WriteToAddress(b, a)
	}
	if t.f.cut(t.self, a.Addr) {
		return now, nil // lost on the wire
	}
	for _, d := range t.f.plan() {
		if d == 0 {
			if _, err := t.inner.WriteToAddress(b, a); err != nil {
				return now, err
			}
			continue
		}
		buf := append([]byte(nil), b...)
		time.AfterFunc(d, func() { t.inner.WriteToAddress(buf, a) })
	}
	return now, nil
}

func (t *FaultTransport) PacketCh() <-chan *memberlist.Packet { return t.inner.PacketCh() }

func (t *FaultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *FaultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.f != nil && (t.f.cut(t.self, a.Addr) || t.f.dialLost()) {
		return nil, errCut
	}
	d := net.Dialer{Timeout: timeout}
	if t.local != nil {
		d.LocalAddr = &net.TCPAddr{IP: t.local}
	}
	return d.Dial("tcp", a.Addr)
}

func (t *FaultTransport) StreamCh() <-chan net.Conn { return t.inner.StreamCh() }
func (t *FaultTransport) Shutdown() error           { return t.inner.Shutdown() }
