# Shared by the benchmark scripts of tools/bench (sourced, not run).
#
#   bench_start_server [SERVER-OPTION]...   init a data dir in $work (unless there), start a release
#                                           spro-server on a free loopback port: $port, $pid
#                                           (pinned to the cores in $server_cpus when set)
#   bench_machine                           one paragraph describing this machine
#   bench_write_section NAME TEXT           replace (or append) the NAME section of
#                                           docs/BENCHMARKS.md, between its markers

work=$(mktemp -d)
pid=
bench_cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi
    rm -rf "$work"
}
trap bench_cleanup EXIT

bench_start_server() {
    # A data directory already made in $work/var (e.g. loaded beforehand) is kept.
    [ -e "$work/var/master.key" ] || ./build/tools/spro-admin --data "$work/var" init >/dev/null
    local pin=()
    [ -n "${server_cpus:-}" ] && pin=(taskset -c "$server_cpus")
    "${pin[@]}" ./build/server/spro-server --data "$work/var" --listen 127.0.0.1:0 "$@" \
        >/dev/null 2>"$work/server.log" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(grep -ao '"port":[0-9]*' "$work/server.log" 2>/dev/null | head -1 | cut -d: -f2) || true
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    echo "server did not start" >&2
    cat "$work/server.log" >&2
    exit 1
}

bench_machine() {
    local cpu mem
    cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
    mem=$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
    echo "Run on $(date -u +%Y-%m-%d): $(nproc) cores ($cpu), $mem, Linux $(uname -r)," \
        "Debian $(cat /etc/debian_version 2>/dev/null || echo '?'); release build (RelWithDebInfo)," \
        "over loopback."
}

bench_write_section() {
    local name=$1 text=$2 doc=docs/BENCHMARKS.md
    local section
    section=$(printf '<!-- bench:%s begin -->\n%s\n<!-- bench:%s end -->' "$name" "$text" "$name")
    if [ ! -f "$doc" ]; then
        printf '# Benchmarks\n\nEvery number here comes from a script in tools/bench, run as written.\n\n' >"$doc"
    fi
    if grep -q "<!-- bench:$name begin -->" "$doc"; then
        awk -v repl="$section" -v b="<!-- bench:$name begin -->" -v e="<!-- bench:$name end -->" '
            $0 == b {print repl; skip=1; next}
            $0 == e {skip=0; next}
            !skip {print}' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
    else
        printf '\n%s\n' "$section" >>"$doc"
    fi
    echo "$section"
}
