package main

import (
	"fmt"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/internal/procstat"
)

// idleCPU leaves the POPs alone for span and returns the share of one
// core each used meanwhile.
func idleCPU(pops []*popctl.POP, span time.Duration) ([]float64, error) {
	pids := make([]int, len(pops))
	for i, p := range pops {
		if pids[i] = p.PID(); pids[i] == 0 {
			return nil, fmt.Errorf("%s is not running", p.Opts.Name)
		}
	}
	return procstat.Usage(pids, func() { time.Sleep(span) })
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
