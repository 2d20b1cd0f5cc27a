package main

import "os"

// presizeWAL writes the WAL file of a POP's store out to the size a WAL
// of walFrames frames of pageSize bytes takes, past the frames it holds,
// as a file that has been written for a while is. SQLite checkpoints its
// WAL at about a thousand frames and then writes it again from the
// beginning, over pages the file already has; a new file instead grows
// by a page with every frame until then. The thousand new files of a
// simulation grew together, and on this virtual machine a write to a
// page of memory written for the first time costs several times a write
// over one written before: the kernel's copy of WAL frames into the
// files was a fifth of the simulator's CPU during the timed changes, a
// cost a POP pays in its first thousand frames and never again. The
// zeros past the file's valid frames are, to SQLite, the end of the log.
func presizeWAL(path string, pageSize int) error {
	f, err := os.OpenFile(path+"-wal", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	const header, frameHeader = 32, 24
	zeros := make([]byte, 1<<20)
	for at, end := fi.Size(), int64(header+walFrames*(frameHeader+pageSize)); at < end; {
		n := min(int64(len(zeros)), end-at)
		if _, err := f.WriteAt(zeros[:n], at); err != nil {
			return err
		}
		at += n
	}
	return nil
}

// walFrames is SQLite's default wal_autocheckpoint, which the store keeps.
const walFrames = 1000
