// Package birdtest runs real BIRD 2 routers in network namespaces for the
// anycast tests: namespaces joined by veth pairs, documentation addresses,
// no route out, everything removed when the test ends.
package birdtest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envInside marks a test process re-executed inside its namespace.
const envInside = "EDGEPROXY_BGP_NETNS"

// Skip skips t unless the process is root with ip and bird available.
func Skip(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and runs BIRD in them")
	}
	for _, tool := range []string{"ip", "bird", "birdc"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (apt-get install iproute2 bird2)", tool)
		}
	}
}

// Inside reports whether this process runs in the namespace Main made.
func Inside() string { return os.Getenv(envInside) }

// Main runs the tests of a package inside a namespace of their own named
// prefix-<pid>, so that a speaker in the test process dials BIRD routers
// in sibling namespaces and nothing reaches the host's network. Without
// root it runs the tests as they are (the namespace tests skip).
func Main(m *testing.M, prefix string) int {
	if os.Geteuid() != 0 || Inside() != "" {
		return m.Run()
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return m.Run()
	}
	CleanStale(prefix)
	ns := fmt.Sprintf("%s%d", prefix, os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "ip netns add %s: %v %s\n", ns, err, out)
		return 1
	}
	defer DeleteNS(ns)
	exec.Command("ip", "-n", ns, "link", "set", "lo", "up").Run()
	self, _ := os.Executable()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, self}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), envInside+"="+ns)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// CleanStale removes namespaces named prefix<pid>... left by a run whose
// process is gone, and kills what still runs in them.
func CleanStale(prefix string) {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		digits := strings.TrimPrefix(name, prefix)
		end := 0
		for end < len(digits) && digits[end] >= '0' && digits[end] <= '9' {
			end++
		}
		pid, err := strconv.Atoi(digits[:end])
		if err != nil {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its run is still going
		}
		DeleteNS(name)
	}
}

// DeleteNS kills every process in a namespace and removes it.
func DeleteNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	exec.Command("ip", "netns", "del", ns).Run()
}

