#!/usr/bin/env bash
# Source checks run by the test suite: every C file is clang-format clean, and no banned call
# (unbounded or unchecked C library functions, raw assert) appears outside comments.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src tests fuzz bench -name '*.[ch]')
if command -v clang-format >/dev/null 2>&1; then
    for f in $files; do
        if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
            echo "not clang-format clean: $f (run clang-format -i $f)"
            status=1
        fi
    done
fi
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atof|strtok|sscanf|rand|system|popen|alloca|assert)[[:space:]]*\('
if hits=$(echo "$files" | xargs grep -nE "$banned" | grep -vE '^\S+:[0-9]+:\s*(/\*|\*)' | grep -vE 'cmocka|assert_|static_assert'); then
    echo "banned calls (use snprintf, strtoll with end checks, randombytes_buf, ASSERT):"
    echo "$hits"
    status=1
fi
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
