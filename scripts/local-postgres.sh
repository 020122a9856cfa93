#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the integration tests, the scaling benchmarks and
# trying the "scaling" docs page on one machine. Uses the server from Debian's packages
# (apt-get install postgresql); a team points the same commands at the PostgreSQL it already runs.
#
#   scripts/local-postgres.sh start DIR PORT   # prints postgresql://postgres@127.0.0.1:PORT
#   scripts/local-postgres.sh stop DIR
#
# Databases "mlflow" and "optuna" are created. Authentication is "trust" on 127.0.0.1 only, and
# fsync is off: this cluster is for tests, never for data you want to keep.
set -euo pipefail

bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
    if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
    echo "local-postgres: no PostgreSQL server found (apt-get install postgresql)" >&2
    exit 3
}

# PostgreSQL refuses to run as root: as root, run it as the "postgres" user Debian's package creates.
as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2; }
bin=$(bindir)
case "$cmd" in
start)
    port=${3:?usage: $0 start DIR PORT}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    for db in mlflow optuna; do
        as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres "$db"
    done
    echo "postgresql://postgres@127.0.0.1:$port"
    ;;
stop)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*)
    echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2
    ;;
esac
