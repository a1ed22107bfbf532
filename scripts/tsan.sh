#!/usr/bin/env bash
# Builds memsync with ThreadSanitizer into build-tsan/ (or $1) and runs the threaded unit tests
# (CTest label tsan: every unit test that starts threads). Any data race fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-tsan}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMSYNC_TESTS=ON -DMEMSYNC_TSAN=ON \
  -DMEMSYNC_SANITIZE=OFF -DMEMSYNC_FUZZ=OFF >/dev/null
cmake --build "$dir" -j"$(nproc)"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
ctest --test-dir "$dir" -L tsan --output-on-failure
