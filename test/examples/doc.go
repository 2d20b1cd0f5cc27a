// Package examples checks what the README and the example files promise a
// user: the printed xcaddy command builds, the example Caddyfile and
// Corefile are formatted as Caddy formats them and run.
package examples
