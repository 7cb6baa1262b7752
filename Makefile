# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run    - the pipeline on embedded defaults (broker, worker, file collector, demo logs)
#   make test   - the whole test suite (installs Python and Debian packages it needs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := etcd-server etcd-client chromium
export PYTHONUNBUFFERED := 1

.PHONY: install run test system-deps lint bench soak clean lock sbom audit fuzz

# The runtime set comes from requirements.lock, hashes checked (as in the image); then the project
# itself with the dev extra (embedded broker, honcho) and the test extra on top.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

SUPPLY_STAMP := $(VENV)/.supply-chain
$(SUPPLY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,test,supply-chain]'
	touch $(SUPPLY_STAMP)

# requirements.lock: the runtime dependencies (and the build backend) pinned with hashes, for
# Python 3.11 on Linux. `make lock` after changing pyproject.toml; LOCK_ARGS=--upgrade refreshes every pin.
lock: $(SUPPLY_STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --build-deps-for wheel \
	  --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) -o requirements.lock pyproject.toml

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

run: install
	mkdir -p var
	$(BIN)/honcho start -f Procfile

system-deps:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server etcd-client"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check core kafka_io sinks collectors tables agents app commands scripts tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install system-deps
	$(BIN)/python -m pytest

bench: install system-deps
	$(BIN)/pip install -q -e '.[test,bench]'
	$(BIN)/python -m tests.bench.run_all --out bench/results.json

soak: install
	$(BIN)/python -m tests.bench.soak --minutes 30

clean:
	rm -rf var .pytest_cache .mypy_cache
