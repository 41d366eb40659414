# pixelpipe: every build, test and run entry point. CI calls `make test`.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
PKGS      := ./...
FUZZTIME  ?= 30s
SERVICES  := deploy/local/services.sh
TEST_KAFKA ?= 127.0.0.1:19092
TEST_REDIS ?= 127.0.0.1:16379
# The Redis Cluster of services.sh (three masters, a replica each): any of
# its nodes would do as a seed; several make the clients cluster clients.
TEST_REDIS_CLUSTER ?= 127.0.0.1:17000,127.0.0.1:17001,127.0.0.1:17002
# The packages that talk to Redis, tested again on the cluster.
REDIS_PKGS := ./hllstore/ ./counts/ ./aggregator/ ./processor/... ./query/ ./audit/ ./internal/lease/

.PHONY: help build run test test-cluster test-short test-faults bench-aggregator bench-capacity bench-compare bench-publish bench-processor bench-query bench-recipients bench-edge bench-e2e browser services-up services-down services-status \
        generate check-generate check-deps check-k8s image lint fmt vet bench fuzz check clean

help:
	@echo "make run      everything in one process on an embedded Kafka broker and Redis (nothing to install)"
	@echo "make test     install and start real Kafka, Redis and a Redis Cluster, then every test, with -race (the Redis users' again on the cluster)"
	@echo "make test-cluster  the integration tests of the Redis users on the local Redis Cluster only"
	@echo "make bench    benchmarks; figures and commands in BENCHMARKS.md"
	@echo "make bench-compare BASE=REV  the hot-path benchmarks against those of commit REV, alternated in one run"
	@echo "make bench-edge  wrk against the edge (real Kafka), a bare fasthttp GIF server and nginx empty_gif, interleaved rounds"
	@echo "make test-faults  full-length fault tests (Kafka down 60 s, Kafka cluster leader kills and rolling restart, edge SIGTERM / kill -9, aggregator kill -9, Redis crashes, Redis Cluster master failovers, rebalances, all under load)"
	@echo "make bench-capacity  aggregator heap and Redis memory per content id and day, a hot content id's cost per event (needs redis-server)"
	@echo "make bench-publish  the edge's publisher against the kafka-go Writer, edge and broker CPU per hit (real Kafka)"
	@echo "make bench-processor  enriched events/s per core, warm and cold, against the pre-enrichment reference (needs Redis)"
	@echo "make bench-recipients  a campaign of 1,000,000 recipients against one of 10,000: page latency, Redis bytes per recipient (needs redis-server)"
	@echo "make bench-e2e  the whole pipeline as four processes on real Kafka and Redis under wrk (and vegeta): end-to-end hits/s, exactness, hit->visible p50/p99, CPU and Redis commands per hit (E2E_BENCH_FLAGS)"
	@echo "make check-k8s  render the Kubernetes overlays (deploy/k8s) and check them against the code; part of make test"
	@echo "make image   the container image as build/pixelpipe-image.tar, without a container engine"
	@echo "other: build test-short services-up services-down generate check-generate check-deps lint fmt vet fuzz check"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o bin/ ./cmd/...

# The dev mode's embedded Kafka broker and Redis are built in only with the
# devmode tag; the part binaries (make build) leave them out.
run:
	$(GO) run -tags devmode ./cmd/pixelpipe dev

# Real Apache Kafka (KRaft, from Maven Central, run by this machine's Java) and
# redis-server (Debian) on 127.0.0.1:19092 and :16379, and a Redis Cluster of
# six redis-server processes on :17000-17005; downloads are cached in .cache/.
services-up:
	$(SERVICES) up
	$(GO) run ./cmd/pixelpipe topics -kafka.brokers=$(TEST_KAFKA)

services-down:
	$(SERVICES) down

services-status:
	$(SERVICES) status

# Debian's chromium for the dashboard's browser tests (TestDashboardInBrowser, TestDashboardPanels).
browser:
	deploy/local/browser.sh

