//go:build linux

// Command cluster-demo starts a whole edgeProxy v2 edge on one Linux
// machine, in network namespaces: three POPs (gru in sa, iad in us, fra in
// eu), each a Caddy with edgeroute (clustered, keyed), bgp and wg6pn and a
// CoreDNS with internal; an "internet" router running BIRD with a BGP
// session to every POP, and a client namespace behind it; backends of app
// demo behind iad and fra only, registering through `caddy edgeroute
// register`. Every POP announces 192.0.2.1/32. `make run-cluster` calls it
// (as root); Ctrl-C removes everything it made, and a run after a crash
// removes what the crashed one left first.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", ".run-cluster", "working directory: configurations, tables, logs")
	caddyBin := flag.String("caddy", "bin/caddy", "Caddy binary built from ./builds/caddy")
	corednsBin := flag.String("coredns", "bin/coredns", "CoreDNS binary built from ./builds/coredns")
	statusAddr := flag.String("status", "127.0.0.1:8090", "address on this machine where the status page of the preferred POP is served")
	flag.StringVar(&nsPrefix, "prefix", nsPrefix, "prefix of the namespace and interface names")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("run-cluster: ")

	if runtime.GOOS != "linux" {
		log.Fatal("the edge runs in Linux network namespaces, which this system does not have; `make run` starts a single POP on loopback instead")
	}
	if os.Geteuid() != 0 {
		log.Fatal("the edge runs in network namespaces with BIRD and WireGuard, which needs root: run `sudo make run-cluster`, or `make run` for a single POP on loopback without root")
	}
	var missing []string
	for tool, pkg := range map[string]string{"ip": "iproute2", "bird": "bird2", "birdc": "bird2", "curl": "curl", "dig": "dnsutils", "wg": "wireguard-tools"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		log.Fatalf("missing tools; install them with: apt-get install -y %s", strings.Join(missing, " "))
	}
	for _, b := range []string{*caddyBin, *corednsBin} {
		if _, err := os.Stat(b); err != nil {
			log.Fatalf("%v: build the binaries first (make build)", err)
		}
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	caddyAbs, _ := filepath.Abs(*caddyBin)
	corednsAbs, _ := filepath.Abs(*corednsBin)

	e := &edge{dir: abs, caddy: caddyAbs, coredns: corednsAbs, shown: *dir, caddyShown: *caddyBin}
	// Leftovers of a crashed run: its namespaces (with the processes in
	// them) and its WireGuard sockets, then its files.
	e.removeLeftovers()
	os.RemoveAll(abs)
	if err := os.MkdirAll(abs, 0o700); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	start := time.Now()
	if err := e.up(); err != nil {
		e.down()
		log.Fatalf("%v\n(logs in %s)", err, *dir)
	}
	preferred, err := e.waitServed(90 * time.Second)
	if err != nil {
		e.down()
		log.Fatalf("%v\n(logs in %s)", err, *dir)
	}
	ln, err := net.Listen("tcp", *statusAddr)
	if err != nil {
		e.down()
		log.Fatalf("status page on %s: %v (choose another with -status)", *statusAddr, err)
	}
	go e.forwardStatus(ln, preferred)
	e.printTry(preferred, *statusAddr, time.Since(start))

	<-sig
	fmt.Println("\nrun-cluster: stopping; removing namespaces, links and processes")
	ln.Close()
	e.down()
}

// edge is the running demo.
type edge struct {
	dir, caddy, coredns string
	shown, caddyShown   string // the paths as the user gave them, for printed commands
	net                 *network
}

func (e *edge) removeLeftovers() {
	for _, ns := range namespaces() {
		removeNS(ns)
	}
	for _, p := range pops {
		os.Remove("/var/run/wireguard/" + p.wg() + ".sock")
	}
}

