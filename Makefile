# The two commands a newcomer needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test lint format migrate clean

# The virtual environment, rebuilt when the pinned dependencies change.
$(BIN)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Serve on HOST:PORT (default 127.0.0.1:8000). Without DATABASE_URL, a local PostgreSQL is
# started and prepared first. Migrations are applied as their own step; the service never migrates.
run: $(BIN)/.installed
	@set -e; \
	if [ -z "$$DATABASE_URL" ]; then DATABASE_URL=$$(bash .ci/postgres.sh run); export DATABASE_URL; fi; \
	$(BIN)/dataservice migrate; \
	exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app

# Lint, then the whole suite against a real PostgreSQL (started when needed).
test: $(BIN)/.installed
	$(BIN)/ruff check .
	@set -e; \
	if [ -z "$$TEST_DATABASE_URL" ]; then TEST_DATABASE_URL=$$(bash .ci/postgres.sh test); export TEST_DATABASE_URL; fi; \
	$(BIN)/pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info