test: services-up browser check-generate check-deps check-k8s lint
	deploy/local/bench-deps.sh
	PIXEL_TEST_KAFKA=$(TEST_KAFKA) PIXEL_TEST_REDIS=$(TEST_REDIS) \
		$(GO) test -race -count=1 -tags integration -timeout 40m $(PKGS)
	# The Redis users again on the Redis Cluster: every script and
	# multi-key command in one slot, pipelines across nodes (with -race, so
	# the test binaries of the run above are reused).
	PIXEL_TEST_KAFKA=$(TEST_KAFKA) PIXEL_TEST_REDIS=$(TEST_REDIS_CLUSTER) \
		$(GO) test -race -count=1 -tags integration -timeout 15m $(REDIS_PKGS)
	# Allocation budgets: the race detector allocates, so these run without it.
	$(GO) test -count=1 -run 'Allocations' ./schemas/... ./internal/visitor/... ./edge/... ./processor/... ./aggregator/
	# The command line as make run builds it (with dev mode).
	$(GO) test -count=1 -tags devmode ./cmd/...

# The integration tests of the packages that talk to Redis, on the local
# Redis Cluster (make test runs them there too).
test-cluster: services-up
	PIXEL_TEST_KAFKA=$(TEST_KAFKA) PIXEL_TEST_REDIS=$(TEST_REDIS_CLUSTER) \
		$(GO) test -race -count=1 -tags integration -timeout 15m $(REDIS_PKGS)

# Full-length fault tests: a private Kafka broker of the
# test's own killed for 60 s under load, a minute of load with five SIGTERM
# and five kill -9 of the edge binary, six kill -9 of a master of a private
# Redis Cluster under load (three of them with the replica made to lag), the
# leaders of a private three-broker Kafka cluster killed for 30 s each and
# its brokers restarted one by one under load. `make test` runs shortened
# versions.
test-faults: services-up
	PIXEL_TEST_KAFKA=$(TEST_KAFKA) PIXEL_TEST_REDIS=$(TEST_REDIS) PIXEL_FAULT_FULL=1 \
		$(GO) test -race -count=1 -tags integration -timeout 90m -run '^TestFault' -v ./integration/

# HTTP-level benchmark (BENCHMARKS.md): installs wrk and nginx-light from
# Debian when missing, then runs internal/bench/edgebench against the edge
# publishing to the Kafka at $(TEST_KAFKA) on a fresh topic prefix.
EDGE_BENCH_FLAGS ?= -rounds=3 -duration=8s -conns=64
bench-edge:
	deploy/local/bench-deps.sh
	@mkdir -p build
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/pixelpipe ./internal/bench/baregif
	$(GO) run ./internal/bench/edgebench -pixelpipe=bin/pixelpipe -baregif=bin/baregif -kafka=$(TEST_KAFKA) $(EDGE_BENCH_FLAGS) | tee build/bench-edge.txt

# End-to-end capacity (internal/bench/e2ebench): the four parts of bin/pixelpipe
# as separate processes on the real Kafka and Redis (a topic prefix, key prefix
# and consumer groups of the run's own), loaded by wrk as fast as the edge
# answers, then by wrk paced to 10k..40k hits/s; accepted (the edge's counter)
# against counted (the query API), end-to-end hits/s, hit->visible p50/p99,
# CPU and Redis commands per hit. Exits non-zero when counted != accepted.
# E.g. E2E_BENCH_FLAGS="-mode=knee", "-mode=rate" (vegeta, a true open loop,
# too costly here above ~10k/s), "-baseline=/tmp/pixelpipe-old", or on the
# three-broker cluster of `deploy/local/services.sh kafka-cluster-up`:
# "-kafka=127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194 -kafka.replicas=3".
# The output is also written to build/bench-e2e.txt.
E2E_BENCH_FLAGS ?=
bench-e2e: services-up
	deploy/local/bench-deps.sh vegeta
	@mkdir -p build
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/ ./cmd/pixelpipe
	$(GO) run ./internal/bench/e2ebench -pixelpipe=bin/pixelpipe -kafka=$(TEST_KAFKA) -redis=$(TEST_REDIS) -out=build/bench-e2e.txt $(E2E_BENCH_FLAGS)

test-short:
	$(GO) test -short -count=1 $(PKGS)

generate:
	$(GO) run ./schemas/internal/protogen -proto schemas/proto -out schemas/pixelpb

# Fails when the committed generated code differs from what `make generate` writes.
check-generate:
	@tmp=$$(mktemp -d) && \
	$(GO) run ./schemas/internal/protogen -proto schemas/proto -out $$tmp && \
	diff -r $$tmp schemas/pixelpb > /dev/null || { echo "schemas/pixelpb is stale: run make generate"; diff -r $$tmp schemas/pixelpb | head -40; rm -rf $$tmp; exit 1; }; \
	rm -rf $$tmp; echo "generated code is up to date"

