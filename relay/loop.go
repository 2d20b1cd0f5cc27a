//go:build linux

package relay

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

const (
	scratchSize  = 64 << 10 // a read this full marks a bulk transfer
	maxIdlePipes = 64       // pipes a loop keeps for the next bulk transfer
	spliceFlags  = unix.SPLICE_F_MOVE | unix.SPLICE_F_NONBLOCK
)

// loop is one event loop and the pairs it relays. Only its goroutine
// touches a pair after add, so pair state needs no synchronisation; mu
// guards the maps against add.
type loop struct {
	epfd, wakefd int
	// pollFile is epfd registered with the Go runtime's poller: the loop
	// waits for its own epoll set to become ready by parking its goroutine,
	// not by blocking a thread in epoll_wait.
	pollFile  *os.File
	mu        sync.Mutex
	socks     map[int32]*sock
	pairs     map[*pair]struct{}
	listeners map[int32]*listening
	dialing   []*pair       // connects in flight, for their timeouts
	tags      uint32        // the last socket tag given out (see watch)
	paused    []*listening  // listeners this loop stopped accepting from for a while
	scan      time.Duration // idle check interval, 0 when no pair has an idle timeout
	scratch   []byte
	pipes     []pipe
	events    []unix.EpollEvent
	closing   atomic.Bool
	stopped   chan struct{}
}

type pipe struct{ r, w int }

// sock is one side of a pair. out is the direction that reads from it.
type sock struct {
	fd       int
	pair     *pair
	peer     *sock
	out      direction
	interest uint32 // current epoll events
	tag      uint32 // see watch
}

// direction is the flow of bytes read from one socket and written to its
// peer.
type direction struct {
	pending []byte // read, not yet accepted by the peer
	pipe    *pipe  // set while a bulk transfer is spliced
	inPipe  int
	eof     bool // the source ended
	shut    bool // the peer got our SHUT_WR
	bulk    bool // the last read filled the scratch buffer
	bytes   int64
}

type pair struct {
	client, backend *sock
	idle            time.Duration
	last            time.Time
	done            func(Result)

	// For a connection a Listener accepted: its router, the client as the
	// router sees it, and the backend being dialled.
	lis        *Listener
	from       Client
	target     netip.AddrPort
	deadline   time.Time // of the connect in flight; zero for none
	headLen    int       // bytes of the target's head at the start of client.out.pending
	dialing    bool      // the backend's handshake is not known to be over
	start      bool      // the client's first bytes are still to be read
	registered bool      // the client is in the epoll set
}

// connecting tells that s is a backend whose handshake is not known to be
// over.
func (s *sock) connecting() bool { return s.pair.dialing && s == s.pair.backend }

// newPair allocates a pair and both its sockets at once.
func newPair(cfd, bfd int) *pair {
	m := &struct {
		p    pair
		c, b sock
	}{}
	p := &m.p
	m.c = sock{fd: cfd, pair: p, peer: &m.b}
	m.b = sock{fd: bfd, pair: p, peer: &m.c}
	p.client, p.backend = &m.c, &m.b
	return p
}

func newLoop() (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := rawsock.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, unix.EPOLLIN, 0); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return &loop{
		epfd: epfd, wakefd: wakefd, pollFile: os.NewFile(uintptr(epfd), "relay-epoll"),
		socks:     map[int32]*sock{},
		pairs:     map[*pair]struct{}{},
		listeners: map[int32]*listening{},
		scratch:   make([]byte, scratchSize),
		events:    make([]unix.EpollEvent, 256),
		stopped:   make(chan struct{}),
	}, nil
}

func (l *loop) add(cfd, bfd int, idle time.Duration, done func(Result)) error {
	p := newPair(cfd, bfd)
	p.idle, p.last, p.done, p.registered = idle, time.Now(), done, true
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range []*sock{p.client, p.backend} {
		s.interest = unix.EPOLLIN | unix.EPOLLRDHUP
		if err := l.watch(s); err != nil {
			if s == p.backend {
				rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, cfd, 0, 0)
			}
			rawsock.Close(cfd)
			rawsock.Close(bfd)
			return err
		}
	}
	l.socks[int32(cfd)], l.socks[int32(bfd)] = p.client, p.backend
	l.pairs[p] = struct{}{}
	if idle > 0 {
		l.watchIdle(idle)
	}
	return nil
}

