//go:build linux

package relay

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

// Local is the address the client connected to.
func (c *Client) Local() netip.AddrPort {
	if !c.local.Addr().IsValid() || c.local.Addr().IsUnspecified() {
		c.local = rawsock.LocalAddr(c.fd)
	}
	return c.local
}

// Listener is a listening socket whose connections the engine accepts,
// routes, dials and relays on its loops, with no goroutine and no
// scheduler hand-off per connection.
type Listener struct {
	fd     int
	router Router
	eng    *Engine
	local  netip.AddrPort
	closed atomic.Bool
}

const acceptPause = 100 * time.Millisecond

// ErrDialTimeout ends a dial that outlasted its Target's DialTimeout.
var ErrDialTimeout = errors.New("relay: dial timeout")

// Listen serves the listening socket fd: every loop accepts from it, and
// the kernel wakes one loop per new connection. The engine owns fd from
// then on, even when Listen fails.
func (e *Engine) Listen(fd int, r Router) (*Listener, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("relay: listen: %w", err)
	}
	ln := &Listener{fd: fd, router: r, eng: e, local: rawsock.LocalAddr(fd)}
	for i, l := range e.loops {
		if err := l.addListener(ln); err != nil {
			for _, l := range e.loops[:i] {
				l.removeListener(ln)
			}
			unix.Close(fd)
			return nil, fmt.Errorf("relay: listen: %w", err)
		}
	}
	return ln, nil
}

// ListenFile is Listen for a listening socket held by an os.File (from
// net.TCPListener.File); f stays the caller's.
func (e *Engine) ListenFile(f *os.File, r Router) (*Listener, error) {
	fd, err := rawsock.Retry(unix.SYS_FCNTL, f.Fd(), unix.F_DUPFD_CLOEXEC, 0, 0, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("relay: listen: dup: %w", err)
	}
	return e.Listen(fd, r)
}

// Addr is the address the listener is bound to.
func (ln *Listener) Addr() netip.AddrPort { return ln.local }

// Close stops accepting and closes the socket. Connections already
// accepted go on.
func (ln *Listener) Close() error {
	if ln.closed.Swap(true) {
		return nil
	}
	for _, l := range ln.eng.loops {
		l.removeListener(ln)
	}
	return unix.Close(ln.fd)
}

// listening is a Listener as one loop sees it.
type listening struct {
	ln     *Listener
	acc    *rawsock.Acceptor
	resume time.Time // while paused after an accept failure
}

func (l *loop) addListener(ln *Listener) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, ln.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, 0); err != nil {
		return err
	}
	l.listeners[int32(ln.fd)] = &listening{ln: ln, acc: rawsock.NewAcceptor(ln.fd)}
	return nil
}

// pause stops accepting from ls on this loop for acceptPause.
func (l *loop) pause(ls *listening, err error) {
	rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ls.ln.fd, 0, 0)
	ls.resume = time.Now().Add(acceptPause)
	l.paused = append(l.paused, ls)
	if r, ok := ls.ln.router.(AcceptErrorReporter); ok {
		r.AcceptFailed(ls.ln.local, err, acceptPause)
	}
}

// resumeListeners accepts again from the listeners whose pause is over and
// returns when the next one's ends.
func (l *loop) resumeListeners(now time.Time) time.Time {
	var next time.Time
	kept := l.paused[:0]
	for _, ls := range l.paused {
		switch {
		case l.listeners[int32(ls.ln.fd)] != ls:
			// closed while paused
		case !now.Before(ls.resume):
			ls.resume = time.Time{}
			rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, ls.ln.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, 0)
		default:
			kept = append(kept, ls)
			if next.IsZero() || ls.resume.Before(next) {
				next = ls.resume
			}
		}
	}
	clear(l.paused[len(kept):])
	l.paused = kept
	return next
}

func (l *loop) removeListener(ln *Listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.listeners[int32(ln.fd)]; ok {
		delete(l.listeners, int32(ln.fd))
		rawsock.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, ln.fd, 0, 0)
	}
}

// acceptBatch bounds the connections one wake takes off a listener, so
// relayed connections on the same loop keep moving under a flood.
const acceptBatch = 32

func (l *loop) accept(ls *listening) {
	for range acceptBatch {
		fd, addr, err := ls.acc.Accept()
		switch err {
		case nil:
		case unix.EAGAIN:
			return
		case unix.ECONNABORTED, unix.EPERM:
			continue // gone before it was taken; firewalled
		default:
			l.pause(ls, err)
			return
		}
		rawsock.SetInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		p := newPair(fd, -1)
		p.lis = ls.ln
		p.from = Client{Addr: addr, fd: fd, local: ls.ln.local}
		p.dialing = true
		p.start = true
		l.pairs[p] = struct{}{}
		l.route(p)
	}
}

