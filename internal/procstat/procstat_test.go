package procstat

import (
	"os"
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
