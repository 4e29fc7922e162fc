#!/bin/sh
#   Set up, build and run every test through ctest.
#     scripts/test.sh            the default suite (release build)
#     scripts/test.sh asan       the same suite under ASan + UBSan
#     scripts/test.sh tsan       the same suite under ThreadSanitizer
#     scripts/test.sh valgrind   the suite under valgrind memcheck (scaled down)
#     scripts/test.sh long       the default suite plus the long stress tests
#     scripts/test.sh fuzz       each libFuzzer harness for FUZZ_SECONDS (60)
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
    fuzz)    scripts/setup.sh clang; dir=build-fuzz
             flags="-DSHMIPC_FUZZ=ON -DCMAKE_C_COMPILER=clang -DSHMIPC_BUILD_EXAMPLES=OFF" ;;
    *) echo "usage: $0 [default|long|asan|tsan|valgrind|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $flags >/dev/null
cmake --build "$dir" -j "$jobs"
if [ "$mode" = fuzz ]; then
    #   New inputs go to a scratch corpus; the committed one only seeds it.
    #   A crash leaves its input in $dir/artifacts: add it to the corpus.
    mkdir -p "$dir/artifacts"
    for name in handshake ring; do
        mkdir -p "$dir/corpus-$name"
        "$dir/tests/fuzz/fuzz_$name" -max_total_time="${FUZZ_SECONDS:-60}" \
            -artifact_prefix="$dir/artifacts/$name-" -print_final_stats=1 \
            "$dir/corpus-$name" "tests/fuzz/corpus/$name"
    done
    exit 0
fi
ctest --test-dir "$dir" --output-on-failure -j "$jobs"
