#!/usr/bin/env bash
# Installs the npm packages the tests use (tests/e2e: browser tests; tests/clients: Microsoft's
# client libraries against the simulator; tests/api: an OpenAPI validator), only when missing or
# when package.json changed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for dir in tests/e2e tests/clients tests/api; do
    cd "$root/$dir" 2>/dev/null || continue
    [ -f package.json ] || continue
    if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
        npm install --no-audit --no-fund --loglevel=error >/dev/null
        touch node_modules
    fi
done
