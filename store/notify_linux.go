//go:build linux

package store

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifyChanges reports writes, creations, replacements and removals of the
// database file or its WAL or journal, by this process or any other on the
// machine. A commit writes the WAL with write(2), so every commit is seen.
// It watches the directory, since the WAL comes and goes.
func notifyChanges(ctx context.Context, path string) (*ChangeReports, error) {
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
	in := &inotifyReports{
		rc:    rc,
		names: [][]byte{[]byte(base), []byte(base + "-wal"), []byte(base + "-journal")},
		c:     make(chan struct{}, 1),
	}
	in.take = in.takeReports
	in.armed.Store(true)
	context.AfterFunc(ctx, func() { f.Close() })
	go in.read()
	return &ChangeReports{C: in.c, drain: in.drain}, nil
}

// inotifyReports turns an inotify descriptor's reports into signals, one
// per drain.
//
// After a signal the reader leaves the descriptor's queue alone until the
// next drain. The kernel folds a report into the one before it when that
// is still queued and the same (another write of the WAL), and wakes no
// one for it. So the second write of a commit wakes the reader once more,
// to find it unarmed, and the writes after it, and the commits that follow
// while the follower waits to look, cost this process nothing. Reading
// every report as it came woke it at every write.
type inotifyReports struct {
	rc    syscall.RawConn
	names [][]byte // the file's, its WAL's and its journal's names
	c     chan struct{}
	// armed: the next report naming the file is signalled. Cleared by
	// the reader as it signals, set by a drain.
	armed   atomic.Bool
	readBuf [16 << 10]byte

	mu       sync.Mutex // one drain at a time; guards what follows
	drainBuf [4 << 10]byte
	named    bool
	take     func(fd uintptr) // takeReports, bound once
}

// read signals on c until the descriptor is closed.
func (in *inotifyReports) read() {
	ready := in.ready // one closure for the reader's life, not one per report
	for {
		if err := in.rc.Read(ready); err != nil {
			return // closed with ctx
		}
		select {
		case in.c <- struct{}{}:
		default:
		}
	}
}

// ready reads the descriptor's reports while armed, and reports whether one
// named the file, which disarms it. Unarmed, it leaves them queued.
func (in *inotifyReports) ready(fd uintptr) bool {
	if !in.armed.Load() || !in.readQueued(fd, in.readBuf[:]) {
		return false // unarmed: wait for the next drain, and a report after it
	}
	in.armed.Store(false)
	return true
}

// drain takes the reports queued since the reader's signal and arms it for
// the next one, in that order: a report queued meanwhile is either taken
// here or signalled. It reports whether any taken named the file.
func (in *inotifyReports) drain() bool {
	in.armed.Store(true)
	in.mu.Lock()
	defer in.mu.Unlock()
	// Control, not Read: the reader holds the descriptor's read lock
	// while it waits, and Control keeps the descriptor from being closed
	// under the read.
	if err := in.rc.Control(in.take); err != nil {
		return false
	}
	return in.named
}

// takeReports reads every queued report into drainBuf, noting in named
// whether one named the file.
func (in *inotifyReports) takeReports(fd uintptr) { in.named = in.readQueued(fd, in.drainBuf[:]) }

// readQueued reads the reports queued on the descriptor into buf until none
// are left, and reports whether one named the file. An error other than
// EAGAIN counts as one: the follower looks, and its drain tries again.
func (in *inotifyReports) readQueued(fd uintptr, buf []byte) bool {
	named := false
	for {
		n, errno := rawRead(fd, buf)
		if errno != 0 || n == 0 {
			return named || errno != 0 && errno != syscall.EAGAIN
		}
		named = named || touches(buf[:n], in.names)
	}
}

// rawRead reads a non-blocking descriptor with a raw system call, retrying
// when interrupted. A read made through os.File wakes the runtime's monitor
// thread when it sleeps, which then polls every 20 us for as long as the
// process is busy; a read that cannot block needs no monitoring.
func rawRead(fd uintptr, buf []byte) (int, syscall.Errno) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if e != syscall.EINTR {
			return int(r), e
		}
	}
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
