package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// CopyBothWays relays a wrapped client connection (TLS termination, say,
// which the engine cannot splice) and a backend with one goroutine per
// direction, until both directions are done. Each direction ends with a
// half-close, so a client that shuts down its write side still receives
// the whole response, and the reverse. idle > 0 closes a connection on
// which no byte moved either way for that long. It closes up; in counts
// bytes to the backend, out to the client.
func CopyBothWays(down io.ReadWriter, up *net.TCPConn, idle time.Duration) (in, out int64, err error) {
	defer up.Close()

	p := copyPipe{idle: idle}
	p.touch()
	errc := make(chan error, 1)
	var upBytes int64
	go func() {
		n, err := p.copy(up, down, up, down)
		upBytes = n
		closeWrite(up)
		errc <- err
	}()
	out, err = p.copy(down, up, down, up)
	closeWrite(down)
	if err != nil {
		// A broken direction breaks the other: unblock it.
		up.Close()
		if c, ok := down.(net.Conn); ok {
			c.Close()
		}
	}
	if err2 := <-errc; err == nil {
		err = err2
	}
	return upBytes, out, err
}

func closeWrite(c any) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// copyPipe tracks the last time a byte moved in either direction of one
// connection, for the idle timeout.
type copyPipe struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds
}

func (p *copyPipe) touch() { p.last.Store(time.Now().UnixNano()) }

type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// copy moves bytes from src to dst until EOF or an error. With an idle
// timeout, deadlines are set per pump call rather than per read, so a long
// transfer is not interrupted; when a deadline fires, the connection is idle
// only if neither direction moved a byte since.
func (p *copyPipe) copy(dst io.Writer, src io.Reader, dstConn, srcConn any) (int64, error) {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	var pending []byte // read from src, not written to dst yet
	var total int64
	graced := false
	for {
		if p.idle > 0 {
			deadline := time.Unix(0, p.last.Load()).Add(p.idle)
			if graced {
				deadline = time.Now().Add(idleGrace(p.idle))
			}
			setDeadlines(srcConn, dstConn, deadline)
		}
		n, err := pump(dst, src, *bufp, &pending)
		total += n
		if n > 0 {
			p.touch()
			graced = false
		}
		if err == nil || p.idle <= 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return total, err
		}
		if time.Since(time.Unix(0, p.last.Load())) < p.idle {
			continue // the other direction moved
		}
		// The other direction may be in the middle of a long transfer whose
		// progress it reports only when its own deadline fires, which is
		// now too: give it a moment to report before calling this idle.
		if !graced {
			graced = true
			continue
		}
		return total, err
	}
}

// copyBufs are the buffers of connections copied with goroutines.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// pump copies from src to dst through buf until EOF (nil) or an error,
// returning the bytes written. A write cut short by its deadline leaves
// what it did not write in *pending, to be written first at the next
// call: the deadline ends a wait, it must not drop bytes already read.
func pump(dst io.Writer, src io.Reader, buf []byte, pending *[]byte) (int64, error) {
	var total int64
	var rerr error
	for {
		// What came with a read's error is written before it is reported.
		n, err := flush(dst, pending)
		total += n
		if err != nil {
			return total, err
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
		var read int
		read, rerr = src.Read(buf)
		*pending = buf[:read]
	}
}

// flush writes *pending to dst, keeping in it what a failed write left.
func flush(dst io.Writer, pending *[]byte) (int64, error) {
	var total int64
	for len(*pending) > 0 {
		n, err := dst.Write(*pending)
		total += int64(n)
		*pending = (*pending)[n:]
		if err == nil && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func idleGrace(idle time.Duration) time.Duration {
	return min(idle/10+10*time.Millisecond, time.Second)
}

func setDeadlines(src, dst any, t time.Time) {
	if d, ok := src.(deadliner); ok {
		d.SetReadDeadline(t)
	}
	if d, ok := dst.(deadliner); ok {
		d.SetWriteDeadline(t)
	}
}
