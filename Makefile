# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run    - the pipeline on embedded defaults (broker, worker, file collector, demo logs)
#   make test   - the whole test suite (installs Python and Debian packages it needs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := etcd-server etcd-client chromium postgresql-15
export PYTHONUNBUFFERED := 1

# pytest-xdist workers for `make test`: most tests wait on servers and processes, not on the CPU. On 2
# cores, with 2,192 tests, the pytest part took 5:43 with 6 workers against 7:38 with 4 (clean clones, a
# quiet machine, back to back); earlier, 4 workers took 7:17 against 8:01 with 3. Only the two longest server
# tests start first (marker `starts_first`): a dozen crowded group starts on two cores (docs/testing.md).
TEST_WORKERS ?= 6
PYTEST_ARGS ?=

.PHONY: install run test test-pure test-under-load test-pure-install system-deps test-clients lint bench soak build \
	clean lock sbom audit fuzz

# the example sink plugin the tests drive through the pipeline (docs/sinks.md)
EXAMPLE_PLUGIN := examples/webhook-sink

# The runtime set comes from requirements.lock, hashes checked (as in the image); then the project
# itself with the dev extra (embedded broker, honcho) and the test extra on top, and the example plugin.
# uv (from PyPI) installs them, byte-compiled as pip does: about 21 s against 55 s with pip on a clean clone.
UV_VERSION := 0.13.9
UV := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python
$(STAMP): pyproject.toml setup.py core/_chunkjson.h core/_jsontext.h core/_wirelines.h agents/_linescan.c agents/_sinksplice.h agents/_rawsplit.h tables/_tracefold.c tables/_newstates.h agents/_fieldscan.c collectors/intake/_intakefast.c \
	  collectors/pods/_podscan.c sinks/_marks.c sinks/_segment.c kafka_io/_murmur2.c \
	  collectors/files/_filescan.c agents/parsers/_logfmt.h \
	  requirements.lock $(EXAMPLE_PLUGIN)/pyproject.toml $(EXAMPLE_PLUGIN)/logweave_webhook_sink/__init__.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip uv==$(UV_VERSION)
	$(UV) --require-hashes --no-deps -r requirements.lock
	$(UV) -e '.[dev,test,gcs]'
	$(UV) --no-deps --reinstall ./$(EXAMPLE_PLUGIN)
	touch $(STAMP)

SUPPLY_STAMP := $(VENV)/.supply-chain
$(SUPPLY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,test,supply-chain]'
	touch $(SUPPLY_STAMP)

# requirements.lock: the runtime dependencies (and the build backend) pinned with hashes, for
# Python 3.11 on Linux. `make lock` after changing pyproject.toml; LOCK_ARGS=--upgrade refreshes every pin.
lock: $(SUPPLY_STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --build-deps-for wheel \
	  --extra gcs --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) -o requirements.lock pyproject.toml

# A CycloneDX SBOM of exactly what the image installs (the lock), with Logweave as the root component.
sbom: $(SUPPLY_STAMP)
	PYTHONWARNINGS=ignore::UserWarning $(BIN)/cyclonedx-py requirements requirements.lock --pyproject pyproject.toml --of JSON \
	  --output-reproducible -o sbom.cdx.json
	@echo "wrote sbom.cdx.json"

# Fuzz the parsers of untrusted bytes for FUZZ_SECONDS each (C under ASan+UBSan, atheris); not part of `make test`.
FUZZ_SECONDS ?= 60
fuzz: install
	$(BIN)/pip install --quiet -e '.[dev,test,fuzz]'
	$(BIN)/python -m tests.fuzz.campaign --seconds $(FUZZ_SECONDS)

# pip-audit against the lock; fails (and says so) when no advisory database answered for every package.
audit: $(SUPPLY_STAMP)
	$(BIN)/python -m scripts.audit_lock requirements.lock

install: $(STAMP)

# The development pipeline (commands/dev_stack.py): one summary when ready, a progress line every 10 s,
# each process's whole output in var/logs/; VERBOSE=1 shows every line (faust's banners included).
RUN_ARGS ?=
run: install system-deps
	@$(BIN)/logweave run --env-file deploy/dev.env $(if $(VERBOSE),--verbose) $(RUN_ARGS)

