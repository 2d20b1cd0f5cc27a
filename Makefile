# edgeProxy v2: Caddy and CoreDNS with edgeProxy's plugins.
#
#   make run     build both binaries and start a single-POP demo on loopback
#   make run-cluster  three POPs, a BIRD router and a client in network namespaces (root, Linux)
#   make test    build and run every test (installs missing test tools as root)
#   make bench   side-by-side benchmarks against HAProxy, caddy-l4 and CoreDNS hosts

export CGO_ENABLED := 1
GO      ?= go
BIN     := $(CURDIR)/bin
RUN     := $(CURDIR)/.run

# Debian packages the tests and benchmarks drive as real peers.
TEST_PACKAGES := iproute2 procps sqlite3 dnsutils nftables wireguard-tools wireguard-go iperf3 bind9-utils iputils-ping bird2 chromium curl
BENCH_PACKAGES := haproxy nginx-light wrk dnsperf iperf3 wireguard-go wireguard-tools
TEST_TOOLS := ip sysctl sqlite3 dig nft wg wireguard-go iperf3 named-checkzone ping bird chromium curl

.PHONY: all build run run-cluster test bench deps bench-deps vet fmt clean

all: build

build:
	$(GO) build -o $(BIN)/caddy ./builds/caddy
	$(GO) build -o $(BIN)/coredns ./builds/coredns

run: build
	$(GO) run ./builds/demo -dir $(RUN) -caddy $(BIN)/caddy -coredns $(BIN)/coredns

# Paths stay relative: the commands it prints are run from this directory.
run-cluster: build
	$(GO) build -o $(BIN)/cluster-demo ./builds/cluster-demo
	bin/cluster-demo -dir .run-cluster -caddy bin/caddy -coredns bin/coredns

test: deps build vet
	EDGEPROXY_CADDY=$(BIN)/caddy EDGEPROXY_COREDNS=$(BIN)/coredns $(GO) test -count=1 -timeout 30m ./...
	# The lock-free structures queries and connections read, under the race detector.
	$(GO) test -race -count=1 -timeout 10m ./routing ./plugins/coredns-internal

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w on the files above"; exit 1; }

bench: build bench-deps
	CADDY=$(BIN)/caddy bash bench/proxy.sh
	COREDNS=$(BIN)/coredns bash bench/dns/run.sh
	$(GO) run ./bench/cluster -caddy $(BIN)/caddy -pops 3,10
	$(GO) run ./bench/cluster -caddy $(BIN)/caddy -join 100000
	$(GO) run ./bench/clustersim -pops 10,100
	CADDY=$(BIN)/caddy bash bench/registry/run.sh
	$(GO) run ./bench/table -caddy $(BIN)/caddy -coredns $(BIN)/coredns edits
	$(GO) run ./bench/table -caddy $(BIN)/caddy -coredns $(BIN)/coredns load
	$(GO) run ./bench/table -caddy $(BIN)/caddy scrape -sizes 10000,100000
	$(GO) run ./bench/mesh -caddy $(BIN)/caddy
	$(GO) test -run '^$$' -bench . -benchmem ./routing ./geo ./plugins/coredns-internal
	$(GO) test -run '^$$' -bench 'OpenTable|FollowEdit|Register' -benchtime 20x ./store

# deps installs what the tests need when it is missing (as root, on Debian).
deps:
	@missing=""; for t in $(TEST_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES); \
		else echo "missing:$$missing; install with: sudo apt-get install -y $(TEST_PACKAGES)"; exit 1; fi; \
	fi

bench-deps:
	@missing=""; for t in haproxy nginx wrk dnsperf iperf3 wireguard-go wg; do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PACKAGES); \
		else echo "missing:$$missing; install with: sudo apt-get install -y $(BENCH_PACKAGES)"; exit 1; fi; \
	fi

clean:
	rm -rf $(BIN) $(RUN) .run-cluster
