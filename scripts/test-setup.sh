#!/usr/bin/env bash
# Installs the npm packages the tests use into tests/e2e/node_modules, only when missing.
set -euo pipefail
cd "$(dirname "$0")/../tests/e2e"
[ -f package.json ] || exit 0
if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
    npm install --no-audit --no-fund --loglevel=error >/dev/null
    touch node_modules
fi
