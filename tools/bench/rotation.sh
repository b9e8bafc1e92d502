#!/usr/bin/env bash
# Key rotation benchmark (not a test), in one run: KEYS data keys loaded
# straight into keys.db, then pushes through a real spro-server for
# SECONDS of creations and SECONDS of edits without a rotation, then
# `spro-admin key rotate` and the same pushes while the server re-wraps
# every data key in the background (batches of 1,000, one keys.db
# transaction each).  Prints keys/s of the re-wrap (rotation to the
# destruction of the old epoch) and push ops/s with and without it, and
# writes them with the machine into docs/BENCHMARKS.md ("rotation"
# section).
#
# usage: tools/bench/rotation.sh [KEYS] [CONNECTIONS] [SECONDS]
#        (defaults 1000000 keys, 2 pushing connections, 10 s per push phase)
#        BUILD_DIR=DIR uses the programs built there instead of building ./build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
keys=${1:-1000000}
conns=${2:-2}
secs=${3:-10}
build=${BUILD_DIR:-build}
[ -n "${BUILD_DIR:-}" ] || tools/dev.sh build >/dev/null
. tools/bench/lib.sh
bench=./$build/tools/spro-sync-bench
admin=./$build/tools/spro-admin

# The server on core 0, the devices and spro-admin on the other core(s).
client_pin=()
server_pin=()
if [ "$(nproc)" -ge 2 ]; then
    server_pin=(taskset -c 0)
    client_pin=(taskset -c "1-$(($(nproc) - 1))")
fi

field() { # line key -> the value after key
    awk -v k="$2" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i + 1); exit}}' <<<"$1"
}
now() { date +%s.%N; }
status_field() { # json key -> number
    sed -n "s/.*\"$2\": \\([0-9]*\\).*/\\1/p" <<<"$1" | head -1
}

echo "rotation.sh: loading $keys data keys into keys.db" >&2
"$admin" --data "$work/var" init >/dev/null
load=$("$bench" keys-load --data "$work/var" --records "$keys")
echo "$load" >&2

"${server_pin[@]}" "./$build/server/spro-server" --data "$work/var" --listen 127.0.0.1:0 \
    >/dev/null 2>"$work/server.log" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(grep -ao '"port":[0-9]*' "$work/server.log" 2>/dev/null | head -1 | cut -d: -f2) || true
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { cat "$work/server.log" >&2; exit 1; }

echo "rotation.sh: pushes without a rotation ($conns connections, ${secs} s per phase)" >&2
base=$("${client_pin[@]}" "$bench" push --port "$port" --data "$work/var" --connections "$conns" \
    --seconds "$secs")
echo "$base" >&2

echo "rotation.sh: key rotate, then the same pushes while the server re-wraps" >&2
before=$("$admin" --data "$work/var" key status --json)
total=$(status_field "$before" data_keys)
t0=$(now)
"${client_pin[@]}" "$admin" --data "$work/var" key rotate >/dev/null
"${client_pin[@]}" "$bench" push --port "$port" --data "$work/var" --connections "$conns" \
    --seconds "$secs" >"$work/push-rotating.txt" &
pusher=$!
done_at=
push_done_at=
while :; do
    if [ -z "$push_done_at" ] && ! kill -0 "$pusher" 2>/dev/null; then push_done_at=$(now); fi
    if grep -q '"key_epoch_destroyed"' "$work/server.log"; then
        done_at=$(now)
        break
    fi
    sleep 0.2
done
wait "$pusher"
[ -n "$push_done_at" ] || push_done_at=$(now)
rot=$(cat "$work/push-rotating.txt")
echo "$rot" >&2
after=$("$admin" --data "$work/var" key status --json)
echo "$after" >&2
moved=$(status_field "$after" data_keys) # every key, old and new, under the new epoch
rewrap_s=$(awk -v a="$t0" -v b="$done_at" 'BEGIN {printf "%.1f", b - a}')
kps=$(awk -v n="$total" -v s="$rewrap_s" 'BEGIN {printf "%.0f", n / s}')
overlap=$(awk -v a="$push_done_at" -v b="$done_at" 'BEGIN {print (a <= b) ? "yes" : "no"}')
kill "$pid"
wait "$pid" 2>/dev/null || true
pid=

line() { # phase label base rotating
    local b r
    b=$(field "$(grep "^$1 " <<<"$base")" ops/s)
    r=$(field "$(grep "^$1 " <<<"$rot")" ops/s)
    printf '| %s | %s | %s | %s |\n' "$2" "$b" "$r" \
        "$(awk -v a="$b" -v c="$r" 'BEGIN {printf "%.0f%%", 100 * c / a}')"
}

text=$(cat <<TEXT
## Key rotation

\`tools/bench/rotation.sh $keys $conns $secs\`: $keys data keys loaded straight
into keys.db ($(field "$load" keys_per_s) keys/s, 10,000 per transaction), then
\`spro-admin key rotate\` with spro-server up: the server re-wraps every data
key under the new epoch in batches of 1,000 (one keys.db transaction each, at
most --rewrap-budget ms of batches per second of a worker thread, default
250) and destroys the old
epoch, while $conns devices push (${secs} s of new beneficiaries, then ${secs} s of
edits), against the same pushes before the rotation in the same run.

- Re-wrap: $total data keys in $rewrap_s s from the rotation to the
  destruction of the old epoch: **$kps keys/s** (with the pushes running).
  $moved data keys under the new epoch afterwards (the old ones and those
  the pushes created).  The pushes ran entirely during the re-wrap: $overlap.

| pushes | ops/s without rotation | ops/s during the re-wrap | ratio |
|---|---|---|---|
$(line push-create "new beneficiaries")
$(line push-edit "edits")

$(bench_machine)
TEXT
)
bench_write_section rotation "$text"