# The Kubernetes manifests: both overlays of deploy/k8s rendered with
# kustomize, every object decoded strictly, the Strimzi resources validated
# against the CRD schemas Strimzi's own generator writes from its API model
# (both from Maven Central, once, into .cache/), and checked against the code
# (flags and their PIXEL_* variables, ports, probes, drain times, topics,
# alerts); TestDriftIsCaught plants drifts and wants them found.
check-k8s:
	PIXEL_STRIMZI_CRDS=$$($(SERVICES) strimzi-crds) && export PIXEL_STRIMZI_CRDS && \
		$(GO) test -count=1 ./deploy/k8s/validate/

# The container image without a container engine (deploy/image): the static
# binary for linux, /etc/passwd with the user 65532, CA certificates, no
# shell; a docker-loadable tarball, then inspected by the image test.
IMAGE_TAG ?= pixelpipe:$(VERSION)
image:
	@mkdir -p build/image
	CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o build/image/pixelpipe ./cmd/pixelpipe
	$(GO) run ./deploy/image -binary build/image/pixelpipe -tag $(IMAGE_TAG) -o build/pixelpipe-image.tar
	IMAGE_TAR=$(CURDIR)/build/pixelpipe-image.tar $(GO) test -count=1 -run 'TestImage' ./deploy/image/

# Components (edge, processor, aggregator, query, each with its subpackages)
# never import each other; the library layer (hllstore, counts, audit, internal/...)
# imports no component; schemas imports nothing of the project. Test files
# count too (go list -test).
COMPONENTS = edge processor aggregator query
MOD = github.com/pixelpipe/pixelpipe
check-deps:
	@fail=0; \
	for c in $(COMPONENTS); do \
		for other in $(COMPONENTS); do \
			[ $$c = $$other ] && continue; \
			deps=$$($(GO) list -test -tags integration -deps ./$$c/...) || { echo "go list ./$$c/... failed"; fail=1; }; \
			bad=$$(echo "$$deps" | grep -E "^$(MOD)/$$other(/|$$)" | sort -u); \
			if [ -n "$$bad" ]; then echo "$$c imports $$other: $$bad"; fail=1; fi; \
		done; \
	done; \
	for lib in ./hllstore/... ./counts/... ./audit/... ./internal/...; do \
		deps=$$($(GO) list -tags integration -deps $$lib) || { echo "go list $$lib failed"; fail=1; }; \
		bad=$$(echo "$$deps" | grep -E "^$(MOD)/(edge|processor|aggregator|query)(/|$$)" | sort -u); \
		if [ -n "$$bad" ]; then echo "$$lib (library layer) imports a component: $$bad"; fail=1; fi; \
	done; \
	if $(GO) list -deps ./schemas | grep -E "^$(MOD)/(internal|edge|processor|aggregator|query|hllstore|counts)(/|$$)" ; then \
		echo "schemas imports project packages"; fail=1; fi; \
	[ $$fail = 0 ] && echo "package dependencies ok"; exit $$fail

# Static analysis: staticcheck (a tool of go.mod, built from the module
# proxy), on the build with and without the integration tests.
lint:
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags integration,devmode ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

vet:
	$(GO) vet -tags integration,devmode $(PKGS)

# Each benchmark runs next to its reference in the same run (see BENCHMARKS.md);
# benchstat prints medians with their spread. Raw results: build/bench.txt.
BENCHCOUNT ?= 6
bench:
	@mkdir -p build
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./schemas/ ./internal/visitor/ ./edge/ ./edge/spool/ | tee build/bench.txt
	$(GO) tool benchstat build/bench.txt

# The hot-path benchmarks of this tree against those of the commit BASE, in
# one run, alternated round by round (deploy/local/bench-compare.sh): e.g.
# make bench-compare BASE=7d98a0c. Raw results: build/bench-compare/.
bench-compare: services-up
	PIXEL_TEST_REDIS=$(TEST_REDIS) COUNT=$(BENCHCOUNT) deploy/local/bench-compare.sh $(BASE)

