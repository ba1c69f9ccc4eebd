#!/usr/bin/env bash
# Start a PostgreSQL server on loopback for the storage tests (Debian's package; installed if
# missing) and print the URL the tests read from WDSWEEP_TEST_POSTGRES_URL. Prints nothing and
# exits non-zero when no server can be started: the tests then skip with that reason.
set -u
if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || exit 1
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
[ -n "$version" ] || exit 1
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$version" main >&2 || exit 1
fi
pg_ctlcluster "$version" main start >&2 2>/dev/null || pg_lsclusters -h | grep -q "online" || exit 1
port=$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $3}')
as_postgres() { su postgres -c "$1" >&2; }
as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_roles WHERE rolname='wdsweep'\" | grep -q 1 || psql -p $port -c \"CREATE ROLE wdsweep LOGIN SUPERUSER PASSWORD 'wdsweep'\"" || exit 1
as_postgres "psql -p $port -tAc \"SELECT 1 FROM pg_database WHERE datname='wdsweep_test'\" | grep -q 1 || createdb -p $port -O wdsweep wdsweep_test" || exit 1
echo "postgresql://wdsweep:wdsweep@127.0.0.1:$port/wdsweep_test"
