#!/usr/bin/env bash
# DNS benchmark, side by side in one run: CoreDNS's own hosts plugin and
# edgeProxy's internal plugin, in ONE CoreDNS built from ./builds/coredns,
# serving the same 1,000 names with the same addresses, measured with
# dnsperf. Then the handler's own cost from go test -bench.
#
#   bench/dns/run.sh                 # ~1.5 minutes
#   DURATION=5 ROUNDS=3 bench/dns/run.sh
#
# Needs go, sqlite3, dnsperf and dig. Prints a Markdown table.
set -euo pipefail

cd "$(dirname "$0")/../.."
N=1000
DURATION=${DURATION:-2}   # seconds per measurement
ROUNDS=${ROUNDS:-5}       # alternating rounds: each side gets ROUNDS*DURATION seconds
CLIENTS=${CLIENTS:-4}     # dnsperf sockets
OUTSTANDING=${OUTSTANDING:-100}

for tool in go sqlite3 dnsperf dig; do
	command -v "$tool" >/dev/null || { echo "bench/dns: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "building ./builds/coredns ..." >&2
CGO_ENABLED=1 go build -o "$work/coredns" ./builds/coredns

# 1,000 backends, one app each, over four regions. A v1-shaped table: the
# plugin reads it read-only as the proxy left it.
sqlite3 "$work/routing.db" <<SQL
CREATE TABLE backends (id TEXT PRIMARY KEY, app TEXT, region TEXT, country TEXT, wg_ip TEXT, port INTEGER,
	healthy INTEGER, weight INTEGER, soft_limit INTEGER, hard_limit INTEGER, deleted INTEGER DEFAULT 0);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $N)
INSERT INTO backends
SELECT printf('b%04d', i), printf('app%04d', i),
	CASE i % 4 WHEN 0 THEN 'sa' WHEN 1 THEN 'eu' WHEN 2 THEN 'us' ELSE 'ap' END,
	CASE i % 4 WHEN 0 THEN 'BR' WHEN 1 THEN 'FR' WHEN 2 THEN 'US' ELSE 'JP' END,
	printf('10.%d.%d.%d', 50 + i / 65536, (i / 256) % 256, i % 256), 8080, 1, 1, 100, 150, 0
FROM n;
SQL
# The same names and addresses for hosts, and one query file for both.
sqlite3 -separator ' ' "$work/routing.db" "SELECT wg_ip, app || '.internal' FROM backends ORDER BY rowid" >"$work/hosts"
sqlite3 "$work/routing.db" "SELECT app || '.internal A' FROM backends ORDER BY rowid" >"$work/queries"

port_internal=$(free_port)
port_hosts=$(free_port)
port_ready=$(free_port)
# Two server blocks for the same zone on two ports, each with only the
# plugin under test: identical server overhead on both sides.
cat >"$work/Corefile" <<EOF2
internal:$port_internal {
	bind 127.0.0.1
	ready 127.0.0.1:$port_ready
	internal {
		db $work/routing.db
		region sa
	}
}
internal:$port_hosts {
	bind 127.0.0.1
	hosts $work/hosts internal
}
EOF2

"$work/coredns" -conf "$work/Corefile" >"$work/coredns.log" 2>&1 &
pid=$!
for _ in $(seq 200); do
	curl -fs "http://127.0.0.1:$port_ready/ready" >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/coredns.log" >&2; exit 1; }
	sleep 0.05
done
# Both sides answer the same thing before anything is measured.
a=$(dig +short @127.0.0.1 -p "$port_internal" app0421.internal A)
b=$(dig +short @127.0.0.1 -p "$port_hosts" app0421.internal A)
if [ -z "$a" ] || [ "$a" != "$b" ]; then
	echo "bench/dns: internal answers '$a', hosts '$b'" >&2
	cat "$work/coredns.log" >&2
	exit 1
fi

# ECS from a French network (Orange, 90.0.0.0/16) in the embedded GeoIP
# database: family 1, source /16, scope 0, two address bytes.
ecs="-E 8:000110005a00"

# cpu_ticks prints the CPU time CoreDNS has used so far, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)

# perf PORT SECONDS [EXTRA...] prints "qps latency_ms lost cpu_us_per_query".
# CPU time per query is the CoreDNS process's own: unlike QPS it does not
# depend on what else the machine runs at the time.
perf() {
	local port=$1 secs=$2 before
	shift 2
	before=$(cpu_ticks)
	dnsperf -s 127.0.0.1 -p "$port" -d "$work/queries" -l "$secs" -c "$CLIENTS" -q "$OUTSTANDING" "$@" >"$work/perf.out" 2>&1
	awk -v ticks=$(($(cpu_ticks) - before)) -v hz="$hz" '
		/Queries completed/ {n=$3} /Queries per second/ {q=$4} /Average Latency/ {l=$4*1000} /Queries lost/ {lost=$3}
		END {printf "%s %.3f %s %.2f\n", q, l, lost, (n > 0) ? ticks * 1e6 / hz / n : 0}' "$work/perf.out"
}

