#!/usr/bin/env bash
# Sync benchmark (not a test), in one run: pushes of beneficiaries through a
# real spro-server against a bare SQLite upsert loop of the same rows; the
# initial sync of RECORDS beneficiaries to a fresh device against the same
# work done in-process; and PouchDB (pouchdb-server, installed from npm into
# a temporary folder) replicating the same records both ways.  Writes the
# numbers and the machine into docs/BENCHMARKS.md ("sync" section).
#
# usage: tools/bench/sync.sh [RECORDS] [CONNECTIONS] [SECONDS]
#        (defaults 100000 records, 2 pushing connections, 10 s per push phase)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
records=${1:-100000}
conns=${2:-2}
secs=${3:-10}
# The PouchDB side, pinned.
pouchdb_server_version=4.2.0
pouchdb_node_version=9.0.0

tools/dev.sh build >/dev/null
. tools/bench/lib.sh
bench=./build/tools/spro-sync-bench

# The server (and every server-side stand-in: the in-process ceilings,
# pouchdb-server) on core 0, the devices on the other core(s).
client_pin=()
if [ "$(nproc)" -ge 2 ]; then
    server_cpus=0
    client_pin=(taskset -c "1-$(($(nproc) - 1))")
fi
server_pin=()
[ -n "${server_cpus:-}" ] && server_pin=(taskset -c "$server_cpus")

pouch_pid=
pouch_tmp=
sync_cleanup() {
    if [ -n "$pouch_pid" ]; then kill "$pouch_pid" 2>/dev/null; wait "$pouch_pid" 2>/dev/null; fi
    [ -n "$pouch_tmp" ] && rm -rf "$pouch_tmp"
    bench_cleanup
}
trap sync_cleanup EXIT

field() { # line key -> the value after key
    awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$1"
}
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.0f MiB", k / 1024}'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN {p = 100 * a / b; printf(p < 10 ? "%.1f%%" : "%.0f%%", p)}'; }
ratio_x() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f×", a / b}'; }

# ---- spro-sync ---------------------------------------------------------
echo "sync.sh: loading $records beneficiaries in-process" >&2
./build/tools/spro-admin --data "$work/var" init >/dev/null
load=$("$bench" load --data "$work/var" --records "$records")
echo "$load" >&2

echo "sync.sh: initial sync, in-process ceiling" >&2
ceil_pull=$("${server_pin[@]}" "$bench" pull-ceiling --data "$work/var" --records "$records")
echo "$ceil_pull" >&2

bench_start_server
echo "sync.sh: initial sync through spro-server" >&2
reset_hwm "$pid"
pull=$("${client_pin[@]}" "$bench" pull --port "$port" --data "$work/var" --records "$records")
echo "$pull" >&2
pull_hwm=$(hwm_kb "$pid")

echo "sync.sh: pushes through spro-server ($conns connections, ${secs} s per phase)" >&2
reset_hwm "$pid"
push=$("${client_pin[@]}" "$bench" push --port "$port" --data "$work/var" --connections "$conns" \
    --seconds "$secs")
echo "$push" >&2
push_hwm=$(hwm_kb "$pid")
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

push_create=$(grep '^push-create ' <<<"$push")
push_edit=$(grep '^push-edit ' <<<"$push")
batch_c=$(field "$push_create" batch)
batch_e=$(field "$push_edit" batch)

echo "sync.sh: SQLite ceiling" >&2
ceil_push=$("${server_pin[@]}" ./build/tools/spro-sqlite-ceiling --db "$work/ceiling.db" \
    --preload "$records" --batch-create "$batch_c" --batch-edit "$batch_e" --seconds "$secs")
echo "$ceil_push" >&2
rm -f "$work"/ceiling.db*
ceil_create=$(grep '^ceiling-create ' <<<"$ceil_push")
ceil_edit=$(grep '^ceiling-edit ' <<<"$ceil_push")

