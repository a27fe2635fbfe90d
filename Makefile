# Two entry points matter: `make demo` (whole pipeline on the simulator, then
# the API) and `make test`. Both create the virtual environment on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo real test bench openapi clean

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

openapi: $(STAMP)
	$(BIN)/povwarn export-openapi --out api/openapi.json

clean:
	rm -rf out mlruns/* .pytest_cache