// IP runs ip with args, failing t on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// NS creates a namespace with lo up, removed when t ends.
func NS(t testing.TB, name string) string {
	t.Helper()
	DeleteNS(name)
	IP(t, "netns", "add", name)
	t.Cleanup(func() { DeleteNS(name) })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// Veth joins namespace a (empty: this process's namespace) and b with a
// veth pair ifA/ifB and puts the addresses (CIDR) on each end, IPv6
// without duplicate address detection.
func Veth(t testing.TB, a, ifA string, addrsA []string, b, ifB string, addrsB []string) {
	t.Helper()
	nsArgs := func(ns string) []string {
		if ns == "" {
			return nil
		}
		return []string{"-n", ns}
	}
	exec.Command("ip", append(nsArgs(a), "link", "del", ifA)...).Run()
	IP(t, append(nsArgs(a), "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", b)...)
	t.Cleanup(func() { exec.Command("ip", append(nsArgs(a), "link", "del", ifA)...).Run() })
	for _, end := range []struct {
		ns, ifc string
		addrs   []string
	}{{a, ifA, addrsA}, {b, ifB, addrsB}} {
		for _, addr := range end.addrs {
			args := append(nsArgs(end.ns), "addr", "add", addr, "dev", end.ifc)
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			IP(t, args...)
		}
		IP(t, append(nsArgs(end.ns), "link", "set", end.ifc, "up")...)
	}
}

// Bird is one BIRD 2 daemon running in a namespace.
type Bird struct {
	t    testing.TB
	NS   string
	Dir  string
	Sock string
	Conf string
	cmd  *exec.Cmd
}

// StartBird runs `bird -f -c CONF -s SOCK -P PIDFILE` in ns with conf and
// waits until it answers. It is killed when t ends.
func StartBird(t testing.TB, ns, conf string) *Bird {
	t.Helper()
	dir := t.TempDir()
	b := &Bird{t: t, NS: ns, Dir: dir, Sock: filepath.Join(dir, "bird.ctl"), Conf: filepath.Join(dir, "bird.conf")}
	if err := os.WriteFile(b.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	log, err := os.Create(filepath.Join(dir, "bird.log"))
	if err != nil {
		t.Fatal(err)
	}
	b.cmd = exec.Command("ip", "netns", "exec", ns, "bird", "-f", "-c", b.Conf, "-s", b.Sock, "-P", filepath.Join(dir, "bird.pid"))
	b.cmd.Stdout, b.cmd.Stderr = log, log
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.cmd.Process.Kill()
		b.cmd.Wait()
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(log.Name())
			t.Logf("bird log (%s):\n%s", ns, out)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := b.C("show status"); err == nil {
			return b
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			t.Fatalf("bird in %s does not answer:\n%s", ns, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// C runs a birdc command and returns its output.
func (b *Bird) C(args ...string) (string, error) {
	out, err := exec.Command("birdc", append([]string{"-s", b.Sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("birdc %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustC is C failing the test on error.
func (b *Bird) MustC(args ...string) string {
	b.t.Helper()
	out, err := b.C(args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// Route is one route in `show route all`: the net and its attributes as
// BIRD prints them (e.g. "BGP.med": "50", "BGP.community": "(65101,100)",
// "via": "198.51.100.2 on vr0").
type Route struct {
	Net   string
	Line  string
	Attrs map[string]string
}

// Routes parses `birdc show route all` (first route of each net).
func (b *Bird) Routes() (map[string]Route, error) {
	out, err := b.C("show", "route", "all")
	if err != nil {
		return nil, err
	}
	return ParseRoutes(out), nil
}

// ParseRoutes reads the output of `show route all`.
func ParseRoutes(out string) map[string]Route {
	routes := map[string]Route{}
	var cur *Route
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, "BIRD ") || strings.HasPrefix(line, "Table "):
			cur = nil
		case line[0] != ' ' && line[0] != '\t':
			f := strings.Fields(line)
			r := Route{Net: f[0], Line: line, Attrs: map[string]string{}}
			routes[r.Net] = r
			rr := routes[r.Net]
			cur = &rr
			routes[r.Net] = rr
		case line[0] == ' ':
			cur = nil // an alternative route of the same net
		case cur != nil:
			l := strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(l, "via "); ok {
				cur.Attrs["via"] = v
			} else if k, v, ok := strings.Cut(l, ":"); ok {
				cur.Attrs[k] = strings.TrimSpace(v)
			}
		}
	}
	return routes
}

// Protocol is one line of `show protocols`.
type Protocol struct {
	Name, Proto, Table, State, Since, Info string
	// All is the output of `show protocols all <name>`.
	All string
}

// Protocol reads `show protocols all name`.
func (b *Bird) Protocol(name string) (Protocol, error) {
	out, err := b.C("show", "protocols", "all", name)
	if err != nil {
		return Protocol{}, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == name {
			p := Protocol{Name: f[0], Proto: f[1], Table: f[2], State: f[3], All: out}
			// since is a time, optionally with a date before it
			rest := f[4:]
			p.Since = rest[0]
			if len(rest) > 1 && strings.Contains(rest[1], ":") && !strings.HasPrefix(rest[1], "Estab") {
				p.Since += " " + rest[1]
				rest = rest[1:]
			}
			p.Info = strings.Join(rest[1:], " ")
			return p, nil
		}
	}
	return Protocol{}, fmt.Errorf("no protocol %s in:\n%s", name, out)
}

// ImportUpdates is the "Import updates" received count of a protocol's
// channel (first channel): every update the peer sent.
func (p Protocol) ImportUpdates() int {
	for _, line := range strings.Split(p.All, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "Import" && f[1] == "updates:" {
			n, _ := strconv.Atoi(f[2])
			return n
		}
	}
	return -1
}

// ImportWithdraws is the "Import withdraws" received count.
func (p Protocol) ImportWithdraws() int {
	for _, line := range strings.Split(p.All, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "Import" && f[1] == "withdraws:" {
			n, _ := strconv.Atoi(f[2])
			return n
		}
	}
	return -1
}

// Established reports whether the protocol's BGP session is up.
func (p Protocol) Established() bool {
	return p.State == "up" && strings.HasPrefix(p.Info, "Established")
}

// Wait polls cond every 10 ms until it holds or timeout passes; it returns
// how long that took and whether it held.
func Wait(timeout time.Duration, cond func() bool) (time.Duration, bool) {
	start := time.Now()
	for {
		if cond() {
			return time.Since(start), true
		}
		if time.Since(start) > timeout {
			return time.Since(start), false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitEstablished waits for the named protocols to be Established.
func (b *Bird) WaitEstablished(timeout time.Duration, names ...string) {
	b.t.Helper()
	for _, n := range names {
		var last Protocol
		if _, ok := Wait(timeout, func() bool {
			last, _ = b.Protocol(n)
			return last.Established()
		}); !ok {
			b.t.Fatalf("BIRD protocol %s not Established after %v: %s %s\n%s", n, timeout, last.State, last.Info, last.All)
		}
	}
}
