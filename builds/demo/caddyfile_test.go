package main

import (
	"fmt"
	"testing"

	caddyfmt "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// The Caddyfile the demo writes is one `caddy fmt` leaves as it is, so a
// user who copies it from .run/Caddyfile gets no "not formatted" warning.
func TestCaddyfileFormatted(t *testing.T) {
	got := fmt.Sprintf(caddyfile, "/var/lib/edgeproxy/routing.db")
	if want := string(caddyfmt.Format([]byte(got))); got != want {
		t.Fatalf("caddy fmt changes the demo's Caddyfile; formatted it reads:\n%s", want)
	}
}
