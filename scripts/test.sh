#!/bin/sh
#   Set up, build and run every test through ctest.
#     scripts/test.sh            the default suite (release build)
#     scripts/test.sh asan       the same suite under ASan + UBSan
#     scripts/test.sh tsan       the same suite under ThreadSanitizer
#     scripts/test.sh valgrind   the suite under valgrind memcheck (scaled down)
#     scripts/test.sh long       the default suite plus the long stress tests
#     scripts/test.sh fuzz       each libFuzzer harness for FUZZ_SECONDS (60)
#   The sanitizer and valgrind builds set their own test environment
#   (TSAN_OPTIONS with tests/hostile/tsan.supp; valgrind on every process a
#   test starts): see their blocks in CMakeLists.txt and docs/ci.md. A plain
#   ctest --test-dir build-MODE gets the same.
set -eu
cd "$(dirname "$0")/.."
mode="${1:-default}"
jobs="$(nproc)"
#   clang's sanitizer and libFuzzer runtimes are only a recommendation of
#   Debian's clang, which setup.sh does not install: name them
case "$mode" in
    default) scripts/setup.sh; dir=build; flags="" ;;
    long)    scripts/setup.sh; dir=build-long; flags="-DSHMIPC_LONG_TESTS=ON" ;;
    asan)    scripts/setup.sh; dir=build-asan; flags="-DSHMIPC_SANITIZE=ON" ;;
    tsan)    scripts/setup.sh clang libclang-rt-dev; dir=build-tsan
             flags="-DSHMIPC_TSAN=ON -DCMAKE_C_COMPILER=clang" ;;
    valgrind) scripts/setup.sh valgrind; dir=build-valgrind; flags="-DSHMIPC_VALGRIND=ON" ;;
    fuzz)    scripts/setup.sh clang libclang-rt-dev; dir=build-fuzz
             flags="-DSHMIPC_FUZZ=ON -DCMAKE_C_COMPILER=clang -DSHMIPC_BUILD_EXAMPLES=OFF" ;;
    *) echo "usage: $0 [default|long|asan|tsan|valgrind|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $flags >/dev/null
if [ "$mode" = fuzz ]; then
    cmake --build "$dir" -j "$jobs" --target fuzz_handshake fuzz_ring
else
    cmake --build "$dir" -j "$jobs"
fi
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
status=0
#   Under TSan and valgrind a test runs 10-50 times slower on 2 cores, and
#   a timing-bound wait in a test can miss: such a test gets a second run
#   (a failure that repeats still fails)
retry=""
case "$mode" in tsan|valgrind) retry="--repeat until-pass:2" ;; esac
ctest --test-dir "$dir" --output-on-failure -j "$jobs" $retry || status=$?
#   A report from a process whose exit status no test looks at (a helper, a
#   forked child) still fails the run: every test's whole output is in
#   LastTest.log
case "$mode" in
    asan)     reports='ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer' ;;
    tsan)     reports='WARNING: ThreadSanitizer|ThreadSanitizer: reported' ;;
    valgrind) reports='ERROR SUMMARY: [1-9]' ;;
    *)        reports='' ;;
esac
log="$dir/Testing/Temporary/LastTest.log"
if [ -n "$reports" ] && [ -f "$log" ] && grep -Eq "$reports" "$log"; then
    echo "test.sh: $mode reports in $log:" >&2
    grep -En "$reports" "$log" | head -20 >&2
    [ "$status" -ne 0 ] || status=1
fi
exit "$status"
