#!/usr/bin/env bash
# Demo: installs what is missing, builds, starts the simulator, adds the integration and runs a
# full sync into demo/memsync.db, then prints the inventory.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
scripts/build.sh build
bin=$PWD/build/memsync
mkdir -p demo
cd demo
rm -f memsync.db memsync.db-wal memsync.db-shm sim.env
"$bin" sim --tenants 12 --devices 150 --listen 127.0.0.1:0 --env-file sim.env >sim.log 2>&1 &
sim_pid=$!
for _ in $(seq 100); do [ -s sim.env ] && break; sleep 0.1; done
[ -s sim.env ] || { echo "simulator did not start; see demo/sim.log" >&2; exit 1; }
set -a; . ./sim.env; set +a
printf '%s' "$MEMSYNC_SIM_PARTNER_APP_SECRET" >partner.secret
printf '%s' "$MEMSYNC_SIM_SYNC_APP_SECRET" >sync.secret
chmod 600 partner.secret sync.secret
"$bin" integration add --name "Demo MSP" --partner-tenant-id "$MEMSYNC_SIM_PARTNER_TENANT_ID" \
    --partner-app-id "$MEMSYNC_SIM_PARTNER_APP_ID" --partner-app-secret-file partner.secret \
    --sync-app-id "$MEMSYNC_SIM_SYNC_APP_ID" --sync-app-secret-file sync.secret
"$bin" clients
echo "simulator pid $sim_pid; database $(pwd)/memsync.db"
