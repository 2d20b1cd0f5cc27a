package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture the project builds for.
const clockTicks = 100

// cpuTime is the user plus system CPU time a process has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: fields are counted
	// after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// idleCPU leaves the POPs alone for span and returns the share of one
// core each used meanwhile.
func idleCPU(pops []*popctl.POP, span time.Duration) ([]float64, error) {
	pids := make([]int, len(pops))
	before := make([]time.Duration, len(pops))
	for i, p := range pops {
		if pids[i] = p.PID(); pids[i] == 0 {
			return nil, fmt.Errorf("%s is not running", p.Opts.Name)
		}
	}
	for i, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		before[i] = t
	}
	t0 := time.Now()
	time.Sleep(span)
	wall := time.Since(t0)
	out := make([]float64, len(pops))
	for i, pid := range pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		out[i] = 100 * float64(t-before[i]) / float64(wall)
	}
	return out, nil
}

// idleSummary formats per-POP idle CPU as "mean (max)" in percent of a core.
func idleSummary(cpu []float64) string {
	if len(cpu) == 0 {
		return "-"
	}
	sum, top := 0.0, 0.0
	for _, c := range cpu {
		sum += c
		top = max(top, c)
	}
	return fmt.Sprintf("%.2f %% (max %.2f %%)", sum/float64(len(cpu)), top)
}

// idleOnly starts n POPs, lets them settle, and reports each one's CPU over
// span: the figure for an idle POP.
func idleOnly(bin string, n int, span time.Duration, noCluster bool) {
	c := startOpts(bin, n, noCluster)
	defer c.stop()
	time.Sleep(2 * time.Second) // past the joins and the first exchanges
	cpu, err := idleCPU(c.pops, span)
	if err != nil {
		c.stop()
		fail("%v", err)
	}
	what := "clustered"
	if noCluster {
		what = "unclustered"
	}
	fmt.Printf("%d %s POPs idle for %v, CPU per POP (%% of one core):", n, what, span)
	for _, v := range cpu {
		fmt.Printf(" %.2f", v)
	}
	fmt.Printf("; mean %s\n", idleSummary(cpu))
}
