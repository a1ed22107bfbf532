#!/usr/bin/env bash
# The demo: installs what is missing, builds, starts the Microsoft simulator and `memsync serve`,
# saves the integration (checked with the simulated Microsoft, then a full sync), and prints the
# URL and the sign-in. Runs until Ctrl-C, which stops both. Everything lives in demo/.
#   MEMSYNC_DEMO_PORT   web port (default 8080; a free one is taken when it is busy)
#   MEMSYNC_DEMO_SCENARIO  simulator scenario (default demo)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/build.sh build -DMEMSYNC_TESTS=OFF
bin=$PWD/build/memsync
port=${MEMSYNC_DEMO_PORT:-8080}
scenario=${MEMSYNC_DEMO_SCENARIO:-demo}

mkdir -p demo
cd demo
rm -f memsync.db memsync.db-wal memsync.db-shm memsync.db.key sim.env serve.url serve.log
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

"$bin" sim --scenario "$scenario" --listen 127.0.0.1:0 --env-file sim.env >sim.log 2>&1 &
pids+=($!)
for _ in $(seq 200); do [ -s sim.env ] && break; sleep 0.05; done
[ -s sim.env ] || { echo "the simulator did not start; see demo/sim.log" >&2; exit 1; }
set -a
. ./sim.env
set +a
export MEMSYNC_DB=$PWD/memsync.db

if "$bin" serve --help >/dev/null 2>&1; then
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        port=0 # busy: let the system choose
    fi
    "$bin" serve --listen "127.0.0.1:$port" --url-file serve.url >serve.log 2>&1 &
    pids+=($!)
    for _ in $(seq 200); do [ -s serve.url ] && break; sleep 0.05; done
    [ -s serve.url ] || { echo "memsync serve did not start; see demo/serve.log" >&2; exit 1; }
fi

printf '%s' "$MEMSYNC_SIM_PARTNER_APP_SECRET" >partner.secret
printf '%s' "$MEMSYNC_SIM_SYNC_APP_SECRET" >sync.secret
chmod 600 partner.secret sync.secret
"$bin" integration add --name "Demo MSP" --partner-tenant-id "$MEMSYNC_SIM_PARTNER_TENANT_ID" \
    --partner-app-id "$MEMSYNC_SIM_PARTNER_APP_ID" --partner-app-secret-file partner.secret \
    --sync-app-id "$MEMSYNC_SIM_SYNC_APP_ID" --sync-app-secret-file sync.secret
"$bin" clients

echo
if [ -s serve.url ]; then
    password=$(sed -n 's/.*created user "admin" with password \([^ ]*\).*/\1/p' serve.log | head -n 1)
    echo "memsync is running: $(cat serve.url)"
    echo "sign in as: admin / ${password:-(see demo/serve.log)}"
    echo "the simulated Microsoft cloud: $MEMSYNC_GRAPH_URL (credentials in demo/sim.env)"
    echo "press Ctrl-C to stop"
    wait "${pids[1]}"
else
    echo "inventory in $(pwd)/memsync.db: try  $bin assets hardware --db $(pwd)/memsync.db"
fi
