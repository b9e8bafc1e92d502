#!/usr/bin/env bash
# The two set-up commands of spro-sync on Debian 12 (see README.md):
#
#   tools/dev.sh run [SERVER-OPTION]...   install what is missing, build, create ./var
#                                         on first run, serve on 127.0.0.1:8080
#   tools/dev.sh test [CTEST-OPTION]...   install what is missing, build the test
#                                         configuration (clang, ASan+UBSan, fuzzers)
#                                         and run the whole suite through ctest
#
# Packages are installed with apt-get, through sudo when not run as root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)

build_pkgs=(cmake make gcc pkg-config libh2o-dev libuv1-dev libsqlite3-dev libsodium-dev
            libmsgpack-dev libssl-dev libqrencode-dev)
test_pkgs=(clang clang-format libclang-rt-14-dev openssl)

usage() {
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
}

# Installs the packages of "$@" that are not installed yet.
install_missing() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "dev.sh: installing ${missing[*]}" >&2
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "dev.sh: run as root or install sudo" >&2; exit 1; }
        sudo=(sudo)
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"
}

# The release build in ./build (also used by the benchmarks).
cmd_build() {
    install_missing "${build_pkgs[@]}" "$@"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPRO_TESTS=OFF >/dev/null
    cmake --build build -j "$jobs"
}

cmd_run() {
    cmd_build
    if [ ! -e var/master.key ]; then
        ./build/tools/spro-admin --data ./var init
    fi
    exec ./build/server/spro-server --data ./var --listen 127.0.0.1:8080 "$@"
}

cmd_test() {
    install_missing "${build_pkgs[@]}" "${test_pkgs[@]}"
    local werror=OFF
    [ "${CI:-}" = true ] && werror=ON
    CC=clang cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DSPRO_ASAN=ON -DSPRO_UBSAN=ON \
        -DSPRO_FUZZ=ON -DSPRO_WERROR="$werror" >/dev/null
    cmake --build build-test -j "$jobs"
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    cd build-test
    ctest --output-on-failure -j "$jobs" "$@"
}

case "${1:-}" in
run) shift; cmd_run "$@" ;;
build) shift; cmd_build "$@" ;;   # for tools/bench: build, plus extra packages named

test) shift; cmd_test "$@" ;;
-h|--help|help) usage ;;
*) usage >&2; exit 2 ;;
esac
