#!/bin/sh
#   Set up, build and run every test through ctest.
#     scripts/test.sh            the default suite (release build)
#     scripts/test.sh asan       the same suite under ASan + UBSan
#     scripts/test.sh tsan       the same suite under ThreadSanitizer
#     scripts/test.sh valgrind   the suite under valgrind memcheck (scaled down)
#     scripts/test.sh long       the default suite plus the long stress tests
set -eu
cd "$(dirname "$0")/.."
mode="${1:-default}"
jobs="$(nproc)"
case "$mode" in
    default) scripts/setup.sh; dir=build; flags="" ;;
    long)    scripts/setup.sh; dir=build-long; flags="-DSHMIPC_LONG_TESTS=ON" ;;
    asan)    scripts/setup.sh; dir=build-asan; flags="-DSHMIPC_SANITIZE=ON" ;;
    tsan)    scripts/setup.sh clang; dir=build-tsan; flags="-DSHMIPC_TSAN=ON -DCMAKE_C_COMPILER=clang" ;;
    valgrind) scripts/setup.sh valgrind; dir=build-valgrind; flags="-DSHMIPC_VALGRIND=ON" ;;
    *) echo "usage: $0 [default|long|asan|tsan|valgrind]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" --output-on-failure -j "$jobs"
