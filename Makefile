# The two commands of the README: `make demo` and `make test`. Only Python >= 3.11 and make needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

# Telemetry of dlt, dbt and Dagster is off: this project never phones home.
export RUNTIME__DLTHUB_TELEMETRY := false
export DO_NOT_TRACK := 1

.PHONY: install demo test lint bench clean dagster notebooks

install: $(STAMP)

# Reinstalls only when pyproject.toml changed (the stamp is older than it).
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "covage-pipeline needs Python >= 3.11; set PYTHON=python3.11 (or newer)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,spark]'
	# rfc3987-syntax (JupyterLab asks for it through jsonschema's format extra) compiles a grammar
	# whenever jsonschema is imported: 2-3 s of every dbt process. Without it, jsonschema skips
	# one format check (IRIs, in Jupyter's own event schemas)
	$(BIN)/python -m pip uninstall --quiet --yes rfc3987-syntax
	# notebooks are committed without outputs: the nbstripout filter strips them on `git add`
	-$(BIN)/nbstripout --install --attributes .gitattributes
	# the dbt manifest the Dagster definitions load (they parse it themselves if it is missing)
	$(BIN)/dbt parse --project-dir sql --profiles-dir sql --quiet
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/covage demo

# The test files are shared out between two processes (one file stays on one worker: its module
# fixtures are built once); TEST_WORKERS=0 runs them in this one
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# Dagster UI on http://127.0.0.1:3000, instance under <data dir>/dagster_home (the shipped
# dagster.yaml: runs that write the warehouse queue one behind the other, telemetry off); Ctrl-C
# or SIGTERM stops it, in a terminal or in the background
DAGSTER_PORT ?= 3000
dagster: $(STAMP)
	exec $(BIN)/covage dagster --port $(DAGSTER_PORT)

# JupyterLab on loopback, in notebooks/, with this environment's kernel ("Python 3"); the notebooks
# read the analysts' copy under COVAGE_DATA_DIR (default data/), made absolute: they run in notebooks/
NOTEBOOKS_PORT ?= 8888
notebooks: $(STAMP)
	COVAGE_DATA_DIR=$(abspath $(or $(COVAGE_DATA_DIR),data)) $(BIN)/jupyter lab --ip 127.0.0.1 --port $(NOTEBOOKS_PORT) --no-browser --notebook-dir notebooks \
		$(if $(filter 0,$(shell id -u)),--allow-root)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python benchmarks/emulator_throughput.py
	$(BIN)/python benchmarks/ingest_throughput.py
	$(BIN)/python benchmarks/dbt_build.py
	$(BIN)/python benchmarks/postgres_ingest.py

clean:
	rm -rf $(VENV) data .pytest_cache
