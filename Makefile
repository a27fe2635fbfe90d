# Two entry points matter: `make demo` (whole pipeline on the simulator, then
# the API) and `make test`. Both create the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo real test bench bench-feeds feed-counts openapi clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/povwarn demo

real: $(STAMP)
	$(BIN)/povwarn real

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

# Feed ingest at 25,000 and 100,000 households (about 10 minutes); see benchmarks/RESULTS-ingest.md for 1,000,000.
bench-feeds: $(STAMP)
	$(BIN)/python -m benchmarks.ingest_feeds --households 25000 100000 --months 36

feed-counts: $(STAMP)
	$(BIN)/python -m benchmarks.feed_counts --out docs/feed-counts.md

openapi: $(STAMP)
	$(BIN)/povwarn export-openapi --out api/openapi.json

clean:
	rm -rf out mlruns/* .pytest_cache
