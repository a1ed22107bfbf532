#!/usr/bin/env bash
# Starts or stops a throw-away PostgreSQL cluster for the tests, listening only on a Unix
# socket (no TCP port, nothing shared with other clusters).
#   scripts/pg-test-cluster.sh start DIR   -> writes the connection URL to DIR/url
#   scripts/pg-test-cluster.sh stop DIR
# The cluster itself lives in a fresh directory under /tmp: PostgreSQL runs as its own user when
# we are root, and that user may not be able to enter DIR (a checkout under /root, say).
set -euo pipefail
cmd=${1:?start|stop}
dir=${2:?directory}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_pg() {
    # PostgreSQL refuses to run as root: use its own account when we are root.
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_cluster() {
    local data
    data=$(cat "$dir/cluster" 2>/dev/null) || return 0
    if [ -f "$data/data/postmaster.pid" ]; then
        as_pg "$bin/pg_ctl" -D "$data/data" -m fast -w stop >/dev/null 2>&1 ||
            as_pg "$bin/pg_ctl" -D "$data/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$data"
    rm -f "$dir/cluster" "$dir/url"
}

case "$cmd" in
start)
    stop_cluster
    mkdir -p "$dir"
    data=$(mktemp -d /tmp/memsync-pg.XXXXXX)
    echo "$data" >"$dir/cluster"
    [ "$(id -u)" -ne 0 ] || chown postgres "$data"
    as_pg "$bin/initdb" -D "$data/data" -A trust -U postgres -E UTF8 --no-locale \
        >"$dir/pg-initdb.log" 2>&1
    as_pg "$bin/pg_ctl" -D "$data/data" -l "$data/server.log" -w -t 60 \
        -o "-c listen_addresses='' -c unix_socket_directories='$data' -c fsync=off" start >/dev/null
    echo "postgresql:///postgres?host=$data&user=postgres" >"$dir/url"
    ;;
stop)
    stop_cluster
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
