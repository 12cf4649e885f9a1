#!/usr/bin/env bash
# Runs a command against a throwaway Postgres cluster: initdb and pg_ctl in a temp dir, on a
# free port, stopped and removed when the command ends. The command sees
# HANGAR_TEST_DATABASE_URL (the cluster's admin URL); the API tests then give every server
# they start a database of its own on it (tests/api/helpers.rs).
#
#   tests/with-postgres.sh cargo test --test api
#
# Needs Postgres' server binaries (Debian: postgresql-15); PG_BIN names their directory.
# PG_SETTINGS replaces the server settings below that trade durability for speed.
set -euo pipefail

PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"
[ -x "$PG_BIN/initdb" ] || { echo "no Postgres server binaries (initdb) in '$PG_BIN'; set PG_BIN" >&2; exit 1; }

dir="$(mktemp -d /tmp/hangar-pg.XXXXXX)"
# Postgres refuses to run as root: as root, the cluster belongs to the postgres user.
as_owner=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

stop() {
    "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$PG_BIN/initdb" -D "$dir/data" -U hangar --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
# Durability is not under test here; fsync off keeps hundreds of CREATE DATABASEs quick.
settings="${PG_SETTINGS--c fsync=off -c synchronous_commit=off -c full_page_writes=off}"
"${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 $settings" \
    start >/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }

export HANGAR_TEST_DATABASE_URL="postgres://hangar@127.0.0.1:$port"
export PG_BIN
"$@"
