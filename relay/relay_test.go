//go:build linux

package relay

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// harness connects a client to a backend through the engine, over real
// loopback sockets: client <-> proxySide ==engine== backendSide <-> backend.
type harness struct {
	client, backend net.Conn
	results         chan Result
}

func newHarness(t *testing.T, e *Engine, idle time.Duration) *harness {
	t.Helper()
	front := listen(t)
	back := listen(t)
	client, err := net.Dial("tcp", front.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	proxySide, err := front.Accept()
	if err != nil {
		t.Fatal(err)
	}
	backendSide, err := net.Dial("tcp", back.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	backend, err := back.Accept()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{client: client, backend: backend, results: make(chan Result, 1)}
	if err := e.Relay(proxySide.(*net.TCPConn), backendSide.(*net.TCPConn), idle, func(r Result) { h.results <- r }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); backend.Close() })
	return h
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func engine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(2)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func (h *harness) result(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-h.results:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not finish")
		return Result{}
	}
}

func TestSmallMessagesBothWays(t *testing.T) {
	h := newHarness(t, engine(t), 0)
	for i := range 100 {
		msg := []byte(strings.Repeat("x", i+1))
		h.client.Write(msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(h.backend, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("request %d: %q %v", i, got, err)
		}
		h.backend.Write(append(msg, '!'))
		got = make([]byte, len(msg)+1)
		if _, err := io.ReadFull(h.client, got); err != nil || got[len(msg)] != '!' {
			t.Fatalf("response %d: %q %v", i, got, err)
		}
	}
	h.client.Close()
	h.backend.Close()
	r := h.result(t)
	if r.Err != nil || r.ClientToBackend != 5050 || r.BackendToClient != 5150 {
		t.Fatalf("result %+v", r)
	}
}

// Bulk transfers in both directions at once, through the splice path, with
// readers slower than writers so the engine must hold and resume.
func TestBulkBothWaysWithBackpressure(t *testing.T) {
	h := newHarness(t, engine(t), 0)
	up := make([]byte, 24<<20)
	down := make([]byte, 17<<20)
	rand.Read(up)
	rand.Read(down)
	var wg sync.WaitGroup
	check := func(name string, from io.Writer, to io.Reader, data []byte, closeWrite func()) {
		defer wg.Done()
		go func() { from.Write(data); closeWrite() }()
		got := make([]byte, 0, len(data))
		buf := make([]byte, 7000)
		for {
			n, err := to.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			if len(got)%(1<<20) < 7000 {
				time.Sleep(time.Millisecond) // a slow reader now and then
			}
		}
		if !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes arrived, %d sent, equal=%v", name, len(got), len(data), bytes.Equal(got, data))
		}
	}
	wg.Add(2)
	go check("up", h.client, h.backend, up, func() { h.client.(*net.TCPConn).CloseWrite() })
	go check("down", h.backend, h.client, down, func() { h.backend.(*net.TCPConn).CloseWrite() })
	wg.Wait()
	r := h.result(t)
	if r.Err != nil || r.ClientToBackend != int64(len(up)) || r.BackendToClient != int64(len(down)) {
		t.Fatalf("result %+v", r)
	}
}

// A client that finishes sending still receives the whole answer.
func TestHalfClose(t *testing.T) {
	h := newHarness(t, engine(t), 0)
	h.client.Write([]byte("question"))
	h.client.(*net.TCPConn).CloseWrite()
	q, err := io.ReadAll(h.backend)
	if err != nil || string(q) != "question" {
		t.Fatalf("backend read %q %v", q, err)
	}
	answer := bytes.Repeat([]byte("answer "), 100000)
	h.backend.Write(answer)
	h.backend.Close()
	got, err := io.ReadAll(h.client)
	if err != nil || !bytes.Equal(got, answer) {
		t.Fatalf("client got %d bytes, %v", len(got), err)
	}
	if r := h.result(t); r.Err != nil {
		t.Fatalf("clean close reported %v", r.Err)
	}
}

func TestIdleTimeout(t *testing.T) {
	h := newHarness(t, engine(t), 300*time.Millisecond)
	// Traffic keeps it alive past the timeout.
	for range 6 {
		h.client.Write([]byte("ping"))
		io.ReadFull(h.backend, make([]byte, 4))
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	r := h.result(t)
	if !errors.Is(r.Err, ErrIdle) || time.Since(start) > 2*time.Second {
		t.Fatalf("idle pair: %+v after %v", r, time.Since(start))
	}
	h.client.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := h.client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client not closed after the idle timeout: %v", err)
	}
}

func TestResetEndsThePair(t *testing.T) {
	h := newHarness(t, engine(t), 0)
	h.backend.(*net.TCPConn).SetLinger(0)
	h.backend.Close() // RST
	r := h.result(t)
	if r.Err == nil {
		t.Fatal("a reset backend should end the pair with an error")
	}
	h.client.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := h.client.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("client still open after the backend reset: %v", err)
	}
}

func TestManyPairs(t *testing.T) {
	e := engine(t)
	var wg sync.WaitGroup
	for i := range 200 {
		h := newHarness(t, e, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := bytes.Repeat([]byte{byte(i)}, 1000+i)
			h.client.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(h.backend, got); err != nil || !bytes.Equal(got, msg) {
				t.Errorf("pair %d: %v", i, err)
			}
			h.client.Close()
			h.backend.Close()
			if r := h.result(t); r.ClientToBackend != int64(len(msg)) {
				t.Errorf("pair %d: %+v", i, r)
			}
		}()
	}
	wg.Wait()
}