# ---- PouchDB -----------------------------------------------------------
pouch_ok=
pouch_why=
pouch_tmp=$(mktemp -d)
echo "sync.sh: npm install pouchdb-server@$pouchdb_server_version pouchdb-node@$pouchdb_node_version" >&2
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    pouch_why="npm or node is not installed on this machine"
elif ! npm install --prefix "$pouch_tmp" --no-audit --no-fund --loglevel=error \
    "pouchdb-server@$pouchdb_server_version" "pouchdb-node@$pouchdb_node_version" \
    >"$pouch_tmp/npm.log" 2>&1; then
    cat "$pouch_tmp/npm.log" >&2
    pouch_why="\`npm install pouchdb-server@$pouchdb_server_version pouchdb-node@$pouchdb_node_version\` failed on this machine"
else
    "$bench" records --records "$records" >"$pouch_tmp/records.jsonl"
    pouch_port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1",
        () => { console.log(s.address().port); s.close(); });')
    mkdir "$pouch_tmp/srv" "$pouch_tmp/client"
    # pouchdb-server writes its config.json and log.txt in its working directory.
    (cd "$pouch_tmp/srv" && exec "${server_pin[@]}" node \
        "$pouch_tmp/node_modules/pouchdb-server/bin/pouchdb-server" --host 127.0.0.1 \
        --port "$pouch_port" --dir "$pouch_tmp/srv/db" --no-stdout-logs \
        >"$pouch_tmp/server.out" 2>&1) &
    pouch_pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$pouch_port/" >/dev/null 2>&1 && break
        sleep 0.2
    done
    replicate() {
        NODE_PATH="$pouch_tmp/node_modules" "${client_pin[@]}" node \
            tools/bench/pouchdb/replicate.js "$1" "$pouch_tmp/records.jsonl" \
            "http://127.0.0.1:$pouch_port" "$pouch_tmp/client"
    }
    if ! curl -sf "http://127.0.0.1:$pouch_port/" >/dev/null 2>&1; then
        cat "$pouch_tmp/server.out" >&2
        pouch_why="pouchdb-server $pouchdb_server_version did not start on this machine"
    else
        echo "sync.sh: PouchDB push" >&2
        reset_hwm "$pouch_pid"
        if pouch_push=$(replicate push); then
            echo "$pouch_push" >&2
            pouch_push_hwm=$(hwm_kb "$pouch_pid")
            echo "sync.sh: PouchDB initial pull" >&2
            reset_hwm "$pouch_pid"
            if pouch_pull=$(replicate pull); then
                echo "$pouch_pull" >&2
                pouch_pull_hwm=$(hwm_kb "$pouch_pid")
                pouch_ok=1
            else
                pouch_why="the PouchDB pull failed (replicate.js pull)"
            fi
        else
            pouch_why="the PouchDB push failed (replicate.js push)"
        fi
    fi
    kill "$pouch_pid" 2>/dev/null
    wait "$pouch_pid" 2>/dev/null || true
    pouch_pid=
fi

# ---- the section -------------------------------------------------------
n_fmt=$(sed -E ':a;s/^([0-9]+)([0-9]{3})/\1,\2/;ta' <<<"$records")
pc_rate=$(field "$push_create" ops/s)
pe_rate=$(field "$push_edit" ops/s)
cc_rate=$(field "$ceil_create" rows/s)
ce_rate=$(field "$ceil_edit" rows/s)
pl_rate=$(field "$pull" records/s)
cp_rate=$(field "$ceil_pull" records/s)
op_c=$(($(field "$push_create" bytes) / batch_c))
op_e=$(($(field "$push_edit" bytes) / batch_e))
per_answer=$((records / $(field "$pull" pulls)))
verdict() { # value goal -> "met" or "not met"
    awk -v v="$1" -v g="$2" 'BEGIN {print (v >= g ? "met" : "not met")}'
}
pcr=$(awk -v a="$pc_rate" -v b="$cc_rate" 'BEGIN {print a / b}')
per=$(awk -v a="$pe_rate" -v b="$ce_rate" 'BEGIN {print a / b}')
plr=$(awk -v a="$pl_rate" -v b="$cp_rate" 'BEGIN {print a / b}')
goals="* push ≥ 50% of the SQLite ceiling: **$(verdict "$per" 0.5)** for edits ($(pct "$pe_rate" "$ce_rate")), **$(verdict "$pcr" 0.5)** for new beneficiaries ($(pct "$pc_rate" "$cc_rate"));
* initial sync ≥ 20% of the in-process ceiling: **$(verdict "$plr" 0.2)** ($(pct "$pl_rate" "$cp_rate"));"