// up builds the network and starts every process.
func (e *edge) up() error {
	key := make([]byte, 32)
	token := make([]byte, 16)
	rand.Read(key)
	rand.Read(token)
	if err := os.WriteFile(filepath.Join(e.dir, "cluster.key"), []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.dir, "api.token"), []byte(hex.EncodeToString(token)+"\n"), 0o600); err != nil {
		return err
	}
	hash, err := exec.Command(e.caddy, "hash-password", "--plaintext", statusPassword).Output()
	if err != nil {
		return fmt.Errorf("caddy hash-password: %v", err)
	}
	n, err := buildNetwork()
	e.net = n
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(e.dir, "bird.conf"), []byte(birdConf()), 0o644); err != nil {
		return err
	}
	if err := n.start(n.inet, filepath.Join(e.dir, "bird.log"), "bird", "-f", "-c", filepath.Join(e.dir, "bird.conf"),
		"-s", filepath.Join(e.dir, "bird.ctl"), "-P", filepath.Join(e.dir, "bird.pid")); err != nil {
		return err
	}
	for _, p := range pops {
		pd := filepath.Join(e.dir, p.name)
		if err := os.MkdirAll(pd, 0o700); err != nil {
			return err
		}
		cfg := filepath.Join(pd, "Caddyfile")
		if err := os.WriteFile(cfg, []byte(caddyfile(e.dir, p, strings.TrimSpace(string(hash)))), 0o600); err != nil {
			return err
		}
		if err := n.start(n.pop[p.name], filepath.Join(pd, "caddy.out"), e.caddy, "run", "--config", cfg, "--adapter", "caddyfile",
			"--pidfile", filepath.Join(pd, "caddy.pid")); err != nil {
			return err
		}
		// One at a time: the first POP creates the internal CA in the
		// storage they share, and the others load it instead of each
		// making a root of its own.
		if err := e.waitPOP(p, 60*time.Second); err != nil {
			return err
		}
		core := filepath.Join(pd, "Corefile")
		if err := os.WriteFile(core, []byte(corefile(e.dir, p)), 0o644); err != nil {
			return err
		}
		if err := n.start(n.pop[p.name], filepath.Join(pd, "coredns.log"), e.coredns, "-conf", core); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, p := range pops {
		if !p.backend {
			continue
		}
		be := n.be[p.name]
		logf := filepath.Join(e.dir, p.name, "backend.log")
		if err := n.start(be, logf, self, "backend", "-listen", "["+p.backend6()+"]:8080", "-id", p.backendID(), "-region", p.region); err != nil {
			return err
		}
		// The backend registers itself with its POP through the v1 API,
		// heartbeats, and registers again when the POP forgot it.
		if err := n.startEnv(be, filepath.Join(e.dir, p.name, "register.log"), []string{"EDGE_API_TOKEN=" + hex.EncodeToString(token)},
			e.caddy, "edgeroute", "register", "--api", fmt.Sprintf("http://[%s]:%d", p.lan6(), apiPort),
			"--id", p.backendID(), "--app", "demo", "--region", p.region, "--country", p.country,
			"--ip", p.backend6(), "--port", "8080", "--ttl", heartbeatTTL); err != nil {
			return err
		}
	}
	return nil
}

// down stops the POPs as an operator would (SIGINT: BGP sessions close,
// WireGuard devices go), then removes every namespace with whatever still
// runs in it, and the sockets.
func (e *edge) down() {
	if e.net != nil {
		e.net.close()
	}
	e.removeLeftovers()
}

