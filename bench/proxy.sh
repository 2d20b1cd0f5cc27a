#!/usr/bin/env bash
# Side-by-side TCP proxy benchmark: direct nginx, HAProxy (mode tcp), the stock
# caddy-l4 proxy handler and the edgeroute handler, all in front of the same
# nginx, measured in one run. Prints Markdown tables on stdout; progress and
# diagnostics go to stderr. Exits non-zero if any row failed.
#
# Environment:
#   CADDY                   Caddy binary with caddy-l4 + edgeroute (default: build ./builds/caddy)
#   CADDY_L4                Caddy binary for the stock caddy-l4 `proxy` row (default: $CADDY)
#   BENCH_DURATION          wrk duration of each throughput run (default 5s)
#   BENCH_ROUNDS            throughput rounds, rows taking turns; medians are reported (default 3)
#   BENCH_WARMUP            wrk warmup before each row (default 2s)
#   BENCH_LATENCY_DURATION  wrk duration of one one-connection latency run (default 2s)
#   BENCH_LATENCY_ROUNDS    latency runs per row, interleaved; the median is reported (default 5)
#   BENCH_CONNECTIONS       wrk connections for throughput runs (default 64)
#   BENCH_THREADS           wrk threads (default 2)
#   BENCH_IDLE_CONNS        idle connections held for the memory test (default 10000;
#                           lowered automatically to what RLIMIT_NOFILE allows)
#   BENCH_PORT_BASE         first loopback port used (default 18180; uses base..base+19)
#   BENCH_KEEP=1            keep the temporary directory (configs, logs, wrk outputs)
set -euo pipefail
PATH=$PATH:/usr/sbin:/sbin

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
WARMUP=${BENCH_WARMUP:-2s}
LAT_DURATION=${BENCH_LATENCY_DURATION:-2s}
LAT_ROUNDS=${BENCH_LATENCY_ROUNDS:-5}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-2}
IDLE_WANT=${BENCH_IDLE_CONNS:-10000}
BASE=${BENCH_PORT_BASE:-18180}

P_NGINX=$((BASE + 0))
P_HAPROXY=$((BASE + 1))
P_L4=$((BASE + 2))
P_EDGE=$((BASE + 3))
P_LISTEN=$((BASE + 4))
P_IDLE_BACKEND=$((BASE + 10))
P_HAPROXY_IDLE=$((BASE + 11))
P_L4_IDLE=$((BASE + 12))
P_EDGE_IDLE=$((BASE + 13))
P_LISTEN_IDLE=$((BASE + 14))
P_L4_ADMIN=$((BASE + 18))
P_EDGE_ADMIN=$((BASE + 19))
P_LISTEN_ADMIN=$((BASE + 17))

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

for tool in nginx haproxy wrk sqlite3 ss go; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done

WORK=$(mktemp -d /tmp/edgebench.XXXXXX)
PIDS=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for _ in $(seq 50); do
		local alive=0
		for pid in "${PIDS[@]}"; do
			kill -0 "$pid" 2>/dev/null && alive=1
		done
		[ "$alive" = 0 ] && break
		sleep 0.1
	done
	for pid in "${PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "kept $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- binaries

if [ -z "${CADDY:-}" ]; then
	log "building ./builds/caddy (set CADDY=/path/to/caddy to skip)"
	CGO_ENABLED=1 go build -o "$WORK/caddy" ./builds/caddy || die "go build ./builds/caddy failed"
	CADDY=$WORK/caddy
fi
CADDY_L4=${CADDY_L4:-$CADDY}
[ -x "$CADDY" ] || die "CADDY=$CADDY is not executable"
[ -x "$CADDY_L4" ] || die "CADDY_L4=$CADDY_L4 is not executable"
has_module() { "$1" list-modules 2>/dev/null | awk -v m="$2" '$1 == m { found = 1 } END { exit !found }'; }
has_module "$CADDY_L4" layer4.handlers.proxy || die "$CADDY_L4 has no layer4.handlers.proxy (caddy-l4 missing)"
HAVE_EDGEROUTE=1
if ! has_module "$CADDY" layer4.handlers.edgeroute; then
	HAVE_EDGEROUTE=0
	log "WARNING: $CADDY has no layer4.handlers.edgeroute; the edgeroute row will fail"
