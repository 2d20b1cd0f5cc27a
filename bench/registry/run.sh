#!/usr/bin/env bash
# Registrations/s through the HTTP API (10 s, target
# >= 1,000/s; then with 10,000 backends registered first, target
# >= 2,000/s) and the CPU of checking 1,000 backends every second (target
# < 5% of one core), with HAProxy's own checks as the anchor when
# installed. CADDY is the built binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
CADDY=${CADDY:-bin/caddy}
ulimit -n 20000 2>/dev/null || true
go run ./bench/registry -caddy "$CADDY" register -for 10s
go run ./bench/registry -caddy "$CADDY" register -for 10s -preload 10000
go run ./bench/registry -caddy "$CADDY" health -backends 1000 -interval 1s -for 20s -check tcp
go run ./bench/registry -caddy "$CADDY" health -backends 1000 -interval 1s -for 20s -check http
