#!/usr/bin/env bash
# CPU time per request of edgeroute and HAProxy, side by side: the proxy's
# own user+system time (from /proc/PID/stat) over a wrk run, divided by the
# requests served. On a machine shared with other work this is steadier
# than requests per second. Usage: CADDY=bin/caddy bash bench/proxy-cpu.sh
set -euo pipefail
CADDY=${CADDY:-bin/caddy}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-2}
BASE=${BENCH_PORT_BASE:-18280}
NGINX_PORT=$BASE HAPROXY_PORT=$((BASE + 1)) EDGE_PORT=$((BASE + 2)) ADMIN_PORT=$((BASE + 3))
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
ticks=$(getconf CLK_TCK)

cat > "$dir/nginx.conf" <<EOT
worker_processes 2;
pid $dir/nginx.pid;
error_log /dev/null;
daemon off;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 "ok\n"; } } }
EOT
nginx -c "$dir/nginx.conf" & pids+=($!)

cat > "$dir/haproxy.cfg" <<EOT
global
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend f
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend b
backend b
  server s1 127.0.0.1:$NGINX_PORT
EOT
haproxy -f "$dir/haproxy.cfg" -db >/dev/null 2>&1 & pids+=($!); haproxy_pid=$!

sqlite3 "$dir/routing.db" "CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, country TEXT, wg_ip TEXT, port INTEGER, healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);
	INSERT INTO backends VALUES ('nginx-1','bench','eu','FR','127.0.0.1',$NGINX_PORT,1,1,100000,0,0);"
cat > "$dir/Caddyfile" <<EOT
{
	admin 127.0.0.1:$ADMIN_PORT
	edgeroute {
		db $dir/routing.db
		region eu
	}
	layer4 {
		127.0.0.1:$EDGE_PORT {
			route {
				edgeroute bench
			}
		}
	}
}
EOT
GOMAXPROCS=2 XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir "$CADDY" run --config "$dir/Caddyfile" --adapter caddyfile >/dev/null 2>&1 & pids+=($!); caddy_pid=$!
for port in $NGINX_PORT $HAPROXY_PORT $EDGE_PORT; do
	for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure() { # pid port [wrk header args]
	local pid=$1 port=$2; shift 2
	local c0 c1 out reqs
	c0=$(cpu "$pid")
	out=$(wrk -t2 -c64 -d"$DURATION" "$@" "http://127.0.0.1:$port/")
	c1=$(cpu "$pid")
	reqs=$(awk '/requests in/{print $1}' <<<"$out")
	awk -v c="$((c1 - c0))" -v t="$ticks" -v r="$reqs" -v rps="$(awk '/Requests\/sec/{print $2}' <<<"$out")" \
		'BEGIN { printf "%.0f req/s, %.1f µs CPU/request", rps, c * 1e6 / t / r }'
}

echo "| round | proxy | Connection: close | keep-alive |"
echo "|---:|---|---|---|"
for round in $(seq "$ROUNDS"); do
	for row in "haproxy $haproxy_pid $HAPROXY_PORT" "edgeroute $caddy_pid $EDGE_PORT"; do
		set -- $row
		echo "| $round | $1 | $(measure "$2" "$3" -H 'Connection: close') | $(measure "$2" "$3") |"
	done
done
