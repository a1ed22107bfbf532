#!/usr/bin/env bash
# Installs what is missing, builds memsync twice (normal and ASan+UBSan) and runs the whole test
# suite on both builds. Both builds are built and tested even when the first has failures; the
# last line sums both ("N passed, N failed"). Exit code 0 only when everything passes.
# Extra arguments go to ctest (for example -L unit, -R integ.test_api).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test || exit 1
scripts/deps.sh package || exit 1 # the package test: lintian, systemd-analyze
scripts/test-setup.sh || exit 1

passed=0
failed=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# suite NAME DIR CTEST-ARGS... : builds DIR (configured by the caller) and runs its tests.
suite() {
    local name=$1 dir=$2 log="$logs/$1.log" line p f total
    shift 2
    echo "== tests ($name build)"
    ctest --test-dir "$dir" --output-on-failure -j2 "$@" "${extra[@]}" 2>&1 | tee "$log"
    line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        if grep -q 'No tests were found' "$log"; then
            echo "$name build: no tests ran"
        else
            echo "$name build: ctest did not report a result"
        fi
        failed=$((failed + 1))
        return
    fi
    f=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    p=$((total - f))
    passed=$((passed + p))
    failed=$((failed + f))
}

# build NAME DIR CMAKE-ARGS... : a build that fails counts as one failed test.
build() {
    local name=$1 dir=$2
    shift 2
    if ! scripts/build.sh "$dir" -DMEMSYNC_TESTS=ON "$@"; then
        echo "== $name build failed"
        failed=$((failed + 1))
        return 1
    fi
}

extra=("$@")
if build release build; then
    suite release build
fi
if build asan build-asan -DMEMSYNC_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug; then
    # Browser tests drive a real Chromium; the sanitizers add nothing there but minutes. The
    # package test builds its own Release package, already tested in the first suite.
    suite asan build-asan -LE 'e2e|package'
fi

echo "== both builds"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
