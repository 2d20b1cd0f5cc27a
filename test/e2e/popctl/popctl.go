// Package popctl runs POPs — the built Caddy binary with an edgeroute
// cluster block — as separate processes on 127.0.0.x loopback addresses,
// for the multi-process tests in test/e2e and the replication benchmark in
// bench/cluster. It edits their files with the real sqlite3 CLI and can
// cut a POP's cluster traffic off with nftables (root only).
package popctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe one POP.
type Options struct {
	Bin     string // the caddy binary
	Dir     string // its own directory (db, Caddyfile)
	Name    string // node name
	IP      string // 127.0.0.x: cluster bind and proxy listener
	Region  string
	Country string
	Join    []string // cluster addresses of other POPs
	Key     string   // base64 key, given through the environment
	Cluster string   // cluster name
	// ClusterPort and ListenPort default to free ports on IP.
	ClusterPort, ListenPort int
	// Extra lines inside cluster { }.
	ClusterExtra string
	// App routed by the listener (default myapp).
	App string
	// NoCluster leaves the cluster block out.
	NoCluster bool
	// WatchInterval of the routing table (default: edgeroute's, 50ms).
	WatchInterval string
	// Sites are Caddyfile site blocks after the global options, e.g. an
	// edgeroute_api site serving the Auto-Discovery API.
	Sites string
}

// POP is one running (or stopped) process.
type POP struct {
	Opts        Options
	DB          string
	Admin       string
	Listen      string
	ClusterAddr string

	mu  sync.Mutex
	log bytes.Buffer
	cmd *exec.Cmd
}

// FreePort returns a port free for TCP and UDP on ip.
func FreePort(ip string) (int, error) {
	// Below the kernel's ephemeral range (32768 and up), so the port cannot
	// be taken as the source port of an outgoing connection meanwhile.
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort(ip, fmt.Sprint(port)))
		ln.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

// New prepares a POP (ports, Caddyfile) without starting it.
func New(o Options) (*POP, error) {
	if o.App == "" {
		o.App = "myapp"
	}
	if o.Region == "" {
		o.Region = "sa"
	}
	if o.Country == "" {
		o.Country = "BR"
	}
	var err error
	if o.ClusterPort == 0 {
		if o.ClusterPort, err = FreePort(o.IP); err != nil {
			return nil, err
		}
	}
	if o.ListenPort == 0 {
		if o.ListenPort, err = FreePort(o.IP); err != nil {
			return nil, err
		}
	}
	adminPort, err := FreePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	p := &POP{Opts: o, DB: filepath.Join(o.Dir, "routing.db"),
		Admin:       fmt.Sprintf("127.0.0.1:%d", adminPort),
		Listen:      net.JoinHostPort(o.IP, fmt.Sprint(o.ListenPort)),
		ClusterAddr: net.JoinHostPort(o.IP, fmt.Sprint(o.ClusterPort))}
	return p, nil
}

func (p *POP) caddyfile() string {
	o := p.Opts
	cluster := ""
	if !o.NoCluster {
		join := ""
		if len(o.Join) > 0 {
			join = "join " + strings.Join(o.Join, " ")
		}
		key := ""
		if o.Key != "" {
			key = "key {env.EDGE_CLUSTER_KEY}"
		}
		name := ""
		if o.Cluster != "" {
			name = "name " + o.Cluster
		}
		cluster = fmt.Sprintf("cluster {\n\t\t\tbind %s\n\t\t\t%s\n\t\t\t%s\n\t\t\t%s\n\t\t\t%s\n\t\t}", p.ClusterAddr, join, key, name, o.ClusterExtra)
	}
	watch := ""
	if o.WatchInterval != "" {
		watch = "watch_interval " + o.WatchInterval
	}
	return fmt.Sprintf(`{
	admin %s
	edgeroute {
		db %s
		node %s
		region %s
		country %s
		%s
		%s
	}
	layer4 {
		%s {
			route {
				edgeroute %s
			}
		}
	}
}
%s`, p.Admin, p.DB, o.Name, o.Region, o.Country, watch, cluster, p.Listen, o.App, o.Sites)
}

