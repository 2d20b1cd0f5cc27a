package examples

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/store"
)

// TestCorefileExampleServes starts CoreDNS built from builds/coredns on
// Corefile.example, with the table pointed at a temporary file and the
// ports moved off the well-known ones other servers on the machine may
// hold, and asks it with dig as the file's comment tells.
func TestCorefileExampleServes(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig is not installed (Debian package dnsutils)")
	}
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "Corefile.example"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "routing.db")
	ctx := context.Background()
	s, err := store.Open(ctx, db, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []store.Registration{
		{ID: "myapp-sa-1", App: "myapp", Region: "sa", Country: "BR", IP: "10.50.1.1", Port: 8080, Weight: 2, SoftLimit: 100, HardLimit: 150},
		{ID: "myapp-eu-1", App: "myapp", Region: "eu", Country: "FR", IP: "10.50.2.1", Port: 8080, Weight: 2, SoftLimit: 100, HardLimit: 150},
	} {
		if _, err := s.Register(ctx, r, 0, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	dns := freePort(t)
	conf := string(src)
	replace := func(old, new string) {
		t.Helper()
		if !strings.Contains(conf, old) {
			t.Fatalf("Corefile.example has no %q any more; update this test", old)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	replace("/var/lib/edgeproxy/routing.db", db)
	for _, p := range []string{":9153", ":8181", ":8080"} {
		replace(p, fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	}
	path := filepath.Join(dir, "Corefile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(binary(t, "coredns"), "-conf", path, "-dns.port", fmt.Sprint(dns))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var out []byte
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err = exec.Command("dig", "@127.0.0.1", "-p", fmt.Sprint(dns), "+short", "+tries=1", "+time=1", "myapp.internal").Output()
		if err == nil && len(bytes.TrimSpace(out)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer for myapp.internal from CoreDNS on Corefile.example: %v %s\nlogs:\n%s", err, out, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The example's region is sa: the São Paulo backend comes first for a
	// client the GeoIP database does not place.
	got := strings.Fields(string(out))
	if len(got) != 2 || got[0] != "10.50.1.1" || got[1] != "10.50.2.1" {
		t.Fatalf("dig myapp.internal = %q, want [10.50.1.1 10.50.2.1] (sa first)", got)
	}
}
