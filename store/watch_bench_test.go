package store

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/routing"
)

// BenchmarkWatchCommit is what a process watching the file spends on each
// commit another process makes, ten milliseconds apart as edits by hand or
// by a health checker come: to a table no snapshot holds (the cost of
// being told and looking), and to one backend row of 10,000 (followed into
// a new snapshot). The writer is one sqlite3 CLI fed by a shell, so none
// of its work is counted; cpu-us/commit is this process's CPU.
func BenchmarkWatchCommit(b *testing.B) {
	for _, c := range []struct{ name, stmt string }{
		{"table=other", "UPDATE bench_other SET v = $i WHERE k = 1;"},
		{"table=backends", "UPDATE backends SET healthy = $((i % 2)) WHERE id = 'b$((i * 7919 % 10000))';"},
	} {
		b.Run(c.name, func(b *testing.B) {
			path := seedTable(b, 10000)
			if out, err := exec.Command("sqlite3", path, "CREATE TABLE bench_other (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO bench_other VALUES (1, 0);").CombinedOutput(); err != nil {
				b.Fatalf("sqlite3: %v: %s", err, out)
			}
			s, err := Open(context.Background(), path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			t, _, err := s.Snapshot(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			snapshots := make(chan struct{}, 1<<16)
			go s.Watch(ctx, Watcher{From: t, OnTable: func(*routing.Table, []string) { snapshots <- struct{}{} }})
			time.Sleep(200 * time.Millisecond)

			n := b.N
			script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "%s"; sleep 0.01; i=$((i + 1)); done | sqlite3 -cmd ".timeout 5000" %s`, n, strings.ReplaceAll(c.stmt, `"`, `\"`), path)
			b.ResetTimer()
			c0 := cpuTime()
			if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
				b.Fatalf("writer: %v: %s", err, out)
			}
			time.Sleep(50 * time.Millisecond) // the last commit's look
			used := cpuTime() - c0
			b.StopTimer()
			if c.name == "table=backends" && len(snapshots) == 0 {
				b.Fatalf("%d commits made no snapshot", n)
			}
			b.ReportMetric(float64(used.Microseconds())/float64(n), "cpu-us/commit")
			b.ReportMetric(float64(len(snapshots))/float64(n), "snapshots/commit")
		})
	}
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
