# cleanroom: quick start is `make run` and `make test` on a fresh Debian machine.
# Both install what is missing first (Debian packages with apt-get, Python test peers with pip
# into .venv/), so they work on a new machine and in CI alike.

SWIFT        ?= swift
DEB_PACKAGES := libssl-dev libsqlite3-dev libcurl4-openssl-dev pkg-config
VENV         := .venv
PYTHON       := $(VENV)/bin/python
PIP_STAMP    := $(VENV)/.installed-$(shell cat requirements-test.txt 2>/dev/null | cksum | cut -d' ' -f1)
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CLEANROOM_ARGS ?=

.PHONY: run test build release deps python-deps clean fuzz bench demo help fuzz-http-parser bench-http bench-training

help:
	@echo "make run    install what is missing, build release, start cleanroomd on its embedded defaults"
	@echo "make test   install what is missing (Debian packages, Python test peers) and run every test"
	@echo "make demo   build, then play a three-party collaboration end to end (scripts/demo.sh)"

# Debian packages: install only what dpkg does not already have.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# Python test peers (AWS Encryption SDK, moto, XGBoost, ...) in a virtual environment.
python-deps: $(PIP_STAMP)
$(PIP_STAMP): requirements-test.txt
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@rm -f $(VENV)/.installed-*; touch $@

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

run: release
	.build/release/cleanroomd serve $(CLEANROOM_ARGS)

# Tests run one at a time: several suites host an in-process server and drive it from real
# peers (sockets, boto3, the Python SDK); on a 2-core machine the Swift cooperative pool has two
# threads, and suites running side by side starve each other's servers into time-outs.
test: deps python-deps
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CLEANROOM_PYTHON="$(CURDIR)/$(PYTHON)" \
	  $(SWIFT) build --build-tests
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CLEANROOM_PYTHON="$(CURDIR)/$(PYTHON)" \
	  $(SWIFT) test --skip-build --no-parallel

clean:
	rm -rf .build

# A whole three-party collaboration on the embedded defaults, printed as its users would type it.
demo: build
	BIN="$$($(SWIFT) build --show-bin-path)" scripts/demo.sh

# Fuzzing the Envelope parsers (issue #3): libFuzzer via swiftc -sanitize=fuzzer. The Crypto
# module is built once as a static library; the Envelope sources and the target's entry point
# are compiled together as the Envelope module. Seeds come from ../shared/vectors/esdk.
# `make fuzz-envelope-header FUZZ_SECONDS=600` runs for ten minutes; crashes land in $(FUZZ_BUILD)/.
FUZZ_BUILD   ?= .build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_SWIFTC  := swiftc -O -g -sanitize=fuzzer,address -parse-as-library
.PHONY: fuzz-envelope-header fuzz-envelope-decrypt fuzz-envelope-build fuzz-envelope-seed

