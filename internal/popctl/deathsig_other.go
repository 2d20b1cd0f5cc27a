//go:build !linux

package popctl

import "os/exec"

// DieWithParent does nothing where the kernel cannot tie a process's end
// to its parent's; see the Linux version.
func DieWithParent(cmd *exec.Cmd) {}
