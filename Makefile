# Two commands set everything up on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint install bench clean

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

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) .tokengate
