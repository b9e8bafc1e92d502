#!/bin/sh
# run_fuzz.sh FUZZER SEEDS SECONDS: runs a libFuzzer target for SECONDS
# seconds from the committed seed folder SEEDS.  New inputs go to a fresh
# temporary folder (given first, so libFuzzer writes there and never into
# the repository), removed afterwards.  Crash files land in the working
# folder (ctest's: the build tree).  Exits with the fuzzer's status.
set -u
if [ $# -ne 3 ]; then
    echo "usage: $0 FUZZER SEEDS SECONDS" >&2
    exit 2
fi
fuzzer=$1
seeds=$2
seconds=$3

work=$(mktemp -d "${TMPDIR:-/tmp}/spro-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" "$seeds"
status=$?
exit $status
