package edgeroute_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// serve runs handle for every connection accepted on a loopback port and
// returns the port.
func serve(t *testing.T, handle func(net.Conn)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func (p *pop) addPort(id string, port int) {
	p.t.Helper()
	p.sql(fmt.Sprintf(`INSERT INTO backends (id, app, region, country, wg_ip, port) VALUES ('%s','myapp','eu','FR','127.0.0.1',%d)`, id, port))
	p.waitBackends(1)
}

// The backend sees the client's address in a PROXY protocol header.
func TestProxyProtocolHeader(t *testing.T) { frontends(t, testProxyProtocolHeader) }

func testProxyProtocolHeader(t *testing.T, listener bool) {
	for _, version := range []string{"v1", "v2"} {
		t.Run(version, func(t *testing.T) {
			headers := make(chan []byte, 1)
			port := serve(t, func(c net.Conn) {
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 256)
				n, _ := c.Read(buf)
				headers <- buf[:n]
			})
			p := startPOP(t, popConfig{region: "eu", country: "FR", handlerOpts: "proxy_protocol " + version, listener: listener})
			p.addPort("pp", port)
			c := p.connect(clientFR)
			defer c.Close()
			var h []byte
			select {
			case h = <-headers:
			case <-time.After(3 * time.Second):
				t.Fatal("backend got nothing")
			}
			if version == "v1" {
				if !strings.HasPrefix(string(h), "PROXY TCP4 "+clientFR+" 127.0.0.1 ") {
					t.Fatalf("v1 header %q does not carry the client address", h)
				}
				return
			}
			sig := "\r\n\r\n\x00\r\nQUIT\n"
			if len(h) < 28 || string(h[:12]) != sig || net.IP(h[16:20]).String() != clientFR {
				t.Fatalf("v2 header %x does not carry the client address", h)
			}
		})
	}
}

// idle_timeout closes a connection on which nothing moves, and only such a
// connection: a download that outlasts the timeout is not cut.
func TestIdleTimeout(t *testing.T) { frontends(t, testIdleTimeout) }

func testIdleTimeout(t *testing.T, listener bool) {
	port := serve(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if line == "stream\n" { // 12 chunks 100 ms apart: 1.2 s, over the timeout
				for i := range 12 {
					fmt.Fprintf(c, "chunk %d\n", i)
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			io.WriteString(c, line)
		}
	})
	p := startPOP(t, popConfig{region: "eu", country: "FR", handlerOpts: "idle_timeout 400ms", listener: listener})
	p.addPort("idle", port)

	c, err := net.Dial("tcp", p.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "stream\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 12 {
		line, err := r.ReadString('\n')
		if err != nil || line != fmt.Sprintf("chunk %d\n", i) {
			t.Fatalf("download cut at chunk %d: %q %v", i, line, err)
		}
	}
	// Now idle: closed after the timeout, not before.
	start := time.Now()
	_, err = r.ReadString('\n')
	idle := time.Since(start)
	if err == nil || idle < 350*time.Millisecond || idle > 2*time.Second {
		t.Fatalf("idle connection: err=%v after %v, want a close after about 400ms", err, idle)
	}
}