$(FUZZ_BUILD)/crypto/libCrypto.a: $(wildcard Sources/Crypto/*.swift)
	@mkdir -p $(FUZZ_BUILD)/crypto
	$(FUZZ_SWIFTC) -module-name Crypto -I Sources/COpenSSL -emit-module \
	  -emit-module-path $(FUZZ_BUILD)/crypto/Crypto.swiftmodule -emit-library -static -o $@ Sources/Crypto/*.swift

$(FUZZ_BUILD)/fuzz-envelope-%: $(FUZZ_BUILD)/crypto/libCrypto.a $(wildcard Sources/Envelope/*.swift) $(wildcard Fuzz/Envelope*/*.swift)
	$(FUZZ_SWIFTC) -module-name Envelope -I $(FUZZ_BUILD)/crypto -I Sources/COpenSSL \
	  Sources/Envelope/*.swift Fuzz/Envelope$(if $(filter header,$*),Header,Decrypt)/*.swift \
	  -L $(FUZZ_BUILD)/crypto -lCrypto -lssl -lcrypto -o $@

fuzz-envelope-seed:
	python3 Fuzz/seed-envelope.py $(FUZZ_BUILD)/corpus-envelope-header $(FUZZ_BUILD)/corpus-envelope-decrypt

fuzz-envelope-build: $(FUZZ_BUILD)/fuzz-envelope-header $(FUZZ_BUILD)/fuzz-envelope-decrypt

fuzz-envelope-header: $(FUZZ_BUILD)/fuzz-envelope-header fuzz-envelope-seed
	cd $(FUZZ_BUILD) && ./fuzz-envelope-header -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  -print_final_stats=1 corpus-envelope-header

fuzz-envelope-decrypt: $(FUZZ_BUILD)/fuzz-envelope-decrypt fuzz-envelope-seed
	cd $(FUZZ_BUILD) && ./fuzz-envelope-decrypt -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -timeout=10 \
	  -print_final_stats=1 corpus-envelope-decrypt

# Fuzzing the policy JSON path (issue #6): strict JSON parser, RFC 8785 canonical form, schema
# validator — the pure files of the CleanRoom module compiled with the entry point. Seeds are the
# example policies and the schema. `make fuzz-policy FUZZ_SECONDS=600`.
# `make policies-embed` regenerates the compiled-in copies of policies/*.json (a test checks them).
.PHONY: fuzz-policy policies-embed
POLICY_FUZZ_SOURCES := $(wildcard Sources/CleanRoom/JSON/*.swift) Sources/CleanRoom/Policy/JSONSchemaValidator.swift \
  Sources/CleanRoom/Policy/EmbeddedPolicyFiles.swift

$(FUZZ_BUILD)/fuzz-policy: $(POLICY_FUZZ_SOURCES) $(wildcard Fuzz/PolicyJSON/*.swift)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_SWIFTC) -module-name CleanRoom $(POLICY_FUZZ_SOURCES) Fuzz/PolicyJSON/*.swift -o $@

fuzz-policy: $(FUZZ_BUILD)/fuzz-policy
	@mkdir -p $(FUZZ_BUILD)/corpus-policy && cp policies/examples/*.json policies/*.json $(FUZZ_BUILD)/corpus-policy/
	cd $(FUZZ_BUILD) && ./fuzz-policy -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -print_final_stats=1 corpus-policy

policies-embed:
	python3 policies/embed.py

# Fuzzing the enclave channel decoder (issue #8): the channel sources alone, compiled as the Enclave
# module with the entry point. `make fuzz-channel FUZZ_SECONDS=600`.
CHANNEL_SOURCES := $(wildcard Sources/Enclave/Channel/*.swift)
.PHONY: fuzz-channel
$(FUZZ_BUILD)/fuzz-channel: $(CHANNEL_SOURCES) $(wildcard Fuzz/Channel/*.swift)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_SWIFTC) -module-name Enclave $(CHANNEL_SOURCES) Fuzz/Channel/*.swift -o $@

fuzz-channel: $(FUZZ_BUILD)/fuzz-channel
	@mkdir -p $(FUZZ_BUILD)/corpus-channel
	cd $(FUZZ_BUILD) && ./fuzz-channel -max_total_time=$(FUZZ_SECONDS) -max_len=70000 -print_final_stats=1 corpus-channel

# Fuzzing the CBOR decoder and the attestation verifier (issue #5), same pattern as above: the
# Attestation sources and the target's entry point compiled together as the Attestation module.
# Seeds: the three real Nitro documents of ../shared/vectors/nitro (and their payloads for CBOR).
# `make fuzz-cbor FUZZ_SECONDS=600`, `make fuzz-attestation FUZZ_SECONDS=600`.
ATTESTATION_SOURCES := $(shell find Sources/Attestation -name '*.swift')
NITRO_VECTORS       := ../shared/vectors/nitro
.PHONY: fuzz-cbor fuzz-attestation fuzz-attestation-build

$(FUZZ_BUILD)/fuzz-cbor: $(FUZZ_BUILD)/crypto/libCrypto.a $(ATTESTATION_SOURCES) $(wildcard Fuzz/CBOR/*.swift)
	$(FUZZ_SWIFTC) -module-name Attestation -I $(FUZZ_BUILD)/crypto -I Sources/COpenSSL \
	  $(ATTESTATION_SOURCES) Fuzz/CBOR/*.swift -L $(FUZZ_BUILD)/crypto -lCrypto -lssl -lcrypto -o $@

$(FUZZ_BUILD)/fuzz-attestation: $(FUZZ_BUILD)/crypto/libCrypto.a $(ATTESTATION_SOURCES) $(wildcard Fuzz/AttestationVerifier/*.swift)
	$(FUZZ_SWIFTC) -module-name Attestation -I $(FUZZ_BUILD)/crypto -I Sources/COpenSSL \
	  $(ATTESTATION_SOURCES) Fuzz/AttestationVerifier/*.swift -L $(FUZZ_BUILD)/crypto -lCrypto -lssl -lcrypto -o $@

$(FUZZ_BUILD)/corpus-attestation/.seeded:
	@mkdir -p $(FUZZ_BUILD)/corpus-attestation $(FUZZ_BUILD)/corpus-cbor
	cp $(NITRO_VECTORS)/*.cose $(FUZZ_BUILD)/corpus-attestation/
	cp $(NITRO_VECTORS)/*.cose $(FUZZ_BUILD)/corpus-cbor/
	python3 Fuzz/seed-cbor.py $(NITRO_VECTORS) $(FUZZ_BUILD)/corpus-cbor
	cp Fuzz/CBOR/regressions/* $(FUZZ_BUILD)/corpus-cbor/
	@touch $@

fuzz-attestation-build: $(FUZZ_BUILD)/fuzz-cbor $(FUZZ_BUILD)/fuzz-attestation

fuzz-cbor: $(FUZZ_BUILD)/fuzz-cbor $(FUZZ_BUILD)/corpus-attestation/.seeded
	cd $(FUZZ_BUILD) && ./fuzz-cbor -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -print_final_stats=1 corpus-cbor

# Leak detection is off for this target only: LeakSanitizer reports the long-lived root certificate
# (built once in LLVMFuzzerInitialize) as leaked, because Swift keeps the case tag of a multi-payload
# enum in the spare bits of the class pointer it stores, so the scan does not recognise it.
fuzz-attestation: $(FUZZ_BUILD)/fuzz-attestation $(FUZZ_BUILD)/corpus-attestation/.seeded
	cd $(FUZZ_BUILD) && ASAN_OPTIONS=detect_leaks=0 ./fuzz-attestation -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
	  -timeout=10 -detect_leaks=0 \
	  -print_final_stats=1 corpus-attestation

# Attestation verification benchmark (issue #5): median time to verify each real Nitro document
# end to end, and its parts. Results and the exact command go in docs/performance.md.
.PHONY: bench-attestation
bench-attestation: deps
	$(SWIFT) build -c release --product attestation-bench
	.build/release/attestation-bench ../shared/vectors/nitro $(or $(BENCH_ITERATIONS),2000)

# --- Fuzzing (see Fuzz/README.md): libFuzzer targets built from module sources with swiftc. ---
HTTP_PARSER_SOURCES := $(addprefix Sources/HTTPServer/,HTTPRequestParser.swift HTTPParseError.swift \
  HTTPRequestHead.swift HTTPParserLimits.swift HTTPHeaders.swift HTTPMethod.swift HTTPStatus.swift)

fuzz-http-parser:
	@mkdir -p .build/fuzz Fuzz/corpus-http-parser
	$(FUZZ_SWIFTC) -module-name HTTPParserFuzz $(HTTP_PARSER_SOURCES) Fuzz/HTTPParser/FuzzHTTPParser.swift \
	  -o .build/fuzz/http-parser
	.build/fuzz/http-parser -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=Fuzz/ \
	  Fuzz/corpus-http-parser Fuzz/seeds/http-parser

# --- Benchmarks (see Benchmarks/README.md): wrk against cleanroomd and a Hummingbird 2 peer. ---
BENCH_DURATION ?= 10s
bench-http: deps
	BENCH_DURATION=$(BENCH_DURATION) Benchmarks/http-bench.sh

# Training engine against scikit-learn, XGBoost and LightGBM on 1M generated rows (docs/performance.md).
BENCH_TRAINING_DATA ?= .build/bench-training
bench-training: deps python-deps
	$(SWIFT) build -c release --product cleanroom
	test -f $(BENCH_TRAINING_DATA)/data.npz || $(PYTHON) Benchmarks/training/generate_data.py --rows 1000000 --out $(BENCH_TRAINING_DATA)
	$(PYTHON) Benchmarks/training/bench.py --data $(BENCH_TRAINING_DATA) --cleanroom .build/release/cleanroom --runs 3 \
	  --out $(BENCH_TRAINING_DATA)/results.json

# --- Object store benchmark (docs/performance.md): FileObjectStore vs dd conv=fsync, S3ObjectStore to moto. ---
bench-objectstore: deps python-deps
	Benchmarks/objectstore/bench.sh

# Jobs end to end (issue #8): make demo's three-party collaboration at 1M joined rows × 28 features through
# cleanroomd serve, the local KMS and the cleanroom-enclave child (release builds): phase split from the job's
# SSE events, enclave peak RSS, upload throughput (docs/performance.md). Run by hand; not part of `make test`.
BENCH_JOBS_DIR    ?= .build/bench-jobs
BENCH_JOBS_JOINED ?= 1000000
BENCH_JOBS_RUNS   ?= 3
BENCH_JOBS_ROUNDS ?= 40
.PHONY: bench-jobs
bench-jobs: deps python-deps
	$(SWIFT) build -c release --product cleanroomd
	$(SWIFT) build -c release --product cleanroom
	$(SWIFT) build -c release --product cleanroom-enclave
	test -f $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED)/columns.json || $(PYTHON) Benchmarks/jobs/generate_data.py data \
	  --joined $(BENCH_JOBS_JOINED) --out $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED)
	$(PYTHON) Benchmarks/jobs/bench.py --bin .build/release --data $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED) \
	  --runs $(BENCH_JOBS_RUNS) --rounds $(BENCH_JOBS_ROUNDS) --out $(BENCH_JOBS_DIR)/results.json

# The enclave's parse and join alone (no channel, no cryptography) on the same data: CPU and wall seconds.
.PHONY: bench-ingest
bench-ingest: deps python-deps
	$(SWIFT) build -c release --product ingest-bench
	test -f $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED)/columns.json || $(PYTHON) Benchmarks/jobs/generate_data.py data \
	  --joined $(BENCH_JOBS_JOINED) --out $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED)
	.build/release/ingest-bench $(BENCH_JOBS_DIR)/data-$(BENCH_JOBS_JOINED) --runs $(or $(BENCH_INGEST_RUNS),5)