# The aggregator against the naive design (a PFADD and an INCR per event and
# bucket, pipelined) on a Redis of its own, same workload, same run; and the
# memory of one sketch. Needs redis-server (make services-up installs it).
bench-aggregator:
	@mkdir -p build
	$(GO) test -tags integration -run '^$$' -bench 'AggregatorVsNaive' -benchtime 500x -count $(BENCHCOUNT) ./aggregator/ | tee build/bench-aggregator.txt
	$(GO) test -tags integration -run '^$$' -bench 'SketchMemory' -benchtime 1x -count 1 ./aggregator/ | tee -a build/bench-aggregator.txt
	$(GO) test -tags integration -run '^$$' -bench 'FlushDuringRollup' -benchtime 60x -count 3 ./aggregator/ | tee -a build/bench-aggregator.txt
	$(GO) tool benchstat build/bench-aggregator.txt

# Capacity figures (BENCHMARKS.md, "Capacity figures"; deploy/k8s/README.md,
# "Capacity plan"): the aggregator's heap and Redis's memory per content id and
# day for six traffic shapes, and a hot content id's cost per event against the
# usual mix. A redis-server of its own per case (make services-up installs it).
bench-capacity:
	@mkdir -p build
	$(GO) test -tags integration -run '^$$' -bench 'ContentMemory' -benchtime 1x -count 3 ./aggregator/ | tee build/bench-capacity.txt
	$(GO) test -tags integration -run '^$$' -bench 'HotContent' -benchtime 500x -count 3 ./aggregator/ | tee -a build/bench-capacity.txt
	$(GO) tool benchstat build/bench-capacity.txt

# The edge's publisher (kafka-go's Client.Produce over the spooled bytes)
# next to the kafka-go Writer it replaced, draining the same spooled hits into
# the real Kafka: edge and broker CPU per hit (BENCHMARKS.md).
bench-publish: services-up
	@mkdir -p build
	PIXEL_TEST_KAFKA=$(TEST_KAFKA) $(GO) test -tags integration -run '^$$' -bench 'Publish' -benchtime 300000x -count 3 ./edge/ | tee build/bench-publish.txt
	$(GO) tool benchstat build/bench-publish.txt

# One core (-cpu 1), so ns/op and events/s are per core. The cold case reads
# state from the real Redis, hence services-up.
bench-processor: services-up
	@mkdir -p build
	PIXEL_TEST_REDIS=$(TEST_REDIS) $(GO) test -tags integration -run '^$$' -bench . -benchmem -cpu 1 -count $(BENCHCOUNT) \
		-cpuprofile build/processor.cpu.pprof -o build/processor.test ./processor/ | tee build/bench-processor.txt
	$(GO) test -run '^$$' -bench . -benchmem -cpu 1 -count $(BENCHCOUNT) ./processor/device/ | tee -a build/bench-processor.txt
	$(GO) tool benchstat build/bench-processor.txt
	@echo "profile: go tool pprof -top -cum build/processor.test build/processor.cpu.pprof"

# GET /v1/stats over 90 days for one content id against the real Redis, next
# to the same query over 1 day in the same run; p50/p99 in ms (BENCHMARKS.md).
bench-query:
	@mkdir -p build
	PIXEL_TEST_REDIS=$(TEST_REDIS) $(GO) test -tags integration -run '^$$' -bench 'StatsRange' -benchtime 200x -count 3 ./query/ | tee build/bench-query.txt

# A campaign of a million recipients against one of 10,000, each on a
# redis-server of its own (BENCHMARKS.md): page latency and Redis bytes per
# recipient.
bench-recipients:
	@mkdir -p build
	$(GO) test -tags integration -run '^$$' -bench 'Recipients' -benchtime 200x -count 3 -timeout 30m ./query/ | tee build/bench-recipients.txt

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeRawHit$$' -fuzztime $(FUZZTIME) ./schemas/
	$(GO) test -run '^$$' -fuzz '^FuzzParseHit$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzFromQuery$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyClick$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzRedirectLocation$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzClientAddr$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzRedactPII$$' -fuzztime $(FUZZTIME) ./internal/pii/
	$(GO) test -run '^$$' -fuzz '^FuzzSum$$' -fuzztime $(FUZZTIME) ./internal/money/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./edge/tcf/
	$(GO) test -run '^$$' -fuzz '^FuzzSessionize$$' -fuzztime $(FUZZTIME) ./processor/session/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBatch$$' -fuzztime $(FUZZTIME) ./edge/
	$(GO) test -run '^$$' -fuzz '^FuzzServeRaw$$' -fuzztime $(FUZZTIME) ./edge/

check: fmt vet check-deps test

clean:
	rm -rf bin build