fi

if [ -z "${IDLECONNS:-}" ]; then
	go build -o "$WORK/idleconns" ./bench/cmd/idleconns || die "go build ./bench/cmd/idleconns failed"
	IDLECONNS=$WORK/idleconns
fi

# ---------------------------------------------------------------- limits

# Every server inherits the raised soft limit. A proxy holding N idle
# connections needs 2N descriptors (client side + backend side), so N is
# bounded by the hard limit when this shell may not raise it.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
IDLE_N=$IDLE_WANT
if [ "$NOFILE" != unlimited ] && [ $((2 * IDLE_N + 128)) -gt "$NOFILE" ]; then
	IDLE_N=$(((NOFILE - 128) / 2 / 100 * 100))
	log "RLIMIT_NOFILE is $NOFILE (hard); holding $IDLE_N idle connections instead of $IDLE_WANT"
fi
HAPROXY_MAXCONN=$((IDLE_N + 50))

# ---------------------------------------------------------------- helpers

port_listening() { [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

for p in $P_NGINX $P_HAPROXY $P_L4 $P_EDGE $P_LISTEN $P_LISTEN_IDLE $P_LISTEN_ADMIN $P_IDLE_BACKEND $P_HAPROXY_IDLE $P_L4_IDLE $P_EDGE_IDLE $P_L4_ADMIN $P_EDGE_ADMIN; do
	port_listening "$p" && die "port $p is already in use (set BENCH_PORT_BASE)"
done

# wait_listen PID PORT...: true once every port listens, false if PID exits or 20 s pass.
wait_listen() {
	local pid=$1 p ok
	shift
	for _ in $(seq 200); do
		kill -0 "$pid" 2>/dev/null || return 1
		ok=1
		for p in "$@"; do port_listening "$p" || ok=0; done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

fmt_int() { if [ -n "$1" ]; then awk -v v="$1" 'BEGIN { printf "%.0f", v }'; fi; }

# to_us VALUE: wrk time ("812.00us", "1.23ms", "1.01s") to microseconds.
to_us() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); m = 1 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); m = 1000 }
		else if (v ~ /m$/) { sub(/m$/, "", v); m = 60000000 }
		else if (v ~ /s$/) { sub(/s$/, "", v); m = 1000000 }
		else { print ""; exit }
		printf "%.0f", v * m }'
}