// route asks the router for p's next backend and connects to it. The
// client's first bytes, read right after the connect starts, usually go
// out with no wait: to a nearby backend the handshake is over when connect
// returns.
func (l *loop) route(p *pair) {
	for {
		t, ok := p.lis.router.Route(&p.from)
		if !ok {
			p.done = nil
			l.closeUnrouted(p)
			return
		}
		fd, _, err := startConnect(t.Addr)
		if err != nil {
			if t.Done != nil {
				t.Done(Result{Err: rawsock.DialError(t.Addr, "connect", err), DialFailed: true})
			}
			p.from.Tried++
			continue
		}
		p.backend.fd = fd
		p.target = t.Addr
		p.done = t.Done
		p.idle = t.IdleTimeout
		p.last = time.Now()
		p.deadline = time.Time{}
		if t.DialTimeout > 0 {
			p.deadline = p.last.Add(t.DialTimeout)
		}
		// The head goes in front of whatever the client already sent.
		c := &p.client.out
		rest := c.pending[p.headLen:]
		c.pending = append(append(make([]byte, 0, len(t.Head)+len(rest)), t.Head...), rest...)
		p.headLen = len(t.Head)
		if len(c.pending) == 0 {
			c.pending = nil
		}
		l.begin(p)
		return
	}
}

// begin relays p with its backend's connect in flight: it sends what it
// has, registers both sockets and waits for the handshake if it could not
// tell it is over.
func (l *loop) begin(p *pair) {
	c := &p.client.out
	out := c.pending
	if p.start {
		// Read what the client sent with its handshake, behind the head.
		p.start = false
		n := copy(l.scratch, out)
		m, err := rawsock.Read(p.client.fd, l.scratch[n:])
		switch {
		case err == nil && m == 0:
			c.eof = true
		case err == nil:
			n += m
		case err != unix.EAGAIN:
			l.finish(p, err)
			return
		}
		out = l.scratch[:n]
	}
	c.pending = nil
	if len(out) > 0 {
		w, err := rawsock.Write(p.backend.fd, out)
		switch {
		case err == nil:
			p.dialing = false // a write went through: the handshake is over
			c.bytes += int64(w)
			out = out[w:]
		case err != unix.EAGAIN && err != unix.ENOTCONN:
			c.pending = append([]byte(nil), out...)
			l.redial(p, err)
			return
		}
	}
	if len(out) > 0 {
		c.pending = append([]byte(nil), out...)
	}
	if err := l.register(p); err != nil {
		l.finish(p, err)
		return
	}
	if p.dialing {
		l.dialing = append(l.dialing, p)
	} else if l.drain(p.client) {
		l.update(p.client)
	}
}

// register adds p's sockets to the epoll set; the client may be in it
// already (after a redial).
func (l *loop) register(p *pair) error {
	if !p.registered {
		p.client.interest = l.want(p.client)
		if err := l.watch(p.client); err != nil {
			return err
		}
		l.socks[int32(p.client.fd)] = p.client
		p.registered = true
	} else if err := l.setInterest(p.client); err != nil {
		return err
	}
	p.backend.interest = l.want(p.backend)
	if err := l.watch(p.backend); err != nil {
		return err
	}
	l.socks[int32(p.backend.fd)] = p.backend
	if p.idle > 0 {
		l.watchIdle(p.idle)
	}
	return nil
}

// connected ends p's dialing state once the backend's handshake is over.
func (l *loop) connected(p *pair) {
	p.dialing = false
	l.undial(p)
}

func (l *loop) undial(p *pair) {
	for i, q := range l.dialing {
		if q == p {
			last := len(l.dialing) - 1
			l.dialing[i] = l.dialing[last]
			l.dialing[last] = nil
			l.dialing = l.dialing[:last]
			return
		}
	}
}

// redial gives up p's current backend, which failed to answer, and routes
// the client anew.
func (l *loop) redial(p *pair, err error) {
	l.undial(p)
	if p.backend.fd >= 0 {
		if l.socks[int32(p.backend.fd)] == p.backend {
			delete(l.socks, int32(p.backend.fd))
		}
		rawsock.Close(p.backend.fd)
		p.backend.fd = -1
		p.backend.interest = 0
	}
	if p.done != nil {
		p.done(Result{Err: rawsock.DialError(p.target, "connect", err), DialFailed: true})
		p.done = nil
	}
	p.from.Tried++
	l.route(p)
}

// closeUnrouted closes a client no backend took.
func (l *loop) closeUnrouted(p *pair) {
	delete(l.pairs, p)
	delete(l.socks, int32(p.client.fd))
	rawsock.Close(p.client.fd)
}

// expireDials redials the connects that outlasted their timeout and
// returns the earliest deadline still pending.
func (l *loop) expireDials(now time.Time) time.Time {
	var next time.Time
	for i := 0; i < len(l.dialing); {
		p := l.dialing[i]
		if !p.deadline.IsZero() && !now.Before(p.deadline) {
			l.redial(p, ErrDialTimeout) // removes p from l.dialing
			continue
		}
		if !p.deadline.IsZero() && (next.IsZero() || p.deadline.Before(next)) {
			next = p.deadline
		}
		i++
	}
	return next
}
