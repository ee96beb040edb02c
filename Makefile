# The two commands a newcomer needs: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Test processes (pytest-xdist); 0 runs the suite in this one.
TEST_PROCESSES ?= 2

.PHONY: run run-ha ha-packages test bench bench-smoke lint format migrate clean

# The virtual environment, rebuilt when the pinned dependencies change.
$(BIN)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed (found $$($(PYTHON) --version))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

# Serve on HOST:PORT (default 127.0.0.1:8000). Without DATABASE_URL, a local PostgreSQL is
# started and prepared: migrations run as the owner role, the service connects as the
# application role, and a first start creates an API client `local-dev` and prints its token.
# Migrations are applied as their own step; the service never migrates. As a user other than
# root, the private PostgreSQL (var/postgres) that make run started is stopped when it ends
# (Ctrl-C, SIGTERM); one that was already running is left running, as is the machine's (root).
run: $(BIN)/.installed
	@set -e; stop_postgres=; \
	if [ -n "$$DATABASE_URL" ]; then \
		$(BIN)/dataservice migrate; \
	else \
		if [ "$$(id -u)" != 0 ] && ! bash .ci/postgres.sh running; then \
			stop_postgres=yes; \
			trap 'bash .ci/postgres.sh stop' EXIT; trap 'exit 130' INT TERM HUP; \
			echo "make run: the PostgreSQL it starts in var/postgres stops when make run ends"; \
		fi; \
		DATABASE_URL=$$(bash .ci/postgres.sh run) $(BIN)/dataservice migrate; \
		DATABASE_URL=$$(bash .ci/postgres.sh app); export DATABASE_URL; \
		if ! $(BIN)/dataservice clients list | grep -q '^local-dev\b'; then \
			$(BIN)/dataservice clients create local-dev \
				--scopes all; \
			echo "(send it as: Authorization: Bearer <token>; revoke with: dataservice clients revoke local-dev)"; \
		fi; \
	fi; \
	if [ -z "$$stop_postgres" ]; then exec $(BIN)/gunicorn -c gunicorn.conf.py wsgi:app; fi; \
	$(BIN)/gunicorn -c gunicorn.conf.py wsgi:app & gunicorn=$$!; \
	trap 'kill -TERM $$gunicorn 2>/dev/null || true' INT TERM HUP; \
	status=0; wait $$gunicorn || status=$$?; \
	while kill -0 $$gunicorn 2>/dev/null; do status=0; wait $$gunicorn || status=$$?; done; \
	exit $$status

# A two-node PostgreSQL cluster under Patroni (with etcd) and the service on it, for trying a
# switchover or the loss of a node by hand (tests/ha_cluster.py); Ctrl-C stops it all.
run-ha: $(BIN)/.installed ha-packages
	$(BIN)/python -m tests.ha_cluster

# Debian's etcd-server, patroni and haproxy, for the HA tests and run-ha: installed when missing.
ha-packages:
	@{ command -v etcd && command -v patroni && { command -v haproxy || [ -x /usr/sbin/haproxy ]; }; } \
		>/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server patroni haproxy \
		  >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		  apt-get install -y -qq etcd-server patroni haproxy >/dev/null; }; }; } || \
		{ echo "etcd-server, patroni and haproxy are needed: sudo apt-get install etcd-server patroni haproxy"; exit 1; }

# Lint, then the whole suite against a real PostgreSQL (started when needed); the PgBouncer
# test needs Debian's pgbouncer, the /docs test chromium, the /metrics test promtool (Debian's
# prometheus), the HA tests etcd, Patroni and HAProxy, the documentation's examples curl, the
# shared rate limits Redis (.ci/redis.sh starts it), and the image test podman with runc (and
# debootstrap for its stand-in base image), installed here when missing.
test: $(BIN)/.installed ha-packages
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } || \
		{ echo "pgbouncer is needed by the tests: apt-get install pgbouncer"; exit 1; }
	@command -v chromium >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
		    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; }; } || \
		{ echo "chromium is needed by the tests: apt-get install chromium"; exit 1; }
	@command -v promtool >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null 2>&1 || \
		    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }; }; } || \
		{ echo "promtool is needed by the tests: apt-get install prometheus"; exit 1; }
	@command -v curl >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null 2>&1 || \
		    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }; }; } || \
		{ echo "curl is needed by the tests: apt-get install curl"; exit 1; }
	@{ command -v podman && { command -v runc || [ -x /usr/sbin/runc ]; } && \
	   { command -v debootstrap || [ -x /usr/sbin/debootstrap ]; }; } >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null 2>&1 || \
		    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null; }; }; } || \
		{ echo "podman, runc and debootstrap are needed by the image test: apt-get install podman runc debootstrap"; exit 1; }
	@bash .ci/redis.sh
	$(BIN)/ruff check .
	@set -e; \
	if [ -z "$$TEST_DATABASE_URL" ]; then TEST_DATABASE_URL=$$(bash .ci/postgres.sh test); export TEST_DATABASE_URL; fi; \
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

# The benchmark (see bench/run.py and docs/benchmarks.md): wrk and pgbench against a seeded
# database, with the production gunicorn.conf.py, then instructions per request counted by
# valgrind. It loads the machine for about 25 minutes: run it on a quiet one. bench-smoke is the
# same harness in about two minutes (CI runs it; it times nothing). BENCH_ARGS passes
# options, e.g. BENCH_ARGS='--scenarios get_by_id --connections 64'.
bench bench-smoke: $(BIN)/.installed
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq wrk >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }; } || \
		{ echo "wrk is needed: sudo apt-get install wrk (Debian, Ubuntu)"; exit 1; }
	@command -v valgrind >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ apt-get install -y -qq valgrind >/dev/null 2>&1 || \
		  { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }; }; } || \
		{ echo "valgrind is needed: sudo apt-get install valgrind (Debian, Ubuntu)"; exit 1; }
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install --quiet -e '.[bench]'
	@set -e; \
	if [ -z "$$BENCH_ADMIN_URL" ]; then BENCH_ADMIN_URL=$$(bash .ci/postgres.sh test); export BENCH_ADMIN_URL; fi; \
	$(BIN)/python bench/run.py $(if $(filter bench-smoke,$@),--smoke,) $(BENCH_ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) *.egg-info
