package edgeroute_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// validate runs `caddy validate` on a Caddyfile and returns its output and
// whether it accepted the config.
func validate(t *testing.T, caddyfile string) (string, bool) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	os.WriteFile(path, []byte(caddyfile), 0o644)
	cmd := exec.Command(caddyBin, "validate", "--config", path, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

func config(global, handler string) string {
	return fmt.Sprintf(`{
	admin off
	edgeroute {
%s
	}
	layer4 {
		127.0.0.1:0 {
			route {
				%s
			}
		}
	}
}`, global, handler)
}

// Configuration errors are reported when the config loads, naming what is
// wrong, never at the first connection.
func TestConfigErrorsAtLoadTime(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	notSQLite := filepath.Join(dir, "notes.txt")
	os.WriteFile(notSQLite, bytes.Repeat([]byte("hello, not a database\n"), 100), 0o644)
	corruptGeo := filepath.Join(dir, "corrupt.mmdb")
	os.WriteFile(corruptGeo, bytes.Repeat([]byte{0xab, 0xcd, 0xef}, 1000), 0o644)

	cases := []struct {
		name, global, handler string
		want                  []string
	}{
		{"missing geoip", "db " + db + "\ngeoip " + filepath.Join(dir, "nope.mmdb"), "edgeroute myapp",
			[]string{"nope.mmdb"}},
		{"corrupt geoip", "db " + db + "\ngeoip " + corruptGeo, "edgeroute myapp",
			[]string{"corrupt.mmdb"}},
		{"db not sqlite", "db " + notSQLite, "edgeroute myapp",
			[]string{"notes.txt", "not a SQLite database"}},
		{"db dir missing", "db " + filepath.Join(dir, "missing", "routing.db"), "edgeroute myapp",
			[]string{"missing", "does not exist"}},
		{"unknown option", "db " + db + "\nregoin eu", "edgeroute myapp",
			[]string{`unknown option "regoin"`}},
		{"bad duration", "db " + db + "\naffinity 10x", "edgeroute myapp",
			[]string{"affinity", "10x"}},
		{"bad country", "db " + db + "\ncountry France", "edgeroute myapp",
			[]string{"France", "two-letter"}},
		{"bad region map", "db " + db + "\nregion_map {\n FRA eu\n}", "edgeroute myapp",
			[]string{"FRA"}},
		{"handler without app", "db " + db, "edgeroute",
			[]string{"missing app name"}},
		{"handler unknown option", "db " + db, "edgeroute myapp {\n retries 3\n}",
			[]string{`unknown option "retries"`}},
		{"handler bad dial timeout", "db " + db, "edgeroute myapp {\n dial_timeout soon\n}",
			[]string{"dial_timeout", "soon"}},
		{"handler bad tries", "db " + db, "edgeroute myapp {\n tries 0\n}",
			[]string{"tries"}},
		{"handler bad proxy protocol", "db " + db, "edgeroute myapp {\n proxy_protocol v3\n}",
			[]string{"proxy_protocol", "v3"}},
		{"listen on udp", "db " + db + "\nlisten udp/127.0.0.1:9 {\n app myapp\n}", "edgeroute myapp",
			[]string{"listener 0", "udp/127.0.0.1:9", "only TCP"}},
		{"listen bad address", "db " + db + "\nlisten 127.0.0.1:port {\n app myapp\n}", "edgeroute myapp",
			[]string{"listener 0", "port"}},
		{"cluster without key off loopback", "db " + db + "\ncluster {\n bind 192.0.2.10:4001\n}", "edgeroute myapp",
			[]string{"bind 192.0.2.10:4001", "no key", "set key", "insecure"}},
		{"option given twice", "db " + db + "\nregion eu\nregion sa", "edgeroute myapp",
			[]string{"region given twice"}},
		{"cluster option given twice", "db " + db + "\ncluster {\n bind 127.0.0.1:0\n bind 127.0.0.1:1\n}", "edgeroute myapp",
			[]string{"cluster: bind given twice"}},
		{"health option given twice", "db " + db + "\nhealth myapp {\n interval 1s\n interval 2s\n}", "edgeroute myapp",
			[]string{"health myapp: interval given twice"}},
		{"handler option given twice", "db " + db, "edgeroute myapp {\n tries 2\n tries 3\n}",
			[]string{"tries given twice"}},
		{"listen option given twice", "db " + db + "\nlisten 127.0.0.1:0 {\n app myapp\n app other\n}", "edgeroute myapp",
			[]string{"listen: app given twice"}},
		{"negative stop delay", "db " + db + "\nstop_delay -1s", "edgeroute myapp",
			[]string{"stop_delay"}},
		{"bad backend metrics", "db " + db + "\nbackend_metrics some", "edgeroute myapp",
			[]string{"backend_metrics", `"some"`, "used, all or off"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, ok := validate(t, config(c.global, c.handler))
			if ok {
				t.Fatalf("config accepted:\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("error should mention %q:\n%s", w, lastLines(out, 3))
				}
			}
		})
	}
	// The corrupt and foreign files are left as they were.
	if b, _ := os.ReadFile(notSQLite); !bytes.HasPrefix(b, []byte("hello, not a database")) {
		t.Fatal("the non-SQLite file was modified")
	}
	// A lab may run a keyless cluster off loopback, saying so.
	if out, ok := validate(t, config("db "+db+"\ncluster {\n bind 192.0.2.10:0\n insecure\n}", "edgeroute myapp")); !ok && strings.Contains(out, "no key") {
		t.Fatalf("insecure did not allow a keyless cluster:\n%s", lastLines(out, 3))
	}
	// And a good config validates.
	if out, ok := validate(t, config("db "+db+"\nregion eu", "edgeroute myapp {\n tries 2\n dial_timeout 500ms\n}")); !ok {
		t.Fatalf("valid config rejected:\n%s", out)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// An app with no backends loads with a warning naming it; its connections
// are closed at once and counted.
func TestAppWithNoBackends(t *testing.T) { frontends(t, testAppWithNoBackends) }

func testAppWithNoBackends(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{app: "ghost", listener: listener})
	if !strings.Contains(p.logs(), `"app":"ghost"`) || !strings.Contains(p.logs(), "no backends") {
		t.Fatalf("no load-time warning for an app without backends:\n%s", p.logs())
	}
	// startPOP's readiness probe is itself refused; wait until it is counted.
	refused := func() int { return atoi(p.metric(`edgeroute_refused_connections_total{app="ghost"}`)) }
	eventually(t, 2*time.Second, func() string {
		if refused() == 0 {
			return "the readiness probe's refusal was not counted"
		}
		return ""
	})
	before := refused()
	c, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("client not closed at once: n=%d err=%v after %v", n, err, time.Since(start))
	}
	if after := refused(); after != before+1 {
		t.Fatalf("refused counter %d -> %d", before, after)
	}
}

// Garbage on the port is just bytes to a TCP proxy: it reaches the backend
// untouched, and nothing crashes.
func TestGarbageOnThePort(t *testing.T) { frontends(t, testGarbageOnThePort) }

func testGarbageOnThePort(t *testing.T, listener bool) {
	p := startPOP(t, popConfig{region: "eu", country: "FR", listener: listener})
	b := startBackend(t, "fr-1")
	p.addBackend(b, "myapp", "eu", "FR", 100, 200)
	p.waitBackends(1)
	junk := make([]byte, 64<<10)
	rand.Read(junk)
	for range 5 {
		c := p.connect(clientFR)
		if c.backend != "fr-1" {
			t.Fatalf("got %q", c.backend)
		}
		go c.Write(junk)
		got := make([]byte, len(junk))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c.r, got); err != nil || !bytes.Equal(got, junk) {
			t.Fatalf("garbage not proxied verbatim: %v", err)
		}
		c.Close()
	}
	// Connections that send garbage and vanish mid-stream.
	for range 20 {
		c, err := net.Dial("tcp", p.listen)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(junk[:1000])
		c.(*net.TCPConn).SetLinger(0) // reset, not FIN
		c.Close()
	}
	if got := p.via(clientFR2); got != "fr-1" {
		t.Fatalf("proxy unhealthy after garbage: %q", got)
	}
	if p.cmd.ProcessState != nil {
		t.Fatal("caddy exited")
	}
}

// Half-close: a client that finishes sending and shuts down its write side
// still receives the whole answer.
func TestHalfClose(t *testing.T) { frontends(t, testHalfClose) }

func testHalfClose(t *testing.T, listener bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				n, _ := io.Copy(io.Discard, c) // until the client's FIN
				fmt.Fprintf(c, "received %d bytes\n", n)
			}()
		}
	}()
	p := startPOP(t, popConfig{region: "eu", country: "FR", listener: listener})
	p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('counter','myapp','eu','FR','127.0.0.1',%d)`,
		ln.Addr().(*net.TCPAddr).Port))
	p.waitBackends(1)
	c, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	payload := make([]byte, 3<<20)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	answer, err := io.ReadAll(c)
	if err != nil || string(answer) != fmt.Sprintf("received %d bytes\n", len(payload)) {
		t.Fatalf("answer after half-close: %q %v", answer, err)
	}
}
