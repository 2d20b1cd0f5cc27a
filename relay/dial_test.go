//go:build linux

package relay

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/testnet"
)

// Dial reaches IPv4 and IPv6 backends, and RelayFD relays through the
// socket it returns.
func TestDialAndRelayFD(t *testing.T) {
	e := engine(t)
	for _, network := range []string{"tcp4", "tcp6"} {
		t.Run(network, func(t *testing.T) {
			addr := map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network]
			back, err := net.Listen(network, addr)
			if err != nil {
				t.Skipf("no %s loopback here: %v", network, err)
			}
			defer back.Close()
			fd, err := Dial(netip.MustParseAddrPort(back.Addr().String()), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			backend, err := back.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer backend.Close()
			if err := WriteAll(fd, []byte("head:")); err != nil {
				t.Fatal(err)
			}
			front := listen(t)
			client, err := net.Dial("tcp", front.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			proxySide, _ := front.Accept()
			results := make(chan Result, 1)
			if err := e.RelayFD(proxySide.(*net.TCPConn), fd, 0, func(r Result) { results <- r }); err != nil {
				t.Fatal(err)
			}
			client.Write([]byte("body"))
			client.(*net.TCPConn).CloseWrite()
			got, _ := io.ReadAll(backend)
			if string(got) != "head:body" {
				t.Fatalf("backend got %q", got)
			}
			backend.Write([]byte("reply"))
			backend.Close()
			if reply, _ := io.ReadAll(client); string(reply) != "reply" {
				t.Fatalf("client got %q", reply)
			}
			if r := <-results; r.Err != nil || r.ClientToBackend != 4 || r.BackendToClient != 5 {
				t.Fatalf("result %+v", r)
			}
		})
	}
}

func TestDialRefusedNamesTheAddress(t *testing.T) {
	ln := listen(t)
	addr := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	_, err := Dial(addr, time.Second)
	if err == nil || !strings.Contains(err.Error(), addr.String()) || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("dial of a closed port: %v", err)
	}
}

// A backend whose accept queue is full never completes the handshake:
// Dial gives up after its timeout and says so.
func TestDialTimesOutOnAHungBackend(t *testing.T) {
	addr := testnet.HungListener(t)
	start := time.Now()
	_, err := Dial(addr, 200*time.Millisecond)
	took := time.Since(start)
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || took < 150*time.Millisecond || took > 2*time.Second {
		t.Fatalf("dial of a hung backend: %v after %v, want a timeout after 200ms", err, took)
	}
}
