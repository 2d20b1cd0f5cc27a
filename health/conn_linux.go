//go:build linux

package health

import (
	"io"
	"net"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/edgeproxy/edgeproxy/internal/rawsock"
)

// quietConn reads and writes a kept check connection with system calls
// that skip the scheduler's bookkeeping (see internal/rawsock); waiting
// for data, and deadlines, still go through the runtime's poller.
type quietConn struct {
	net.Conn
	rc syscall.RawConn
}

// quiet wraps a TCP connection; anything else is returned as it is.
func quiet(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quietConn{Conn: c, rc: rc}
}

func (c *quietConn) Read(b []byte) (int, error) {
	var n int
	var rerr error
	err := c.rc.Read(func(fd uintptr) bool {
		n, rerr = rawsock.Read(int(fd), b)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err == nil && n == 0 && len(b) > 0 {
		err = io.EOF
	}
	return n, err
}

func (c *quietConn) Write(b []byte) (int, error) {
	written := 0
	var werr error
	err := c.rc.Write(func(fd uintptr) bool {
		for written < len(b) {
			n, e := rawsock.Write(int(fd), b[written:])
			written += n
			if e == unix.EAGAIN {
				return false
			}
			if e != nil {
				werr = e
				return true
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	return written, err
}
