// Command mesh measures the 6PN mesh against Debian's standalone
// wireguard-go, between the same two network namespaces, in one run.
//
//	go run ./bench/mesh -caddy bin/caddy [-rounds 3] [-seconds 5]
//
// Two namespaces are joined by a veth pair (the "internet", 198.51.100.0/24).
// In them run, side by side:
//
//   - mesh: two Caddy POPs, clustered, each with the wg6pn app (the
//     embedded userspace device), meshed from the replicated pops table;
//   - wireguard-go: Debian's wireguard-go daemon in each namespace,
//     configured with wg, the same MTU (1420) and the same kind of
//     addresses (a ULA /64 per side);
//   - direct: the veth pair itself, the ceiling.
//
// iperf3 measures TCP throughput from one side to the other through each
// path, the paths taking turns over the rounds (a shared machine's speed
// drifts); ping measures the round trip. It prints a Markdown table with
// each path's median, the mesh's ratio to wireguard-go, and the latency
// each tunnel adds to the veth's. Needs root, iperf3, wireguard-go and wg.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/netns"
)

func main() {
	caddy := flag.String("caddy", "bin/caddy", "the Caddy binary built from builds/caddy")
	rounds := flag.Int("rounds", 3, "rounds; every path runs once per round")
	seconds := flag.Int("seconds", 5, "seconds per iperf3 run")
	flag.Parse()
	if err := run(*caddy, *rounds, *seconds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/mesh:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

type path struct {
	name   string
	target string // the server side's address on this path
	tput   []float64
	rtt    []float64
}

func run(caddy string, rounds, seconds int) error {
	if err := netns.Root(); err != nil {
		fmt.Println("bench/mesh skipped:", err)
		return nil
	}
	for _, tool := range []string{"iperf3", "wireguard-go", "wg", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is required (apt-get install iperf3 wireguard-go wireguard-tools iputils-ping)", tool)
		}
	}
	caddy, err := filepath.Abs(caddy)
	if err != nil {
		return err
	}
	n := netns.New("benchmesh")
	defer n.Close()
	x, err := n.Add("x")
	if err != nil {
		return err
	}
	y, err := n.Add("y")
	if err != nil {
		return err
	}
	if err := n.Link(x, []string{"198.51.100.1/24"}, y, []string{"198.51.100.2/24"}); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-mesh")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	logf("starting the mesh (two Caddy POPs)")
	key := make([]byte, 32)
	rand.Read(key)
	clusterKey := base64.StdEncoding.EncodeToString(key)
	wgA, wgB := n.IfName("wgm"), n.IfName("wgm")
	for _, p := range []struct {
		ns              *netns.NS
		node, ip, other string
		subnet, iface   string
	}{{x, "a", "198.51.100.1", "198.51.100.2", "a", wgA}, {y, "b", "198.51.100.2", "198.51.100.1", "b", wgB}} {
		d := filepath.Join(dir, p.node)
		os.MkdirAll(d, 0o700)
		cf := fmt.Sprintf(`{
	admin 127.0.0.1:2019
	edgeroute {
		db %[1]s/routing.db
		node %[2]s
		region sa
		cluster {
			bind %[3]s:7946
			join %[4]s:7946
			key %[5]s
		}
	}
	wg6pn {
		network fdaa:0:1::/48
		subnet %[6]s
		listen_port 51820
		endpoint %[3]s:51820
		interface %[7]s
		private_key_file %[1]s/wg.key
	}
}
`, d, p.node, p.ip, p.other, clusterKey, p.subnet, p.iface)
		os.WriteFile(filepath.Join(d, "Caddyfile"), []byte(cf), 0o600)
		cmd := p.ns.Cmd(caddy, "run", "--config", filepath.Join(d, "Caddyfile"), "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+d, "XDG_CONFIG_HOME="+d, "HOME="+d)
		logFile, _ := os.Create(filepath.Join(d, "caddy.log"))
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := p.ns.Start(cmd); err != nil {
			return err
		}
	}
	if err := waitHandshake(x, wgA, 20*time.Second); err != nil {
		return fmt.Errorf("mesh: %v", err)
	}

	logf("starting Debian's wireguard-go")
	wgX, wgY := n.IfName("wgd"), n.IfName("wgd")
	keys := map[string][2]string{}
	for _, s := range []string{"x", "y"} {
		priv, err := exec.Command("wg", "genkey").Output()
		if err != nil {
			return err
		}
		c := exec.Command("wg", "pubkey")
		c.Stdin = strings.NewReader(string(priv))
		pub, err := c.Output()
		if err != nil {
			return err
		}
		keys[s] = [2]string{strings.TrimSpace(string(priv)), strings.TrimSpace(string(pub))}
	}
	for _, s := range []struct {
		ns                 *netns.NS
		me, peer, iface    string
		addr, peerNet, end string
	}{{x, "x", "y", wgX, "fdaa:0:2:a::1", "fdaa:0:2:b::/64", "198.51.100.2:51830"}, {y, "y", "x", wgY, "fdaa:0:2:b::1", "fdaa:0:2:a::/64", "198.51.100.1:51830"}} {
		cmd := s.ns.Cmd("wireguard-go", "-f", s.iface)
		cmd.Env = append(os.Environ(), "LOG_LEVEL=error")
		if err := s.ns.Start(cmd); err != nil {
			return err
		}
		keyFile := filepath.Join(dir, s.me+".key")
		os.WriteFile(keyFile, []byte(keys[s.me][0]+"\n"), 0o600)
		deadline := time.Now().Add(10 * time.Second)
		for {
			if _, err := s.ns.Run("wg", "show", s.iface); err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("wireguard-go %s did not come up", s.iface)
			}
			time.Sleep(50 * time.Millisecond)
		}
		for _, args := range [][]string{
			{"wg", "set", s.iface, "private-key", keyFile, "listen-port", "51830", "peer", keys[s.peer][1], "endpoint", s.end, "allowed-ips", s.peerNet, "persistent-keepalive", "25"},
			{"ip", "link", "set", s.iface, "mtu", "1420", "up"},
			{"ip", "addr", "add", s.addr + "/128", "dev", s.iface, "nodad"},
			{"ip", "-6", "route", "add", s.peerNet, "dev", s.iface, "src", s.addr},
		} {
			if _, err := s.ns.Run(args[0], args[1:]...); err != nil {
				return err
			}
		}
	}
	if err := waitHandshake(x, wgX, 10*time.Second); err != nil {
		return fmt.Errorf("wireguard-go: %v", err)
	}

	srv := y.Cmd("iperf3", "-s")
	if err := y.Start(srv); err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	paths := []*path{
		{name: "direct (veth)", target: "198.51.100.2"},
		{name: "wireguard-go (Debian, configured by wg)", target: "fdaa:0:2:b::1"},
		{name: "mesh (wg6pn in Caddy)", target: "fdaa:0:1:b::1"},
	}
	for r := 0; r < rounds; r++ {
		for i := range paths {
			p := paths[(i+r)%len(paths)]
			logf("round %d/%d: %s", r+1, rounds, p.name)
			bps, err := iperf(x, p.target, seconds)
			if err != nil {
				return fmt.Errorf("%s: %v", p.name, err)
			}
			rtt, err := ping(x, p.target)
			if err != nil {
				return fmt.Errorf("%s: %v", p.name, err)
			}
			p.tput = append(p.tput, bps)
			p.rtt = append(p.rtt, rtt)
		}
	}
	fmt.Printf("## Mesh throughput and latency (%d rounds, iperf3 TCP %d s, ping 200 x 10 ms)\n\n", rounds, seconds)
	fmt.Println("| path | TCP throughput (median) | per round | round trip (median) | added to the veth |")
	fmt.Println("|---|---|---|---|---|")
	base := median(paths[0].rtt)
	for _, p := range paths {
		var per []string
		for _, v := range p.tput {
			per = append(per, fmt.Sprintf("%.2f", v/1e9))
		}
		added := "-"
		if p != paths[0] {
			added = fmt.Sprintf("+%.3f ms", median(p.rtt)-base)
		}
		fmt.Printf("| %s | %.2f Gbit/s | %s | %.3f ms | %s |\n", p.name, median(p.tput)/1e9, strings.Join(per, ", "), median(p.rtt), added)
	}
	var ratios []string
	for i := range paths[2].tput {
		ratios = append(ratios, fmt.Sprintf("%.2f", paths[2].tput[i]/paths[1].tput[i]))
	}
	fmt.Printf("\nmesh / wireguard-go throughput: **%.2fx** (per round: %s; target >= 0.9x)\n", median(paths[2].tput)/median(paths[1].tput), strings.Join(ratios, ", "))
	fmt.Printf("\nlatency the mesh adds over wireguard-go: %+.3f ms\n", median(paths[2].rtt)-median(paths[1].rtt))
	return nil
}

func waitHandshake(ns *netns.NS, iface string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		out, _ := ns.Run("wg", "show", iface, "latest-handshakes")
		if f := strings.Fields(out); len(f) == 2 && f[1] != "0" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no handshake on %s within %s: %s", iface, within, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func iperf(ns *netns.NS, target string, seconds int) (float64, error) {
	out, err := ns.Run("iperf3", "-c", target, "-t", strconv.Itoa(seconds), "-J")
	if err != nil {
		return 0, err
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return 0, err
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

var rttRe = regexp.MustCompile(`rtt min/avg/max/mdev = [\d.]+/([\d.]+)/`)

func ping(ns *netns.NS, target string) (float64, error) {
	out, err := ns.Run("ping", "-c", "200", "-i", "0.01", "-q", target)
	if err != nil {
		return 0, err
	}
	m := rttRe.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("ping: %s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}
