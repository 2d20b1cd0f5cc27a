package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// TestCaddyfileExampleFormatted: `caddy fmt` leaves Caddyfile.example as it
// is, so `caddy validate` and `caddy run` print no "not formatted" warning.
func TestCaddyfileExampleFormatted(t *testing.T) {
	path := filepath.Join(repoRoot(t), "Caddyfile.example")
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(binary(t, "caddy"), "fmt", path).Output()
	if err != nil {
		t.Fatalf("caddy fmt Caddyfile.example: %v", err)
	}
	if string(got) != string(want) {
		t.Fatalf("caddy fmt changes Caddyfile.example; formatted it reads:\n%s", got)
	}
}

// TestCaddyfileExampleValidates: `caddy validate` accepts Caddyfile.example
// with its table pointed at a temporary file holding a backend of the
// example's app, provisioning every module, without a warning (an
// unformatted file would get "Caddyfile input is not formatted").
func TestCaddyfileExampleValidates(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "Caddyfile.example"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	s, err := store.Open(context.Background(), db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Register(context.Background(), store.Registration{ID: "myapp-sa-1", App: "myapp", Region: "sa", Country: "BR",
		IP: "10.50.1.1", Port: 8080, Weight: 2, SoftLimit: 100, HardLimit: 150}, 0, time.Now())
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(src), "/var/lib/edgeproxy/routing.db", db)
	if conf == string(src) {
		t.Fatal("Caddyfile.example no longer keeps its table at /var/lib/edgeproxy/routing.db; update this test")
	}
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t, "caddy"), "validate", "--config", path, "--adapter", "caddyfile").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Valid configuration") {
		t.Fatalf("caddy validate did not say the configuration is valid:\n%s", out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, `"level":"warn"`) || strings.Contains(l, "\tWARN\t") {
			t.Errorf("caddy validate warns: %s", l)
		}
	}
}
