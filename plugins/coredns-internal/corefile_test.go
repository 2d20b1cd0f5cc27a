package internal

// Corefile-level tests: the real binary built from ./builds/coredns, a
// Corefile written by the test, a routing table and a GeoIP database
// written by the test, and the real dig.

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var bin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	os.Exit(code)
}

// coredns builds the binary once per test run, on first use, so that runs
// that need no binary (fuzzing, benchmarks) do not pay for it.
func coredns(t *testing.T) string {
	t.Helper()
	bin.once.Do(func() {
		// make test builds the binary once and passes it in.
		if env := os.Getenv("EDGEPROXY_COREDNS"); env != "" {
			bin.path = env
			return
		}
		if bin.dir, bin.err = os.MkdirTemp("", "coredns-internal-test"); bin.err != nil {
			return
		}
		bin.path = filepath.Join(bin.dir, "coredns")
		out, err := exec.Command("go", "build", "-o", bin.path, "github.com/edgeproxy/edgeproxy/builds/coredns").CombinedOutput()
		if err != nil {
			bin.err = fmt.Errorf("go build ./builds/coredns: %v\n%s", err, out)
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

// handedOut keeps freePort from returning a port twice in one run: ports
// are closed before CoreDNS binds them, so the kernel may offer one again.
var handedOut sync.Map

// freePort returns a loopback port free for both UDP and TCP, below the
// kernel's ephemeral range (32768 and up) so that no outgoing connection
// takes it as its source port before CoreDNS binds it.
func freePort(t *testing.T) int {
	t.Helper()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		if _, dup := handedOut.LoadOrStore(port, true); !dup {
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type server struct {
	t       *testing.T
	db      string
	port    int
	metrics int
	stderr  *logBuffer
	exited  chan struct{}
	process *os.Process
}

const testCorefile = `internal:@port {
	bind 127.0.0.1
	ready 127.0.0.1:@ready
	prometheus 127.0.0.1:@metrics
	transfer {
		to *
	}
	internal {
		db @db
		geoip @geoip
		region sa
		ttl 30
	}
}
`

// startServer writes the fixture table, the GeoIP database and the Corefile,
// starts CoreDNS and waits until the ready plugin says it is ready.
func startServer(t *testing.T) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, db: filepath.Join(dir, "routing.db"), port: freePort(t), metrics: freePort(t), stderr: &logBuffer{}, exited: make(chan struct{})}
	writeTable(t, s.db, fixture)
	ready := freePort(t)
	corefile := strings.NewReplacer("@port", fmt.Sprint(s.port), "@ready", fmt.Sprint(ready), "@metrics", fmt.Sprint(s.metrics),
		"@db", s.db, "@geoip", writeGeo(t, dir)).Replace(testCorefile)
	cmd := s.command(t, dir, corefile)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.process = cmd.Process
	go func() { cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-s.exited
	})
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	last := ""
	for {
		select {
		case <-s.exited:
			t.Fatalf("coredns exited before it was ready:\n%s", s.stderr)
		default:
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/ready", ready))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
			last = fmt.Sprintf("%s %s", resp.Status, body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("coredns not ready after 30 s (last answer from /ready: %s):\n%s", last, s.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) command(t *testing.T, dir, corefile string) *exec.Cmd {
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(corefile), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(coredns(t), "-conf", path)
	cmd.Stdout = s.stderr // the log goes to stdout, fatal errors to stderr: keep both
	cmd.Stderr = s.stderr
	return cmd
}

// digReply is dig's output, parsed.
type digReply struct {
	status, flags, subnet, server string
	answer, authority, additional []dns.RR
	raw                           string
}

var (
	statusRE = regexp.MustCompile(`status: ([A-Z]+)`)
	flagsRE  = regexp.MustCompile(`;; flags: ([a-z ]*);`)
	subnetRE = regexp.MustCompile(`; CLIENT-SUBNET: (\S+)`)
	serverRE = regexp.MustCompile(`;; SERVER: .*\((UDP|TCP)\)`)
)

// dig runs the real dig against the server.
func (s *server) dig(args ...string) digReply {
	s.t.Helper()
	all := append([]string{"@127.0.0.1", "-p", fmt.Sprint(s.port), "+norecurse", "+tries=1", "+time=2"}, args...)
	out, err := exec.Command("dig", all...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("dig %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	r := digReply{raw: string(out)}
	if m := statusRE.FindStringSubmatch(r.raw); m != nil {
		r.status = m[1]
	}
	if m := flagsRE.FindStringSubmatch(r.raw); m != nil {
		r.flags = m[1]
	}
	if m := subnetRE.FindStringSubmatch(r.raw); m != nil {
		r.subnet = m[1]
	}
	if m := serverRE.FindStringSubmatch(r.raw); m != nil {
		r.server = m[1]
	}
	var section *[]dns.RR
	sc := bufio.NewScanner(strings.NewReader(r.raw))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ";; ANSWER SECTION:":
			section = &r.answer
		case line == ";; AUTHORITY SECTION:":
			section = &r.authority
		case line == ";; ADDITIONAL SECTION:":
			section = &r.additional
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				section = nil
			}
		case section != nil:
			rr, err := dns.NewRR(line)
			if err != nil {
				s.t.Fatalf("dig printed %q: %v", line, err)
			}
			*section = append(*section, rr)
		}
	}
	return r
}

// rrText is a record as dig prints it, with single spaces.
func rrText(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = strings.Join(strings.Fields(rr.String()), " ")
	}
	return out
}

func expect(t *testing.T, what string, got []dns.RR, want ...string) {
	t.Helper()
	if g := rrText(got); strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %s\nwant %s", what, strings.Join(g, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestCorefileNames(t *testing.T) {
	s := startServer(t)

	// 127.0.0.1 is not in the GeoIP database: the POP's region (sa) first.
	r := s.dig("web.internal", "A")
	if r.status != "NOERROR" || !strings.Contains(r.flags, "aa") {
		t.Fatalf("web.internal: status %s flags %q\n%s", r.status, r.flags, r.raw)
	}
	expect(t, "web.internal A", r.answer,
		"web.internal. 30 IN A 10.50.1.1", "web.internal. 30 IN A 10.50.3.1",
		"web.internal. 30 IN A 10.50.3.2", "web.internal. 30 IN A 10.50.2.7")
	expect(t, "web.internal AAAA", s.dig("web.internal", "AAAA").answer, "web.internal. 30 IN AAAA fd00::6")
	expect(t, "us6.us.backends.internal AAAA", s.dig("us6.us.backends.internal", "AAAA").answer, "us6.us.backends.internal. 30 IN AAAA fd00::6")

	r = s.dig("web.internal", "SRV", "+subnet=198.51.100.0/24")
	expect(t, "web.internal SRV for a French client", r.answer,
		"web.internal. 30 IN SRV 0 2 8080 fr1.eu.backends.internal.",
		"web.internal. 30 IN SRV 1 3 8080 de1.eu.backends.internal.",
		"web.internal. 30 IN SRV 2 2 8080 br1.sa.backends.internal.",
		"web.internal. 30 IN SRV 3 2 9090 us6.us.backends.internal.",
		"web.internal. 30 IN SRV 3 2 8080 flaky.us.backends.internal.")
	expect(t, "web.internal SRV glue", r.additional,
		"fr1.eu.backends.internal. 30 IN A 10.50.3.1",
		"de1.eu.backends.internal. 30 IN A 10.50.3.2",
		"br1.sa.backends.internal. 30 IN A 10.50.1.1",
		"us6.us.backends.internal. 30 IN AAAA fd00::6",
		"flaky.us.backends.internal. 30 IN A 10.50.2.7")
	if r.subnet != "198.51.100.0/24/24" {
		t.Errorf("client subnet in the reply %q, want 198.51.100.0/24/24", r.subnet)
	}
	expect(t, "fr1.eu.backends.internal SRV", s.dig("fr1.eu.backends.internal", "SRV").answer,
		"fr1.eu.backends.internal. 30 IN SRV 0 2 8080 fr1.eu.backends.internal.")

	expect(t, "eu.backends.internal", s.dig("eu.backends.internal").answer,
		"eu.backends.internal. 30 IN A 10.50.3.1", "eu.backends.internal. 30 IN A 10.50.3.2")
	expect(t, "fr1.eu.backends.internal", s.dig("fr1.eu.backends.internal").answer, "fr1.eu.backends.internal. 30 IN A 10.50.3.1")
	expect(t, "web.sa.services.internal", s.dig("web.sa.services.internal").answer, "web.sa.services.internal. 30 IN A 10.50.1.1")
	expect(t, "sa.pops.internal A", s.dig("sa.pops.internal", "A").answer, "sa.pops.internal. 30 IN A 192.0.2.10")
	expect(t, "sa.pops.internal AAAA", s.dig("sa.pops.internal", "AAAA").answer, "sa.pops.internal. 30 IN AAAA 2001:db8::10")

	// The apex.
	r = s.dig("internal", "SOA")
	if len(r.answer) != 1 || !strings.HasPrefix(rrText(r.answer)[0], "internal. 30 IN SOA ns.dns.internal. hostmaster.dns.internal. ") || !strings.Contains(r.flags, "aa") {
		t.Errorf("apex SOA:\n%s", r.raw)
	}
	expect(t, "apex NS", s.dig("internal", "NS").answer, "internal. 30 IN NS ns.dns.internal.")

	// NXDOMAIN and NODATA both carry the SOA; only the status differs.
	for _, c := range []struct{ name, qtype, status string }{
		{"nope.internal", "A", "NXDOMAIN"},
		{"gone.eu.backends.internal", "A", "NXDOMAIN"},
		{"x.web.internal", "A", "NXDOMAIN"},
		{"backends.internal", "A", "NOERROR"},
		{"services.internal", "A", "NOERROR"},
		{"pops.internal", "A", "NOERROR"},
		{"sa.services.internal", "A", "NOERROR"},
		{"web.internal", "TXT", "NOERROR"},
		{"fr1.eu.backends.internal", "AAAA", "NOERROR"},
		{"sick.eu.backends.internal", "A", "NOERROR"},
	} {
		r := s.dig(c.name, c.qtype)
		if r.status != c.status || len(r.answer) != 0 || len(r.authority) != 1 || r.authority[0].Header().Rrtype != dns.TypeSOA || !strings.Contains(r.flags, "aa") {
			t.Errorf("%s %s: want %s with the SOA in authority, got:\n%s", c.name, c.qtype, c.status, r.raw)
		}
	}

	// Case: matched in any case, answered in the client's.
	expect(t, "mixed case", s.dig("FR1.Eu.BACKENDS.internal").answer, "FR1.Eu.BACKENDS.internal. 30 IN A 10.50.3.1")
}

// The order of an app's addresses follows the client's country, from its
// subnet (ECS) or its address.
func TestCorefileClientSubnetOrdering(t *testing.T) {
	s := startServer(t)
	first := func(args ...string) (string, string) {
		r := s.dig(append([]string{"web.internal", "A"}, args...)...)
		if len(r.answer) == 0 {
			t.Fatalf("no answer:\n%s", r.raw)
		}
		return r.answer[0].(*dns.A).A.String(), r.subnet
	}
	for _, c := range []struct {
		subnet, first, echo string
	}{
		{"198.51.100.0/24", "10.50.3.1", "198.51.100.0/24/24"}, // FR: fr1
		{"203.0.113.0/24", "10.50.1.1", "203.0.113.0/24/24"},   // BR: br1
		{"192.0.2.0/24", "10.50.3.2", "192.0.2.0/24/24"},       // DE: de1
		{"0.0.0.0/0", "10.50.1.1", "0.0.0.0/0/0"},              // opted out: the POP's region
	} {
		got, echo := first("+subnet=" + c.subnet)
		if got != c.first || echo != c.echo {
			t.Errorf("client %s: first %s, subnet %q; want %s, %q", c.subnet, got, echo, c.first, c.echo)
		}
	}
	if got, echo := first(); got != "10.50.1.1" || echo != "" {
		t.Errorf("no subnet: first %s subnet %q", got, echo)
	}
	// A name that does not depend on the client says so: scope 0.
	if r := s.dig("eu.backends.internal", "+subnet=198.51.100.0/24"); r.subnet != "198.51.100.0/24/0" {
		t.Errorf("eu.backends.internal: subnet %q, want scope 0", r.subnet)
	}
}

func TestCorefileAXFR(t *testing.T) {
	s := startServer(t)
	out, err := exec.Command("dig", "@127.0.0.1", "-p", fmt.Sprint(s.port), "internal.", "AXFR").CombinedOutput()
	if err != nil {
		t.Fatalf("dig AXFR: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "(TCP)") {
		t.Fatalf("AXFR not over TCP:\n%s", out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			rr, err := dns.NewRR(l)
			if err != nil {
				t.Fatalf("%q: %v", l, err)
			}
			lines = append(lines, rrText([]dns.RR{rr})[0])
		}
	}
	if len(lines) < 10 || !strings.Contains(lines[0], " SOA ") || lines[0] != lines[len(lines)-1] {
		t.Fatalf("AXFR must start and end with the same SOA:\n%s", out)
	}
	have := strings.Join(lines, "\n")
	for _, want := range []string{
		"internal. 30 IN NS ns.dns.internal.",
		"web.internal. 30 IN A 10.50.1.1",
		"web.internal. 30 IN AAAA fd00::6",
		"web.internal. 30 IN SRV 2 2 8080 br1.sa.backends.internal.",
		"fr1.eu.backends.internal. 30 IN A 10.50.3.1",
		"web.sa.services.internal. 30 IN A 10.50.1.1",
		"sa.pops.internal. 30 IN A 192.0.2.10",
	} {
		if !strings.Contains(have, want) {
			t.Errorf("AXFR lacks %s", want)
		}
	}
	// A secondary can load the transferred zone: BIND's own checker
	// accepts it (the in-zone NS has addresses).
	zoneFile := filepath.Join(t.TempDir(), "internal.zone")
	if err := os.WriteFile(zoneFile, out, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("named-checkzone"); err != nil {
		t.Fatal("named-checkzone is required (apt-get install bind9-utils)")
	}
	check, err := exec.Command("named-checkzone", "internal.", zoneFile).CombinedOutput()
	if err != nil || !strings.Contains(string(check), "OK") {
		t.Fatalf("named-checkzone refuses the transferred zone: %v\n%s", err, check)
	}
	// Over UDP (which dig will not do) the transfer is refused.
	m := new(dns.Msg)
	m.SetAxfr("internal.")
	r, _, err := (&dns.Client{Net: "udp", Timeout: 2 * time.Second}).Exchange(m, fmt.Sprintf("127.0.0.1:%d", s.port))
	if err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR over UDP: %v %v, want REFUSED", err, r)
	}
}

// An edit with the sqlite3 CLI is answered within 200 ms.
func TestCorefileSqlite3EditIsServedWithin200ms(t *testing.T) {
	s := startServer(t)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	addrs := func(name string) string {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		r, _, err := c.Exchange(m, fmt.Sprintf("127.0.0.1:%d", s.port))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(rrText(r.Answer), " | ")
	}
	waitGone := func(name, addr, sql string) {
		t.Helper()
		if !strings.Contains(addrs(name), addr) {
			t.Fatalf("%s does not list %s before the edit", name, addr)
		}
		sqlite(t, s.db, sql)
		start := time.Now()
		for strings.Contains(addrs(name), addr) {
			if time.Since(start) > 200*time.Millisecond {
				t.Fatalf("%s still lists %s 200 ms after %s", name, addr, sql)
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("%s: gone after %v", sql, time.Since(start).Round(time.Millisecond))
		for _, rr := range rrText(s.dig(name).answer) {
			if strings.Contains(rr, addr) {
				t.Fatalf("dig still sees %s", rr)
			}
		}
	}
	waitGone("web.internal.", "10.50.3.1", `UPDATE backends SET healthy = 0 WHERE id = 'fr1'`)
	waitGone("eu.backends.internal.", "10.50.3.2", `UPDATE backends SET deleted = 1 WHERE id = 'de1'`)
	if r := s.dig("de1.eu.backends.internal"); r.status != "NXDOMAIN" {
		t.Errorf("deleted backend's name: %s, want NXDOMAIN", r.status)
	}
}

// The metrics the README documents are exported.
func TestCorefileMetrics(t *testing.T) {
	s := startServer(t)
	s.dig("web.internal")
	body := s.scrape()
	for _, want := range []string{
		fmt.Sprintf(`coredns_internal_records_served_total{kind="app",server="dns://127.0.0.1:%d"} 4`, s.port),
		`coredns_internal_snapshot_age_seconds{db="` + s.db + `"}`,
		`coredns_internal_snapshot_serial{db="` + s.db + `"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A db that is missing or is not SQLite stops CoreDNS at startup with a
// message naming the file on stderr.
func TestCorefileStartupFailures(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not sqlite\n", 100)), 0o644)
	for _, c := range []struct{ name, db, reason string }{
		{"missing", filepath.Join(dir, "missing.db"), "no such file"},
		{"not SQLite", garbage, "not a SQLite database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			corefile := fmt.Sprintf("internal:%d {\n\tbind 127.0.0.1\n\tinternal {\n\t\tdb %s\n\t}\n}\n", freePort(t), c.db)
			path := filepath.Join(t.TempDir(), "Corefile")
			os.WriteFile(path, []byte(corefile), 0o644)
			cmd := exec.Command(coredns(t), "-conf", path)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("coredns exited with status 0")
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatal("coredns started with a bad db")
			}
			if msg := stderr.String(); !strings.Contains(msg, c.db) || !strings.Contains(msg, c.reason) || !strings.Contains(msg, "plugin/internal") {
				t.Fatalf("stderr should name the plugin, the file and say %q:\n%s", c.reason, msg)
			}
		})
	}
}

// A reload (SIGUSR1) sets up a new instance and shuts the old one down: the
// zone keeps answering and edits keep being picked up.
func TestCorefileReload(t *testing.T) {
	s := startServer(t)
	if err := s.process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); !strings.Contains(s.stderr.String(), "Reloading complete"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no reload:\n%s", s.stderr)
		}
	}
	expect(t, "after reload", s.dig("fr1.eu.backends.internal").answer, "fr1.eu.backends.internal. 30 IN A 10.50.3.1")
	sqlite(t, s.db, `UPDATE backends SET wg_ip = '10.50.3.100' WHERE id = 'fr1'`)
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		got := rrText(s.dig("fr1.eu.backends.internal").answer)
		if len(got) == 1 && got[0] == "fr1.eu.backends.internal. 30 IN A 10.50.3.100" {
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("edit after reload not served: %v", got)
		}
	}
	select {
	case <-s.exited:
		t.Fatalf("coredns exited:\n%s", s.stderr)
	default:
	}
}
