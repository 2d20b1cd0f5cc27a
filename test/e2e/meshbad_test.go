package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgeproxy/edgeproxy/internal/netns"
)

// runFails starts Caddy with the Caddyfile in ns (as user, when not "")
// and returns what it printed; the config must fail to load.
func runFails(t *testing.T, ns *netns.NS, dir, caddyfile, user string) string {
	t.Helper()
	cfg := filepath.Join(dir, "Caddyfile")
	os.WriteFile(cfg, []byte(caddyfile), 0o644)
	args := []string{caddyBin, "run", "--config", cfg, "--adapter", "caddyfile"}
	if user != "" {
		args = append([]string{"runuser", "-u", user, "--"}, args...)
	}
	cmd := ns.Cmd(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	done := make(chan error, 1)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("caddy exited cleanly on a bad config:\n%s", out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("caddy kept running on a bad config:\n%s", out.String())
	}
	return out.String()
}

func badConfig(dir, node, wg6pn string) string {
	return fmt.Sprintf(`{
	admin off
	edgeroute {
		db %s/routing.db
		node %s
	}
	wg6pn {
		%s
	}
}
`, dir, node, wg6pn)
}

// TestMeshBadInputStopsTheConfig: each problem is a clear error when the
// config loads, naming it.
func TestMeshBadInputStopsTheConfig(t *testing.T) {
	needNamespaces(t)
	n := netns.New("e2ewgbad")
	t.Cleanup(n.Close)
	ns, err := n.Add("x")
	if err != nil {
		t.Fatal(err)
	}
	iface := n.IfName("wgx")
	dir := t.TempDir()
	key, err := exec.Command("wg", "genkey").Output()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "wg.key")
	os.WriteFile(keyFile, key, 0o644)
	base := "network fdaa:0:1::/48\n\t\tinterface " + iface + "\n\t\tprivate_key_file " + keyFile

	for _, c := range []struct{ name, block, want string }{
		{"readable key", base, "is accessible by others (mode 0644)"},
		{"network", "network 2001:db8::/48\n\t\tinterface " + iface, `network "2001:db8::/48": not a unique local`},
		{"network size", "network fdaa:0:1::/56\n\t\tinterface " + iface, "must be a /48"},
		{"route inside", base + "\n\t\troutes fdaa:0:1:9::/64", "inside the network"},
	} {
		out := runFails(t, ns, dir, badConfig(dir, "x", c.block), "")
		if !strings.Contains(out, c.want) || strings.Contains(out, strings.TrimSpace(string(key))) {
			t.Errorf("%s: the error does not say %q (or shows the key):\n%s", c.name, c.want, out)
		}
	}
	os.Chmod(keyFile, 0o600)
	os.WriteFile(keyFile, []byte("not a key\n"), 0o600)
	if out := runFails(t, ns, dir, badConfig(dir, "x", base), ""); !strings.Contains(out, "does not hold a WireGuard private key") {
		t.Errorf("a key file without a key:\n%s", out)
	}
	os.WriteFile(keyFile, key, 0o600)

	// A subnet another POP's row holds.
	if _, err := exec.Command("sqlite3", filepath.Join(dir, "routing.db"),
		"INSERT INTO pops (node, region, prefix6, public_key) VALUES ('other', 'eu', 'fdaa:0:1:b::/64', 'k')").CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	if out := runFails(t, ns, dir, badConfig(dir, "x", base+"\n\t\tsubnet b"), ""); !strings.Contains(out, `subnet b (fdaa:0:1:b::/64) is already POP "other"'s`) {
		t.Errorf("a clashing subnet:\n%s", out)
	}

	// Without CAP_NET_ADMIN.
	open := filepath.Join(os.TempDir(), fmt.Sprintf("e2ewgbad-%d", os.Getpid()))
	os.MkdirAll(open, 0o777)
	os.Chmod(open, 0o777)
	t.Cleanup(func() { os.RemoveAll(open) })
	if out := runFails(t, ns, open, badConfig(open, "x", "network fdaa:0:1::/48\n\t\tinterface "+iface+"\n\t\tprivate_key_file "+open+"/wg.key"), "nobody"); !strings.Contains(out, "needs CAP_NET_ADMIN") {
		t.Errorf("a start without CAP_NET_ADMIN:\n%s", out)
	}
}
