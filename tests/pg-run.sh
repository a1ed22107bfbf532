#!/bin/sh
# Runs a test with MEMSYNC_TEST_PG_URL read from the test cluster's url file.
# usage: pg-run.sh URL_FILE COMMAND [ARGS...]
url_file=$1
shift
MEMSYNC_TEST_PG_URL=$(cat "$url_file") || exit 1
export MEMSYNC_TEST_PG_URL
exec "$@"
