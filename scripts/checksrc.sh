#!/usr/bin/env bash
# Source checks run by the test suite: every C file is clang-format clean; no banned call
# (unbounded or unchecked C library functions, raw assert) appears outside comments; and the
# project is self-contained: no file refers to a path outside the repository, and every relative
# link in the Markdown docs names a file that is there.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find src tests fuzz bench -name '*.[ch]')
if command -v clang-format >/dev/null 2>&1; then
    # One clang-format per batch of files (its start-up costs more than a file's check); it
    # names every unclean file in its diagnostics and goes on past the first.
    out=$(echo "$files" | xargs -r -n 64 -P 2 clang-format --dry-run -Werror 2>&1)
    if [ $? -ne 0 ]; then
        bad=$(sed -nE 's/^([^: ]+):[0-9]+:[0-9]+: (error|warning): .*/\1/p' <<<"$out" | sort -u)
        for f in $bad; do
            echo "not clang-format clean: $f (run clang-format -i $f)"
        done
        [ -n "$bad" ] || echo "clang-format failed: ${out:0:2000}"
        status=1
    fi
else
    echo "clang-format not found: apt-get install clang-format (or scripts/deps.sh test)"
    status=1
fi

# Self-contained: a clone has nothing beside it. Names of documents that live outside the
# repository, and paths that climb out of it, are refused everywhere but in this script.
outside='(\.\./shared\b|\bshared/(spec|reference)\b|\b(PRODUCT|ENGINEERING)\.md\b|microsoft-api-notes|PROJECT_SOURCE_DIR\}/\.\.)'
if hits=$(git ls-files 2>/dev/null | grep -v '^scripts/checksrc\.sh$' | grep -v '^tests/fixtures/' |
    xargs grep -InE "$outside" 2>/dev/null); then
    echo "refers to a file outside the repository (copy what is needed in, or say it here):"
    echo "$hits"
    status=1
fi
for md in $(git ls-files '*.md' 2>/dev/null | grep -v '^tests/fixtures/'); do
    for link in $(grep -oE '\]\([^)#[:space:]]+' "$md" | sed 's/^](//' | grep -vE '^[a-z]+:'); do
        dir=.
        [[ $md == */* ]] && dir=${md%/*}
        if [ ! -e "$dir/$link" ]; then
            echo "$md: link to $link, which the repository does not have"
            status=1
        fi
    done
done
# strerror, gmtime and localtime share a static buffer between threads; their _r forms stay
# allowed (the name must be followed by the parenthesis). strncpy and strncat truncate silently.
banned='\b(strcpy|strcat|strncpy|strncat|sprintf|vsprintf|gets|atoi|atol|atof|strtok|sscanf|rand|system|popen|alloca|assert|strerror|gmtime|localtime)[[:space:]]*\('
if hits=$(echo "$files" | xargs grep -nE "$banned" | grep -vE '^\S+:[0-9]+:\s*(/\*|\*)' | grep -vE 'cmocka|assert_|static_assert'); then
    echo "banned calls (use snprintf, strtoll with end checks, randombytes_buf, ASSERT, err_strerror,"
    echo "gmtime_r, localtime_r):"
    echo "$hits"
    status=1
fi
# The environment is read in one place, the settings table: other code asks config_env.
if hits=$(git ls-files 'src/*.c' 'src/*.h' | grep -v '^src/core/config\.c$' |
    xargs grep -nE '\b(secure_)?getenv[[:space:]]*\(' | grep -vE '^\S+:[0-9]+:\s*(/\*|\*)'); then
    echo "getenv outside src/core/config.c (add the variable to its table and use config_env):"
    echo "$hits"
    status=1
fi
[ $status -eq 0 ] && echo "1 passed, 0 failed" || echo "0 passed, 1 failed"
exit $status
