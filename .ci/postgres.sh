#!/usr/bin/env bash
# Makes sure a PostgreSQL server runs and is prepared for the data service, then prints on stdout
# the URL to use (progress goes to stderr).
#   .ci/postgres.sh run    the database `dataservice` and its owner role `dataservice`, which
#                          runs the migrations; prints the owner's URL
#   .ci/postgres.sh app    after the migrations: gives the application role `dataservice_app`
#                          LOGIN and a local password; prints the URL the service connects with
#   .ci/postgres.sh test   a superuser role that creates and drops the per-test databases;
#                          prints a TEST_DATABASE_URL (the maintenance database)
#   .ci/postgres.sh running    exit status 0 when the private cluster (below) runs
#   .ci/postgres.sh stop       stops the private cluster (make run does, when it started it)
# As root it uses the machine's cluster (installing PostgreSQL with apt-get on Debian when it is
# missing), which it never stops; PostgreSQL itself always runs as the postgres user. As any
# other user it runs a private cluster under var/postgres on port 55432 (or PRIVATE_POSTGRES_PORT).
set -euo pipefail
mode=${1:?usage: postgres.sh run|app|test|running|stop}
say() { echo "postgres.sh: $*" >&2; }
private=var/postgres  # a non-root user's cluster: its data, socket and log

case $mode in
  run)  role=dataservice; password=dataservice; database=dataservice ;;
  app)  role=dataservice_app; password=dataservice_app; database=dataservice ;;
  test) role=dataservice_test; password=dataservice_test; database=postgres ;;
  running|stop) ;;
  *)    say "unknown mode $mode"; exit 2 ;;
esac

bindir() {
  if command -v pg_config >/dev/null && [[ -x "$(pg_config --bindir)/initdb" ]]; then
    pg_config --bindir
  else
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
  fi
}

if [[ $mode == running || $mode == stop ]]; then
  bin=$(bindir)
  if [[ $EUID -eq 0 || -z $bin ]] || ! "$bin/pg_ctl" -D "$private/data" status >/dev/null 2>&1; then
    [[ $mode == stop ]] && exit 0  # nothing of ours runs
    exit 1
  fi
  [[ $mode == running ]] && exit 0
  say "stopping the private cluster in $private/data"
  "$bin/pg_ctl" -D "$private/data" -m fast -w stop >&2
  exit 0
fi

if [[ -z "$(bindir)" || ! -x "$(bindir)/initdb" ]]; then
  if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
    say "PostgreSQL is not installed; installing it with apt-get"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  else
    say "PostgreSQL is not installed. On Debian or Ubuntu: sudo apt-get install postgresql"
    say "or set DATABASE_URL (and TEST_DATABASE_URL for the tests) to a server you have."
    exit 1
  fi
fi
bin=$(bindir)

if [[ $EUID -eq 0 ]]; then
  # The machine's cluster, managed by Debian's postgresql-common.
  if ! pg_lsclusters -h | grep -q .; then
    version=$(basename "$(dirname "$bin")")
    say "creating cluster $version/main"
    pg_createcluster "$version" main >&2
  fi
  read -r version cluster port status _ < <(pg_lsclusters -h | head -n 1)
  if [[ $status != online* ]]; then
    say "starting cluster $version/$cluster"
    pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" start >&2
  fi
  psql_admin() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres "$@"; }
else
  # A private cluster owned by this user.
  port=${PRIVATE_POSTGRES_PORT:-55432}
  data=$private/data
  mkdir -p "$private"
  if [[ ! -f $data/PG_VERSION ]]; then
    say "creating a private cluster in $data"
    # UTF-8 whatever the caller's locale: without one, initdb picks SQL_ASCII, in which psycopg
    # sends text as bytea and the migrations fail.
    "$bin/initdb" -D "$data" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 >&2
  fi
  if ! "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    "$bin/pg_ctl" -D "$data" -l "$private/server.log" -w \
      -o "-p $port -k $PWD/$private -c listen_addresses=127.0.0.1" start >&2
  fi
  psql_admin() { "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres "$@"; }
fi

for _ in $(seq 1 30); do
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
"$bin/pg_isready" -q -h 127.0.0.1 -p "$port" || { say "PostgreSQL does not answer on port $port"; exit 1; }

if [[ $mode == app ]]; then
  # The role comes from migration 0004 (NOLOGIN); locally it logs in itself.
  psql_admin -c "ALTER ROLE dataservice_app LOGIN PASSWORD '$password'" >&2
else
  attributes="LOGIN PASSWORD '$password'"
  [[ $mode == test ]] && attributes="$attributes SUPERUSER"
  [[ $mode == run ]] && attributes="$attributes CREATEROLE"  # migration 0004 creates the app role
  psql_admin <<SQL >&2
SELECT format('CREATE ROLE %I', '$role') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role $attributes;
SELECT format('CREATE DATABASE %I OWNER %I', '$database', '$role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database') \gexec
SQL
fi

echo "postgresql://$role:$password@127.0.0.1:$port/$database"
