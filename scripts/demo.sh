#!/bin/sh
#   Set up, build and run the main demo: the echo pair (echo_server and
#   echo_client, two unrelated processes) over shm://, ipc:// and
#   tcp://127.0.0.1 in turn, the same messages each time, then one line per
#   transport. The ratio compares with ipc://. Then an unchanged Python
#   program (examples/unchanged_echo.py, python3-zmq) over shm:// under
#   the launcher, shmipc-run, and over ipc:// without it. Exits non-zero if
#   a server or a client fails, or an echo does not match.
#     DEMO_COUNT   messages per transport (default 200000)
#     DEMO_SIZE    bytes per message (default 64; K and M suffixes)
set -eu
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build >/dev/null
cmake --build build -j "$(nproc)" --target echo_server echo_client shmipc-preload >/dev/null
server=build/examples/echo_server
client=build/examples/echo_client
count=${DEMO_COUNT:-200000}
size=${DEMO_SIZE:-64}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmipc-demo.XXXXXX")
pid=""

#   Whatever happens, stop the server and leave no file behind
cleanup () {
    if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
        sleep 0.5
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 1' INT TERM HUP

fail () {
    echo "demo: FAILED: $*" >&2
    for log in "$tmp"/*.out "$tmp"/*.err; do
        [ -s "$log" ] && { echo "--- ${log##*/}"; cat "$log"; } >&2
    done
    exit 1
}

#   measure NAME ENDPOINT: start a server on ENDPOINT, run one client,
#   stop the server with SIGTERM; leaves "MSGS BYTES MSGS/S" in NAME.result
measure () {
    name=$1 given=$2
    "$server" "$given" >"$tmp/$name-server.out" 2>"$tmp/$name-server.err" &
    pid=$!
    tries=0
    until line=$(grep -s "^echo_server: listening on " "$tmp/$name-server.out"); do
        kill -0 "$pid" 2>/dev/null || fail "echo_server on $given did not start"
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "echo_server on $given not listening after 10 s"
        sleep 0.1
    done
    #   A tcp:// port of * is named in parentheses once bound
    endpoint=$given
    case $line in *")") endpoint=${line##*(}; endpoint=${endpoint%)} ;; esac

    rc=0
    "$client" "$endpoint" "$count" "$size" >"$tmp/$name.out" 2>"$tmp/$name.err" || rc=$?
    [ "$rc" -eq 0 ] || fail "echo_client on $endpoint exited $rc"
    #   echo_client: shm 200000 x 64 B in 0.382 s: 524164 msgs/s, 33.5 MB/s
    number='\([0-9]*\)'
    sed -n "s/^echo_client: [a-z]* $number x $number B in [0-9.]* s: $number msgs\/s, .*/\1 \2 \3/p" \
        "$tmp/$name.out" >"$tmp/$name.result"
    read -r msgs bytes rate <"$tmp/$name.result" && [ -n "$rate" ] \
        || fail "echo_client on $endpoint printed no result line"

    kill -TERM "$pid" 2>/dev/null || fail "echo_server on $given died"
    tries=0
    while kill -0 "$pid" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "echo_server on $given still running 5 s after SIGTERM"
        sleep 0.1
    done
    rc=0
    wait "$pid" || rc=$?
    pid=""
    [ "$rc" -eq 0 ] || fail "echo_server on $given exited $rc after SIGTERM"
    grep -q "^echo_server: stopping after $msgs echoes\$" "$tmp/$name-server.out" \
        || fail "echo_server on $given did not echo $msgs messages"
}

measure shm "shm://$tmp/echo"
measure ipc "ipc://$tmp/echo.ipc"
measure tcp "tcp://127.0.0.1:*"

for name in shm ipc tcp; do
    echo "$name $(cat "$tmp/$name.result") $(cut -d' ' -f3 "$tmp/ipc.result")"
done | awk '
    function commas (n,   s) {
        s = sprintf ("%d", n)
        while (s ~ /[0-9][0-9][0-9][0-9]/)
            sub (/[0-9][0-9][0-9]($|,)/, ",&", s)
        return s
    }
    {
        ratio = $1 == "ipc" ? "(baseline)" : sprintf ("(%.1fx ipc://)", $4 / ($5 ? $5 : 1))
        printf "%-8s %s msgs of %s B echoed: %11s msgs/s  %s\n", \
               $1 "://", $2, $3, commas($4), ratio
    }'

#   The same transport for a program that knows nothing of shmipc
echo ""
echo "An unchanged Python program (python3-zmq), REQ/REP between two processes:"
build/shmipc-run /usr/bin/python3 examples/unchanged_echo.py "shm://$tmp/py" 20000 \
    || fail "unchanged_echo.py under shmipc-run"
/usr/bin/python3 examples/unchanged_echo.py "ipc://$tmp/py.ipc" 20000 \
    || fail "unchanged_echo.py over ipc://"
