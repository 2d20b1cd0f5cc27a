package examples

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// xcaddyVersion is the xcaddy the README's command is tried with.
const xcaddyVersion = "v0.4.5"

// readmeXcaddy returns the README's xcaddy command, its continuation lines
// joined, exactly as a reader would paste it.
func readmeXcaddy(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmd []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cmd == nil && !strings.HasPrefix(line, "CGO_ENABLED=1 xcaddy build ") {
			continue
		}
		cmd = append(cmd, strings.TrimSuffix(line, `\`))
		if !strings.HasSuffix(line, `\`) {
			break
		}
	}
	if cmd == nil {
		t.Fatal("README.md prints no `CGO_ENABLED=1 xcaddy build` command")
	}
	return strings.Join(cmd, " ")
}

// TestReadmeXcaddyBuild runs the README's xcaddy command from the root of
// this checkout, as the README tells, and checks that the binary it makes
// has the modules of all three Caddy plugins.
func TestReadmeXcaddyBuild(t *testing.T) {
	root := repoRoot(t)
	cmd := readmeXcaddy(t)
	for _, plugin := range []string{"caddy-edgeroute", "caddy-bgp", "caddy-wg6pn"} {
		if !strings.Contains(cmd, "--with github.com/edgeproxy/edgeproxy/plugins/"+plugin) {
			t.Errorf("the README's xcaddy command leaves out plugins/%s: %s", plugin, cmd)
		}
	}

	bin := t.TempDir()
	install := exec.Command("go", "install", "github.com/caddyserver/xcaddy/cmd/xcaddy@"+xcaddyVersion)
	install.Env = append(os.Environ(), "GOBIN="+bin)
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("xcaddy %s cannot be installed here (no module proxy?), so the README's command cannot be tried: %v\n%s", xcaddyVersion, err, out)
	}

	out := filepath.Join(t.TempDir(), "caddy")
	run := exec.Command("bash", "-c", cmd+" --output "+out)
	run.Dir = root
	// The README's own advice for module proxies that answer 403 for the
	// local plugin paths instead of 404; with a proxy answering 404 it
	// changes nothing.
	goproxy, err := exec.Command("go", "env", "GOPROXY").Output()
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(goproxy)), ",")
	// The environment of a fresh shell: no CGO_ENABLED from make, so the
	// command's own CGO_ENABLED=1 is what makes the build work.
	run.Env = append(withoutEnv("CGO_ENABLED", "GOPROXY"),
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "GOPROXY="+first+"|off")
	start := time.Now()
	if log, err := run.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, tail(string(log), 4000))
	}
	t.Logf("xcaddy build took %v", time.Since(start).Round(time.Second))

	mods, err := exec.Command(out, "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("caddy list-modules: %v\n%s", err, mods)
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(mods), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	for _, m := range []string{"edgeroute", "layer4.handlers.edgeroute", "http.handlers.edgeroute_api", "bgp", "wg6pn", "layer4"} {
		if !have[m] {
			t.Errorf("the xcaddy-built caddy lacks module %s", m)
		}
	}
}

// TestBuildWithoutCgoNamesTheFix: a build with CGO_ENABLED=0 (xcaddy's
// default, cross builds) stops with an error that says what to set.
func TestBuildWithoutCgoNamesTheFix(t *testing.T) {
	build := exec.Command("go", "build", "-o", os.DevNull, "./store")
	build.Dir = repoRoot(t)
	build.Env = append(withoutEnv("CGO_ENABLED"), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err == nil {
		t.Fatal("store built without cgo; go-sqlite3 would fail at run time instead")
	}
	first := strings.SplitN(strings.TrimSpace(string(out)), "\n", 3)
	if len(first) < 2 || !strings.Contains(first[1], "CGO_ENABLED_1") {
		t.Fatalf("the first error of a build without cgo does not say to set CGO_ENABLED=1:\n%s", out)
	}
}

func withoutEnv(names ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		env = append(env, kv)
	}
	return env
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
