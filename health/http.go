package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// HTTP passes when GET Path answers Status (any 2xx or 3xx when 0).
//
// Each backend's probe keeps one HTTP/1.1 connection open between checks
// and writes a request rendered once, so a check costs a write and a read
// on one goroutine: a general-purpose client hands every request between
// three goroutines and a pool, which costs more than the check.
type HTTP struct {
	Path   string
	Status int
	// Host is sent as the Host header; default the backend address.
	Host string
	// TLS checks over HTTPS without verifying the certificate (backends
	// are addressed by IP on the private network).
	TLS bool
}

// NewHTTP returns an HTTP checker.
func NewHTTP(path string, status int, host string, useTLS bool) *HTTP {
	if path == "" {
		path = "/"
	}
	return &HTTP{Path: path, Status: status, Host: host, TLS: useTLS}
}

func (h *HTTP) String() string {
	want := "2xx/3xx"
	if h.Status != 0 {
		want = strconv.Itoa(h.Status)
	}
	return fmt.Sprintf("http GET %s expecting %s", h.Path, want)
}

// Probe implements Checker.
func (h *HTTP) Probe(addr netip.AddrPort) Probe {
	host := h.Host
	if host == "" {
		host = addr.String()
	}
	req := "GET " + h.Path + " HTTP/1.1\r\nHost: " + host +
		"\r\nUser-Agent: edgeroute-health/2\r\nAccept: */*\r\n\r\n"
	return &httpProbe{h: h, addr: addr, req: []byte(req)}
}

// maxHealthBody is how much of a response body a check reads; a longer
// body costs the connection, not the verdict.
const maxHealthBody = 64 << 10

type httpProbe struct {
	h    *HTTP
	addr netip.AddrPort
	req  []byte

	conn net.Conn // nil between checks when the last one closed it
	br   *bufio.Reader
}

func (p *httpProbe) Check(ctx context.Context) error {
	reused := p.conn != nil
	status, err := p.roundTrip(ctx)
	if err != nil && reused && ctx.Err() == nil && !isTimeout(err) {
		// The backend closed the idle connection since the last check;
		// that says nothing about its health. Ask again on a new one.
		status, err = p.roundTrip(ctx)
	}
	if err != nil {
		return err
	}
	if p.h.Status != 0 && status != p.h.Status {
		return fmt.Errorf("status %d, want %d", status, p.h.Status)
	}
	if p.h.Status == 0 && (status < 200 || status >= 400) {
		return fmt.Errorf("status %d, want 2xx or 3xx", status)
	}
	return nil
}

// roundTrip sends the request and reads the status and body, on the kept
// connection or a new one. Any failure closes the connection.
func (p *httpProbe) roundTrip(ctx context.Context) (int, error) {
	if p.conn == nil {
		if err := p.dial(ctx); err != nil {
			return 0, err
		}
	}
	c := p.conn
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := c.Write(p.req); err != nil {
		p.Close()
		return 0, fmt.Errorf("GET %s: %w", p.h.Path, err)
	}
	resp, err := http.ReadResponse(p.br, nil)
	if err != nil {
		p.Close()
		return 0, fmt.Errorf("GET %s: reading the response: %w", p.h.Path, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthBody+1))
	resp.Body.Close()
	if err != nil || n > maxHealthBody || resp.Close {
		p.Close()
	}
	if err != nil {
		return 0, fmt.Errorf("GET %s: reading the body: %w", p.h.Path, err)
	}
	return resp.StatusCode, nil
}

var httpDialer = net.Dialer{KeepAlive: -1}

func (p *httpProbe) dial(ctx context.Context) error {
	c, err := httpDialer.DialContext(ctx, "tcp", p.addr.String())
	if err != nil {
		return err
	}
	c = quiet(c)
	if p.h.TLS {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, ServerName: serverName(p.h.Host)})
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return fmt.Errorf("tls handshake with %s: %w", p.addr, err)
		}
		c = tc
	}
	p.conn = c
	if p.br == nil {
		p.br = bufio.NewReaderSize(c, 4096)
	} else {
		p.br.Reset(c)
	}
	return nil
}

// Close drops the kept connection.
func (p *httpProbe) Close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// serverName is the TLS server name for a Host header: none for an address.
func serverName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	return host
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
