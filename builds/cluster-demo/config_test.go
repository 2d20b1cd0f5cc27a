package main

import (
	"testing"

	caddyfmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The Caddyfiles the demo writes are as `caddy fmt` writes them.
func TestCaddyfilesFormatted(t *testing.T) {
	for _, p := range pops {
		got := caddyfile("/tmp/run-cluster", p, "$2a$14$hash")
		if want := string(caddyfmt.Format([]byte(got))); got != want {
			t.Fatalf("caddy fmt changes %s's Caddyfile; formatted it reads:\n%s", p.name, want)
		}
	}
}
