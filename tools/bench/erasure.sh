#!/usr/bin/env bash
# Export and erasure latency (a benchmark, not a test).  Loads RECORDS
# beneficiaries (seven fields each, one device of the organisation "bench")
# in-process with `spro-sync-bench load`, then times SAMPLES runs each of
#   spro-admin subject export ID   (JSON to /dev/null)
#   spro-admin subject erase ID    (step 1 in data.db, key deletion, both
#                                   WALs checkpointed, marked done)
# on distinct beneficiaries, and `spro-admin info` (the same process start
# and data directory open, no work) as the baseline.  Each time is a whole
# command as an operator runs it.  Prints min, median and max in ms.
#
# usage: tools/bench/erasure.sh [RECORDS] [SAMPLES] [BUILD_DIR]
#        (defaults 10000 records, 20 samples, ./build built by tools/dev.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=${1:-10000}
samples=${2:-20}
build=${3:-}
if [ -z "$build" ]; then
    tools/dev.sh build >/dev/null
    build=./build
fi
admin=$build/tools/spro-admin
bench=$build/tools/spro-sync-bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
data=$tmp/data

"$admin" --data "$data" init >/dev/null
"$bench" load --data "$data" --records "$records"
mapfile -t ids < <("$bench" records --records "$samples" | sed -n 's/^{"_id":"\([^"]*\)".*/\1/p')
[ "${#ids[@]}" -eq "$samples" ] || { echo "expected $samples ids" >&2; exit 1; }

# ms of one command (its output discarded; it must succeed).
time_ms() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000))
}

# "name min median max" of the microsecond samples on stdin, in ms.
summary() {
    sort -n | awk -v name="$1" '{ v[NR] = $1 } END {
        printf "%-8s n %d  min %.1f ms  median %.1f ms  max %.1f ms\n", name, NR,
               v[1] / 1000, v[int((NR + 1) / 2)] / 1000, v[NR] / 1000 }'
}

for _ in $(seq "$samples"); do time_ms "$admin" --data "$data" info; done | summary info
for id in "${ids[@]}"; do
    time_ms "$admin" --data "$data" subject export "$id"
done | summary export
for id in "${ids[@]}"; do
    time_ms "$admin" --data "$data" subject erase "$id" --reason bench
done | summary erase
echo "data.db $(stat -c %s "$data/data.db") bytes, keys.db $(stat -c %s "$data/keys.db") bytes," \
    "$records beneficiaries, $(nproc) cores"
