#!/usr/bin/env bash
# Installs what is missing, builds memsync twice (normal and ASan+UBSan) and runs the whole test
# suite on both builds. Exit code 0 only when everything passes.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
scripts/test-setup.sh
scripts/build.sh build
scripts/build.sh build-asan -DMEMSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
echo "== tests (release build)"
ctest --test-dir build --output-on-failure -j2
echo "== tests (ASan+UBSan build)"
ctest --test-dir build-asan --output-on-failure -j2 -LE e2e
