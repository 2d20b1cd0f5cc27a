package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/internal/procstat"
	"github.com/edgeproxy/edgeproxy/store"
)

// joinBackends measures a new POP catching up on a large table: one POP
// serves a table of n backends (100 apps, written by the sqlite3 CLI
// before it starts), then a second POP with an empty file joins it. It
// reports the time until the new POP routes every backend, each POP's CPU
// and resident memory over the catch-up, and the changes and bytes the
// serving POP sent. With profile set, both POPs' CPU profiles over the
// first profileSeconds of the catch-up are written there.
func joinBackends(bin string, n int, profile string) {
	dir, err := os.MkdirTemp("", "bench-join")
	if err != nil {
		fail("%v", err)
	}
	defer os.RemoveAll(dir)
	kb := make([]byte, 32)
	rand.Read(kb)
	key := base64.StdEncoding.EncodeToString(kb)
	pop := func(i int, db string, join []string) *popctl.POP {
		p, err := popctl.New(popctl.Options{Bin: bin, Dir: filepath.Join(dir, fmt.Sprint("pop", i)), Name: fmt.Sprintf("pop%d", i),
			IP: fmt.Sprintf("127.0.1.%d", 10+i), Key: key, Cluster: "bench", DB: db, Join: join, App: "app0", DieWithParent: true})
		if err != nil {
			fail("%v", err)
		}
		return p
	}
	db := filepath.Join(dir, "pop0.db")
	st, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		fail("%v", err)
	}
	st.Close()
	seed := exec.Command("sqlite3", db)
	seed.Stdin = strings.NewReader(fmt.Sprintf(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < %d)
INSERT INTO backends (id, app, region, country, wg_ip, port)
SELECT 'b' || i, 'app' || (i %% 100), 'sa', 'BR', '10.' || ((i >> 16) & 255) || '.' || ((i >> 8) & 255) || '.' || (i & 255), 8000 FROM c;`, n-1))
	if out, err := seed.CombinedOutput(); err != nil {
		fail("seeding: %v: %s", err, out)
	}
	a := pop(0, db, nil)
	if err := a.Start(); err != nil {
		fail("%v", err)
	}
	defer a.Kill()
	b := pop(1, "", []string{a.ClusterAddr})
	before, _ := procstat.CPU(a.PID())
	start := time.Now()
	if err := b.Start(); err != nil {
		fail("%v", err)
	}
	defer b.Kill()
	var profiled sync.WaitGroup
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			fail("%v", err)
		}
		for name, p := range map[string]*popctl.POP{"serving": a, "new": b} {
			profiled.Add(1)
			go func() {
				defer profiled.Done()
				if err := popctl.SaveProfile(p.CPUProfileURL(profileSeconds), filepath.Join(profile, name+".pprof")); err != nil {
					fmt.Fprintf(os.Stderr, "cluster: %s POP's profile: %v\n", name, err)
				}
			}()
		}
	}
	perApp := strconv.Itoa(n / 100)
	for {
		if v, _ := b.Metric(`edgeroute_app_routable_backends{app="app0"}`); v == perApp {
			if out, _ := exec.Command("sqlite3", b.DB, "SELECT count(*) FROM backends").Output(); strings.TrimSpace(string(out)) == strconv.Itoa(n) {
				break
			}
		}
		if time.Since(start) > 10*time.Minute {
			fail("the new POP did not catch up within 10 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
	took := time.Since(start)
	profiled.Wait()
	afterA, _ := procstat.CPU(a.PID())
	cpuB, _ := procstat.CPU(b.PID())
	rssA, _ := procstat.ResidentKB(a.PID())
	rssB, _ := procstat.ResidentKB(b.PID())
	sent, _ := a.Metric(`edgeroute_cluster_changes_total{result="sent"}`)
	bytes, _ := a.Metric(`edgeroute_cluster_bytes_total{direction="sent"}`)
	echoed, _ := b.Metric(`edgeroute_cluster_changes_total{result="sent"}`)
	fmt.Println("| backends | new POP caught up | serving POP CPU | new POP CPU | serving POP RSS | new POP RSS | changes sent | bytes sent | changes the new POP sent |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	// The samples' values, as Prometheus writes them (1.100009e+06).
	num := func(s string) float64 {
		f, _ := strconv.ParseFloat(s, 64)
		return f
	}
	fmt.Printf("| %d | %v | %v | %v | %d MB | %d MB | %.0f | %.1f MB | %.0f |\n", n, took.Round(100*time.Millisecond),
		afterA.Since(before).Total().Round(10*time.Millisecond), cpuB.Total().Round(10*time.Millisecond), rssA/1024, rssB/1024,
		num(sent), num(bytes)/1e6, num(echoed))
}

// profileSeconds is how long the join's CPU profiles run: the first part
// of a catch-up of 100,000 backends, which takes about 25 s.
const profileSeconds = 15
