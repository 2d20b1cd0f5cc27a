// Package procstat reads what a process has used from /proc: CPU time and
// resident memory. The benchmarks measure the servers from outside with
// it, as an operator's tools (top, ps) would.
package procstat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: 100 on every
// Linux architecture the project builds for.
const userHZ = 100

// Times is the CPU time a process has used, at a clock tick's resolution.
type Times struct {
	User, System time.Duration
}

// Total is user plus system time.
func (t Times) Total() time.Duration { return t.User + t.System }

// Since is the time used between an earlier reading and t.
func (t Times) Since(earlier Times) Times {
	return Times{User: t.User - earlier.User, System: t.System - earlier.System}
}

// CPU reads the CPU time process pid has used.
func CPU(pid int) (Times, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Times{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its last closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Times{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return Times{}, fmt.Errorf("/proc/%d/stat: %d fields after the command name", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Times{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	tick := time.Second / userHZ
	return Times{User: time.Duration(ut) * tick, System: time.Duration(st) * tick}, nil
}

// PercentOfCore is CPU time used over a span of wall time, in % of one
// core.
func PercentOfCore(used, span time.Duration) float64 {
	if span <= 0 {
		return 0
	}
	return 100 * used.Seconds() / span.Seconds()
}

// Usage runs f and returns the CPU each process used meanwhile, in % of
// one core over f's span. A read that fails (the process gone) counts as
// no time used so far, and the first failure is returned with the figures.
func Usage(pids []int, f func()) ([]float64, error) {
	var first error
	read := func(pid int) time.Duration {
		t, err := CPU(pid)
		if err != nil && first == nil {
			first = err
		}
		return t.Total()
	}
	before := make([]time.Duration, len(pids))
	for i, pid := range pids {
		before[i] = read(pid)
	}
	start := time.Now()
	f()
	span := time.Since(start)
	out := make([]float64, len(pids))
	for i, pid := range pids {
		out[i] = PercentOfCore(read(pid)-before[i], span)
	}
	return out, first
}

// ResidentKB reads process pid's resident set size (VmRSS), in kB.
func ResidentKB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest) // "12345", "kB"
			if len(fields) == 0 {
				break
			}
			return strconv.ParseInt(fields[0], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
