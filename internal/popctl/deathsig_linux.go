//go:build linux

package popctl

import (
	"os/exec"
	"syscall"
)

// DieWithParent has cmd killed when this process dies, however it dies: a
// benchmark killed mid-run leaves no POP, DNS server or sqlite3 CLI
// running. The kernel ties the signal to the thread that starts cmd,
// which the Go runtime keeps for the life of the process unless a
// goroutine locked to it ends while locked: call it only from a process
// that does not discard threads so (a benchmark, not a namespace test).
func DieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
