package layout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositoryKeepsTheImportRules fails when a package outside plugins/
// and builds/ imports Caddy or CoreDNS, or a plugin imports another.
func TestRepositoryKeepsTheImportRules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	vs, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
	// The walk must have seen the plugins, or it proves nothing.
	if _, err := os.Stat(filepath.Join(root, "plugins", "caddy-edgeroute")); err != nil {
		t.Fatalf("plugins not found under %s", root)
	}
}

// TestCheckFindsEachKindOfViolation runs the check on a small tree that
// breaks every rule once.
func TestCheckFindsEachKindOfViolation(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module "+Module+"\n")
	write("store/bad.go", "package store\nimport _ \"github.com/caddyserver/caddy/v2\"\n")
	write("pop/bad.go", "package pop\nimport _ \""+Module+"/plugins/caddy-edgeroute\"\n")
	write("plugins/caddy-bgp/bad.go", "package bgp\nimport _ \""+Module+"/plugins/caddy-edgeroute\"\n")
	write("plugins/caddy-bgp/good.go", "package bgp\nimport _ \"github.com/caddyserver/caddy/v2\"\nimport _ \""+Module+"/pop\"\n")
	write("builds/caddy/main.go", "package main\nimport _ \""+Module+"/plugins/caddy-bgp\"\n")
	write("routing/ok.go", "package routing\nimport _ \"strings\"\n")

	vs, err := Check(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, v := range vs {
		got[v.File] = true
	}
	for _, want := range []string{"store/bad.go", "pop/bad.go", "plugins/caddy-bgp/bad.go"} {
		if !got[want] {
			t.Errorf("no violation reported for %s; got %v", want, vs)
		}
	}
	if len(vs) != 3 {
		t.Errorf("want exactly 3 violations, got %d: %v", len(vs), vs)
	}
	for _, v := range vs {
		if !strings.Contains(v.Rule, "never") && !strings.Contains(v.Rule, "neither") {
			t.Errorf("violation without a rule: %v", v)
		}
	}
}
