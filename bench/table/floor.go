package main

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/store"
)

// The floors: what the least follower of the file pays for each commit on
// this machine, read over the same commits as the servers' "neither holds"
// figure. Each waits for the kernel's report of a write to the WAL, waits
// 1 ms as the store's watcher does, and looks at PRAGMA data_version:
//   - Go: this binary in floorMode, with the Go runtime, go-sqlite3 and
//     the store's reports of the file's writes as the servers have them;
//   - C: floor/floor.c, built with cc against the system's libsqlite3
//     where both are there.
//
// The servers do more at each commit (the journal's position with the
// data version, the follower's bookkeeping); the floors show how much of
// their figure any follower pays here.

// floorMode is the hidden subcommand that runs the Go floor on a file.
const floorMode = "floor-follow"

//go:embed floor/floor.c
var floorC []byte

type floor struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process is gone
}

func (f floor) exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// startFloors starts the floors on db, its WAL present; a floor that
// cannot run here is named in skipped, with why.
func startFloors(dir, db string) (floors []floor, skipped []string) {
	self, err := os.Executable()
	if err == nil {
		floors, err = appendStarted(floors, "Go", exec.Command(self, floorMode, db))
	}
	if err != nil {
		skipped = append(skipped, "Go: "+err.Error())
	}
	src, bin := filepath.Join(dir, "floor.c"), filepath.Join(dir, "floor")
	err = os.WriteFile(src, floorC, 0o644)
	if err == nil {
		var out []byte
		if out, err = exec.Command("cc", "-O2", "-o", bin, src, "-lsqlite3").CombinedOutput(); err != nil {
			err = fmt.Errorf("cc: %v: %s (needs a C compiler and libsqlite3-dev)", err, out)
		}
	}
	if err == nil {
		floors, err = appendStarted(floors, "C", exec.Command(bin, db))
	}
	if err != nil {
		skipped = append(skipped, "C: "+err.Error())
	}
	return floors, skipped
}

func appendStarted(floors []floor, name string, cmd *exec.Cmd) ([]floor, error) {
	popctl.DieWithParent(cmd)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return floors, err
	}
	f := floor{name, cmd, make(chan struct{})}
	go func() { cmd.Wait(); close(f.done) }()
	return append(floors, f), nil
}

func stopFloors(floors []floor) {
	for _, f := range floors {
		f.cmd.Process.Kill()
		<-f.done
	}
}

// followFloor is the Go floor: it runs until killed. The reports are the
// store's own (Store.NotifyChanges), read as the servers' watchers read
// them; the look is a statement of its own.
func followFloor(db string) error {
	ctx := context.Background()
	st, err := store.Open(ctx, db, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	reports, err := st.NotifyChanges(ctx)
	if err != nil {
		return err
	}
	conn, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	if err != nil {
		return err
	}
	look, err := conn.Prepare("PRAGMA data_version")
	if err != nil {
		return err
	}
	var v int64
	for range reports.C {
		time.Sleep(time.Millisecond)
		reports.Drain()
		if err := look.QueryRow().Scan(&v); err != nil {
			return err
		}
	}
	return errors.New("reports ended")
}