// Start runs the process and waits until its listener accepts connections.
func (p *POP) Start() error {
	cfg := filepath.Join(p.Opts.Dir, "Caddyfile")
	if err := os.WriteFile(cfg, []byte(p.caddyfile()), 0o644); err != nil {
		return err
	}
	cmd := exec.Command(p.Opts.Bin, "run", "--config", cfg, "--adapter", "caddyfile")
	d := p.Opts.Dir
	cmd.Env = append(os.Environ(), "HOME="+d, "XDG_DATA_HOME="+d, "XDG_CONFIG_HOME="+d, "EDGE_CLUSTER_KEY="+p.Opts.Key)
	w := writerFunc(func(b []byte) (int, error) { p.mu.Lock(); defer p.mu.Unlock(); return p.log.Write(b) })
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd = cmd
	p.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", p.Listen, time.Second); err == nil {
			c.Close()
			if resp, err := http.Get("http://" + p.Admin + "/config/"); err == nil {
				resp.Body.Close()
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during start:\n%s", p.Opts.Name, p.Logs())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not start:\n%s", p.Opts.Name, p.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Reload loads the POP's (changed) Options through the admin API, as
// `caddy reload` does. The key travels inline, since a reload cannot change
// the process environment.
func (p *POP) Reload() error {
	cf := p.caddyfile()
	if p.Opts.Key != "" {
		cf = strings.Replace(cf, "key {env.EDGE_CLUSTER_KEY}", "key "+p.Opts.Key, 1)
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+p.Admin+"/load", strings.NewReader(cf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/caddyfile")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("reload: %s: %s", resp.Status, body)
	}
	return nil
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Kill stops the process with SIGKILL, as a crash would.
func (p *POP) Kill() {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		for i := 0; i < 200 && syscall.Kill(cmd.Process.Pid, 0) == nil; i++ {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// Logs returns what the process printed.
func (p *POP) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// SQL runs the sqlite3 CLI on the POP's file, as an operator would (with a
// busy timeout, since the replicator may be writing).
func (p *POP) SQL(stmt string) (string, error) {
	out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", p.DB, stmt).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("sqlite3 %s: %v: %s", stmt, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Get decodes an admin API answer.
func (p *POP) Get(path string, v any) error {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.Admin + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// Metrics returns the admin endpoint's Prometheus text.
func (p *POP) Metrics() (string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// Status is the part of GET /edgeroute/cluster the tools read.
type Status struct {
	Node      string            `json:"node"`
	Site      string            `json:"site"`
	DBVersion uint64            `json:"db_version"`
	Vector    map[string]uint64 `json:"vector"`
	Counts    map[string]int    `json:"members_by_state"`
	Members   []struct {
		Name   string  `json:"name"`
		State  string  `json:"state"`
		Behind int64   `json:"versions_behind"`
		LagMS  float64 `json:"lag_ms"`
	} `json:"members"`
	Changes  map[string]uint64 `json:"changes"`
	Messages map[string]uint64 `json:"messages"`
	Bytes    map[string]uint64 `json:"bytes"`
}

// Cluster reads GET /edgeroute/cluster.
func (p *POP) Cluster() (Status, error) {
	var s Status
	err := p.Get("/edgeroute/cluster", &s)
	return s, err
}

// Backend is a row of GET /edgeroute/backends.
type Backend struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

// Backends reads the routing table the POP routes with.
func (p *POP) Backends() ([]Backend, error) {
	var t struct{ Backends []Backend }
	err := p.Get("/edgeroute/backends", &t)
	return t.Backends, err
}

// Via connects through the POP's listener and returns the greeting of the
// backend it reached ("" if none).
func (p *POP) Via() string {
	c, err := net.DialTimeout("tcp", p.Listen, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

// Greeter is a backend that writes its name to every connection.
func Greeter(name string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", name)
			c.Close()
		}
	}()
	return ln, nil
}

// Cut drops a POP's cluster traffic with nftables (root only): everything
// to or from its cluster port, and streams it dials to the other POPs'
// cluster ports (the cluster dials from its bind address). Its proxy
// listener and admin API keep working.
type Cut struct{ table string }

// CutOff cuts victim from others.
func CutOff(victim *POP, others []*POP) (*Cut, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("cutting a POP off needs root (nftables)")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("nft not installed")
	}
	table := fmt.Sprintf("edgeproxy_cut_%d_%d", os.Getpid(), victim.Opts.ClusterPort)
	ip, port := victim.Opts.IP, victim.Opts.ClusterPort
	var rules strings.Builder
	fmt.Fprintf(&rules, "table inet %s {\n chain out {\n  type filter hook output priority 0; policy accept;\n", table)
	for _, proto := range []string{"tcp", "udp"} {
		fmt.Fprintf(&rules, "  ip daddr %s %s dport %d drop\n", ip, proto, port)
		fmt.Fprintf(&rules, "  ip saddr %s %s sport %d drop\n", ip, proto, port)
		for _, o := range others {
			fmt.Fprintf(&rules, "  ip saddr %s ip daddr %s %s dport %d drop\n", ip, o.Opts.IP, proto, o.Opts.ClusterPort)
		}
	}
	rules.WriteString(" }\n}\n")
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("nft: %v: %s", err, out)
	}
	return &Cut{table: table}, nil
}

// Heal removes the cut.
func (c *Cut) Heal() error {
	if c == nil || c.table == "" {
		return nil
	}
	out, err := exec.Command("nft", "delete", "table", "inet", c.table).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	c.table = ""
	return nil
}
