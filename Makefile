# Two commands set everything up on a fresh machine: `make serve` and `make test`.
# `make e2e` drives the real tools (chromium, nginx) and installs them when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
E2E_STAMP := $(VENV)/.installed-e2e
E2E_DEBIAN_PACKAGES := chromium nginx

.PHONY: serve test e2e e2e-system lint install bench clean

# (Re)install whenever pyproject.toml is newer than the last install.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/tokengate serve $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

# Side-by-side throughput (bench/run.py; needs wrk: installed with apt-get when missing and root).
# ARGS passes options, e.g. make bench ARGS="--duration 20 --update-readme". See bench/README.md.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(ARGS)

.PHONY: bench-revocation bench-scale bench-memory
bench-revocation: $(STAMP)
	$(BIN)/python bench/revocation.py $(ARGS)

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py $(ARGS)

bench-memory: $(STAMP)
	$(BIN)/python bench/memory.py $(ARGS)

# The playwright package only: it drives /usr/bin/chromium, so `playwright install` is never run.
$(E2E_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,e2e]'
	touch $(E2E_STAMP)

# Debian packages the end-to-end tests drive; installed when missing (CI runs as root). No skipping.
e2e-system:
	@missing=""; for package in $(E2E_DEBIAN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$package"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "e2e: installing Debian packages:$$missing"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

e2e: $(E2E_STAMP) e2e-system
	$(BIN)/python -m pytest tests/e2e $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) .venv-codegen .tokengate e2e-artifacts
