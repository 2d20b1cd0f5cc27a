package procstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// Work this process does shows in its CPU time, at the kernel's tick.
func TestCPUCountsWork(t *testing.T) {
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		x++
	}
	after, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	used := after.Since(before).Total()
	// 200 ms of spinning on one core, read at 10 ms ticks and with room
	// for a machine that took the core away meanwhile.
	if used < 50*time.Millisecond || used > 2*time.Second {
		t.Fatalf("200 ms of work read as %v of CPU (%d loops)", used, x)
	}
	if p := PercentOfCore(used, 200*time.Millisecond); p < 25 || p > 1000 {
		t.Fatalf("%v over 200 ms is %.0f%% of a core", used, p)
	}
}

// Usage reads a busy process against an idle one over the same seconds.
func TestUsage(t *testing.T) {
	idle := exec.Command("sleep", "10")
	if err := idle.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { idle.Process.Kill(); idle.Wait() }()
	got, err := Usage([]int{os.Getpid(), idle.Process.Pid}, func() {
		for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] < 25 || got[1] > 10 {
		t.Fatalf("spinning read as %.0f%% of a core, sleeping as %.0f%%", got[0], got[1])
	}
	if _, err := Usage([]int{1 << 30}, func() {}); err == nil {
		t.Fatal("Usage of no process: no error")
	}
}

func TestResidentKB(t *testing.T) {
	kb, err := ResidentKB(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if kb < 1024 {
		t.Fatalf("a Go test process resident in %d kB", kb)
	}
}

// A process that is gone is an error naming it, not a zero.
func TestGoneProcess(t *testing.T) {
	const pid = 1 << 30 // above any pid_max
	if _, err := CPU(pid); err == nil {
		t.Fatal("CPU of no process: no error")
	}
	if _, err := ResidentKB(pid); err == nil {
		t.Fatal("ResidentKB of no process: no error")
	}
}
