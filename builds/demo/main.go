// Command demo starts a single-POP edgeProxy on loopback: three demo
// backends, the edgeroute proxy in front of them and the internal DNS, all
// from the binaries in bin/. `make run` calls it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// The demo POP sits in São Paulo; its backends are spread over three regions.
var backends = []struct {
	id, region, country string
	port                int
}{
	{"demo-sa-1", "sa", "BR", 9101},
	{"demo-eu-1", "eu", "DE", 9102},
	{"demo-us-1", "us", "US", 9103},
}

const caddyfile = `{
	admin localhost:2019
	edgeroute {
		db %[1]s
		node demo-gru-1
		region sa
		country BR
	}
	layer4 {
		127.0.0.1:8080 {
			route {
				edgeroute demo
			}
		}
	}
}

# The demo backends: plain HTTP servers that say who they are.
http://127.0.0.1:9101 {
	respond <<EOF
		hello from demo-sa-1 (sa, BR)

		EOF
}
http://127.0.0.1:9102 {
	respond <<EOF
		hello from demo-eu-1 (eu, DE)

		EOF
}
http://127.0.0.1:9103 {
	respond <<EOF
		hello from demo-us-1 (us, US)

		EOF
}
`

const corefile = `internal:8053 {
	bind 127.0.0.1
	internal {
		db %[1]s
		region sa
	}
	errors
	log
}
`

func main() {
	dir := flag.String("dir", ".run", "working directory of the demo")
	caddyBin := flag.String("caddy", "bin/caddy", "Caddy binary built from ./builds/caddy")
	corednsBin := flag.String("coredns", "bin/coredns", "CoreDNS binary built from ./builds/coredns")
	flag.Parse()

	abs, err := filepath.Abs(*dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		log.Fatal(err)
	}
	db := filepath.Join(abs, "routing.db")
	if err := seed(db); err != nil {
		log.Fatal(err)
	}
	caddyConf := filepath.Join(abs, "Caddyfile")
	coreConf := filepath.Join(abs, "Corefile")
	write(caddyConf, fmt.Sprintf(caddyfile, db))
	write(coreConf, fmt.Sprintf(corefile, db))

	caddy := start(abs, "caddy", *caddyBin, "run", "--config", caddyConf, "--adapter", "caddyfile")
	coredns := start(abs, "coredns", *corednsBin, "-conf", coreConf)
	for what, addr := range map[string]string{"edgeroute proxy": "127.0.0.1:8080", "internal DNS": "127.0.0.1:8053"} {
		if err := waitTCP(addr); err != nil {
			stop(caddy, coredns)
			log.Fatalf("%s did not come up on %s (%v); see the logs in %s", what, addr, err, abs)
		}
	}
	defer stop(caddy, coredns)

	fmt.Printf(`
edgeProxy demo POP "demo-gru-1" (region sa, country BR) is running.
Logs: %[1]s/caddy.log and %[1]s/coredns.log. Stop with Ctrl-C.

Connect through the proxy (a loopback client has no country, so it goes to
the POP's own region, sa):
    curl http://127.0.0.1:8080/

Ask the running proxy why, and how a German or a US client would be routed:
    bin/caddy edgeroute route --app demo --client 127.0.0.1
    bin/caddy edgeroute route --app demo --client 193.99.144.80
    bin/caddy edgeroute route --app demo --client 8.8.8.8
    bin/caddy edgeroute backends

Edit the routing table like an operator; the proxy follows within 200 ms:
    sqlite3 %[2]s "UPDATE backends SET healthy=0 WHERE id='demo-sa-1'"
    curl http://127.0.0.1:8080/          # now another region answers
    sqlite3 %[2]s "UPDATE backends SET healthy=1 WHERE id='demo-sa-1'"

Query the internal DNS:
    dig @127.0.0.1 -p 8053 demo.internal
    dig @127.0.0.1 -p 8053 SRV demo.internal
    dig @127.0.0.1 -p 8053 sa.backends.internal

Metrics: curl -s localhost:2019/metrics | grep edgeroute_
`, abs, db)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case <-exited(caddy):
		log.Print("caddy exited; see caddy.log")
	case <-exited(coredns):
		log.Print("coredns exited; see coredns.log")
	}
}

// seed creates the routing table with the demo backends, resetting them if
// the demo ran before.
func seed(path string) error {
	ctx := context.Background()
	s, err := store.Open(ctx, path, store.Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	for _, b := range backends {
		// No TTL: permanent rows, healthy and not deleted, as an operator
		// would write them with SQL.
		_, err := s.Register(ctx, store.Registration{ID: b.id, App: "demo", Region: b.region, Country: b.country,
			IP: "127.0.0.1", Port: b.port, Weight: 2, SoftLimit: 100, HardLimit: 150}, 0, time.Now())
		if err != nil {
			return fmt.Errorf("seeding %s: %w", path, err)
		}
	}
	return nil
}

func write(path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		log.Fatal(err)
	}
}

func start(dir, name, bin string, args ...string) *exec.Cmd {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		log.Fatalf("starting %s: %v", name, err)
	}
	return cmd
}

var waits = map[*exec.Cmd]chan struct{}{}

func exited(cmd *exec.Cmd) chan struct{} {
	if ch, ok := waits[cmd]; ok {
		return ch
	}
	ch := make(chan struct{})
	waits[cmd] = ch
	go func() { cmd.Wait(); close(ch) }()
	return ch
}

func stop(cmds ...*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Signal(os.Interrupt)
	}
	for _, c := range cmds {
		select {
		case <-exited(c):
		case <-time.After(5 * time.Second):
			c.Process.Kill()
		}
	}
}

func waitTCP(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
