package edgeroute

import (
	"io"
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// relayBufSize is the most a small message costs in user space; a read
// that fills the buffer marks a bulk transfer, which is spliced instead.
const relayBufSize = 16 << 10

var relayBufs = sync.Pool{New: func() any { b := make([]byte, relayBufSize); return &b }}

// relayTCP copies src to dst, both plain TCP sockets, until EOF or an error.
//
// A connection that waits for data holds neither a buffer nor a pipe: the
// wait is the runtime poller's, and a buffer is taken from a pool only once
// the socket is readable. Small messages (requests and responses of a
// keep-alive session) are then copied with one read and one write. When a
// read fills the buffer, a bulk transfer is under way, and what is queued
// on the socket is moved with splice(2) through (*net.TCPConn).ReadFrom
// without entering user space. Splicing everything instead would hold two
// pipes (four descriptors) per connection for as long as it is idle.
func relayTCP(dst, src *net.TCPConn) (int64, error) {
	rc, err := src.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	for {
		var (
			bufp *[]byte
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			if bufp == nil {
				bufp = relayBufs.Get().(*[]byte)
			}
			for {
				n, rerr = unix.Read(int(fd), *bufp)
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				relayBufs.Put(bufp)
				bufp = nil
				return false // wait for the poller
			}
			return true
		})
		if err != nil { // a deadline, or the socket was closed
			if bufp != nil {
				relayBufs.Put(bufp)
			}
			return written, err
		}
		if rerr != nil || n <= 0 {
			relayBufs.Put(bufp)
			if rerr != nil {
				return written, &net.OpError{Op: "read", Net: "tcp", Source: src.LocalAddr(), Addr: src.RemoteAddr(), Err: rerr}
			}
			return written, nil // EOF
		}
		m, werr := dst.Write((*bufp)[:n])
		written += int64(m)
		relayBufs.Put(bufp)
		if werr != nil {
			return written, werr
		}
		if n < relayBufSize {
			continue
		}
		if queued := queuedBytes(rc); queued > 0 {
			s, err := dst.ReadFrom(&io.LimitedReader{R: src, N: int64(queued)})
			written += s
			if err != nil {
				return written, err
			}
		}
	}
}

// queuedBytes is how many bytes wait in the socket's receive queue.
func queuedBytes(rc interface{ Control(func(uintptr)) error }) int {
	var n int
	rc.Control(func(fd uintptr) {
		n, _ = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	return n
}
