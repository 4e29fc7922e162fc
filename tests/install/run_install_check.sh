#!/bin/sh
#   run_install_check.sh BUILD CONSUMER CMAKE CC [CONFIG] [FLAGS] - install
#   BUILD into a scratch prefix and build CONSUMER (a tiny program) against
#   that installed copy two ways: pkg-config, and find_package. Both must
#   build, link the installed library (not another copy) and run.
set -u
build=$1
consumer=$2
cmake=$3
cc=$4
config=${5:-}
flags=${6:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmipc-install.XXXXXX") || exit 1
prefix="$tmp/prefix"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM HUP PIPE
failures=0

fail () {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

#   run_consumer WHAT PROGRAM: it must print the content size and use the
#   libshmipc.so under the prefix (when it links one at all)
run_consumer () {
    output=$("$2") || { fail "$1: the consumer exited $?"; return; }
    [ "$output" = "content size 5" ] || { fail "$1: the consumer printed '$output'"; return; }
    resolved=$(ldd "$2" | awk '/libshmipc/ { print $3 }')
    case "$resolved" in
        "" | "$prefix"/*) ;;
        *) fail "$1: the consumer loaded $resolved, not the installed copy"; return ;;
    esac
    echo "ok: $1: $output${resolved:+ (via $resolved)}"
}

echo "installing $build into $prefix"
if ! "$cmake" --install "$build" --prefix "$prefix" ${config:+--config "$config"} \
        >"$tmp/install.log" 2>&1; then
    cat "$tmp/install.log" >&2
    echo "FAIL: cmake --install failed" >&2
    exit 1
fi

#   (a) pkg-config
pc=$(find "$prefix" -name shmipc.pc | head -n 1)
if [ -z "$pc" ]; then
    fail "pkg-config: no shmipc.pc installed"
else
    pcdir=$(dirname "$pc")
    echo "pkg-config file: $pc"
    includedir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=includedir shmipc)
    libdir=$(PKG_CONFIG_PATH="$pcdir" pkg-config --variable=libdir shmipc)
    pkgflags=$(PKG_CONFIG_PATH="$pcdir" pkg-config --cflags --libs shmipc)
    case "$includedir:$libdir" in
        "$prefix"/*:"$prefix"/*)
            # shellcheck disable=SC2086     # word splitting wanted for the flags
            if $cc -std=c11 -Wall -Wextra -Werror $flags "$consumer/consumer.c" \
                    $pkgflags -o "$tmp/consumer_pc" >"$tmp/pc.log" 2>&1; then
                LD_LIBRARY_PATH="$libdir" run_consumer pkg-config "$tmp/consumer_pc"
            else
                cat "$tmp/pc.log" >&2
                fail "pkg-config: the consumer did not build with: $pkgflags"
            fi ;;
        *)
            fail "pkg-config: the installed shmipc.pc points at includedir=$includedir" \
                 "libdir=$libdir, not into the prefix it was installed to ($prefix):" \
                 "its prefix was fixed at configure time, so the package cannot be" \
                 "installed with --prefix or moved" ;;
    esac
fi

#   (b) CMake package
if "$cmake" -S "$consumer" -B "$tmp/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" \
        -DSHMIPC_EXPECTED_PREFIX="$prefix" -DCMAKE_C_COMPILER="$cc" \
        -DCMAKE_C_FLAGS="$flags" ${config:+-DCMAKE_BUILD_TYPE="$config"} \
        >"$tmp/cmake.log" 2>&1 \
&& "$cmake" --build "$tmp/consumer-build" ${config:+--config "$config"} \
        >>"$tmp/cmake.log" 2>&1; then
    grep "shmipc_DIR" "$tmp/cmake.log"
    run_consumer find_package "$(find "$tmp/consumer-build" -type f -name consumer | head -n 1)"
    run_consumer "find_package (static)" \
        "$(find "$tmp/consumer-build" -type f -name consumer_static | head -n 1)"
else
    cat "$tmp/cmake.log" >&2
    fail "find_package: the consumer project did not configure or build"
fi

#   (c) the launcher: an unchanged libzmq program under the installed
#   shmipc-run, without LD_LIBRARY_PATH, must use the installed preload
#   library (sanitizer builds: their runtime would have to be preloaded
#   first, which tests/swap does; here the plain build checks the install)
if [ -z "$flags" ]; then
    if $cc -std=c11 -Wall -Wextra -Werror "$consumer/launched.c" -lzmq \
            -o "$tmp/launched" >"$tmp/launched.log" 2>&1; then
        output=$("$prefix/bin/shmipc-run" "$tmp/launched")
        case "$output" in
            "received 5 via $prefix"/*) echo "ok: shmipc-run: $output" ;;
            *) fail "shmipc-run: the launched program printed '$output'" ;;
        esac
    else
        cat "$tmp/launched.log" >&2
        fail "shmipc-run: the launched program did not build"
    fi
fi

if [ "$failures" -ne 0 ]; then
    echo "FAIL: $failures check(s) failed" >&2
    exit 1
fi
echo "PASS"