echo "warming up ..." >&2
perf "$port_internal" 1 >/dev/null
perf "$port_hosts" 1 >/dev/null
perf "$port_internal" 1 $ecs >/dev/null

# Short alternating rounds: the two sides of a round run seconds apart, so
# a paired ratio per round cancels the drift of a machine shared with other
# work, and the median of those ratios ignores a round hit by a burst.
declare -A qps lat lost runs cpu
sides=(hosts internal internal_ecs)
for s in "${sides[@]}"; do qps[$s]=0; lat[$s]=0; lost[$s]=0; runs[$s]=; cpu[$s]=0; done
load_before=$(cut -d' ' -f1 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
	if [ $((r % 2)) -eq 1 ]; then order=(hosts internal internal_ecs); else order=(internal_ecs internal hosts); fi
	for s in "${order[@]}"; do
		echo "round $r/$ROUNDS: $s (${DURATION}s) ..." >&2
		case $s in
		hosts) out=$(perf "$port_hosts" "$DURATION") ;;
		internal) out=$(perf "$port_internal" "$DURATION") ;;
		internal_ecs) out=$(perf "$port_internal" "$DURATION" $ecs) ;;
		esac
		read -r q l x c <<<"$out"
		cpu[$s]=$(awk -v a="${cpu[$s]}" -v b="$c" 'BEGIN {print a + b}')
		runs[$s]="${runs[$s]} $(printf '%.0f' "$q")"
		qps[$s]=$(awk -v a="${qps[$s]}" -v b="$q" 'BEGIN {print a + b}')
		lat[$s]=$(awk -v a="${lat[$s]}" -v b="$l" 'BEGIN {print a + b}')
		lost[$s]=$((lost[$s] + x))
	done
done
for s in "${sides[@]}"; do
	qps[$s]=$(awk -v a="${qps[$s]}" -v n="$ROUNDS" 'BEGIN {printf "%.0f", a / n}')
	lat[$s]=$(awk -v a="${lat[$s]}" -v n="$ROUNDS" 'BEGIN {printf "%.3f", a / n}')
	cpu[$s]=$(awk -v a="${cpu[$s]}" -v n="$ROUNDS" 'BEGIN {printf "%.2f", a / n}')
done
cpu_ratio() { awk -v a="${cpu[hosts]}" -v b="${cpu[$1]}" 'BEGIN {printf "%.2f", a / b}'; }
# ratio SIDE: the median over rounds of SIDE's QPS / hosts' QPS.
ratio() {
	paste <(tr ' ' '\n' <<<"${runs[$1]}" | sed '/^$/d') <(tr ' ' '\n' <<<"${runs[hosts]}" | sed '/^$/d') |
		awk '{print $1 / $2}' | sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m}'
}
ratio_internal=$(ratio internal)
ratio_ecs=$(ratio internal_ecs)
load_after=$(cut -d' ' -f1 /proc/loadavg)

echo "running go test -bench ..." >&2
benchout=$(go test ./plugins/coredns-internal/ -run '^$' -bench 'ServeDNS' -benchtime 1s 2>/dev/null | grep '^Benchmark')

cat <<EOF2

### DNS: \`internal\` vs CoreDNS \`hosts\`, one CoreDNS, $N names, $(nproc) cores shared with dnsperf

dnsperf -c $CLIENTS -q $OUTSTANDING; $ROUNDS alternating rounds of ${DURATION}s per side; queries: the $N names, type A;
load average $load_before before, $load_after after. QPS and latency are means over the rounds; "vs hosts" is
the median of the per-round ratios. CPU per query is CoreDNS's own CPU time divided by the queries
answered; "by CPU" is hosts' CPU per query over this side's, the QPS ratio a CPU-bound server
would show without the noise of a shared machine.

| server block | QPS | avg latency (ms) | lost | vs hosts | CPU per query (us) | vs hosts, by CPU | QPS per round |
|---|---:|---:|---:|---:|---:|---:|---|
| \`hosts\` ($N lines) | ${qps[hosts]} | ${lat[hosts]} | ${lost[hosts]} | 1.00x | ${cpu[hosts]} | 1.00x |${runs[hosts]} |
| \`internal\` ($N backends) | ${qps[internal]} | ${lat[internal]} | ${lost[internal]} | ${ratio_internal}x | ${cpu[internal]} | $(cpu_ratio internal)x |${runs[internal]} |
| \`internal\`, queries with ECS (hosts: without) | ${qps[internal_ecs]} | ${lat[internal_ecs]} | ${lost[internal_ecs]} | ${ratio_ecs}x | ${cpu[internal_ecs]} | $(cpu_ratio internal_ecs)x |${runs[internal_ecs]} |

Target: \`internal\` >= 0.90x \`hosts\`: $(awk -v r="$ratio_internal" 'BEGIN {print (r >= 0.9) ? "met" : "MISSED"}').

Handler alone (\`go test -bench ServeDNS ./plugins/coredns-internal/\`, packing excluded):

\`\`\`
$benchout
\`\`\`
EOF2
