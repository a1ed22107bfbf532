#!/usr/bin/env bash
# Installs the Debian packages memsync needs, only those that are missing.
# Usage: scripts/deps.sh [build|test|bench|package|all]   (default: build)
# Runs apt-get update only when something must be installed. Idempotent.
set -euo pipefail
what=${1:-build}

build_pkgs=(gcc make cmake pkg-config libcurl4-openssl-dev libjansson-dev libyajl-dev libmicrohttpd-dev
    libsodium-dev libsqlite3-dev libpq-dev zlib1g-dev liboath-dev libqrencode-dev libjose-dev
    ca-certificates curl)
test_pkgs=(libcmocka-dev python3 time postgresql postgresql-client clang libclang-rt-14-dev clang-format openssl python3-msal nodejs npm
    sqlite3 procps chromium nginx-light python3-jsonschema)
# Only for bench/bench_api.py, never on the test path.
bench_pkgs=(wrk valgrind)
# scripts/package.sh: dpkg-shlibdeps for the Depends line, lintian and systemd-analyze checks.
package_pkgs=(dpkg-dev lintian systemd)

pkgs=("${build_pkgs[@]}")
case "$what" in
build) ;;
test) pkgs+=("${test_pkgs[@]}") ;;
bench) pkgs+=("${bench_pkgs[@]}") ;;
package) pkgs+=("${package_pkgs[@]}") ;;
all) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}" "${package_pkgs[@]}") ;;
*)
    echo "usage: $0 [build|test|bench|package|all]" >&2
    exit 2
    ;;
esac

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        # node may come from elsewhere on a developer machine; accept a working binary.
        case "$p" in
        nodejs) command -v node >/dev/null 2>&1 && continue ;;
        npm) command -v npm >/dev/null 2>&1 && continue ;;
        esac
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    else
        SUDO=
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
