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
//
// The files' writes are watched on the files themselves, and their coming
// and going on the directory, since the WAL comes and goes: a write
// report names no file, so a signal needs no read of the report, and the
// writes after it fold into the report still queued (see inotifyReports).
func notifyChanges(ctx context.Context, path string) (*ChangeReports, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if _, err := unix.InotifyAddWatch(fd, dir, dirEvents); err != nil {
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
		dir:   dir,
		names: [][]byte{[]byte(base), []byte(base + "-wal"), []byte(base + "-journal")},
		c:     make(chan struct{}, 1),
	}
	// After the directory's watch: a file created meanwhile is reported
	// there, and watched at the drain.
	for _, name := range in.names {
		in.watchFile(uintptr(fd), name)
	}
	in.take = in.takeReports
	in.armed.Store(true)
	context.AfterFunc(ctx, func() { f.Close() })
	go in.read()
	return &ChangeReports{C: in.c, drain: in.drain}, nil
}

// What is watched: the files' writes, and the directory's entries coming
// and going.
const (
	fileEvents = unix.IN_MODIFY | unix.IN_CLOSE_WRITE
	dirEvents  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE
)

// inotifyReports turns an inotify descriptor's reports into signals, one
// per drain.
//
// The reader signals when reports are queued, and leaves them queued until
// the next drain. The kernel folds a report into the one before it when
// that is still queued and the same (another write of the WAL), and wakes
// no one for it. So the writes of a commit after its first, and the
// commits that follow while the follower waits to look, cost this process
// nothing. Reading each report as it came woke the reader at every write;
// reading the first to check its name woke it at the second.
//
// A signal may come for another file of the directory coming or going
// (only those reports carry a name): the follower then looks and finds
// nothing new.
type inotifyReports struct {
	rc    syscall.RawConn
	dir   string
	names [][]byte // the file's, its WAL's and its journal's names
	c     chan struct{}
	// armed: the next report is signalled. Cleared by the reader as it
	// signals, set by a drain.
	armed atomic.Bool

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

// ready reports whether reports are queued while armed, which disarms it.
// Unarmed, or with none queued, it waits for the next.
func (in *inotifyReports) ready(fd uintptr) bool {
	return in.armed.Load() && queued(fd) && in.armed.CompareAndSwap(true, false)
}

// drain takes the reports queued since the reader's signal and arms it for
// the next one, in that order: a report queued meanwhile is either taken
// here or signalled. It reports whether any taken was of the file.
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

// takeReports reads every queued report, noting in named whether one was
// of the file, and watches the files the reports saw come (before the
// next read reuses the buffer their names are in).
func (in *inotifyReports) takeReports(fd uintptr) {
	in.named = false
	for {
		n, errno := rawRead(fd, in.drainBuf[:])
		if errno != 0 || n == 0 {
			// An error other than EAGAIN counts as a report: the
			// follower looks, and the next drain tries again.
			in.named = in.named || errno != 0 && errno != syscall.EAGAIN
			return
		}
		named, came := in.parse(in.drainBuf[:n])
		in.named = in.named || named
		for _, name := range came {
			in.watchFile(fd, name)
		}
	}
}

// parse reports whether any report in b is of the file (a write, or a
// creation, replacement or removal naming it), and the names of the files
// the reports saw created or moved in.
func (in *inotifyReports) parse(b []byte) (named bool, came [][]byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) || ev.Mask&unix.IN_Q_OVERFLOW != 0 {
			return true, came // truncated or lost: assume it mattered
		}
		name := bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")
		switch {
		case len(name) == 0:
			// A watched file's: a write, or its watch gone with it
			// (its removal is the directory's report).
			named = named || ev.Mask&fileEvents != 0
		case in.ours(name):
			named = true
			if ev.Mask&(unix.IN_CREATE|unix.IN_MOVED_TO) != 0 {
				came = append(came, name)
			}
		}
		b = b[end:]
	}
	return named, came
}

func (in *inotifyReports) ours(name []byte) bool {
	for _, n := range in.names {
		if bytes.Equal(name, n) {
			return true
		}
	}
	return false
}

// watchFile watches one of the files for writes, if it is there.
func (in *inotifyReports) watchFile(fd uintptr, name []byte) {
	unix.InotifyAddWatch(int(fd), filepath.Join(in.dir, string(name)), fileEvents)
}

// queued reports whether the descriptor holds reports, with a raw system
// call: one made through the syscall package wakes the runtime's monitor
// thread when it sleeps (see rawRead).
func queued(fd uintptr) bool {
	var n int32
	_, _, errno := syscall.RawSyscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	return errno != 0 || n > 0
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

// rawWrite writes a non-blocking descriptor with a raw system call, as
// rawRead reads one.
func rawWrite(fd uintptr, buf []byte) syscall.Errno {
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		if e != syscall.EINTR {
			return e
		}
	}
}
