#!/usr/bin/env bash
# Proves the README's two commands from a clean clone: clones HEAD into an empty temporary folder
# (nothing beside it), runs scripts/demo.sh until it prints its URL and sign-in, stops it, then
# runs scripts/test.sh there. Commit first: only committed work is cloned.
#   --without-test-packages  remove libcmocka-dev first (as root), so the demo is shown to need
#                            only the build packages; scripts/test.sh installs it again
#   --demo-only              stop after the demo
# Exit code: 0 when both commands worked. The clone is removed unless KEEP=1.
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
without=0
demo_only=0
for a in "$@"; do
    case "$a" in
    --without-test-packages) without=1 ;;
    --demo-only) demo_only=1 ;;
    *)
        echo "usage: $0 [--without-test-packages] [--demo-only]" >&2
        exit 2
        ;;
    esac
done

tmp=$(mktemp -d /tmp/memsync-fresh.XXXXXX)
demo_pid=
cleanup() {
    if [ -n "$demo_pid" ]; then kill -TERM -- "-$demo_pid" 2>/dev/null || true; fi
    if [ "${KEEP:-0}" = 1 ]; then echo "fresh clone kept in $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

git clone -q "$src" "$tmp/memsync"
cd "$tmp/memsync"
echo "== fresh clone of $(git rev-parse --short HEAD) in $tmp/memsync ($(ls -A "$tmp" | wc -l) entry in its folder)"
[ ! -e "$tmp/shared" ] || { echo "$tmp/shared exists; the clone must stand alone" >&2; exit 1; }

if [ "$without" = 1 ] && dpkg-query -W -f='${Status}' libcmocka-dev 2>/dev/null | grep -q 'ok installed'; then
    echo "== removing libcmocka-dev"
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq libcmocka-dev >/dev/null
fi

echo "== scripts/demo.sh"
start=$(date +%s)
MEMSYNC_DEMO_PORT=0 setsid scripts/demo.sh >"$tmp/demo.out" 2>&1 </dev/null &
demo_pid=$!
ok=0
for _ in $(seq 1800); do
    if grep -q '^sign in as: ' "$tmp/demo.out"; then ok=1; break; fi
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.5
done
sed -n '/^memsync is running:/,$p' "$tmp/demo.out"
kill -TERM -- "-$demo_pid" 2>/dev/null || true
wait "$demo_pid" 2>/dev/null || true
demo_pid=
if [ "$ok" != 1 ]; then
    echo "demo: it did not print its URL and sign-in; its output:" >&2
    tail -n 40 "$tmp/demo.out" >&2
    exit 1
fi
echo "demo: printed its URL and sign-in after $(($(date +%s) - start)) s"
[ "$demo_only" = 1 ] && exit 0

echo "== scripts/test.sh"
start=$(date +%s)
status=0
scripts/test.sh >"$tmp/test.out" 2>&1 || status=$?
grep -E '^== |tests passed|tests? failed out of|^\s+[0-9]+ - .*\((Failed|Timeout|Not Run)' "$tmp/test.out" || true
tail -n 1 "$tmp/test.out"
echo "tests: exit $status after $(($(date +%s) - start)) s"
exit "$status"