if [ -n "$pouch_ok" ]; then
    pp_rate=$(field "$pouch_push" docs/s)
    pq_rate=$(field "$pouch_pull" docs/s)
    peer_rows="| PouchDB push: local PouchDB → pouchdb-server | $n_fmt docs, batch_size 500 | $pp_rate docs/s | $(field "$pouch_push" seconds) s | $(mib "$pouch_push_hwm") | spro-sync's push of new beneficiaries: **$(ratio_x "$pc_rate" "$pp_rate")** |
| PouchDB initial pull: pouchdb-server → fresh local PouchDB | $n_fmt docs, batch_size 500 | $pq_rate docs/s | $(field "$pouch_pull" seconds) s | $(mib "$pouch_pull_hwm") | spro-sync's initial sync: **$(ratio_x "$pl_rate" "$pq_rate")** |"
    peer_ratio=$(awk -v a="$pl_rate" -v b="$pq_rate" 'BEGIN {print a / b}')
    push_ratio=$(awk -v a="$pc_rate" -v b="$pp_rate" 'BEGIN {print a / b}')
    goals="$goals
* spro-sync ≥ 10× PouchDB's records/s: **$(verdict "$peer_ratio" 10)** for the initial sync ($(ratio_x "$pl_rate" "$pq_rate")), **$(verdict "$push_ratio" 10)** for pushes of new records ($(ratio_x "$pc_rate" "$pp_rate"))."
    peer_text="* **PouchDB** (tools/bench/pouchdb/replicate.js): pouchdb-server
  $pouchdb_server_version (express-pouchdb on LevelDB, its defaults) and, in
  the device's place, pouchdb-node $pouchdb_node_version (LevelDB), installed
  from npm into a temporary folder by the script, Node $(node --version);
  the same $n_fmt beneficiaries as JSON documents (\`_id\` the UUID, the
  seven fields as strings).  Push: \`PouchDB.replicate(local, server)\`
  from a local database loaded beforehand (not timed); pull:
  \`PouchDB.replicate(server, fresh local)\`, then every field of every
  document is compared.  pouchdb-server on core 0, the replicating Node
  process on the other core; its peak RSS is measured for each direction
  alone.  PouchDB writes its LevelDB batches without LevelDB's \`sync\`
  option (no fsync per write), where spro-server answers a push only once
  it is committed with an fsync."
else
    peer_rows="| PouchDB | not measured | | | | $pouch_why |"
    goals="$goals
* spro-sync ≥ 10× PouchDB's records/s: not measured ($pouch_why)."
    peer_text="* **PouchDB** could not be measured in this run: $pouch_why."
fi

bench_write_section sync "## Sync (tools/bench/sync.sh)

$(bench_machine)
One run of \`tools/bench/sync.sh $records $conns $secs\`: spro-server (one
loop thread, 4 worker threads), pouchdb-server and the in-process ceilings
on core 0, the devices (spro-sync-bench, replicate.js) on the other core.
spro-server's peak RSS counts the pages of data.db that SQLite maps for
reading (\`mmap_size\`): file pages shared with the kernel's page cache,
not memory of the process (after an initial sync of 100,000 records:
RssFile 181 MiB, RssAnon 5 MiB).

| what | how | rate | time | server peak RSS | against |
|---|---|---:|---:|---:|---|
| **Push, new beneficiaries** | $conns devices, pushes of $batch_c ops (7 fields), ${secs} s | $pc_rate ops/s | p50 $(field "$push_create" p50_ms) ms a push | $(mib "$push_hwm") (both push rows) | **$(pct "$pc_rate" "$cc_rate")** of its SQLite ceiling |
| SQLite ceiling, new rows | the same rows, $batch_c a transaction | $cc_rate rows/s | | | |
| **Push, edits** | $conns devices, pushes of $batch_e ops (2 fields, each with its base), ${secs} s | $pe_rate ops/s | p50 $(field "$push_edit" p50_ms) ms a push | | **$(pct "$pe_rate" "$ce_rate")** of its SQLite ceiling |
| SQLite ceiling, edits | the same 2 columns, $batch_e a transaction | $ce_rate rows/s | | | |
| In-process load (no server) | spro_sync_push() on the data directory, pushes of $batch_c new beneficiaries | $(field "$load" ops/s) ops/s | $(field "$load" seconds) s | | |
| **Initial sync** of $n_fmt beneficiaries | fresh device, through spro-server, $(field "$pull" pulls) pulls | $pl_rate records/s | $(field "$pull" seconds) s | $(mib "$pull_hwm") | **$(pct "$pl_rate" "$cp_rate")** of the in-process ceiling |
| In-process pull ceiling | the same pulls, no server, no device | $cp_rate records/s | $(field "$ceil_pull" seconds) s | | |
$peer_rows

Goals of the issue:
$goals

What each side does:
* **Push** (spro-sync-bench push): each device has its own thread and
  keep-alive connection; it seals a \`push\`, POSTs it to /v1/sync/push,
  opens the \`push_reply\` and checks that every op is acknowledged.  First
  ${secs} s of new beneficiaries (the seven fields of the initial sync's
  records, about $op_c bytes an op), then ${secs} s of edits of those
  records (phone and situation, each field with the version its last push
  got as base: about $op_e bytes an op).  The server decrypts (on a worker
  thread: a push is a chunked sealed message of several frames), decodes
  and applies each push, committed with an fsync (WAL, synchronous=FULL)
  before its answer leaves: per op the retry check, record and scope
  lookups, per field the merge with the stored siblings (personal ones
  opened with the beneficiary's data key), personal values sealed, the
  dedup blind index and duplicate search, the answer kept in \`ops\`.  The
  data keys of new beneficiaries are made, wrapped and committed to keys.db
  first (one more fsync a transaction).  Pushes of the $conns devices that
  arrive while a transaction runs share the next one (group commit).
* **Batch size**: $batch_c new beneficiaries or $batch_e edits a push (the
  largest that fits both 1,000 ops and the client's 1 MiB push limit,
  counted with every value at its longest); every push of the run carries
  exactly that.
* **SQLite ceiling** (spro-sqlite-ceiling): one table, one row per
  beneficiary (UUID key, one TEXT column per field), first loaded with the
  $n_fmt beneficiaries (not timed); then the same values from the same
  generator, \`INSERT ... ON CONFLICT DO UPDATE\` with a prepared statement,
  one transaction per batch of the pushes' size, WAL and synchronous=FULL,
  on the same disk, ${secs} s each: new rows, then edits of them.  No
  encryption, versions, merge or answers.
* **Initial sync** (spro-sync-bench pull): a device enrolled just before
  (its handshake is in the time) sends sealed \`pull\`s (limit 1000) until
  \`more\` is false; the server answers each from one read transaction,
  records in change order with their personal fields opened, at most 1 MiB
  an answer (about $per_answer records); the device opens and
  decodes every answer and checks every field of every record.
* **In-process pull ceiling** (spro-sync-bench pull-ceiling): the server's
  side of the same pulls without HTTP, channel or device:
  \`spro_sync_pull()\` in a loop (SQLite paged read in change order, data
  keys unwrapped, personal fields decrypted, the answer built), each answer
  encoded to msgpack and sealed with a Noise CipherState.
* **Load**: the $n_fmt beneficiaries are pushed in-process before the
  server starts (spro_sync_push() on the data directory, one device).
$peer_text"
