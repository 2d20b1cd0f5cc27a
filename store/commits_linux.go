//go:build linux

package store

/*
#include <stdlib.h>
#include "commits_linux.h"
*/
import "C"

import (
	"bytes"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifyCommits starts the commit watch (commits_linux.c) on the file at
// path. Its thread signals an eventfd the runtime's network poller waits on,
// so a signal costs the waiting goroutine's wake-up, and a commit it does
// not signal costs the process's goroutines nothing.
func notifyCommits(path, query string) (*commitReports, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	cpath, cquery, centries := C.CString(path), C.CString(query), C.CString(journalEntriesQuery)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cquery))
	defer C.free(unsafe.Pointer(centries))
	var why [256]C.char
	w := C.commit_watch_start(cpath, cquery, centries, C.int(efd), &why[0], C.int(len(why)))
	if w == nil {
		unix.Close(efd)
		return nil, errors.New(C.GoString(&why[0]))
	}
	f := os.NewFile(uintptr(efd), "commits")
	rc, err := f.SyscallConn()
	if err != nil {
		C.commit_watch_stop(w)
		f.Close()
		return nil, err
	}
	var (
		buf [8]byte
		one = [8]byte{1} // the eventfd's counter is a host-order uint64; a kick adds one either way
		mu  sync.Mutex   // kicks against the eventfd's closing
		off bool
	)
	// Reading the eventfd resets it: the signals made while the watcher
	// was busy are one. Raw system calls leave the runtime's monitor
	// thread asleep (see rawRead).
	take := func(fd uintptr) bool {
		_, errno := rawRead(fd, buf[:])
		return errno != syscall.EAGAIN
	}
	every := true // the thread's start
	ahead := C.commit_watch_ahead(w)
	return &commitReports{
		wait: func() { rc.Read(take) },
		kick: func() {
			mu.Lock()
			defer mu.Unlock()
			if !off {
				rc.Control(func(fd uintptr) { rawWrite(fd, one[:]) })
			}
		},
		every: func(all bool) {
			if all != every {
				every = all
				flag := C.int(0)
				if all {
					flag = 1
				}
				C.commit_watch_every(w, flag)
			}
		},
		told: func() (journalPos, bool) {
			var pos C.struct_commit_watch_pos
			if C.commit_watch_told(w, &pos) == 0 {
				return journalPos{}, false
			}
			return goPos(&pos), true
		},
		ahead: func() (readAhead, bool, bool) { return takeAhead(ahead) },
		rows: func(query string) {
			var cq *C.char
			if query != "" {
				cq = C.CString(query)
				defer C.free(unsafe.Pointer(cq))
			}
			C.commit_watch_rows(w, cq)
		},
		stop: func() {
			C.commit_watch_stop(w) // after it, the thread writes the eventfd no more
			mu.Lock()
			off = true
			f.Close()
			mu.Unlock()
		},
	}, nil
}

// takeAhead takes what the thread read ahead, if it holds a read, and
// hands the place back to the thread. The state's atomic load and store
// order the thread's writes of the read before it, and this side's reads
// before the thread's next writes.
func takeAhead(a *C.struct_commit_watch_ahead) (ra readAhead, held, behind bool) {
	state := (*int32)(unsafe.Pointer(&a.state))
	if atomic.LoadInt32(state) == 1 {
		held = true
		if a.complete != 0 {
			ra.from, ra.to = goPos(&a.from), goPos(&a.to)
			ra.entries, ra.rows, ra.complete = decodeAhead(unsafe.Slice((*byte)(unsafe.Pointer(a.buf)), int(a.len)))
		}
		atomic.StoreInt32(state, 0)
	}
	behind = atomic.SwapInt32((*int32)(unsafe.Pointer(&a.behind)), 0) != 0
	return ra, held, behind
}

// goPos copies a position the thread wrote, without a call into C.
func goPos(p *C.struct_commit_watch_pos) journalPos {
	id := unsafe.Slice((*byte)(unsafe.Pointer(&p.id[0])), len(p.id))
	if i := bytes.IndexByte(id, 0); i >= 0 {
		id = id[:i]
	}
	return journalPos{id: string(id), schema: int64(p.schema), n: int64(p.n)}
}
