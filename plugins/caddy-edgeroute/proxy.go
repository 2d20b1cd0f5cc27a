package edgeroute

import (
	"errors"
	"io"
	"net"
	"os"
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
func (h *Handler) proxy(cx *layer4.Connection, up *net.TCPConn, done func(in, out int64, err error)) {
	if h.ProxyProtocol != "" {
		if err := writeProxyHeader(up, h.ProxyProtocol, cx.RemoteAddr(), cx.LocalAddr()); err != nil {
			up.Close()
			done(0, 0, err)
			return
		}
	}
	var in int64
	var down io.ReadWriter = cx
	if raw, ok := cx.Conn.(*net.TCPConn); ok {
		if pending := cx.MatchingBytes(); len(pending) > 0 {
			n, err := up.Write(pending)
			in += int64(n)
			if err != nil {
				up.Close()
				done(in, 0, err)
				return
			}
		}
		if eng, err := relay.Shared(); err == nil {
			err := eng.Relay(raw, up, time.Duration(h.IdleTimeout), func(r relay.Result) {
				done(in+r.ClientToBackend, r.BackendToClient, r.Err)
			})
			if err == nil {
				return
			}
		}
		down = raw
	}
	upBytes, out, err := h.copyBothWays(down, up)
	done(in+upBytes, out, err)
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

func writeProxyHeader(w io.Writer, version string, client, local net.Addr) error {
	v := byte(1)
	if version == "v2" {
		v = 2
	}
	_, err := proxyproto.HeaderProxyFromAddrs(v, client, local).WriteTo(w)
	return err
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

// copyOnce relays between plain TCP sockets with relayTCP, and otherwise
// (behind a TLS handler, say) copies through a pooled buffer.
func copyOnce(dst io.Writer, src io.Reader) (int64, error) {
	d, dok := dst.(*net.TCPConn)
	s, sok := src.(*net.TCPConn)
	if dok && sok {
		return relayTCP(d, s)
	}
	bufp := relayBufs.Get().(*[]byte)
	defer relayBufs.Put(bufp)
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