// watchIdle makes the loop check for idle pairs often enough for idle.
func (l *loop) watchIdle(idle time.Duration) {
	if step := max(idle/4, 10*time.Millisecond); l.scan == 0 || step < l.scan {
		l.scan = step
		l.wake() // shorten the loop's current wait
	}
}

func (l *loop) wake() {
	var one = [8]byte{1}
	unix.Write(l.wakefd, one[:])
}

func (l *loop) stop() {
	l.closing.Store(true)
	l.wake()
	<-l.stopped
}

func (l *loop) run() {
	defer close(l.stopped)
	rc, err := l.pollFile.SyscallConn()
	if err != nil {
		return
	}
	lastScan := time.Now()
	var deadline time.Time
	for {
		l.mu.Lock()
		scan := l.scan
		var want time.Time
		if len(l.dialing) > 0 {
			want = l.expireDials(time.Now())
		}
		if len(l.paused) > 0 {
			if next := l.resumeListeners(time.Now()); !next.IsZero() && (want.IsZero() || next.Before(want)) {
				want = next
			}
		}
		l.mu.Unlock()
		if scan > 0 {
			if next := lastScan.Add(scan); want.IsZero() || next.Before(want) {
				want = next
			}
		}
		if !want.Equal(deadline) {
			deadline = want
			l.pollFile.SetReadDeadline(deadline)
		}
		var (
			n    int
			perr error
		)
		// The loop parks as soon as it finds nothing to do. Waiting in
		// epoll_pwait while holding its P instead (for 1 ms, or 100 µs
		// with epoll_pwait2) showed no gain in CPU per request beyond the
		// noise of alternating rounds against HAProxy, and made the rest
		// of the process wait for a P: a loopback ping between two other
		// goroutines went from 50 µs to 230 µs (1.25 ms) at the median
		// while the loops saw light traffic.
		err := rc.Read(func(uintptr) bool {
			n, perr = epollPoll(l.epfd, l.events)
			return n > 0 || (perr != nil && perr != unix.EINTR)
		})
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return // the poll file was closed
		}
		if perr != nil && perr != unix.EINTR {
			return
		}
		l.mu.Lock()
		for i := 0; i < n; i++ {
			ev := l.events[i]
			if int(ev.Fd) == l.wakefd {
				var buf [8]byte
				unix.Read(l.wakefd, buf[:])
				if l.closing.Load() {
					l.closeAll()
					l.mu.Unlock()
					return
				}
				continue
			}
			if s := l.socks[ev.Fd]; s != nil && s.tag == uint32(ev.Pad) {
				l.handle(s, ev.Events)
			} else if ls := l.listeners[ev.Fd]; ls != nil {
				l.accept(ls)
			}
		}
		if scan > 0 && time.Since(lastScan) >= scan {
			lastScan = time.Now()
			l.expireIdle(lastScan)
		}
		l.mu.Unlock()
	}
}

func (l *loop) handle(s *sock, events uint32) {
	p := s.pair
	if s.connecting() {
		if events&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			err := rawsock.Error(s.fd)
			if err == nil {
				err = unix.ECONNRESET
			}
			l.redial(p, err)
			return
		}
		if events&unix.EPOLLOUT == 0 {
			return
		}
		l.connected(p)
	}
	if events&unix.EPOLLERR != 0 {
		l.broken(s, rawsock.Error(s.fd))
		return
	}
	if events&unix.EPOLLOUT != 0 && !l.flush(s) {
		return
	}
	if events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		switch {
		case !s.out.eof && !s.out.blocked():
			if !l.read(s, events&unix.EPOLLRDHUP != 0) {
				return
			}
		case s.out.eof && events&unix.EPOLLHUP == 0 && l.want(s) != s.interest:
			// A source at its end stays readable, and setInterest left
			// it watched: stop watching now that it is seen to matter.
			if err := l.modify(s, l.want(s)); err != nil {
				l.broken(s, err)
				return
			}
		}
	}
	if events&unix.EPOLLHUP != 0 && s.out.eof {
		// The socket is closed both ways: nothing more can be read from
		// it or delivered to it, and a level-triggered HUP would repeat.
		l.finish(p, nil)
	}
}

