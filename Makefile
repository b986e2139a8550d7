# Two commands set everything up on a fresh Debian/Ubuntu machine with Python >= 3.11:
#   make run    install into .venv, build the models, run the whole stack (gateway up)
#   make test   the same install, then linters and the whole test suite
# `make install` is idempotent: it reinstalls only when pyproject.toml changed.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS := embedded,models,mlflow,dev
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install system-deps bench-deps test-deps models run test lint format loadtest bench soak clean

install: system-deps $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	@touch $@

# redis-server (embedded Redis) and python3-venv come from the system's packages.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing="$$missing redis-server"; \
	test -x $(BIN)/python || $(PYTHON) -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    echo "installing$$missing with sudo apt-get"; \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing"; \
	    echo "install them (Debian/Ubuntu: sudo apt-get install -y$$missing) and run make again;"; \
	    echo "or point GATEWAY_REDIS_URL at an existing Redis."; \
	    exit 1; \
	  fi; \
	fi

# wrk and h2load (load generators of the benchmarks) come from the system's packages.
bench-deps:
	@missing=""; \
	command -v wrk >/dev/null 2>&1 || missing="$$missing wrk"; \
	command -v h2load >/dev/null 2>&1 || missing="$$missing nghttp2-client"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (sudo apt-get install -y$$missing)"; exit 1; \
	  fi; \
	fi

# What only the tests need: Prometheus and promtool (the alert-rule tests) from the
# system's packages, and checkov (the manifests' policy scan) in a virtual environment of
# its own, since it pins many packages of its own.
CHECKOV_VENV := .venv-checkov
test-deps: $(CHECKOV_VENV)/.installed
	@if ! command -v promtool >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing prometheus with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	  else \
	    echo "missing system package: prometheus (sudo apt-get install -y --no-install-recommends prometheus)"; exit 1; \
	  fi; \
	fi

$(CHECKOV_VENV)/.installed:
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov>=3.2'
	@touch $@

models: install
	$(BIN)/gateway models build

run: models
	$(BIN)/gateway up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: models lint test-deps
	$(BIN)/pytest $(PYTEST_ARGS)

loadtest: models
	$(BIN)/python -m loadtests.run_loadtest

bench: models bench-deps
	$(BIN)/python -m loadtests.bench
	$(BIN)/python -m loadtests.tracing_cost

# Minutes of unique misses: the gateway's memory levels off within its cache bound.
soak: models bench-deps
	$(BIN)/python -m loadtests.soak

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .gateway .pytest_cache .mypy_cache .ruff_cache
	find model_repository -mindepth 2 -maxdepth 2 -type d -regex '.*/[0-9]+' -exec rm -rf {} +
