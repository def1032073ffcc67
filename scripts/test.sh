#!/usr/bin/env bash
# test.sh -- the whole test suite from a fresh machine: set up, build (plain and with
# AddressSanitizer + UndefinedBehaviorSanitizer), start the local servers, run every test with
# ctest in both builds (the deployment checks, which run no pixflow code, only once), fuzz the URL
# validator and the JPEG and PNG decoders briefly, stop the servers (also on failure).
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    plain build only, no sanitizers, no fuzzing
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

scripts/setup.sh

build() { # dir, extra cmake args...
    local dir=$1
    shift
    echo "test: building $dir $*"
    cmake -S . -B "$dir" -DPIXFLOW_WERROR=ON -DPIXFLOW_TESTS=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs" >"$dir/build-output.log" 2>&1 || { tail -50 "$dir/build-output.log"; exit 1; }
}

build build
[ $quick = 1 ] || build build-asan -DPIXFLOW_SANITIZE=address,undefined

export PIXFLOW_STACK_DIR=$root/build/stack
trap 'scripts/stack.sh stop >/dev/null || true' EXIT
scripts/stack.sh stop >/dev/null 2>&1 || true
rm -rf "$PIXFLOW_STACK_DIR"
PIXFLOW_BUILD_DIR=$root/build scripts/stack.sh start
export PIXFLOW_STACK_ENV=$PIXFLOW_STACK_DIR/env

status=0
echo "test: ctest (plain build)"
ctest --test-dir build --output-on-failure -j"$jobs" || status=1
if [ $quick = 0 ]; then
    echo "test: ctest (address,undefined sanitizers)"
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j"$jobs" -E '^deploy\.' || status=1
    if [ -f tests/fuzz/CMakeLists.txt ]; then
        echo "test: fuzzing (clang, libFuzzer)"
        CC=clang cmake -S . -B build-fuzz -DPIXFLOW_FUZZ=ON -DPIXFLOW_TESTS=ON >/dev/null
        cmake --build build-fuzz -j2 --target fuzz_url fuzz_jpeg fuzz_png pixflow-hostile \
            >build-fuzz/build-output.log 2>&1 ||
            { tail -50 build-fuzz/build-output.log; exit 1; }
        ctest --test-dir build-fuzz -R '^fuzz\.' --output-on-failure -j"$jobs" || status=1
    fi
fi
exit $status
