# Strata build. `make test` is what CI runs (through .ci/run).
GO        ?= go
BIN       := bin
CMDS      := $(notdir $(wildcard cmd/*))
PROTO_DIR := pkg/proto/registry/v1
PROTOS    := $(wildcard $(PROTO_DIR)/*.proto)
TEST_TIMEOUT ?= 15m
# The modules nested in this one, each with its own go.mod: the SDK, the
# generated protocol, the example programs, the Kratos adapter
# (docs/architecture.md, "Modules"). The root's ./... does not reach into
# them, so every target that runs over packages runs inside each of them
# too. contrib/kratos's tests build the binaries and run a cluster of real
# processes (about 10 s once built).
MODULES   := pkg/proto pkg/client examples contrib/kratos

.PHONY: all build examples test e2e lint proto run bench bench-pushlat bench-etcd bench-compare bench-scale fuzz fuzz-corpus clean
.PHONY: compose-image compose-up compose-down compose-smoke
.PHONY: chaos chaos-compose

all: build

## build: every binary under cmd/ into bin/ (static, CGO_ENABLED=0)
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))
	@echo "built: $(addprefix $(BIN)/,$(CMDS))"

## examples: build the example programs (examples/, a module of its own
## that uses only the SDK); run one with `cd examples && go run ./pubsub --help`
examples:
	cd examples && $(GO) build ./...

## test: unit and in-process cluster tests, under the race detector, of
## every module (the root's, then each of MODULES). One package at a time
## (-p 1), so each package's in-process clusters have the machine's cores
## to themselves (less timing noise); about 11 minutes on 2 cores (data and session ~2 min each).
test: examples
	$(GO) test -race -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./...
	@set -e; for m in $(MODULES); do \
	  echo "cd $$m && $(GO) test -race -count=1 -p 1 ./..."; \
	  (cd $$m && $(GO) test -race -count=1 -p 1 -timeout $(TEST_TIMEOUT) ./...); \
	done
	@$(MAKE) --no-print-directory fuzz FUZZTIME=2000x

## fuzz: every fuzz target for FUZZTIME each (default 500000 inputs, a
## few minutes; make test runs 2000 each). Decoders and validators at an
## edge: client frames, the server codec, dataInfoIDs, publishers, FSM
## commands, slot tables, the tokens file, identities, gossip key files,
## discovery instances. Seeds are in the code and in each package's
## testdata/fuzz/ (make fuzz-corpus adds to them). Counts, not durations: a
## duration on Go 1.26 can end a clean run with a spurious "context deadline
## exceeded" (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 500000x
# A target is dir:Name, dir from the repository root; one in a nested
# module (MODULES) runs from within that module.
FUZZ_TARGETS := internal/session:FuzzClientFrame internal/node:FuzzLenientCodec \
  pkg/client/record:FuzzParseDataInfoID internal/publisher:FuzzValidatePublisher internal/meta:FuzzFSMApply \
  internal/metaclient:FuzzTable internal/access:FuzzParseFile pkg/client/identity:FuzzParse \
  internal/cluster:FuzzParseKeys pkg/client/discovery:FuzzDecodeInstance
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; mod=.; \
	  for m in $(MODULES); do case "$$pkg/" in "$$m/"*) mod=$$m;; esac; done; \
	  if [ "$$mod" = . ]; then rel=./$$pkg; else rel=.$${pkg#$$mod}; fi; \
	  echo "fuzz $$name ($$pkg) for $(FUZZTIME)"; \
	  (cd $$mod && $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$rel) > /tmp/strata-fuzz.log 2>&1 || { cat /tmp/strata-fuzz.log; exit 1; }; \
	  tail -n 1 /tmp/strata-fuzz.log; \
	done

## fuzz-corpus: copy up to 30 inputs per target from Go's fuzz cache (what
## make fuzz found) into the packages' testdata/fuzz/, to commit.
fuzz-corpus:
	@for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  src="$$($(GO) env GOCACHE)/fuzz/github.com/strata-registry/strata/$$pkg/$$name"; \
	  [ -d "$$src" ] || continue; mkdir -p "$$pkg/testdata/fuzz/$$name"; \
	  ls "$$src" | head -n 30 | while read -r f; do cp "$$src/$$f" "$$pkg/testdata/fuzz/$$name/"; done; \
	  echo "$$pkg/testdata/fuzz/$$name: $$(ls "$$pkg/testdata/fuzz/$$name" | wc -l) inputs"; \
	done

## e2e: end-to-end tests of real processes (internal/e2e, build tag e2e): a cluster of the
## binaries on loopback, sessions and data leaders killed under a live client; about 30 s
e2e:
	$(GO) test -race -count=1 -tags e2e -timeout 10m ./internal/e2e/

## run: a local cluster on loopback, no Docker (META=3 DATA=3 SESSION=2); Ctrl-C stops it
run: build
	META=$(or $(META),3) DATA=$(or $(DATA),3) SESSION=$(or $(SESSION),2) ./deploy/local/run.sh

## chaos: real processes (3 meta, 3 data, 3 session, TLS) under a seeded random
## schedule of faults with steady pkg/client load, and a history checker
## (internal/chaos, cmd/chaos). DURATION (default 2m) of faults; SEED (default
## from the clock, printed); FAULTS, a comma list of kinds or groups (default
## all: kill/stop/restart of every role, meta-leader, meta-quorum, and, as root
## in network namespaces, cut-session-data, cut-data-meta, cut-session-all);
## CHAOS_FLAGS for more (bin/chaos --help). Report, chart and every node's log
## in bench/out/chaos-<seed>/; exits non-zero on a violation.
DURATION ?= 2m
FAULTS   ?= all
chaos: build
	./bin/chaos --duration $(DURATION) --faults $(FAULTS) $(if $(SEED),--seed $(SEED)) $(CHAOS_FLAGS)

## chaos-compose: make chaos against a throwaway compose cluster: docker kill,
## pause, stop+start and network disconnect through the Engine API, load and
## checker in a container on the project network (deploy/compose/chaos.sh).
## DURATION, SEED, FAULTS, CHAOS_FLAGS as for chaos; output in
## bench/out/chaos-compose-<seed>/.
chaos-compose: compose-image
	STRATA_IMAGE=$(STRATA_IMAGE) COMPOSE='$(COMPOSE)' DURATION=$(DURATION) FAULTS=$(FAULTS) SEED=$(SEED) \
	  CHAOS_FLAGS='$(CHAOS_FLAGS)' deploy/compose/chaos.sh

## bench: every Go benchmark (with -benchmem); results go to bench/out/
BENCH_OUT ?= bench/out/bench-$(shell date +%Y%m%d-%H%M%S).txt
bench:
	@mkdir -p $(dir $(BENCH_OUT))
	@echo "running benchmarks; results also go to $(BENCH_OUT)"
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./... | tee $(BENCH_OUT)
	@echo "results written to $(BENCH_OUT)"

## bench-pushlat: publish-to-push latency against a local cluster of real processes (bench/pushlat.sh); results to bench/out/
bench-pushlat: build
	./bench/pushlat.sh

## bench-etcd: the same latency measurements against a single-node etcd (bench/etcdlat.sh; ETCD_TLS=1 with TLS and client certificates; installs etcd-server if missing); results to bench/out/
bench-etcd:
	./bench/etcdlat.sh

## bench-compare: the session benchmarks and etcd's, alternated PAIRS times (default 5), with p99 ratios (bench/compare.sh; WITH_PROCS=1 adds real processes, TLS=1 the cost of TLS, ETCD_TLS=1 etcd with TLS, ONE_ROUNDS/FANOUT_ROUNDS the rounds); results to bench/out/
bench-compare: $(if $(WITH_PROCS),build)
	./bench/compare.sh

## bench-scale: Strata clusters of real processes (TLS; shapes 1/1/1 and 3/3/2) and a
## single-node etcd side by side, alternated in one run, each figure of DESIGN.md's performance
## targets with the ratio Strata/etcd: registration rate, push latency during a full-speed and
## a paced storm, heap per publisher and per idle connection, a restart storm, fan-out
## (bench/scale, a module of its own; installs etcd-server if missing). SCALE_FLAGS for more
## (--million, --pairs N, --only storm,idle, sizes: cd bench/scale && go run . --help).
## Report, JSON, charts and every node's log in bench/out/scale-<date>-<time>/
SCALE_FLAGS ?=
bench-scale: build
	@command -v etcd >/dev/null || { echo "etcd not found: installing Debian's etcd-server package (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server; }
	cd bench/scale && $(GO) run . --bin ../../$(BIN) --out ../../bench/out $(SCALE_FLAGS)

## lint: gofmt, and go vet in every module (and in bench/scale, which make test does not run)
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./internal/e2e/
	@set -e; for m in $(MODULES); do echo "cd $$m && $(GO) vet ./..."; (cd $$m && $(GO) vet ./...); done
	cd bench/scale && $(GO) vet ./...

## proto: regenerate pkg/proto from the .proto files (needs protoc: apt-get install protobuf-compiler)
proto:
	protoc -I $(PROTO_DIR) \
	  --plugin=protoc-gen-go="$$($(GO) tool -n protoc-gen-go)" \
	  --plugin=protoc-gen-go-grpc="$$($(GO) tool -n protoc-gen-go-grpc)" \
	  --go_out=$(PROTO_DIR) --go_opt=paths=source_relative \
	  --go-grpc_out=$(PROTO_DIR) --go-grpc_opt=paths=source_relative \
	  $(PROTOS)

## compose-*: the cluster in Docker (deploy/compose): 3 meta, 3 data, 2 session.
## COMPOSE is `docker compose` where the plugin exists, else docker-compose.
## STRATA_INSECURE=true: plaintext, no credentials (compose-up; the smoke
## test always runs the secure cluster).
COMPOSE         ?= $(shell docker compose version >/dev/null 2>&1 && echo 'docker compose' || echo docker-compose)
COMPOSE_FILE    := deploy/compose/docker-compose.yml
COMPOSE_PROJECT ?= strata
STRATA_IMAGE    ?= strata:dev
COMPOSE_WAIT    ?= 180
# The values strconv.ParseBool reads as true, as the nodes do. A node
# refuses --insecure together with credentials, so insecure also empties
# the compose file's credentials defaults.
COMPOSE_INSECURE := $(filter 1 t T true TRUE True,$(STRATA_INSECURE))
COMPOSE_ENV     := STRATA_IMAGE=$(STRATA_IMAGE)$(if $(COMPOSE_INSECURE), STRATA_INSECURE=true STRATA_CREDENTIALS= STRATA_ENROLL_TOKEN_FILE=)
COMPOSE_SCHEME  := $(if $(COMPOSE_INSECURE),http,https)
# registryctl in a container on the project's network, as the operator
# (the operator volume holds the admin and dev identities and the CA).
COMPOSE_CTL     := docker run --rm --network $(COMPOSE_PROJECT)_default $(if $(COMPOSE_INSECURE),-e STRATA_INSECURE=true,-v $(COMPOSE_PROJECT)_operator:/credentials:ro -e STRATA_CREDENTIALS=/credentials) $(STRATA_IMAGE) registryctl --meta meta-1:9615

## compose-image: the one image for every role (FROM scratch + bin/)
compose-image: build
	docker build -q -f deploy/compose/Dockerfile -t $(STRATA_IMAGE) .
	@docker image prune -f --filter label=org.opencontainers.image.title=strata >/dev/null

## compose-up: build, start the cluster (project COMPOSE_PROJECT), wait until every container is healthy
compose-up: compose-image
	$(COMPOSE_ENV) $(COMPOSE) -f $(COMPOSE_FILE) -p $(COMPOSE_PROJECT) up -d
	deploy/compose/wait-healthy.sh $(COMPOSE_PROJECT) $(COMPOSE_WAIT) 8
	@echo "meta-1 admin HTTP: $(COMPOSE_SCHEME)://$$($(COMPOSE) -f $(COMPOSE_FILE) -p $(COMPOSE_PROJECT) port meta-1 9616)"
	@$(if $(COMPOSE_INSECURE),true,echo "  (TLS: its CA is ca.pem and the operator token admin/admin.token in volume $(COMPOSE_PROJECT)_operator)")
	@echo "registryctl: $(COMPOSE_CTL) members"

## compose-down: stop the cluster and delete its containers, network and volumes
compose-down:
	$(COMPOSE_ENV) $(COMPOSE) -f $(COMPOSE_FILE) -p $(COMPOSE_PROJECT) down -v --remove-orphans
	@# The one credentials volume every node mounted before each got its own share: it holds a CA key.
	@docker volume rm $(COMPOSE_PROJECT)_credentials >/dev/null 2>&1 || true

## compose-smoke: start a throwaway cluster, scale, kill a data node, check, tear down (deploy/compose/smoke.sh)
compose-smoke: compose-image
	STRATA_IMAGE=$(STRATA_IMAGE) COMPOSE='$(COMPOSE)' deploy/compose/smoke.sh

clean:
	rm -rf $(BIN) run
