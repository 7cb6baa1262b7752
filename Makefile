# Two commands do everything on a fresh Debian machine with Python 3.11:
#   make run    - the pipeline on embedded defaults (broker, worker, file collector, demo logs)
#   make test   - the whole test suite (installs Python and Debian packages it needs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
APT_PACKAGES := etcd-server etcd-client chromium postgresql-15
export PYTHONUNBUFFERED := 1

.PHONY: install run test system-deps lint bench soak clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install system-deps
	mkdir -p var
	$(BIN)/honcho start -f Procfile -e deploy/dev.env

system-deps:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server etcd-client"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/lib/postgresql/15/bin/postgres || missing="$$missing postgresql-15"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check core kafka_io sinks collectors tables agents app query commands tests
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