func (d *direction) blocked() bool { return len(d.pending) > 0 || d.inPipe > 0 }

// read moves what src has to its peer; hup tells that src's peer has shut
// down its side. It reports false when the pair is gone.
func (l *loop) read(src *sock, hup bool) bool {
	d, dst := &src.out, src.peer
	if d.pipe == nil && d.bulk {
		d.pipe = l.getPipe()
	}
	var n int
	var err error
	if d.pipe != nil {
		n, err = spliceRetry(src.fd, d.pipe.w, scratchSize)
	} else {
		n, err = rawsock.Read(src.fd, l.scratch)
	}
	switch {
	case err == unix.EAGAIN:
		return true
	case err != nil:
		l.broken(src, err)
		return false
	case n == 0:
		d.eof = true
		return l.drain(src) && l.update(src)
	}
	if src.pair.idle > 0 {
		src.pair.last = time.Now()
	}
	d.bulk = n == scratchSize
	if d.pipe != nil {
		d.inPipe += n
	} else {
		flags := 0
		if hup && n < len(l.scratch) {
			// The source's FIN came before this read, so the read took
			// all it will ever send: the half-close follows at once, and
			// MSG_MORE lets the FIN leave in the same segment.
			d.eof = true
			flags = unix.MSG_MORE
		}
		w, err := rawsock.Send(dst.fd, l.scratch[:n], flags)
		if err != nil && err != unix.EAGAIN {
			l.broken(dst, err)
			return false
		}
		d.bytes += int64(w)
		if w < n {
			d.pending = append(d.pending[:0], l.scratch[w:n]...)
		}
	}
	return l.drain(src) && l.update(src)
}

// drain pushes src's pending bytes to its peer, sends the half-close once
// the source ended and everything is through, and finishes the pair when
// both directions are done. It reports false when the pair is gone.
func (l *loop) drain(src *sock) bool {
	d, dst := &src.out, src.peer
	if len(d.pending) > 0 {
		w, err := rawsock.Write(dst.fd, d.pending)
		if err != nil && err != unix.EAGAIN && err != unix.ENOTCONN {
			l.broken(dst, err)
			return false
		}
		d.bytes += int64(w)
		d.pending = d.pending[w:]
		if len(d.pending) == 0 {
			d.pending = nil
		}
	}
	if d.inPipe > 0 {
		w, err := spliceRetry(d.pipe.r, dst.fd, d.inPipe)
		if err != nil && err != unix.EAGAIN {
			l.broken(dst, err)
			return false
		}
		w = max(w, 0)
		d.bytes += int64(w)
		d.inPipe -= w
	}
	if d.pipe != nil && d.inPipe == 0 && (!d.bulk || d.eof) {
		l.putPipe(d.pipe)
		d.pipe = nil
	}
	if d.eof && !d.blocked() && !d.shut && !dst.connecting() {
		d.shut = true
		if dst.out.shut {
			// Both directions are through: closing sends the last FIN,
			// a shutdown first would only cost a system call.
			l.finish(src.pair, nil)
			return false
		}
		rawsock.Shutdown(dst.fd, unix.SHUT_WR)
	}
	if d.shut && dst.out.shut {
		l.finish(src.pair, nil)
		return false
	}
	return true
}

// flush is called when dst is writable: it drains the direction that
// writes into dst.
func (l *loop) flush(dst *sock) bool {
	src := dst.peer
	return l.drain(src) && l.update(src)
}

