#!/usr/bin/env bash
# Device channel benchmark (not a test), one server, one run: spro-bench
# drives the plain msgpack echo (the baseline), the same 1 KiB echo sealed
# in the Noise channel, and full Noise_IK handshakes.  Writes the numbers
# and the machine into docs/BENCHMARKS.md ("channel" section).
#
# usage: tools/bench/channel.sh [SECONDS] [CONNECTIONS]   (defaults 10, 8)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
secs=${1:-10}
conns=${2:-8}

tools/dev.sh build >/dev/null
. tools/bench/lib.sh
# The server on core 0, the load generator (which seals and opens frames
# too) on the other cores, so that the load does not eat the server's CPU.
client_pin=()
if [ "$(nproc)" -ge 2 ]; then
    server_cpus=0
    client_pin=(taskset -c "1-$(($(nproc) - 1))")
fi
bench_start_server --bench

run() { # mode -> "requests/s p50_us p99_us"
    "${client_pin[@]}" ./build/tools/spro-bench --port "$port" --data "$work/var" --mode "$1" \
        --connections "$conns" --seconds "$secs" | awk '{print $3, $5, $7}'
}
read -r p_rps p_p50 p_p99 < <(run plain-echo)
read -r s_rps s_p50 s_p99 < <(run sealed-echo)
read -r h_rps h_p50 h_p99 < <(run handshake)
ratio=$(awk -v s="$s_rps" -v p="$p_rps" 'BEGIN {printf "%.0f", 100 * s / p}')

bench_write_section channel "## Device channel (tools/bench/channel.sh)

$(bench_machine)
One spro-server (one loop thread, 4 worker threads) pinned to core 0;
spro-bench on the other core(s) with $conns threads, one keep-alive
connection each, closed loop, ${secs} s per mode, in this order in one run.
spro-bench seals and opens frames itself.

| mode | what one request is | requests/s | p50 | p99 |
|---|---|---:|---:|---:|
| plain-echo (baseline) | POST /v1/bench/echo, 1 KiB msgpack echo | $p_rps | ${p_p50} µs | ${p_p99} µs |
| sealed-echo | the same echo in a sealed frame (POST /v1/bench/sealed-echo): decrypt, replay window, devices-generation check, decode, encode, encrypt | $s_rps | ${s_p50} µs | ${s_p99} µs |
| handshake | a full Noise_IK handshake (POST /v1/session): 4 X25519 on the server, device lookup and timestamp UPDATE (fsync'd) on a worker | $h_rps | ${h_p50} µs | ${h_p99} µs |

Sealed echo reaches **${ratio}%** of the plain echo's requests/s (goal: at least 70%)."
