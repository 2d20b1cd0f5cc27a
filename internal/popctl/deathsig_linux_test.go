//go:build linux

package popctl

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// parentEnv makes the test binary a parent process for TestDieWithParent.
const parentEnv = "POPCTL_TEST_PARENT"

// runParent starts two children, one with DieWithParent and one without,
// prints their PIDs and waits to be killed.
func runParent() int {
	var pids []int
	for _, die := range []bool{true, false} {
		cmd := exec.Command("sleep", "300")
		if die {
			DieWithParent(cmd)
		}
		if err := cmd.Start(); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		pids = append(pids, cmd.Process.Pid)
	}
	fmt.Println(pids[0], pids[1])
	select {}
}

// A process started with DieWithParent ends when its parent is killed with
// SIGKILL, which no handler of the parent sees; one started without it
// lives on.
func TestDieWithParent(t *testing.T) {
	parent := exec.Command(os.Args[0], "-test.run", "^$")
	parent.Env = append(os.Environ(), parentEnv+"=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	var dies, lives int
	if _, serr := fmt.Sscan(line, &dies, &lives); err != nil || serr != nil {
		parent.Process.Kill()
		parent.Wait()
		t.Fatalf("the parent printed %q (%v, %v)", line, err, serr)
	}
	defer syscall.Kill(lives, syscall.SIGKILL)
	defer syscall.Kill(dies, syscall.SIGKILL) // if the test fails
	parent.Process.Kill()
	parent.Wait()

	deadline := time.Now().Add(5 * time.Second)
	for running(dies) {
		if time.Now().After(deadline) {
			t.Fatalf("the child started with DieWithParent (pid %d) still runs 5 s after its parent was killed", dies)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !running(lives) {
		t.Fatalf("the child started without DieWithParent (pid %d) ended with its parent: the test cannot tell the two apart", lives)
	}
}

// running reports whether pid is a process that has not exited (a zombie
// waiting for its new parent to reap it has).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
