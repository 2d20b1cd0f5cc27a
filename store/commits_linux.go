//go:build linux

package store

/*
#include <stdlib.h>
#include "commits_linux.h"
*/
import "C"

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifyCommits starts the commit watch (commits_linux.c) on the file at
// path. Its thread signals an eventfd the runtime's network poller waits on,
// so a signal costs one goroutine's wake-up, and a commit it does not
// signal costs the process's goroutines nothing.
func notifyCommits(path, query string) (*commitReports, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	cpath, cquery := C.CString(path), C.CString(query)
	defer C.free(unsafe.Pointer(cpath))
	defer C.free(unsafe.Pointer(cquery))
	var why [256]C.char
	w := C.commit_watch_start(cpath, cquery, C.int(efd), &why[0], C.int(len(why)))
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
	c := make(chan struct{}, 1)
	go func() {
		var buf [8]byte
		// Reading the eventfd resets it: the signals made while this
		// goroutine was busy are one.
		take := func(fd uintptr) bool {
			_, errno := rawRead(fd, buf[:])
			return errno != syscall.EAGAIN
		}
		for rc.Read(take) == nil {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	every := true // the thread's start
	return &commitReports{
		C: c,
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
		stop: func() {
			C.commit_watch_stop(w) // after it, nothing writes the eventfd
			f.Close()
		},
	}, nil
}
