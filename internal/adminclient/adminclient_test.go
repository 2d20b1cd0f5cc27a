package adminclient

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func serve(t *testing.T, ln net.Listener) {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(r.Method + " " + string(body)))
		default:
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"the edgeroute app is not configured"}`))
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// TestDoOverTCPAndUnixSocket: the same call reaches an admin endpoint on a
// port and on a unix socket, and an error answer carries the API's message.
func TestDoOverTCPAndUnixSocket(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, tcp)
	sock := filepath.Join(t.TempDir(), "admin.sock")
	unix, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, unix)

	for _, addr := range []string{tcp.Addr().String(), "http://" + tcp.Addr().String(), "unix/" + sock} {
		out, err := Do(http.MethodPost, addr, "/ok", []byte(`{"reason":"x"}`))
		if err != nil || string(out) != `POST {"reason":"x"}` {
			t.Errorf("%s: %q, %v", addr, out, err)
		}
		_, err = Get(addr, "/missing")
		if err == nil || err.Error() != "the edgeroute app is not configured" {
			t.Errorf("%s: error %v, want the API's message", addr, err)
		}
	}
	os.Setenv("CADDY_ADMIN", tcp.Addr().String())
	defer os.Unsetenv("CADDY_ADMIN")
	if out, err := Get("", "/ok"); err != nil || !strings.HasPrefix(string(out), "GET") {
		t.Errorf("$CADDY_ADMIN not used: %q %v", out, err)
	}
	if _, err := Get("127.0.0.1:1", "/ok"); err == nil || !strings.Contains(err.Error(), "is it running") {
		t.Errorf("a dead endpoint: %v", err)
	}
}
