package edgeroute_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tlsCaddyfile terminates TLS at the POP with caddy-l4's tls handler in
// front of edgeroute, with a certificate for the POP's address from Caddy's
// internal CA. The site block is how Caddy is told to manage that
// certificate; the layer4 tls handler finds it in the shared cache.
// README.md ("TLS at the edge") shows the same for a POP's public address.
const tlsCaddyfile = `{
	admin %[1]s
	skip_install_trust
	http_port %[2]d
	edgeroute {
		db %[3]s
		node tls-pop
		region sa
		country BR
		geoip %[4]s
	}
	layer4 {
		%[5]s:%[6]d {
			route {
				tls {
					connection_policy {
						alpn http/1.1
					}
				}
				edgeroute myapp {
					tries 3
				}
			}
		}
	}
}

https://%[5]s:%[7]d {
	tls internal
	respond "the certificate for %[5]s is managed here; TLS at the edge is on port %[6]d"
}
`

// plainBackend is a TCP backend that greets with its name, echoes lines,
// and keeps the first bytes it received from each connection.
type plainBackend struct {
	name string
	ln   net.Listener
	mu   sync.Mutex
	got  []string // the first line each connection sent
}

func startPlainBackend(t *testing.T, name string) *plainBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &plainBackend{name: name, ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "%s\n", name)
				r := bufio.NewReader(c)
				first := true
				for {
					line, err := r.ReadString('\n')
					if first && line != "" {
						b.mu.Lock()
						b.got = append(b.got, line)
						b.mu.Unlock()
						first = false
					}
					if err != nil {
						return
					}
					io.WriteString(c, line)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return b
}

func (b *plainBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.got...)
}

