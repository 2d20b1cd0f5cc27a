//go:build linux

package relay

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

// Engine runs the event loops. Its zero value is not usable; see New.
type Engine struct {
	loops []*loop
	next  atomic.Uint32
}

// New starts n event loops (GOMAXPROCS when n < 1).
func New(n int) (*Engine, error) {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	e := &Engine{}
	for range n {
		l, err := newLoop()
		if err != nil {
			e.Close()
			return nil, err
		}
		e.loops = append(e.loops, l)
		go l.run()
	}
	return e, nil
}

var (
	shared     *Engine
	sharedErr  error
	sharedOnce sync.Once
)

// Shared is the process-wide engine, started on first use with a loop for
// every two cores: the other half runs what comes before relaying (accept,
// routing, dialling), and on two cores one loop batches more events per
// wait than two (measured: 25 µs of CPU per keep-alive request with one
// loop, 34 µs with two, HAProxy 21-26 µs). It is never closed: connections
// in flight outlive any one configuration.
func Shared() (*Engine, error) {
	sharedOnce.Do(func() { shared, sharedErr = New(max(1, runtime.GOMAXPROCS(0)/2)) })
	return shared, sharedErr
}

var (
	serving     *Engine
	servingErr  error
	servingOnce sync.Once
)

// Serving is the process-wide engine for Listeners, started on first use
// with a loop per core: each loop accepts, routes, dials and relays on its
// own, so no other thread takes a share of the work. Like Shared, it is
// never closed.
func Serving() (*Engine, error) {
	servingOnce.Do(func() { serving, servingErr = New(runtime.GOMAXPROCS(0)) })
	return serving, servingErr
}

// Close stops the loops and closes every connection they hold.
func (e *Engine) Close() {
	for _, l := range e.loops {
		l.stop()
	}
}

// Relay takes over both connections and relays between them until both
// directions end; then done runs, on the loop, with the counts. The
// sockets are duplicated into the engine, and client and backend are
// closed before Relay returns: the caller's goroutine is free at once.
// idle (zero for none) ends the pair when no byte moves either way.
//
// An error means nothing was taken over: the connections are still the
// caller's, and done will not run.
func (e *Engine) Relay(client, backend *net.TCPConn, idle time.Duration, done func(Result)) error {
	cfd, err := dupFD(client)
	if err != nil {
		return err
	}
	bfd, err := dupFD(backend)
	if err != nil {
		unix.Close(cfd)
		return err
	}
	client.Close()
	backend.Close()
	l := e.loops[e.next.Add(1)%uint32(len(e.loops))]
	if err := l.add(cfd, bfd, idle, done); err != nil {
		// add closed the duplicates: the connection is gone.
		done(Result{Err: err})
	}
	return nil
}

// RelayFD is Relay for a backend socket from Dial, which the engine takes
// as it is: it must be non-blocking, as Dial's are.
func (e *Engine) RelayFD(client *net.TCPConn, backendFD int, idle time.Duration, done func(Result)) error {
	cfd, err := dupFD(client)
	if err != nil {
		return err
	}
	client.Close()
	l := e.loops[e.next.Add(1)%uint32(len(e.loops))]
	if err := l.add(cfd, backendFD, idle, done); err != nil {
		done(Result{Err: err})
	}
	return nil
}

// dupFD returns a close-on-exec duplicate of the socket, which shares its
// non-blocking open file description.
func dupFD(c *net.TCPConn) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = rawsock.Retry(unix.SYS_FCNTL, fd, unix.F_DUPFD_CLOEXEC, 0, 0, 0, 0)
	}); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("relay: dup: %w", derr)
	}
	return nfd, nil
}
