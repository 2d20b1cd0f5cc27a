package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMeshBackhaul: a backend lives in a namespace that only POP B
// reaches, at an address in B's /64 and at a v1-style IPv4 address in B's
// routes. A client of POP A is served by it through A's edgeroute
// listeners, the mesh and B's forwarding, over IPv6 and IPv4. Then B
// sends packets with a source outside its allowed IPs, and A drops them.
func TestMeshBackhaul(t *testing.T) {
	m := newMeshNet(t)
	a := m.addPOP("a", 1, "a")
	b := m.addPOP("b", 2, "b")
	a.extra = "listen 127.0.0.1:8080 {\n\t\t\tapp myapp\n\t\t}\n\t\tlisten 127.0.0.1:8081 {\n\t\t\tapp v4app\n\t\t}\n" +
		"\t\thealth myapp {\n\t\t\ttcp\n\t\t\tinterval 200ms\n\t\t}\n\t\thealth v4app {\n\t\t\ttcp\n\t\t\tinterval 200ms\n\t\t}"
	a.global = "layer4 {\n\t\t127.0.0.1:8082 {\n\t\t\troute {\n\t\t\t\tedgeroute myapp\n\t\t\t}\n\t\t}\n\t}"
	a.wgExtra = "routes 10.50.1.0/24"
	b.wgExtra = "routes 10.50.2.0/24"
	be, err := m.net.Add("be")
	if err != nil {
		t.Fatal(err)
	}
	// The backend's LAN: B's end holds the rest of B's /64.
	if err := m.net.Link(b.ns, []string{"fdaa:0:1:b::fe/64", "10.50.2.254/24"}, be, []string{"fdaa:0:1:b::10/64", "10.50.2.10/24"}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"ip", "-6", "route", "add", "fdaa:0:1::/48", "via", "fdaa:0:1:b::fe"}, {"ip", "route", "add", "10.50.0.0/16", "via", "10.50.2.254"}} {
		if _, err := be.Run(args[0], args[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"net.ipv6.conf.all.forwarding=1", "net.ipv4.ip_forward=1"} {
		if _, err := b.ns.Run("sysctl", "-qw", s); err != nil {
			t.Fatal(err)
		}
	}
	ln6, err := be.Listen("tcp", "[fdaa:0:1:b::10]:9000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln6.Close() })
	ln4, err := be.Listen("tcp4", "10.50.2.10:9000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln4.Close() })
	for _, ln := range []net.Listener{ln6, ln4} {
		go serveGreeting(ln)
	}
	a.start()
	b.start()
	m.waitMeshed([]*meshPOP{a, b}, 10*time.Second)

	// The backend is not reachable from A but through the mesh.
	if out, err := a.ns.Run("ip", "-6", "route", "get", "fdaa:0:1:b::10"); err != nil || !strings.Contains(out, "dev "+a.iface) {
		t.Fatalf("route at a: %v %s", err, out)
	}
	a.sql("INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('be-b', 'myapp', 'eu', 'DE', 'fdaa:0:1:b::10', 9000), ('be-b4', 'v4app', 'eu', 'DE', '10.50.2.10', 9000)")
	for _, c := range []struct{ port, want string }{
		{"8080", "backend-b serving [fdaa:0:1:a::1]"}, // the app's own listener
		{"8082", "backend-b serving [fdaa:0:1:a::1]"}, // a layer4 route with the edgeroute handler
		{"8081", "backend-b serving 10.50.1.1:"},      // an IPv4 backend in B's routes
	} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			greeting := dialVia(a, c.port)
			if strings.HasPrefix(greeting, c.want) {
				break
			}
			if time.Now().After(deadline) {
				ra, _ := a.ns.Run("ip", "route")
				aa, _ := a.ns.Run("ip", "addr", "show", a.iface)
				rb, _ := b.ns.Run("ip", "route")
				wb, _ := b.ns.Run("wg", "show")
				t.Fatalf("a client of a on port %s was not served by the backend behind b: %q\n%s\n%s\n%s\n%s", c.port, greeting, ra, aa, rb, wb)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// A's active health checks reach both backends through the mesh.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var hv struct {
			Apps []struct {
				Backends []struct {
					ID      string  `json:"id"`
					Checked bool    `json:"checked"`
					Healthy bool    `json:"healthy"`
					Checks  uint64  `json:"checks"`
					RTTMs   float64 `json:"rtt_ms"`
				} `json:"backends"`
			} `json:"apps"`
		}
		if err := a.get("/edgeroute/health", &hv); err != nil {
			t.Fatal(err)
		}
		good := 0
		for _, app := range hv.Apps {
			for _, be := range app.Backends {
				if be.Checked && be.Healthy && be.Checks >= 2 && be.RTTMs > 0 {
					good++
				}
			}
		}
		if good == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a's health checks do not pass through the mesh: %+v", hv)
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, err := a.caddy("edgeroute", "route", "--app", "myapp", "--client", "192.0.2.50", "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var rv struct {
		Chosen string `json:"chosen"`
	}
	if err := json.Unmarshal([]byte(out), &rv); err != nil || rv.Chosen != "be-b" {
		t.Fatalf("caddy edgeroute route at a: %v %s", err, out)
	}

	// DNS over 6PN: A's CoreDNS, on A's mesh address, asked from B.
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatal("dig is required (apt-get install dnsutils)")
	}
	a.serveDNS(t)
	// CoreDNS answers from the health rows in A's file, which A writes
	// a flush interval after its checker's verdict; a backend's first
	// check can fail while its fresh address is still tentative (IPv6
	// duplicate address detection), so the file may still say down.
	for q, want := range map[string]string{
		"myapp.internal AAAA":                 "fdaa:0:1:b::10",
		"eu.myapp.internal AAAA":              "fdaa:0:1:b::10",
		"top1.nearest.of.myapp.internal AAAA": "fdaa:0:1:b::10",
		"regions.myapp.internal TXT":          `"eu"`,
		"_apps.internal TXT":                  `"myapp,v4app"`,
		"ns.dns.internal AAAA":                "fdaa:0:1:a::1\nfdaa:0:1:b::1",
	} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := digFrom(t, b, a, strings.Fields(q)...)
			if strings.Join(sortedLines(got), "\n") == want {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("dig %s at a: %q, want %q", q, got, want)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	axfr, err := b.ns.Run("dig", "@"+a.addr6(), "internal.", "AXFR")
	if err != nil {
		t.Fatal(err)
	}
	zone := filepath.Join(t.TempDir(), "internal.zone")
	os.WriteFile(zone, []byte(axfr), 0o644)
	if out, err := exec.Command("named-checkzone", "internal.", zone).CombinedOutput(); err != nil {
		t.Fatalf("named-checkzone refuses the zone transferred over the mesh: %v\n%s\n%s", err, out, axfr)
	}

	// Spoofed sources: B sends from an address outside B's /64; A's
	// device drops it before it reaches A's stack, while B's own
	// address passes.
	rules := fmt.Sprintf(`table inet wgtest {
	chain in {
		type filter hook input priority 0;
		iifname "%[1]s" ip6 saddr fdaa:0:1:99::/64 counter
		iifname "%[1]s" ip6 saddr fdaa:0:1:b::/64 counter
	}
}`, a.iface)
	nft := a.ns.Cmd("nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v %s", err, out)
	}
	if _, err := b.ns.Run("ip", "addr", "add", "fdaa:0:1:99::1/128", "dev", "lo"); err != nil {
		t.Fatal(err)
	}
	txBefore := txTo(b, "a")
	if out, err := b.ns.Run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", "-I", "fdaa:0:1:99::1", a.addr6()); err == nil {
		t.Fatalf("a answered a ping from a source outside b's allowed IPs:\n%s", out)
	}
	if out, err := b.ns.Run("ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", a.addr6()); err != nil {
		t.Fatalf("ping from b's own address: %v\n%s", err, out)
	}
	if sent := txTo(b, "a") - txBefore; sent < 6*32 {
		t.Fatalf("b sent only %d bytes to a: the spoofed pings did not enter the tunnel", sent)
	}
	counters, _ := a.ns.Run("nft", "list", "chain", "inet", "wgtest", "in")
	spoofed, own := nftPackets(counters, "fdaa:0:1:99::/64"), nftPackets(counters, "fdaa:0:1:b::/64")
	if spoofed != 0 || own < 3 {
		t.Fatalf("packets reaching a from the spoofed source: %d (want 0), from b's own: %d (want >= 3)\n%s", spoofed, own, counters)
	}
}

// serveGreeting answers every connection with its remote address, then
// echoes one line.
func serveGreeting(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "backend-b serving %s\n", c.RemoteAddr())
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("echo " + line))
		}()
	}
}

func dialVia(p *meshPOP, port string) string {
	ctx, cancel := ctxTimeout(3 * time.Second)
	defer cancel()
	c, err := p.ns.DialContext(ctx, "tcp", "127.0.0.1:"+port)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n')
	fmt.Fprintf(c, "ping\n")
	echo, _ := r.ReadString('\n')
	if echo != "echo ping\n" {
		return "no echo: " + line
	}
	return strings.TrimSpace(line)
}

func txTo(p *meshPOP, node string) int64 {
	for _, q := range p.view().Peers {
		if q.Node == node {
			return q.TxBytes
		}
	}
	return 0
}

func nftPackets(listing, prefix string) int {
	re := regexp.MustCompile(regexp.QuoteMeta(prefix) + ` counter packets (\d+)`)
	m := re.FindStringSubmatch(listing)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func sortedLines(s string) []string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	sort.Strings(l)
	return l
}
