#!/usr/bin/env bash
# Audit log cost (a benchmark, not a test), in one run: what an audit entry
# costs a pushed op, against what the op costs in all.
#   1. spro-sync-bench load: RECORDS new beneficiaries pushed in-process
#      (1,000-op pushes, each op with its audit entry): the cost of an op.
#   2. spro-audit-bench: ENTRIES entries shaped like a pushed op's, 1,000 a
#      transaction (as in a push), commit included; the keyed hash alone;
#      the verification of the whole chain.
# Writes the numbers and the machine into docs/BENCHMARKS.md ("audit").
#
# usage: tools/bench/audit.sh [RECORDS] [ENTRIES]   (defaults 50000, 200000)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=${1:-50000}
entries=${2:-200000}
tools/dev.sh build >/dev/null
. tools/bench/lib.sh

field() { awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$1"; }

./build/tools/spro-admin --data "$work/load" init >/dev/null
load=$(./build/tools/spro-sync-bench load --data "$work/load" --records "$records")
echo "$load" >&2
./build/tools/spro-admin --data "$work/audit" init >/dev/null
audit=$(./build/tools/spro-audit-bench --data "$work/audit" --entries "$entries" --batch 1000)
echo "$audit" >&2

op_us=$(awk -v r="$(field "$load" ops/s)" 'BEGIN {printf "%.1f", 1e6 / r}')
entry_us=$(field "$audit" us/entry)
hash_us=$(sed -n 's/.* hash us\/entry \([0-9.]*\).*/\1/p' <<<"$audit")
verify_us=$(sed -n 's/.* verify us\/entry \([0-9.]*\).*/\1/p' <<<"$audit")
share=$(awk -v a="$entry_us" -v b="$op_us" 'BEGIN {printf "%.1f%%", 100 * a / b}')

bench_write_section audit "## Audit log (tools/bench/audit.sh)

$(bench_machine)
One run of \`tools/bench/audit.sh $records $entries\`, release build.

| what | how | cost |
|---|---|---:|
| a pushed op, in all | \`spro-sync-bench load\`: $records new beneficiaries pushed in-process, 1,000-op pushes, $(field "$load" ops/s) ops/s | $op_us µs an op |
| **its audit entry** | \`spro-audit-bench\`: $entries entries shaped like a pushed op's, 1,000 a transaction, commit included | **$entry_us µs** an entry ($share of an op) |
| the keyed hash alone | BLAKE2b-256 of the previous hash and the entry | $hash_us µs |
| verifying the chain | \`spro_audit_verify\` over the $entries entries | $verify_us µs an entry |

An entry is one append to the \`audit\` table (sequential key: the last
page of its B-tree) and one keyed hash, in the push's own transaction: no
fsync of its own.
"