// waitPOP waits until the POP's admin API answers.
func (e *edge) waitPOP(p popSpec, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		out, err := e.net.pop[p.name].Run("curl", "-s", "-m", "1", "http://127.0.0.1:2019/edgeroute/pop")
		if err == nil && strings.Contains(out, `"state"`) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("POP %s did not start within %v; see %s/caddy.log and caddy.out", p.name, within, filepath.Join(e.dir, p.name))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitServed waits until the client is served through the anycast address
// and returns the POP BIRD prefers.
func (e *edge) waitServed(within time.Duration) (string, error) {
	deadline := time.Now().Add(within)
	var last string
	for {
		out, _ := e.net.client.Run("curl", "-s", "-m", "2", "http://"+anycast+"/")
		last = out
		// Up means served, with every POP's announcement at the router.
		routes, _ := e.birdc("show", "route", anycast+"/32")
		if strings.HasPrefix(out, "hello from ") && strings.Count(routes, "unicast [") == len(pops) {
			if via := e.preferred(); via != "" {
				return via, nil
			}
		}
		if time.Now().After(deadline) {
			routes, _ := e.birdc("show", "route", "all")
			return "", fmt.Errorf("the client was not served through %s within %v (last answer %q); BIRD's routes:\n%s", anycast, within, last, routes)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (e *edge) birdc(args ...string) (string, error) {
	return e.net.inet.Run("birdc", append([]string{"-s", filepath.Join(e.dir, "bird.ctl")}, args...)...)
}

// preferred is the POP whose route to the anycast address BIRD installed.
func (e *edge) preferred() string {
	out, err := e.net.inet.Run("ip", "route", "show", anycast+"/32")
	if err != nil {
		return ""
	}
	for _, p := range pops {
		if strings.Contains(out, "via "+p.ip+" ") {
			return p.name
		}
	}
	return ""
}

// forwardStatus serves the status page of POP on this machine: each
// connection is copied to port 8080 inside the POP's namespace (the
// namespaces have no link to the host's network).
func (e *edge) forwardStatus(ln net.Listener, pop string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := dialIn(e.net.pop[pop], "tcp", fmt.Sprintf("127.0.0.1:%d", statusPort))
			if err != nil {
				return
			}
			defer up.Close()
			go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			io.Copy(c, up)
		}()
	}
}

func (e *edge) printTry(pref, statusAddr string, took time.Duration) {
	var p popSpec
	for _, q := range pops {
		if q.name == pref {
			p = q
		}
	}
	d, bin := e.shown, e.caddyShown
	fmt.Printf(`
The edge is up (%.0fs): three POPs in network namespaces, gru (sa), iad (us) and
fra (eu), each a Caddy with edgeroute, bgp and wg6pn and a CoreDNS with internal;
BIRD in %[10]sinet is the internet, with a BGP session to every POP; the client
is %[10]sclient. App demo has backends behind iad and fra only. Every POP
announces %[2]s/32, and BIRD prefers %[3]s. Logs and tables: %[4]s/<pop>/.
Stop with Ctrl-C: it removes every namespace, link and process.

Ask the anycast address as a client (the answer names the backend and the POP):
    ip netns exec %[10]sclient curl -s http://%[2]s/
    ip netns exec %[10]sclient curl -s --cacert %[4]s/caddy/pki/authorities/local/root.crt https://%[2]s/

Which POP the internet prefers:
    ip netns exec %[10]sinet ip route show %[2]s
    ip netns exec %[10]sinet birdc -s %[4]s/bird.ctl show route %[2]s/32

Drain the POP that answered and watch the next one take over, then undrain it:
    ip netns exec %[10]s%[3]s %[5]s edgeroute drain
    ip netns exec %[10]sclient curl -s http://%[2]s/
    ip netns exec %[10]s%[3]s %[5]s edgeroute undrain

Kill it instead, ask again, and start it again (it catches up, meshes and announces):
    kill -9 $(cat %[4]s/%[3]s/caddy.pid)
    ip netns exec %[10]sclient curl -s http://%[2]s/
    ip netns exec %[10]s%[3]s %[5]s start --config %[4]s/%[3]s/Caddyfile --pidfile %[4]s/%[3]s/caddy.pid

The table, the mesh and .internal from a POP (the same backends at every POP,
ordered for the asking client: here one in Germany):
    ip netns exec %[10]s%[3]s %[5]s edgeroute backends
    ip netns exec %[10]s%[3]s wg show %[11]s
    ip netns exec %[10]sclient dig @%[6]s demo.internal AAAA +short +subnet=193.99.144.80/32

The status page of %[3]s (user %[7]s, password %[8]s): open http://%[9]s/ in a
browser on this machine, or
    curl -s -u %[7]s:%[8]s 'http://%[9]s/?format=json'
`, took.Seconds(), anycast, pref, d, bin, p.ip, statusUser, statusPassword, statusAddr, nsPrefix, p.wg())
}
