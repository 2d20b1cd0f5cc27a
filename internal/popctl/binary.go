package popctl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// CaddyBinary returns the caddy binary tests drive: $EDGEPROXY_CADDY when
// set (make test builds it once for every package), otherwise one built
// from root/builds/caddy into a temporary directory that cleanup removes.
func CaddyBinary(root string) (path string, cleanup func(), err error) {
	if env := os.Getenv("EDGEPROXY_CADDY"); env != "" {
		return env, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "edgeproxy-caddy")
	if err != nil {
		return "", nil, err
	}
	// Open to all, as bin/ is: a test runs the binary as an unprivileged
	// user to see what it says without CAP_NET_ADMIN.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	path = filepath.Join(dir, "caddy")
	build := exec.Command("go", "build", "-o", path, "./builds/caddy")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("building caddy: %v", err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}
