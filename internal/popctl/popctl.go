// Package popctl runs POPs — the Caddy binary built from builds/caddy, with
// the edgeroute app — as separate processes on loopback addresses, for the
// tests that drive the binary (plugins/caddy-edgeroute, test/e2e) and for
// the benchmarks under bench/. One POP is one process with its own
// directory, Caddyfile, table file and admin endpoint, optionally a member
// of a cluster. The harness edits table files with the real sqlite3 CLI,
// reads the admin API and the Prometheus scrape, signals the process as an
// operator or a crash would, and can cut a POP's cluster traffic off with
// nftables (root only).
//
// Every call returns an error rather than failing a test: the package is
// shared by tests and by plain programs.
package popctl

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// Options describe one POP. Only Bin and Dir are required.
type Options struct {
	Bin     string // the caddy binary
	Dir     string // its own directory (Caddyfile, table file, HOME)
	Name    string // node name (default "pop")
	IP      string // loopback address of the cluster bind and the proxy listener (default 127.0.0.1)
	Region  string // default "sa"
	Country string // default "BR"
	// DB is an existing table file to open instead of Dir/routing.db.
	DB string
	// GeoIP is the path of a GeoIP country database (the geoip option).
	GeoIP string

	Join    []string // cluster addresses of other POPs
	Key     string   // base64 key, given through the environment
	Cluster string   // cluster name
	// ClusterPort and ListenPort default to free ports on IP.
	ClusterPort, ListenPort int
	// Extra lines inside cluster { }.
	ClusterExtra string
	// NoCluster leaves the cluster block out: a POP on its own.
	NoCluster bool

	// App routed by the POP's port (default myapp).
	App string
	// Listener serves the POP's port with the app's own listen block in
	// the edgeroute options instead of a layer4 route to the edgeroute
	// handler.
	Listener bool
	// Handler holds lines inside the handler's block (edgeroute <app> { })
	// or, with Listener, inside the listen block: proxy_protocol, tries...
	Handler string
	// Extra lines inside the global edgeroute { } block (affinity off,
	// health checks, drain_file...).
	Extra string
	// WatchInterval of the routing table (default: edgeroute's, 50ms).
	WatchInterval string
	// Sites are Caddyfile site blocks after the global options, e.g. an
	// edgeroute_api site serving the Auto-Discovery API.
	Sites string
	// Env holds extra environment variables (NAME=value) for the process.
	Env []string
	// DieWithParent: the process is killed when this one dies (see
	// DieWithParent), for a benchmark.
	DieWithParent bool
}

// POP is one running (or stopped) process.
type POP struct {
	Opts        Options
	DB          string // the table file
	Admin       string // host:port of the admin API
	Listen      string // host:port of the proxy port
	ClusterAddr string // host:port of the cluster bind

	mu     sync.Mutex
	log    bytes.Buffer
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// New prepares a POP (defaults, ports, directory) without starting it.
func New(o Options) (*POP, error) {
	if o.Bin == "" || o.Dir == "" {
		return nil, fmt.Errorf("popctl: Bin and Dir are required")
	}
	if o.Name == "" {
		o.Name = "pop"
	}
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
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
	if o.ClusterPort == 0 && !o.NoCluster {
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
	db := o.DB
	if db == "" {
		db = filepath.Join(o.Dir, "routing.db")
	}
	p := &POP{Opts: o, DB: db,
		Admin:  fmt.Sprintf("127.0.0.1:%d", adminPort),
		Listen: net.JoinHostPort(o.IP, fmt.Sprint(o.ListenPort))}
	if !o.NoCluster {
		p.ClusterAddr = net.JoinHostPort(o.IP, fmt.Sprint(o.ClusterPort))
	}
	return p, nil
}

// ConfigPath is where Start writes the POP's Caddyfile (a reload with
// `caddy reload --config` reads it from there).
func (p *POP) ConfigPath() string { return filepath.Join(p.Opts.Dir, "Caddyfile") }
