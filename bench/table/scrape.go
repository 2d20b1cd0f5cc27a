package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/popctl"
	"github.com/edgeproxy/edgeproxy/internal/procstat"
)

// benchScrape measures a Prometheus scrape of Caddy's /metrics for each
// table size, with the backends this POP used (one, the live backend) as
// the only ones with series of their own (backend_metrics used, the
// default), then with every backend (all), set through the config API.
func benchScrape(caddy, sizes string) error {
	live, err := popctl.Greeter("live")
	if err != nil {
		return err
	}
	defer live.Close()
	port := live.Addr().(*net.TCPAddr).Port
	fmt.Println("| backends | backend_metrics | samples | bytes | scrape | Caddy CPU | Caddy RSS after |")
	fmt.Println("|---:|---|---:|---:|---:|---:|---:|")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-sizes: %v", err)
		}
		if err := scrapeSize(caddy, n, port); err != nil {
			return err
		}
	}
	return nil
}

func scrapeSize(caddy string, n, port int) error {
	dir, err := os.MkdirTemp("", "edgeroute-scrape")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	db := filepath.Join(dir, "routing.db")
	if err := seed(db, n, fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('live', 'myapp', 'sa', 'BR', '127.0.0.1', %d);`, port)); err != nil {
		return err
	}
	p, err := popctl.New(popctl.Options{Bin: caddy, Dir: dir, NoCluster: true, App: "myapp", Extra: "affinity off", DieWithParent: true})
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer p.Kill()
	for deadline := time.Now().Add(60 * time.Second); p.Via() != "live"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d backends: never routed:\n%s", n, p.Logs())
		}
	}
	for _, mode := range []string{"used", "all"} {
		if mode != "used" {
			code, body, err := p.AdminDo(http.MethodPost, "/config/apps/edgeroute/backend_metrics", "application/json", strconv.Quote(mode))
			if err != nil || code != http.StatusOK {
				return fmt.Errorf("setting backend_metrics %s: %d %s %v", mode, code, body, err)
			}
		}
		before, err := procstat.CPU(p.PID())
		if err != nil {
			return err
		}
		start := time.Now()
		body, err := scrape(p.Admin)
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("%d backends, %s: %v", n, mode, err)
		}
		after, _ := procstat.CPU(p.PID())
		rss, _ := procstat.ResidentKB(p.PID())
		if !strings.Contains(body, `edgeroute_backend_connections_total{app="myapp",backend="live"}`) {
			return fmt.Errorf("%d backends, %s: the scrape has no series of the backend in use", n, mode)
		}
		samples := 0
		for _, line := range strings.Split(body, "\n") {
			if line != "" && !strings.HasPrefix(line, "#") {
				samples++
			}
		}
		cpu := after.Since(before).Total().Round(time.Millisecond).String()
		if cpu == "0s" {
			cpu = "< 10ms" // the kernel counts CPU time in ticks of 10 ms
		}
		fmt.Printf("| %d | %s | %d | %.0f KB | %v | %s | %.0f MB |\n", n, mode, samples, float64(len(body))/1e3,
			took.Round(time.Millisecond), cpu, float64(rss)/1024)
	}
	return nil
}

// scrape reads /metrics as Prometheus would, waiting as long as it takes.
func scrape(admin string) (string, error) {
	cl := &http.Client{Timeout: 2 * time.Minute}
	resp, err := cl.Get("http://" + admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return string(b), err
}