# run_wrk OUTFILE URL ARGS...: runs wrk --latency and sets W_REQ W_RPS W_ERR W_P50 W_P99 (µs).
# Returns non-zero (with W_WHY set) if wrk failed, served nothing, or saw >1% errors.
run_wrk() {
	local out=$1 url=$2
	shift 2
	W_REQ=0 W_RPS=0 W_ERR=0 W_P50="" W_P99="" W_WHY=""
	if ! wrk --latency "$@" "$url" >"$out" 2>&1; then
		W_WHY="wrk exited with an error: $(tail -n 1 "$out")"
		return 1
	fi
	local parsed
	parsed=$(awk '
		/ requests in / { req = $1 }
		/^Requests\/sec:/ { rps = $2 }
		/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
		/Non-2xx or 3xx responses:/ { err += $5 }
		$1 == "50%" { p50 = $2 }
		$1 == "99%" { p99 = $2 }
		END { printf "%d %s %d %s %s\n", req, (rps == "" ? 0 : rps), err, (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99) }
	' "$out")
	local p50 p99
	read -r W_REQ W_RPS W_ERR p50 p99 <<<"$parsed"
	W_P50=$(to_us "$p50")
	W_P99=$(to_us "$p99")
	if [ "$W_REQ" -eq 0 ]; then
		W_WHY="no requests completed"
		return 1
	fi
	if [ $((W_ERR * 100)) -gt "$W_REQ" ]; then
		W_WHY="$W_ERR errors in $W_REQ requests (>1%)"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------- servers

mkdir -p "$WORK/nginx/tmp" "$WORK/xdg/data" "$WORK/xdg/config"

cat >"$WORK/nginx.conf" <<EOF
worker_processes 2;
worker_rlimit_nofile 16384;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events {
	worker_connections 8192;
}
http {
	access_log off;
	default_type text/plain;
	keepalive_timeout 300s;
	keepalive_requests 100000000;
	client_body_temp_path $WORK/nginx/tmp/body;
	proxy_temp_path $WORK/nginx/tmp/proxy;
	fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
	uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
	scgi_temp_path $WORK/nginx/tmp/scgi;
	server {
		listen 127.0.0.1:$P_NGINX backlog=4096;
		location / {
			return 200 "ok\n";
		}
	}
}
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
	nbthread 2
	maxconn $HAPROXY_MAXCONN

defaults
	mode tcp
	maxconn $HAPROXY_MAXCONN
	timeout connect 5s
	timeout client 1h
	timeout server 1h

frontend bench
	bind 127.0.0.1:$P_HAPROXY
	default_backend nginx

backend nginx
	server nginx 127.0.0.1:$P_NGINX

frontend idle
	bind 127.0.0.1:$P_HAPROXY_IDLE
	default_backend idle

backend idle
	server idle 127.0.0.1:$P_IDLE_BACKEND
EOF

cat >"$WORK/caddy-l4.caddyfile" <<EOF
{
	admin 127.0.0.1:$P_L4_ADMIN
	log {
		output file $WORK/caddy-l4.log
		level WARN
	}
	layer4 {
		127.0.0.1:$P_L4 {
			route {
				proxy 127.0.0.1:$P_NGINX
			}
		}
		127.0.0.1:$P_L4_IDLE {
			route {
				proxy 127.0.0.1:$P_IDLE_BACKEND
			}
		}
	}
}
EOF

cat >"$WORK/edgeroute.caddyfile" <<EOF
{
	admin 127.0.0.1:$P_EDGE_ADMIN
	log {
		output file $WORK/edgeroute.log
		level WARN
	}
	edgeroute {
		db      $WORK/routing.db
		node    bench-1
		region  eu
		country FR
	}
	layer4 {
		127.0.0.1:$P_EDGE {
			route {
				edgeroute bench
			}
		}
		127.0.0.1:$P_EDGE_IDLE {
			route {
				edgeroute idle
			}
		}
	}
}
EOF

cat >"$WORK/edgeroute-listen.caddyfile" <<EOF
{
	admin 127.0.0.1:$P_LISTEN_ADMIN
	log {
		output file $WORK/edgeroute-listen.log
		level WARN
	}
	edgeroute {
		db      $WORK/routing.db
		node    bench-2
		region  eu
		country FR
		listen 127.0.0.1:$P_LISTEN {
			app bench
		}
		listen 127.0.0.1:$P_LISTEN_IDLE {
			app idle
		}
	}
}
EOF

sqlite3 "$WORK/routing.db" <<EOF
CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, country TEXT, wg_ip TEXT, port INTEGER,
	healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);
INSERT INTO backends VALUES ('nginx-1', 'bench', 'eu', 'FR', '127.0.0.1', $P_NGINX, 1, 1, 100000, 200000, 0);
INSERT INTO backends VALUES ('idle-1', 'idle', 'eu', 'FR', '127.0.0.1', $P_IDLE_BACKEND, 1, 1, 100000, 200000, 0);
EOF

# Caddy keeps its state under XDG dirs; keep it in the temp dir. GOMAXPROCS=2
# matches nbthread 2 and worker_processes 2.
export XDG_DATA_HOME=$WORK/xdg/data XDG_CONFIG_HOME=$WORK/xdg/config GOMAXPROCS=2

declare -A PID FAIL
# Two edgeroute rows, each its own Caddy: the layer4 handler, and a port the
# edgeroute app listens on itself (`listen`), accepted on the relay loops.
ROWS=(direct haproxy caddy-l4 edgeroute edgeroute-listen)
PROXIES=(haproxy caddy-l4 edgeroute edgeroute-listen)
declare -A LABEL=([direct]="direct" [haproxy]="haproxy" [caddy-l4]="caddy-l4 proxy" [edgeroute]="edgeroute (layer4 handler)" [edgeroute-listen]="edgeroute (own listener)")
declare -A PORT=([direct]=$P_NGINX [haproxy]=$P_HAPROXY [caddy-l4]=$P_L4 [edgeroute]=$P_EDGE [edgeroute-listen]=$P_LISTEN)
declare -A IDLE_PORT=([haproxy]=$P_HAPROXY_IDLE [caddy-l4]=$P_L4_IDLE [edgeroute]=$P_EDGE_IDLE [edgeroute-listen]=$P_LISTEN_IDLE)

log "starting nginx on :$P_NGINX"
nginx -e "$WORK/nginx/error.log" -p "$WORK/nginx" -c "$WORK/nginx.conf" >"$WORK/nginx/stdout.log" 2>&1 &
PID[direct]=$!
PIDS+=("$!")
wait_listen "${PID[direct]}" "$P_NGINX" || die "nginx did not start: $(tail -n 5 "$WORK/nginx/error.log" 2>/dev/null)"

log "starting the idle backend on :$P_IDLE_BACKEND"
"$IDLECONNS" -listen "127.0.0.1:$P_IDLE_BACKEND" -n "$IDLE_N" >"$WORK/idle-backend.log" 2>&1 &
IDLE_BACKEND_PID=$!
PIDS+=("$!")
wait_listen "$IDLE_BACKEND_PID" "$P_IDLE_BACKEND" || die "idle backend did not start: $(cat "$WORK/idle-backend.log")"

log "starting haproxy on :$P_HAPROXY"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PID[haproxy]=$!
PIDS+=("$!")
wait_listen "${PID[haproxy]}" "$P_HAPROXY" "$P_HAPROXY_IDLE" ||
	FAIL[haproxy]="haproxy did not start: $(tail -n 3 "$WORK/haproxy.log" | tr '\n' ' ')"

# start_caddy ROW BINARY PORT...: runs BINARY on $WORK/ROW.caddyfile and waits
# until it listens on every PORT.
start_caddy() {
	local row=$1 bin=$2
	shift 2
	log "starting ${LABEL[$row]} on :$1 ($bin)"
	"$bin" run --config "$WORK/$row.caddyfile" --adapter caddyfile >"$WORK/$row.stderr" 2>&1 &
	PID[$row]=$!
	PIDS+=("$!")
	wait_listen "${PID[$row]}" "$@" ||
		FAIL[$row]="caddy did not start: $(tail -n 3 "$WORK/$row.stderr" | tr '\n' ' ')"
}
start_caddy caddy-l4 "$CADDY_L4" "$P_L4" "$P_L4_IDLE"
if [ "$HAVE_EDGEROUTE" = 1 ]; then
	start_caddy edgeroute "$CADDY" "$P_EDGE" "$P_EDGE_IDLE"
	start_caddy edgeroute-listen "$CADDY" "$P_LISTEN" "$P_LISTEN_IDLE"
else
	FAIL[edgeroute]="$CADDY lacks layer4.handlers.edgeroute"
	FAIL[edgeroute-listen]=${FAIL[edgeroute]}
fi

# ---------------------------------------------------------------- idle connections (memory)

# Measured first, on freshly started processes, so the baseline is not a heap
# grown by the throughput runs.
declare -A M_BEFORE M_AFTER M_HELD M_FDS M_CAPPED M_WHY
kv() { { grep -o "\b$1=[0-9.]*" "$2" || true; } | head -n 1 | cut -d= -f2; }
for row in "${PROXIES[@]}"; do
	[ -n "${FAIL[$row]:-}" ] && continue
	# Wait for the previous round's backend connections to be gone.
	for _ in $(seq 100); do
		[ "$(find "/proc/$IDLE_BACKEND_PID/fd" -mindepth 1 2>/dev/null | wc -l)" -lt 64 ] && break
		sleep 0.1
	done
	log "memory: $IDLE_N idle connections through ${LABEL[$row]}"
	out=$WORK/idle-$row.txt
	if "$IDLECONNS" -target "127.0.0.1:${IDLE_PORT[$row]}" -n "$IDLE_N" -pid "${PID[$row]}" \
		>"$out" 2>"$WORK/idle-$row.stderr"; then
		M_BEFORE[$row]=$(kv rss_before_kb "$out")
		M_AFTER[$row]=$(kv rss_after_kb "$out")
		M_HELD[$row]=$(kv held "$out")
		M_FDS[$row]=$(kv fds_per_conn "$out")
		M_CAPPED[$row]=$(kv capped_from "$out")
		if [ -n "${M_CAPPED[$row]}" ]; then
			log "memory: ${LABEL[$row]}: $(head -n 1 "$WORK/idle-$row.stderr")"
		fi
	else
		M_WHY[$row]="$(tail -n 1 "$WORK/idle-$row.stderr")"
		log "memory: ${LABEL[$row]} failed: ${M_WHY[$row]}"
	fi
	# Give the proxy a moment to tear the connections down before the next one.
	sleep 1
done

# ---------------------------------------------------------------- throughput and latency

# Throughput rows take turns: every round runs each row for DURATION with
# `Connection: close`, then each row with keep-alive, starting one row later
# than the round before. On a shared machine a row's figure drifts by tens
# of percent over a minute; taking turns exposes every row to the same
# drift, and each row's ratio to HAProxy is taken within a round. The
# proxy's own CPU time per request (user + system from /proc/PID/stat) is
# recorded alongside.
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
declare -A NEW KA NEW_CPU KA_CPU NEW_VS KA_VS P50 P99 RPS CPU
for row in "${ROWS[@]}"; do
	[ -n "${FAIL[$row]:-}" ] && { log "skipping ${LABEL[$row]}: ${FAIL[$row]}"; continue; }
	log "${LABEL[$row]}: warmup $WARMUP"
	run_wrk "$WORK/wrk-$row-warmup.txt" "http://127.0.0.1:${PORT[$row]}/" -t"$THREADS" -c"$CONNS" -d"$WARMUP" || true
done
for round in $(seq "$ROUNDS"); do
	shift_by=$(((round - 1) % ${#ROWS[@]}))
	order=("${ROWS[@]:shift_by}" "${ROWS[@]:0:shift_by}")
	for mode in close keepalive; do
		log "round $round/$ROUNDS, $mode: ${order[*]}, $DURATION each"
		for row in "${order[@]}"; do
			[ -n "${FAIL[$row]:-}" ] && continue
			hdr=()
			[ "$mode" = close ] && hdr=(-H "Connection: close")
			c0=$(cpu_ticks "${PID[$row]}")
			if ! run_wrk "$WORK/wrk-$row-$mode-$round.txt" "http://127.0.0.1:${PORT[$row]}/" \
				-t"$THREADS" -c"$CONNS" -d"$DURATION" "${hdr[@]}"; then
				FAIL[$row]="$mode, round $round: $W_WHY"
				log "${LABEL[$row]}: ${FAIL[$row]}"
				continue
			fi
			c1=$(cpu_ticks "${PID[$row]}")
			RPS[$row,$mode,$round]=$W_RPS
			CPU[$row,$mode,$round]=$(awk -v c=$((c1 - c0)) -v t="$TICKS" -v r="$W_REQ" 'BEGIN { printf "%.1f", c * 1e6 / t / r }')
		done
	done
done
# median VALUES...: the middle value, or the mean of the middle two.
median() { printf '%s\n' "$@" | awk NF | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
declare -A ROUND_VS
for row in "${ROWS[@]}"; do
	[ -n "${FAIL[$row]:-}" ] && continue
	for mode in close keepalive; do
		rps=() cpu=() vs=()
		for round in $(seq "$ROUNDS"); do
			rps+=("${RPS[$row,$mode,$round]}")
			cpu+=("${CPU[$row,$mode,$round]}")
			if [ -n "${RPS[haproxy,$mode,$round]:-}" ]; then
				vs+=("$(awk -v a="${RPS[$row,$mode,$round]}" -v b="${RPS[haproxy,$mode,$round]}" 'BEGIN { printf "%.2f", a / b }')")
			fi
		done
		ROUND_VS[$row,$mode]="${vs[*]:-}"
		if [ "$mode" = close ]; then
			NEW[$row]=$(median "${rps[@]}") NEW_CPU[$row]=$(median "${cpu[@]}") NEW_VS[$row]=$(median "${vs[@]:-}")
		else
			KA[$row]=$(median "${rps[@]}") KA_CPU[$row]=$(median "${cpu[@]}") KA_VS[$row]=$(median "${vs[@]:-}")
		fi
	done
done

# One request in flight, rows interleaved round by round; the median over the
# rounds is reported. On a small VM a single run's percentiles move by 2x with
# CPU placement and idle-state wakeups, so one run per row is not enough.
declare -A P50S P99S
for round in $(seq "$LAT_ROUNDS"); do
	log "latency round $round/$LAT_ROUNDS: 1 keep-alive connection, $LAT_DURATION per row"
	for row in "${ROWS[@]}"; do
		[ -n "${FAIL[$row]:-}" ] && continue
		if run_wrk "$WORK/wrk-$row-latency-$round.txt" "http://127.0.0.1:${PORT[$row]}/" -t1 -c1 -d"$LAT_DURATION"; then
			P50S[$row]="${P50S[$row]:-} $W_P50"
			P99S[$row]="${P99S[$row]:-} $W_P99"
		else
			FAIL[$row]="latency: $W_WHY"
			log "${LABEL[$row]}: ${FAIL[$row]}"
		fi
	done
done
for row in "${ROWS[@]}"; do
	[ -n "${FAIL[$row]:-}" ] && continue
	# shellcheck disable=SC2086 # the lists are space-separated numbers
	P50[$row]=$(fmt_int "$(median ${P50S[$row]:-})")
	# shellcheck disable=SC2086
	P99[$row]=$(fmt_int "$(median ${P99S[$row]:-})")
done

# ---------------------------------------------------------------- report

us() { [ -n "$1" ] && printf '%s µs' "$1" || printf 'n/a'; }
added() { # value direct
	if [ -z "$1" ] || [ -z "$2" ]; then printf 'n/a'; return; fi
	printf '%+d µs' $(($1 - $2))
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

STATUS=0
echo "## TCP proxy benchmark"
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r)."
echo "$(haproxy -v | head -n 1 | cut -d' ' -f1-3), nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2), caddy $("$CADDY" version 2>/dev/null | cut -d' ' -f1)."
echo "Throughput: wrk -t$THREADS -c$CONNS through each proxy to one nginx (\`return 200\`, 2 workers), $ROUNDS rounds in which the rows take turns,"
echo "$DURATION per row and mode (after a $WARMUP warmup per row). Each figure is the median over the rounds; \"vs haproxy\" is the median of the"
echo "row's ratio to HAProxy within each round. \"CPU\" is the proxy's own user + system time per request (/proc/PID/stat), also a median."
echo "Every proxy has 2 threads (HAProxy \`nbthread 2\`, Caddy \`GOMAXPROCS=2\`). wrk, proxy and nginx share the same cores."
echo "Latency: wrk -t1 -c1 -d$LAT_DURATION keep-alive (one request in flight), median of $LAT_ROUNDS interleaved rounds; \"added\" is relative to direct."
echo
echo "| | new conn/s (\`Connection: close\`) | vs haproxy | CPU | keep-alive req/s | vs haproxy | CPU | p50 | p99 | added p50 | added p99 |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
cpu_us() { [ -n "$1" ] && [ "$2" != direct ] && printf '%s µs' "$1" || printf 'n/a'; }
vs() { [ -n "$1" ] && printf '%.2fx' "$1" || printf 'n/a'; }
for row in "${ROWS[@]}"; do
	if [ -z "${NEW[$row]:-}" ]; then
		echo "| ${LABEL[$row]} | FAILED | | | | | | | | | |"
		continue
	fi
	add50=n/a add99=n/a
	if [ "$row" != direct ]; then
		add50=$(added "${P50[$row]:-}" "${P50[direct]:-}")
		add99=$(added "${P99[$row]:-}" "${P99[direct]:-}")
	fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$row]}" \
		"$(fmt_int "${NEW[$row]}")" "$(vs "${NEW_VS[$row]:-}")" "$(cpu_us "${NEW_CPU[$row]:-}" "$row")" \
		"$(fmt_int "${KA[$row]}")" "$(vs "${KA_VS[$row]:-}")" "$(cpu_us "${KA_CPU[$row]:-}" "$row")" \
		"$(us "${P50[$row]:-}")" "$(us "${P99[$row]:-}")" "$add50" "$add99"
done
echo
echo "Ratio to HAProxy in each round (new connections / keep-alive):"
echo
for row in "${ROWS[@]}"; do
	[ "$row" = haproxy ] || [ -z "${ROUND_VS[$row,close]:-}" ] && continue
	echo "- ${LABEL[$row]}: ${ROUND_VS[$row,close]// /, } / ${ROUND_VS[$row,keepalive]// /, }"
done
echo
echo "### Memory: idle proxied TCP connections"
echo
echo "VmRSS of the proxy process when fresh, then while holding idle connections that each completed a one-byte"
echo "exchange end to end through it (measured before the throughput runs). \"fds/conn\" is the proxy's open descriptors per held connection."
notes=()
if [ "$IDLE_N" != "$IDLE_WANT" ]; then
	notes+=("RLIMIT_NOFILE here is $NOFILE and cannot be raised, and a proxy needs at least 2 descriptors per connection: $IDLE_N connections were attempted instead of $IDLE_WANT.")
fi
for row in "${PROXIES[@]}"; do
	if [ -n "${M_CAPPED[$row]:-}" ]; then
		notes+=("${LABEL[$row]} uses ${M_FDS[$row]} descriptors per connection, so only ${M_HELD[$row]} fit under its RLIMIT_NOFILE ($NOFILE).")
	fi
done
if [ "${#notes[@]}" -gt 0 ]; then
	echo "The last column scales MB per 1k to $IDLE_WANT connections:"
	echo
	for note in "${notes[@]}"; do echo "- $note"; done
fi
echo
echo "| | conns held | fds/conn | RSS before | RSS holding | delta | MB per 1k conns | delta at $IDLE_WANT |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for row in "${PROXIES[@]}"; do
	if [ -z "${M_AFTER[$row]:-}" ]; then
		why=${M_WHY[$row]:-${FAIL[$row]:-not run}}
		echo "| ${LABEL[$row]} | FAILED: ${why//|/\\|} | | | | | | |"
		continue
	fi
	d=$((${M_AFTER[$row]} - ${M_BEFORE[$row]}))
	perk=$(awk -v d="$d" -v n="${M_HELD[$row]}" 'BEGIN { printf "%.2f", d / 1024 / n * 1000 }')
	printf '| %s | %s | %s | %s MB | %s MB | %s MB | %s | %s MB |\n' "${LABEL[$row]}" "${M_HELD[$row]}" "${M_FDS[$row]}" \
		"$(mb "${M_BEFORE[$row]}")" "$(mb "${M_AFTER[$row]}")" "$(mb "$d")" "$perk" \
		"$(awk -v p="$perk" -v w="$IDLE_WANT" 'BEGIN { printf "%.1f", p * w / 1000 }')"
done

failed_rows=()
for row in "${ROWS[@]}"; do
	if [ -n "${FAIL[$row]:-}" ]; then
		failed_rows+=("${LABEL[$row]}: ${FAIL[$row]}")
	elif [ "$row" != direct ] && [ -n "${M_WHY[$row]:-}" ]; then
		failed_rows+=("${LABEL[$row]} (memory): ${M_WHY[$row]}")
	fi
done
if [ "${#failed_rows[@]}" -gt 0 ]; then
	echo
	echo "Failed:"
	for f in "${failed_rows[@]}"; do echo "- $f"; done
	STATUS=1
fi
exit "$STATUS"
