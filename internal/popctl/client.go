package popctl

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Conn is a client connection through a POP's port that has read the
// greeting of the backend it reached.
type Conn struct {
	net.Conn
	// Backend is the greeting line (the name a Greeter or a test backend
	// writes first), "" when the POP closed the connection without one.
	Backend string
	// R reads the rest of the stream: it may already hold bytes read
	// after the greeting.
	R *bufio.Reader
}

// Dial connects to the POP's port from the source address from ("" for
// any; GeoIP tests pick the client's country this way) and reads the
// backend's greeting, waiting up to 5 s for it.
func (p *POP) Dial(from string) (*Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		ip := net.ParseIP(from)
		if ip == nil {
			return nil, fmt.Errorf("bad source address %q", from)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	c, err := d.Dial("tcp", p.Listen)
	if err != nil {
		return nil, fmt.Errorf("dial %s from %s: %w", p.Listen, from, err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	line, _ := r.ReadString('\n')
	c.SetReadDeadline(time.Time{})
	return &Conn{Conn: c, Backend: strings.TrimSpace(line), R: r}, nil
}

// Via connects through the POP's listener and returns the greeting of the
// backend it reached ("" if none).
func (p *POP) Via() string {
	c, err := net.DialTimeout("tcp", p.Listen, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

// Greeter is a backend that writes its name to every connection and
// closes it.
func Greeter(name string) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s\n", name)
			c.Close()
		}
	}()
	return ln, nil
}
