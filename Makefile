# Lukhas: `make run` starts the host, `make test` runs the whole suite.
# Both create .venv and install the kernel and every plugin under plugins/.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PLUGIN_DIRS := $(wildcard plugins/*/pyproject.toml)
EDITABLES := -e ./kernel $(foreach p,$(PLUGIN_DIRS),-e ./$(dir $(p)))

.PHONY: install install-dev test-tools run test bench lint clean

# Debian packages the tests or benchmarks need, installed with apt-get as root;
# anyone else gets one line naming them, and make stops.
apt_install = { [ "$$(id -u)" = 0 ] || { echo "make: missing Debian packages $(1): installing them \
needs root (sudo apt-get install $(1), or run make as root)" >&2; exit 2; }; \
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(1); }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Stamps re-run pip only when a pyproject changes. pip >= 25.1 reads
# PEP 735 dependency groups.
.make-install.stamp: $(BIN)/python kernel/pyproject.toml $(PLUGIN_DIRS)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25.1"
	$(BIN)/pip install --quiet $(EDITABLES)
	touch $@

.make-dev.stamp: .make-install.stamp pyproject.toml
	$(BIN)/pip install --quiet -e "./kernel[testing,postgres,redis]" -e "./plugins/dreams[distributed]" --group dev
	touch $@

install: .make-install.stamp
install-dev: .make-dev.stamp

# `make run PORT=9000` picks the port (so does LUKHAS_PORT); the default is 8080.
run: install
	$(BIN)/lukhas serve$(if $(PORT), --port $(PORT))

# The observability tests check /metrics with promtool (Debian's prometheus
# package) and /status in headless Chromium; the scale-out tests start their own
# PostgreSQL (initdb, pg_ctl) and redis-server. Installed when missing, which
# needs root: without it, one line says what to install.
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin))
TEST_PACKAGES := prometheus chromium postgresql redis-server
test-tools:
	@command -v promtool >/dev/null && command -v chromium >/dev/null && \
	  command -v redis-server >/dev/null && test -x "$(PG_BIN)/initdb" || \
	  $(call apt_install,$(TEST_PACKAGES))

test: install-dev test-tools
	$(BIN)/python -m pytest

# wrk (Debian's package) is the load generator of every throughput figure;
# installed when missing (needs root). The peers the db_routes module measures
# Lukhas against (FastAPI and uvicorn: pyproject's `bench` group) are
# installed here only, never by `make test` or `make lint`.
.make-bench.stamp: .make-dev.stamp pyproject.toml
	$(BIN)/pip install --quiet --group bench
	touch $@

bench: install-dev .make-bench.stamp
	@command -v wrk >/dev/null || $(call apt_install,wrk)
	$(BIN)/python -m benchmarks

# ruff; mypy (strict on the kernel, normal on plugins: pyproject's [tool.mypy]);
# import-linter (the kernel's layers and no cycles: [tool.importlinter]).
lint: install-dev
	$(BIN)/ruff check kernel plugins tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .make-*.stamp .pytest_cache