// update sets the epoll interest of both sockets of src's pair from their
// state: read a socket while its direction is open and not waiting for the
// peer; watch a socket for writability while bytes wait for it.
func (l *loop) update(src *sock) bool {
	for _, s := range [2]*sock{src, src.peer} {
		if err := l.setInterest(s); err != nil {
			l.broken(s, err)
			return false
		}
	}
	return true
}

// want is the epoll interest s's state calls for. A backend whose
// handshake is in flight is watched for writability, which tells that it
// is over.
func (l *loop) want(s *sock) uint32 {
	var want uint32
	if !s.out.eof && !s.out.blocked() {
		want |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if s.peer.out.blocked() || s.connecting() {
		want |= unix.EPOLLOUT
	}
	return want
}

func (l *loop) setInterest(s *sock) error {
	want := l.want(s)
	if want == s.interest {
		return nil
	}
	if s.out.eof && want == s.interest&^(unix.EPOLLIN|unix.EPOLLRDHUP) {
		// Reading stops at the source's end, but most pairs are finished
		// before its lingering readability would wake the loop; handle
		// drops the interest if it does.
		return nil
	}
	return l.modify(s, want)
}

func (l *loop) modify(s *sock, want uint32) error {
	s.interest = want
	return rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, s.fd, want, s.tag)
}

// watch adds s to the epoll set with its interest, under a tag no socket
// of the loop had before. The loop accepts, closes and connects while it
// works through a batch of events, so a descriptor closed early in the
// batch can be a new socket by the time the batch reaches an event of the
// old one; the tag tells them apart.
func (l *loop) watch(s *sock) error {
	l.tags++
	s.tag = l.tags
	return rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, s.interest, s.tag)
}

// broken ends s's pair after an error on s; on a backend that has not
// answered yet, the client is routed to the next one instead.
func (l *loop) broken(s *sock, err error) {
	if s.connecting() {
		l.redial(s.pair, err)
		return
	}
	l.finish(s.pair, err)
}

func (l *loop) finish(p *pair, err error) {
	if _, ok := l.pairs[p]; !ok {
		return
	}
	delete(l.pairs, p)
	if p.dialing {
		l.undial(p)
	}
	for _, s := range [2]*sock{p.client, p.backend} {
		if s.fd < 0 {
			continue
		}
		delete(l.socks, int32(s.fd))
		rawsock.Close(s.fd) // also leaves the epoll set
		if s.out.pipe != nil {
			rawsock.Close(s.out.pipe.r)
			rawsock.Close(s.out.pipe.w)
			s.out.pipe = nil
		}
	}
	if p.done != nil {
		p.done(Result{ClientToBackend: p.client.out.bytes, BackendToClient: p.backend.out.bytes, Err: err})
	}
}

func (l *loop) expireIdle(now time.Time) {
	for p := range l.pairs {
		if p.idle > 0 && now.Sub(p.last) >= p.idle {
			l.finish(p, ErrIdle)
		}
	}
}

func (l *loop) closeAll() {
	for p := range l.pairs {
		l.finish(p, errors.New("relay: engine closed"))
	}
	for _, pp := range l.pipes {
		unix.Close(pp.r)
		unix.Close(pp.w)
	}
	l.pollFile.Close() // closes epfd
	unix.Close(l.wakefd)
}

func (l *loop) getPipe() *pipe {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		return &p
	}
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return nil // copy through user space instead
	}
	return &pipe{r: fds[0], w: fds[1]}
}

func (l *loop) putPipe(p *pipe) {
	if len(l.pipes) < maxIdlePipes {
		l.pipes = append(l.pipes, *p)
		return
	}
	rawsock.Close(p.r)
	rawsock.Close(p.w)
}

// spliceRetry moves up to n bytes from a socket into a pipe or out of it.
// Both are non-blocking, so the call is made raw (see internal/rawsock).
func spliceRetry(in, out, n int) (int, error) {
	return rawsock.Retry(unix.SYS_SPLICE, uintptr(in), 0, uintptr(out), 0, uintptr(n), spliceFlags)
}

// epollPoll collects ready events without waiting.
func epollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	r, _, errno := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
