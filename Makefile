# Two commands set everything up on a fresh machine: `make serve` and `make test`.
# `make e2e` drives the real tools (chromium, nginx, caddy, pgbouncer, postgresql, node) and installs them when missing.
# Dependencies come from the lock files in .ci/locks/ (compiled from pyproject.toml by `make lock`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCKS := .ci/locks
RUNTIME_LOCK := $(LOCKS)/runtime.lock
DEV_LOCK := $(LOCKS)/dev.lock
E2E_LOCK := $(LOCKS)/e2e.lock
# One stamp per lock: a venv first made by `make serve` (runtime only) still gets the dev tools on `make test`.
RUNTIME_STAMP := $(VENV)/.installed-runtime
DEV_STAMP := $(VENV)/.installed-dev
E2E_STAMP := $(VENV)/.installed-e2e
# caddy: the Caddy gateway test; pgbouncer and postgresql: PgBouncer in front of a cluster of the tests' own
# (tests/e2e/pgbouncer.py).
E2E_DEBIAN_PACKAGES := chromium nginx caddy pgbouncer postgresql
# Node.js and npm for the GraphQL clients of tests/e2e/node; installed from Debian only when no node/npm is on PATH
# (a machine may have them from elsewhere, and Debian's npm package conflicts with such a nodejs).
E2E_NODE_DEBIAN_PACKAGES := nodejs npm
E2E_NODE_DIR := tests/e2e/node
# axe-core for the accessibility checks, from npm at the version tests/e2e/package-lock.json pins.
E2E_AXE_DIR := tests/e2e
E2E_AXE_STAMP := $(E2E_AXE_DIR)/node_modules/.installed
# `make lock` runs pip-tools from its own venv, pinned so the lock files' format does not drift.
LOCK_VENV := .venv-lock
LOCK_TOOLS := pip==26.3 pip-tools==7.6.2

.PHONY: serve test e2e e2e-system e2e-node lint typecheck install lock bench clean

# Create the venv when missing, install exactly the pinned versions of one lock, then tokengate itself.
define install_locked
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r $(1)
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@
endef

# (Re)install whenever pyproject.toml or the lock is newer than the last install from that lock.
$(RUNTIME_STAMP): pyproject.toml $(RUNTIME_LOCK)
	$(call install_locked,$(RUNTIME_LOCK))

$(DEV_STAMP): pyproject.toml $(DEV_LOCK)
	$(call install_locked,$(DEV_LOCK))

# The playwright package only: it drives /usr/bin/chromium, so `playwright install` is never run.
$(E2E_STAMP): pyproject.toml $(E2E_LOCK)
	$(call install_locked,$(E2E_LOCK))

install: $(DEV_STAMP)

serve: $(RUNTIME_STAMP)
	$(BIN)/tokengate serve $(ARGS)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Regenerate .ci/locks/*.lock from pyproject.toml's ranges, keeping current pins where they still fit;
# `make lock ARGS=--upgrade` moves every pin to the newest release. e2e.lock (every extra) is resolved
# first and constrains the other two, so all three agree on every version they share.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile -q --strip-extras \
	--no-emit-index-url --no-emit-find-links $(ARGS)
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || \
	    { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install -q $(LOCK_TOOLS); }
	mkdir -p $(LOCKS)
	$(PIP_COMPILE) --extra dev --extra e2e -o $(E2E_LOCK) pyproject.toml
	$(PIP_COMPILE) --extra dev -c $(E2E_LOCK) -o $(DEV_LOCK) pyproject.toml
	$(PIP_COMPILE) -c $(E2E_LOCK) -o $(RUNTIME_LOCK) pyproject.toml

# Side-by-side throughput (bench/run.py; needs wrk: installed with apt-get when missing and root).
# ARGS passes options, e.g. make bench ARGS="--duration 20 --update-readme". See bench/README.md.
bench: $(RUNTIME_STAMP)
	$(BIN)/python bench/run.py $(ARGS)

.PHONY: bench-revocation bench-scale bench-memory bench-abuse bench-workers
bench-revocation: $(RUNTIME_STAMP)
	$(BIN)/python bench/revocation.py $(ARGS)

bench-scale: $(RUNTIME_STAMP)
	$(BIN)/python bench/scale.py $(ARGS)

bench-memory: $(RUNTIME_STAMP)
	$(BIN)/python bench/memory.py $(ARGS)

bench-workers: $(RUNTIME_STAMP)
	$(BIN)/python bench/workers.py $(ARGS)

# The attacks of issue 13 against a steady legitimate client (bench/abuse.py; about four minutes).
bench-abuse: $(RUNTIME_STAMP)
	$(BIN)/python bench/abuse.py $(ARGS)

# Debian packages the end-to-end tests drive; installed when missing (CI runs as root). No skipping.
# npm is looked for as a command: a Node.js installed another way brings its own.
e2e-system:
	@missing=""; for package in $(E2E_DEBIAN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing="$$missing $(E2E_NODE_DEBIAN_PACKAGES)"; fi; \
	if [ -n "$$missing" ]; then \
	    echo "e2e: installing Debian packages:$$missing"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

# The Node packages exactly as the committed lock has them; `npm ci` runs again only when the lock changes.
$(E2E_NODE_DIR)/node_modules/.package-lock.json: $(E2E_NODE_DIR)/package-lock.json
	cd $(E2E_NODE_DIR) && npm ci --prefer-offline --no-audit --no-fund

e2e-node: e2e-system $(E2E_NODE_DIR)/node_modules/.package-lock.json


# axe-core exactly as locked (npm ci), again whenever package.json or the lock changes.
$(E2E_AXE_STAMP): $(E2E_AXE_DIR)/package.json $(E2E_AXE_DIR)/package-lock.json | e2e-system
	npm ci --prefix $(E2E_AXE_DIR) --no-audit --no-fund
	touch $@

e2e: $(E2E_STAMP) e2e-system e2e-node $(E2E_AXE_STAMP)
	$(BIN)/python -m pytest tests/e2e $(ARGS)

# The modules held to mypy --strict are listed once, in pyproject.toml ([tool.mypy] files).
typecheck: $(DEV_STAMP)
	$(BIN)/python -m mypy --strict

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m mypy --strict

clean:
	rm -rf $(VENV) $(LOCK_VENV) .venv-codegen .tokengate e2e-artifacts .mypy_cache $(E2E_NODE_DIR)/node_modules \
	    $(E2E_NODE_DIR)/generated $(E2E_AXE_DIR)/node_modules
