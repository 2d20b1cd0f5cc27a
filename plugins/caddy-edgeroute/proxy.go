package edgeroute

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mholt/caddy-l4/layer4"
	"github.com/pires/go-proxyproto"

	"github.com/edgeproxy/edgeproxy/relay"
)

// proxy copies bytes both ways until both directions are done, then calls
// done with how many went to the backend (in) and to the client (out).
//
// When the client side is the raw *net.TCPConn the listener accepted, the
// pair is handed to the shared relay engine: the handler's goroutine
// returns at once, and an idle connection costs no goroutine, buffer or
// pipe; small messages are copied with a read and a write, bulk transfers
// with splice(2). Bytes a matcher already read are sent first. Behind a
// wrapping handler (TLS termination, say) the copy runs here, through the
// wrapped connection, with two goroutines.
//
// Each direction ends with a half-close, so a client that shuts down its
// write side still receives the whole response, and the reverse.
func (h *Handler) proxy(cx *layer4.Connection, eng *relay.Engine, up upstream, done func(in, out int64, err error)) {
	var head []byte
	if h.ProxyProtocol != "" {
		var err error
		if head, err = proxyHeader(h.ProxyProtocol, cx.RemoteAddr(), cx.LocalAddr()); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
	}
	if up.conn == nil { // dialled for the engine: the client is plain TCP
		head = append(head, cx.MatchingBytes()...)
		if err := relay.WriteAll(up.fd, head); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
		in := int64(len(head))
		err := eng.RelayFD(cx.Conn.(*net.TCPConn), up.fd, time.Duration(h.IdleTimeout), func(r relay.Result) {
			done(in+r.ClientToBackend, r.BackendToClient, r.Err)
		})
		if err != nil {
			up.close()
			done(in, 0, err)
		}
		return
	}
	if len(head) > 0 {
		if _, err := up.conn.Write(head); err != nil {
			up.close()
			done(0, 0, err)
			return
		}
	}
	upBytes, out, err := h.copyBothWays(cx, up.conn)
	done(upBytes, out, err)
}

func (u upstream) close() {
	if u.conn != nil {
		u.conn.Close()
	} else {
		relay.CloseFD(u.fd)
	}
}

// copyBothWays relays with one goroutine per direction.
func (h *Handler) copyBothWays(down io.ReadWriter, up *net.TCPConn) (in, out int64, err error) {
	defer up.Close()

	p := pipe{idle: time.Duration(h.IdleTimeout)}
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

func proxyHeader(version string, client, local net.Addr) ([]byte, error) {
	v := byte(1)
	if version == "v2" {
		v = 2
	}
	return proxyproto.HeaderProxyFromAddrs(v, client, local).Format()
}

func closeWrite(c any) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// pipe tracks the last time a byte moved in either direction of one
// connection, for the idle timeout.
type pipe struct {
	idle time.Duration
	last atomic.Int64 // unix nanoseconds
}

func (p *pipe) touch() { p.last.Store(time.Now().UnixNano()) }

type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// copy moves bytes from src to dst until EOF or an error. With an idle
// timeout, deadlines are set per copy call rather than per read, so a long
// splice is not interrupted; when a deadline fires, the connection is idle
// only if neither direction moved a byte since.
func (p *pipe) copy(dst io.Writer, src io.Reader, dstConn, srcConn any) (int64, error) {
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
		n, err := copyOnce(dst, src)
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
		// The other direction may be in the middle of a long splice whose
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

// copyOnce copies through a pooled buffer.
func copyOnce(dst io.Writer, src io.Reader) (int64, error) {
	bufp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bufp)
	return io.CopyBuffer(onlyWriter{dst}, onlyReader{src}, *bufp)
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo so that io.CopyBuffer
// uses the pooled buffer.
type onlyWriter struct{ io.Writer }
type onlyReader struct{ io.Reader }

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
