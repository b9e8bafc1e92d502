#!/usr/bin/env bash
# HTTP ceiling benchmark (not a test): wrk against GET /healthz and the
# msgpack echo route POST /v1/bench/echo (1 KiB payload) of one spro-server
# (release build, started with --bench), in the same run.  Writes the
# numbers and the machine into docs/BENCHMARKS.md between the
# "bench:http" markers.
#
# usage: tools/bench/http.sh [SECONDS] [CONNECTIONS]   (defaults 10, 32)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-10}
conns=${2:-32}

tools/dev.sh build wrk >/dev/null
work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

./build/tools/spro-admin --data "$work/var" init >/dev/null
./build/server/spro-server --data "$work/var" --listen 127.0.0.1:0 --bench \
    >/dev/null 2>"$work/server.log" &
pid=$!
port=
for _ in $(seq 100); do
    port=$(grep -o '"port":[0-9]*' "$work/server.log" 2>/dev/null | head -1 | cut -d: -f2) || true
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

# The echo request: {"v":0,"type":"echo","id":1,"data":<1024 bytes>}.
cat >"$work/echo.lua" <<'LUA'
local head = "\x84\xa1v\x00\xa4type\xa4echo\xa2id\x01\xa4data\xc5\x04\x00"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/msgpack"
wrk.body = head .. string.rep("x", 1024)
LUA

# Prints "requests/s p99" from one wrk run.
measure() {
    local out
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$@")
    if echo "$out" | grep -q 'Non-2xx'; then
        echo "wrk saw errors:" >&2; echo "$out" >&2; exit 1
    fi
    local rps p99
    rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    echo "$rps $p99"
}

read -r h_rps h_p99 < <(measure "http://127.0.0.1:$port/healthz")
read -r e_rps e_p99 < <(measure -s "$work/echo.lua" "http://127.0.0.1:$port/v1/bench/echo")

cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
section=$(cat <<MD
<!-- bench:http begin -->
## HTTP ceiling (tools/bench/http.sh)

Run on $(date -u +%Y-%m-%d): $(nproc) cores ($cpu), $mem, Linux $(uname -r),
Debian $(cat /etc/debian_version 2>/dev/null || echo '?'); release build (RelWithDebInfo),
one spro-server (one loop thread, 4 worker threads), wrk 1 thread, $conns connections,
${secs} s per route, HTTP/1.1 keep-alive over loopback, client and server on the same 2 cores.

| route | what it does | requests/s | p99 latency |
|---|---|---:|---:|
| GET /healthz | hop to a worker thread, SELECT on data.db, msgpack answer | $h_rps | $h_p99 |
| POST /v1/bench/echo | strict decode of a 1 KiB msgpack echo, re-encode (loop thread) | $e_rps | $e_p99 |

This is the ceiling later endpoints are compared with.
<!-- bench:http end -->
MD
)

doc=docs/BENCHMARKS.md
if [ ! -f "$doc" ]; then
    printf '# Benchmarks\n\nEvery number here comes from a script in tools/bench, run as written.\n\n' >"$doc"
fi
if grep -q '<!-- bench:http begin -->' "$doc"; then
    awk -v repl="$section" '
        /<!-- bench:http begin -->/ {print repl; skip=1; next}
        /<!-- bench:http end -->/ {skip=0; next}
        !skip {print}' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
else
    printf '%s\n' "$section" >>"$doc"
fi
echo "$section"