system-deps:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server etcd-client"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v stunnel4 >/dev/null 2>&1 || missing="$$missing stunnel4"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing nodejs npm"; \
	command -v rsyslogd >/dev/null 2>&1 || missing="$$missing rsyslog"; \
	ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing="$$missing rsyslog-gnutls"; \
	ls /usr/lib/*/rsyslog/omkafka.so >/dev/null 2>&1 || missing="$$missing rsyslog-kafka"; \
	command -v logger >/dev/null 2>&1 || missing="$$missing bsdutils"; \
	test -x /usr/lib/postgresql/15/bin/postgres || missing="$$missing postgresql-15"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check core kafka_io sinks collectors tables agents app query commands scripts tests examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# third-party protocol clients the intake tests drive: npm fluent-logger (forward acks and handshake),
# and syslog-ng unpacked beside the tests (it conflicts with rsyslog as a Debian package)
SYSLOG_NG := tests/support/syslog-ng
test-clients: system-deps
	@test -d tests/support/node/node_modules/fluent-logger || \
	  npm install --prefix tests/support/node --no-audit --no-fund --loglevel=error
	@test -x $(SYSLOG_NG)/usr/sbin/syslog-ng || ( \
	  mkdir -p $(SYSLOG_NG)/debs && cd $(SYSLOG_NG)/debs && \
	  pkgs="syslog-ng-core libivykis0 libnet1 libpcre3"; \
	  apt-get download $$pkgs >/dev/null 2>&1 || \
	    { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && apt-get download $$pkgs >/dev/null; } && \
	  for deb in *.deb; do dpkg -x $$deb ..; done )

# The pure-path run (below) goes on beside the main one, its output kept for the end: the main run
# leaves about half of two cores idle while its tests wait on servers and processes. Each run takes
# the ports its tests' servers bind from its own range (tests/conftest.py splits the main run's among
# its workers).
test: install system-deps test-clients
	@mkdir -p build; FREE_PORT_RANGE=30000-31999 $(MAKE) --no-print-directory test-pure > build/test-pure.log 2>&1 & pure=$$!; \
	FREE_PORT_RANGE=20000-29999 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=15 $(PYTEST_ARGS); main=$$?; \
	wait $$pure; pure=$$?; echo "== the pure-path run (make test-pure), beside it:"; cat build/test-pure.log; \
	test $$main = 0 -a $$pure = 0

# The parse and group stages once more on their Python reference paths (what an install without a
# C compiler runs; LOGWEAVE_PURE=1 turns the C loops off, core/native.py), the intake's Python decoders,
# the file collector's CRI line path, the pod collector's block scan, the sinks' marks and the file and object-store
# sinks' line selection and event-time check (packed records).
test-pure: install
	LOGWEAVE_PURE=1 $(BIN)/python -m pytest -q tests/unit/agents tests/unit/tables tests/unit/collectors/intake \
	  tests/unit/collectors/files tests/unit/collectors/pods tests/unit/sinks $(PYTEST_ARGS)

# The whole default suite three times in a row while stress-ng keeps both cores busy: a test that
# depends on this machine's speed fails here.
test-under-load: install system-deps
	@command -v stress-ng >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq stress-ng >/dev/null; }
	stress-ng --cpu $$(nproc) --timeout 3h --quiet & load=$$!; \
	trap 'kill $$load 2>/dev/null' EXIT; \
	for run in 1 2 3; do \
	  echo "== run $$run of 3 under load ($$(date -u +%H:%M:%S))"; \
	  $(MAKE) --no-print-directory test || exit 1; \
	done

# A fresh venv built with no C compiler (CC=/nonexistent): the install must work and the
# pure-path tests pass.
test-pure-install:
	rm -rf build/pure && mkdir -p build && git clone --quiet . build/pure
	cd build/pure && $(PYTHON) -m venv .venv && CC=/nonexistent .venv/bin/pip install --quiet -e '.[test]'
	cd build/pure && .venv/bin/python -c "from core.native import native_status; print(native_status())"
	cd build/pure && .venv/bin/python -m pytest -q -p no:cacheprovider tests/unit/agents tests/unit/tables

# Wheels for this machine (with the C loops) and a source distribution, in dist/.
build: install
	$(BIN)/pip install --quiet build
	$(BIN)/python -m build --outdir dist .

# The worker's quixstreams peer runs from its own venv (it pins pydantic below the runtime lock).
QUIX_VENV := .venv-quixstreams
bench: install system-deps
	$(BIN)/pip install -q -e '.[test,bench]'
	test -x $(QUIX_VENV)/bin/python || $(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q -r tests/bench/quixstreams-peer.txt
	$(BIN)/python -m tests.bench.run_all --out bench/results.json

soak: install
	$(BIN)/python -m tests.bench.soak --minutes 30

clean:
	rm -rf var .pytest_cache .mypy_cache build dist $(QUIX_VENV)
