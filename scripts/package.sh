#!/usr/bin/env bash
# Builds the Debian package from this tree into build-pkg/ (or $1):
# build-pkg/memsync_VERSION_ARCH.deb (CMake's CPack; a Release build with prefix /usr,
# _FORTIFY_SOURCE and full RELRO). Then checks it: lintian (errors fail the build; warnings are
# shown) and systemd-analyze verify on its units, each when installed (scripts/deps.sh package).
# Prints the path of the package on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-pkg}
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
    -DMEMSYNC_TESTS=OFF -DMEMSYNC_BENCH=OFF \
    -DCMAKE_C_FLAGS="-D_FORTIFY_SOURCE=2" -DCMAKE_EXE_LINKER_FLAGS="-Wl,-z,relro,-z,now" >/dev/null
cmake --build "$dir" -j"$(nproc)" >/dev/null
rm -f "$dir"/memsync_*.deb
(cd "$dir" && cpack -G DEB >/dev/null)
deb=$(ls "$dir"/memsync_*.deb)

if command -v lintian >/dev/null 2>&1; then
    # Root builds are fine here: the package's files are owned by root either way.
    out=$(lintian --allow-root --tag-display-limit 0 "$deb" 2>&1 || true)
    [ -z "$out" ] || echo "$out" >&2
    if echo "$out" | grep -q '^E: '; then
        echo "package: lintian found errors" >&2
        exit 1
    fi
else
    echo "package: lintian not installed (scripts/deps.sh package); not checked" >&2
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    dpkg-deb -x "$deb" "$tmp"
    # verify wants the units' binary where ExecStart says; check them inside the unpacked tree.
    sed -i "s|ExecStart=/usr/bin/memsync|ExecStart=$tmp/usr/bin/memsync|" \
        "$tmp"/usr/lib/systemd/system/*.service
    # verify exits 0 on unknown keys and bad values, so any message it prints is a failure.
    out=$(SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no \
        "$tmp/usr/lib/systemd/system/memsync.service" \
        "$tmp/usr/lib/systemd/system/memsync-worker@.service" 2>&1) || out="$out (exit $?)"
    if [ -n "$out" ]; then
        echo "$out" >&2
        echo "package: systemd-analyze verify found problems in the units" >&2
        exit 1
    fi
else
    echo "package: systemd-analyze not installed; units not verified" >&2
fi
echo "$deb"
