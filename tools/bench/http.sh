#!/usr/bin/env bash
# HTTP ceiling benchmark (not a test): wrk against GET /healthz and the
# msgpack echo route POST /v1/bench/echo (1 KiB payload) of one spro-server
# (release build, started with --bench), in the same run.  Writes the
# numbers and the machine into docs/BENCHMARKS.md ("http" section).
#
# usage: tools/bench/http.sh [SECONDS] [CONNECTIONS]   (defaults 10, 32)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-10}
conns=${2:-32}

tools/dev.sh build wrk >/dev/null
. tools/bench/lib.sh
bench_start_server --bench

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
    echo "$(echo "$out" | awk '/^Requests\/sec:/ {print $2}') $(echo "$out" | awk '$1 == "99%" {print $2}')"
}

read -r h_rps h_p99 < <(measure "http://127.0.0.1:$port/healthz")
read -r e_rps e_p99 < <(measure -s "$work/echo.lua" "http://127.0.0.1:$port/v1/bench/echo")

bench_write_section http "## HTTP ceiling (tools/bench/http.sh)

$(bench_machine)
One spro-server (one loop thread, 4 worker threads), wrk 1 thread, $conns
connections, ${secs} s per route, HTTP/1.1 keep-alive; client and server
share the cores.

| route | what it does | requests/s | p99 latency |
|---|---|---:|---:|
| GET /healthz | hop to a worker thread, SELECT on data.db, msgpack answer | $h_rps | $h_p99 |
| POST /v1/bench/echo | strict decode of a 1 KiB msgpack echo, re-encode (loop thread) | $e_rps | $e_p99 |

This is the ceiling later endpoints are compared with."
