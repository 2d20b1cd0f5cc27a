//go:build linux

package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifyChanges signals on the returned channel whenever the database file
// or its WAL or journal is written, created, replaced or removed, by this
// process or any other on the machine. A commit writes the WAL with
// write(2), so every commit is seen. It watches the directory, since the
// WAL comes and goes. The channel holds one pending signal at most.
func notifyChanges(ctx context.Context, path string) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	const mask = unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "inotify")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	base := filepath.Base(path)
	names := [][]byte{[]byte(base), []byte(base + "-wal"), []byte(base + "-journal")}
	ch := make(chan struct{}, 1)
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := readEvents(rc, buf)
			if err != nil {
				return // closed with ctx
			}
			if touches(buf[:n], names) {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, nil
}

// readEvents reads the reports waiting on the inotify descriptor into buf,
// waiting in the runtime's poller until there are some. The read itself
// is a raw system call: one made through os.File wakes the runtime's
// monitor thread when it sleeps, which then polls every 20 us for as long
// as the process is busy, and a commit is reported several times. A read
// of a non-blocking descriptor never blocks, so it needs no monitoring.
func readEvents(rc syscall.RawConn, buf []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
			if e == syscall.EINTR {
				continue
			}
			n, errno = int(r), e
			return e != syscall.EAGAIN
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// touches reports whether any inotify event in b names one of names.
func touches(b []byte, names [][]byte) bool {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			return true // truncated: assume it mattered
		}
		if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true
		}
		name := bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")
		for _, n := range names {
			if bytes.Equal(name, n) {
				return true
			}
		}
		b = b[end:]
	}
	return false
}
