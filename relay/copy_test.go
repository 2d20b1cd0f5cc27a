package relay

import (
	"io"
	"net"
	"testing"
	"time"
)

// wrapped hides the *net.TCPConn, as a TLS or PROXY-protocol wrapper does.
type wrapped struct{ net.Conn }

func (w wrapped) CloseWrite() error { return w.Conn.(*net.TCPConn).CloseWrite() }

// tcpPair returns the two ends of a real loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// TestCopyBothWaysHalfCloses: a client that sends its request and shuts
// down its write side still receives the whole answer, and the byte counts
// are the bytes that moved.
func TestCopyBothWaysHalfCloses(t *testing.T) {
	client, proxyDown := tcpPair(t)
	proxyUp, backend := tcpPair(t)
	done := make(chan [2]int64, 1)
	go func() {
		in, out, _ := CopyBothWays(wrapped{proxyDown}, proxyUp, 0)
		done <- [2]int64{in, out}
	}()
	go func() {
		req, _ := io.ReadAll(backend) // until the client's half-close arrives
		backend.Write(append([]byte("echo:"), req...))
		backend.CloseWrite()
	}()
	client.Write([]byte("hello"))
	client.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil || string(got) != "echo:hello" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case n := <-done:
		if n != [2]int64{5, 10} {
			t.Fatalf("counted %d to the backend and %d to the client, want 5 and 10", n[0], n[1])
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the copy did not end after both directions closed")
	}
}

// TestCopyBothWaysIdleTimeout: a connection on which nothing moves is
// closed after the idle timeout, and one that keeps moving is not.
func TestCopyBothWaysIdleTimeout(t *testing.T) {
	client, proxyDown := tcpPair(t)
	proxyUp, backend := tcpPair(t)
	start := time.Now()
	done := make(chan time.Duration, 1)
	go func() {
		CopyBothWays(wrapped{proxyDown}, proxyUp, 300*time.Millisecond)
		done <- time.Since(start)
	}()
	go io.Copy(backend, backend) // an echo
	buf := make([]byte, 1)
	for range 6 { // 600 ms of traffic, every 100 ms
		client.Write([]byte("x"))
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatalf("an active connection was closed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	select {
	case d := <-done:
		if d < 800*time.Millisecond {
			t.Fatalf("closed after %v: before 300ms of silence", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an idle connection was not closed")
	}
}

// TestCopyBothWaysSlowReaderLosesNothing: a client that reads slowly keeps
// the copy's writes waiting on it, across the moments the idle timeout's
// deadlines fall due; every byte still arrives, in order, because bytes
// keep moving.
func TestCopyBothWaysSlowReaderLosesNothing(t *testing.T) {
	client, proxyDown := tcpPair(t)
	proxyUp, backend := tcpPair(t)
	// Small buffers, so the copy's writes to the client wait on its reads.
	client.SetReadBuffer(16 << 10)
	proxyDown.SetWriteBuffer(16 << 10)
	const size = 2 << 20
	pattern := func(i int) byte { return byte(i % 251) }
	go func() {
		CopyBothWays(wrapped{proxyDown}, proxyUp, 300*time.Millisecond)
	}()
	go func() {
		b := make([]byte, size)
		for i := range b {
			b[i] = pattern(i)
		}
		backend.Write(b)
		backend.CloseWrite()
	}()
	buf := make([]byte, 16<<10)
	got := 0
	for {
		n, err := client.Read(buf)
		for i := range n {
			if buf[i] != pattern(got+i) {
				t.Fatalf("byte %d is %d, want %d: bytes were lost or reordered", got+i, buf[i], pattern(got+i))
			}
		}
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got != size {
		t.Fatalf("the client received %d bytes, want %d", got, size)
	}
}
