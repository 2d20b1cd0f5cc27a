package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var corednsBin struct {
	once sync.Once
	path string
	err  error
}

// coredns is the built CoreDNS binary: $EDGEPROXY_COREDNS, or built once.
func coredns(t *testing.T) string {
	t.Helper()
	corednsBin.once.Do(func() {
		if env := os.Getenv("EDGEPROXY_COREDNS"); env != "" {
			corednsBin.path = env
			return
		}
		dir, err := os.MkdirTemp("", "e2e-coredns")
		if err != nil {
			corednsBin.err = err
			return
		}
		corednsBin.path = filepath.Join(dir, "coredns")
		out, err := exec.Command("go", "build", "-o", corednsBin.path, "github.com/edgeproxy/edgeproxy/builds/coredns").CombinedOutput()
		if err != nil {
			corednsBin.err = fmt.Errorf("go build ./builds/coredns: %v\n%s", err, out)
		}
	})
	if corednsBin.err != nil {
		t.Fatal(corednsBin.err)
	}
	return corednsBin.path
}

// serveDNS runs CoreDNS with the internal plugin in p's namespace, on p's
// 6PN address, reading p's routing table.
func (p *meshPOP) serveDNS(t *testing.T) {
	t.Helper()
	corefile := fmt.Sprintf(`internal:53 {
	bind %s
	transfer {
		to *
	}
	internal {
		db %s/routing.db
		region sa
		ttl 5
	}
}
`, p.addr6(), p.dir)
	path := filepath.Join(p.dir, "Corefile")
	os.WriteFile(path, []byte(corefile), 0o644)
	cmd := p.ns.Cmd(coredns(t), "-conf", path)
	var log strings.Builder
	var mu sync.Mutex
	cmd.Stdout = writerFunc(func(b []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return log.Write(b) })
	cmd.Stderr = cmd.Stdout
	if err := p.ns.Start(cmd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if out, err := p.ns.Run("dig", "+short", "+time=1", "+tries=1", "@"+p.addr6(), "internal.", "SOA"); err == nil && strings.Contains(out, "ns.dns.internal.") {
			return
		}
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("CoreDNS in %s did not answer:\n%s", p.name, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// digFrom asks p's CoreDNS from q's namespace, over the mesh.
func digFrom(t *testing.T, q, p *meshPOP, args ...string) string {
	t.Helper()
	out, err := q.ns.Run("dig", append([]string{"+short", "+time=2", "+tries=1", "@" + p.addr6()}, args...)...)
	if err != nil {
		t.Fatalf("dig %v: %v", args, err)
	}
	return strings.TrimSpace(out)
}
