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

// benchScrape measures, for each table size, what an operator's periodic
// reads of a POP cost it: a Prometheus scrape of /metrics with the
// backends this POP used (one, the live backend) as the only ones with
// series of their own (backend_metrics used, the default), then with every
// backend (all, set through the config API); and one refresh of the
// status page (?format=fragment, as the open page asks every second)
// listing the default 25 backends an app, then every backend.
func benchScrape(caddy, sizes string) error {
	live, err := popctl.Greeter("live")
	if err != nil {
		return err
	}
	defer live.Close()
	port := live.Addr().(*net.TCPAddr).Port
	fmt.Println("| backends | request | samples | bytes | time | Caddy CPU | Caddy RSS after |")
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
	pagePort, err := popctl.FreePort("")
	if err != nil {
		return err
	}
	allPort, err := popctl.FreePort("")
	if err != nil {
		return err
	}
	sites := fmt.Sprintf("http://127.0.0.1:%d {\n\tedgeroute_status\n}\n\nhttp://127.0.0.1:%d {\n\tedgeroute_status {\n\t\tbackends_per_app all\n\t}\n}\n", pagePort, allPort)
	p, err := popctl.New(popctl.Options{Bin: caddy, Dir: dir, NoCluster: true, App: "myapp", Extra: "affinity off", Sites: sites, DieWithParent: true})
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
	measure := func(what, url, mustHave string, samples bool) error {
		before, err := procstat.CPU(p.PID())
		if err != nil {
			return err
		}
		start := time.Now()
		body, err := read(url)
		took := time.Since(start)
		if err != nil {
			return fmt.Errorf("%d backends, %s: %v", n, what, err)
		}
		after, _ := procstat.CPU(p.PID())
		rss, _ := procstat.ResidentKB(p.PID())
		if !strings.Contains(body, mustHave) {
			return fmt.Errorf("%d backends, %s: the answer lacks %s", n, what, mustHave)
		}
		count := "–"
		if samples {
			k := 0
			for _, line := range strings.Split(body, "\n") {
				if line != "" && !strings.HasPrefix(line, "#") {
					k++
				}
			}
			count = strconv.Itoa(k)
		}
		cpu := after.Since(before).Total().Round(time.Millisecond).String()
		if cpu == "0s" {
			cpu = "< 10ms" // the kernel counts CPU time in ticks of 10 ms
		}
		fmt.Printf("| %d | %s | %s | %.0f KB | %v | %s | %.0f MB |\n", n, what, count, float64(len(body))/1e3,
			took.Round(time.Millisecond), cpu, float64(rss)/1024)
		return nil
	}
	used := `edgeroute_backend_connections_total{app="myapp",backend="live"}`
	if err := measure("/metrics, backend_metrics used", "http://"+p.Admin+"/metrics", used, true); err != nil {
		return err
	}
	code, body, err := p.AdminDo(http.MethodPost, "/config/apps/edgeroute/backend_metrics", "application/json", `"all"`)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("setting backend_metrics all: %d %s %v", code, body, err)
	}
	if err := measure("/metrics, backend_metrics all", "http://"+p.Admin+"/metrics", used, true); err != nil {
		return err
	}
	if err := measure("status page refresh, 25 an app", fmt.Sprintf("http://127.0.0.1:%d/?format=fragment", pagePort), `data-backend="live"`, false); err != nil {
		return err
	}
	return measure("status page refresh, all", fmt.Sprintf("http://127.0.0.1:%d/?format=fragment", allPort), `data-backend="live"`, false)
}

// read GETs a URL as a scraper or a browser would, waiting as long as it
// takes.
func read(url string) (string, error) {
	cl := &http.Client{Timeout: 2 * time.Minute}
	resp, err := cl.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}
