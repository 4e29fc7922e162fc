#!/bin/sh
#   Set up, build and run every test through ctest.
#     scripts/test.sh            the default suite (RelWithDebInfo build,
#                                asserts kept)
#     scripts/test.sh asan       the same suite under ASan + UBSan
#     scripts/test.sh tsan       the same suite under ThreadSanitizer
#     scripts/test.sh valgrind   the suite under valgrind memcheck (scaled down)
#     scripts/test.sh long       the default suite plus the long stress tests
#     scripts/test.sh fuzz       each libFuzzer harness for FUZZ_SECONDS (60)
#   Set-up: each mode first runs scripts/setup.sh, which installs missing
#   Debian packages with apt-get (as the README's commands promise);
#   SHMIPC_NO_SETUP=1 skips that, for machines that are set up already.
#   The sanitizer and valgrind builds set their own test environment
#   (TSAN_OPTIONS with tests/hostile/tsan.supp; valgrind on every process a
#   test starts): see their blocks in CMakeLists.txt and docs/ci.md. A plain
#   ctest --test-dir build-MODE gets the same.
set -eu
cd "$(dirname "$0")/.."
mode="${1:-default}"
setup () {
    [ "${SHMIPC_NO_SETUP:-0}" = 1 ] || scripts/setup.sh "$@"
}
jobs="$(nproc)"
#   clang's sanitizer and libFuzzer runtimes are only a recommendation of
#   Debian's clang, which setup.sh does not install: name them
case "$mode" in
    default) setup; dir=build; flags="" ;;
    long)    setup; dir=build-long; flags="-DSHMIPC_LONG_TESTS=ON" ;;
    asan)    setup; dir=build-asan; flags="-DSHMIPC_SANITIZE=ON" ;;
    tsan)    setup clang libclang-rt-dev; dir=build-tsan
             flags="-DSHMIPC_TSAN=ON -DCMAKE_C_COMPILER=clang" ;;
    valgrind) setup valgrind; dir=build-valgrind; flags="-DSHMIPC_VALGRIND=ON" ;;
    fuzz)    setup clang libclang-rt-dev; dir=build-fuzz
             flags="-DSHMIPC_FUZZ=ON -DCMAKE_C_COMPILER=clang -DSHMIPC_BUILD_EXAMPLES=OFF" ;;
    *) echo "usage: $0 [default|long|asan|tsan|valgrind|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" $flags >/dev/null
if [ "$mode" = fuzz ]; then
    cmake --build "$dir" -j "$jobs" --target fuzz_handshake fuzz_ring fuzz_channel
else
    cmake --build "$dir" -j "$jobs"
fi
if [ "$mode" = fuzz ]; then
    #   New inputs go to a scratch corpus; the committed one only seeds it.
    #   A crash leaves its input in $dir/artifacts: add it to the corpus.
    #   Each harness runs even if one before it crashed; each gets a summary
    #   line (edges: cov, features: ft) and its whole output in a log.
    mkdir -p "$dir/artifacts"
    status=0
    for name in handshake ring channel; do
        mkdir -p "$dir/corpus-$name"
        log="$dir/fuzz-$name.log"
        rc=0
        "$dir/tests/fuzz/fuzz_$name" -max_total_time="${FUZZ_SECONDS:-60}" \
            -artifact_prefix="$dir/artifacts/$name-" -print_final_stats=1 \
            "$dir/corpus-$name" "tests/fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
        cov="$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n 1)"
        runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")"
        echo "fuzz_$name: ${cov:-no coverage line}, ${runs:-?} executions (${rate:-?}/s), exit $rc ($log)"
        if [ "$rc" -ne 0 ]; then
            tail -n 40 "$log" >&2
            status=1
        fi
    done
    exit "$status"
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