// TestTLSAtTheEdge: a client verifies the POP's certificate against Caddy's
// local CA (and only against it), the backend reads the plaintext, client
// affinity holds a client to its backend over TLS as over plain TCP, and a
// backend that refuses connections is retried past.
func TestTLSAtTheEdge(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	const ip = "127.0.0.1"
	edge, site, httpPort := freePort(t), freePort(t), freePort(t)
	conf := fmt.Sprintf(tlsCaddyfile, admin, httpPort, db, writeGeoIP(t, dir), ip, edge, site)
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(caddyBin, "run", "--config", confPath, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("caddy log:\n%s", logs.String())
		}
	})

	// Two live backends in Germany and the US, and one in Brazil that
	// refuses connections: a Brazilian client's best backend is dead.
	de, us := startPlainBackend(t, "de-1"), startPlainBackend(t, "us-1")
	deadLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := deadLn.Addr().(*net.TCPAddr).Port
	deadLn.Close()

	// The POP creates the table on start; wait for its root certificate and
	// its certificate for the address.
	root := filepath.Join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	var pool *x509.CertPool
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pem, err := os.ReadFile(root); err == nil {
			pool = x509.NewCertPool()
			if pool.AppendCertsFromPEM(pem) {
				if c, err := tlsDial(ip, edge, "127.0.0.9", pool); err == nil {
					c.Close()
					break
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake verified against %s within 30s", root)
		}
		time.Sleep(200 * time.Millisecond)
	}
	sqlite := func(q string) {
		t.Helper()
		if out, err := exec.Command("sqlite3", "-cmd", ".timeout 5000", db, q).CombinedOutput(); err != nil {
			t.Fatalf("sqlite3 %s: %v\n%s", q, err, out)
		}
	}
	sqlite(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port, healthy, weight, soft_limit, hard_limit) VALUES
		('de-1','myapp','eu','DE','127.0.0.1',%d,1,1,10,20),
		('us-1','myapp','us','US','127.0.0.1',%d,1,1,10,20),
		('br-dead','myapp','sa','BR','127.0.0.1',%d,1,1,10,20)`, de.ln.Addr().(*net.TCPAddr).Port, us.ln.Addr().(*net.TCPAddr).Port, deadPort))

	// The certificate does not verify against the system roots: the client
	// trusts Caddy's local CA, not anything the machine happens to trust.
	if c, err := tlsDial(ip, edge, "127.0.0.9", nil); err == nil {
		c.Close()
		t.Fatal("the POP's certificate verified without Caddy's local root")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("handshake without the local root failed for another reason: %v", err)
	}

	// A Brazilian client: br-dead is its best backend and refuses, so the
	// handler retries to a live one, and the backend reads plaintext.
	var served string
	eventuallyTLS(t, 2*time.Second, func() error {
		c, err := tlsDial(ip, edge, clientBR, pool)
		if err != nil {
			return err
		}
		defer c.Close()
		if p := c.ConnectionState().NegotiatedProtocol; p != "http/1.1" {
			t.Fatalf("ALPN chose %q, want http/1.1 (the connection_policy's alpn)", p)
		}
		served, err = c.roundTrip("hello over tls\n")
		return err
	})
	if served != "de-1" && served != "us-1" {
		t.Fatalf("Brazilian client served by %q, want a live backend after the dead br-dead", served)
	}
	for _, b := range []*plainBackend{de, us} {
		for _, got := range b.received() {
			if got != "hello over tls\n" {
				t.Fatalf("backend %s read %q, not the client's plaintext", b.name, got)
			}
		}
	}

	// Affinity: a Japanese client (no backend in its region, and the POP's
	// own region has only the dead one: de-1 and us-1 score alike) holds a
	// connection to its backend; more connections of the same client go to
	// the same backend though the other one is idle, while another client
	// goes to the idle one.
	c1, err := tlsDial(ip, edge, clientJP, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	first, err := c1.roundTrip("one\n")
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c2, err := tlsDial(ip, edge, clientJP, pool)
		if err != nil {
			t.Fatal(err)
		}
		again, err := c2.roundTrip("two\n")
		c2.Close()
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Fatalf("affinity lost over TLS: the Japanese client went to %s, then to %s", first, again)
		}
	}
	c3, err := tlsDial(ip, edge, clientUnknown, pool)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	other, err := c3.roundTrip("three\n")
	if err != nil {
		t.Fatal(err)
	}
	if other == first {
		t.Fatalf("a new client went to %s, which holds a connection, instead of the idle backend", other)
	}
	t.Logf("TLS at the edge: retried past br-dead to %s; Japanese client kept %s; another client got %s", served, first, other)
}

// tlsConn is a TLS client connection that has read its backend's greeting.
type tlsConn struct {
	*tls.Conn
	r *bufio.Reader
}

// tlsDial connects from the source address from, verifying the POP's
// certificate for ip against pool (the system roots when nil).
func tlsDial(ip string, port int, from string, pool *x509.CertPool) (*tlsConn, error) {
	d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	raw, err := d.Dial("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
	if err != nil {
		return nil, err
	}
	// Offered as a browser or curl would: the POP's alpn http/1.1 picks
	// what the plain backend speaks.
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: ip, NextProtos: []string{"h2", "http/1.1"}})
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if err := c.Handshake(); err != nil {
		raw.Close()
		return nil, err
	}
	return &tlsConn{Conn: c, r: bufio.NewReader(c)}, nil
}

// roundTrip reads the backend's greeting, sends line and reads its echo.
func (c *tlsConn) roundTrip(line string) (string, error) {
	c.SetDeadline(time.Now().Add(3 * time.Second))
	name, err := c.r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("no greeting through the POP: %w", err)
	}
	if _, err := io.WriteString(c, line); err != nil {
		return "", err
	}
	echo, err := c.r.ReadString('\n')
	if err != nil || echo != line {
		return "", fmt.Errorf("echo %q, %v; want %q", echo, err, line)
	}
	return strings.TrimSpace(name), nil
}

func eventuallyTLS(t *testing.T, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a log buffer written by the process and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
