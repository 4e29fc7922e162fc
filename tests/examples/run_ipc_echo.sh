#!/bin/sh
#   run_ipc_echo.sh SERVER CLIENT - the echo examples end to end: two servers
#   (path and abstract endpoints), four clients at once, one killed mid-run,
#   a clean stop on SIGTERM, clear errors. Asserts outcomes, never timings.
set -u
server=$1
client=$2
count=${SHMIPC_EXAMPLE_COUNT:-20000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmipc-examples.XXXXXX") || exit 1
path="shm://$tmp/echo"
abstract="shm://@shmipc-examples-$$-${tmp##*.}"
children=""

#   Whatever happens, leave no process and no file behind
cleanup () {
    for pid in $children; do
        kill -KILL "$pid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fail () {
    echo "FAIL: $*" >&2
    for log in "$tmp"/*.out "$tmp"/*.err; do
        [ -s "$log" ] && { echo "--- $log"; cat "$log"; } >&2
    done
    exit 1
}

#   start_server NAME ENDPOINT [OPTIONS]: start one, wait until it listens;
#   its pid is left in $started
start_server () {
    name=$1 endpoint=$2
    shift 2
    SHMIPC_VERBOSE=1 "$server" "$@" "$endpoint" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    started=$!
    children="$children $started"
    tries=0
    until grep -q "listening on $endpoint" "$tmp/$name.out" 2>/dev/null; do
        kill -0 "$started" 2>/dev/null || fail "$name did not start"
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "$name not listening after 10 s"
        sleep 0.1
    done
}

#   stop_server NAME PID: SIGTERM, then it must exit 0 within 5 s
stop_server () {
    kill -TERM "$2" || fail "$1 is gone before SIGTERM"
    tries=0
    while kill -0 "$2" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 50 ] || fail "$1 still running 5 s after SIGTERM"
        sleep 0.1
    done
    wait "$2"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$1 exited $rc after SIGTERM"
}

#   check_client NAME PID: it must exit 0 and print its throughput line
check_client () {
    wait "$2"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$1 exited $rc"
    grep -q "^ipc-client: $count messages, " "$tmp/$1.out" || fail "$1 printed no summary"
    cat "$tmp/$1.out"
}

echo "server on $path, server with 8 KiB rings on $abstract"
start_server server1 "$path"
server1=$started
start_server server2 "$abstract" -c 8K
server2=$started

#   A client that dies mid-run must cost only its own connection
"$client" "$path" 100000000 >"$tmp/doomed.out" 2>&1 &
doomed=$!
children="$children $doomed"
sleep 0.3
kill -KILL "$doomed"
wait "$doomed" 2>/dev/null

#   Four at once: three on the path (one with small rings, so large
#   messages stream both ways), one on the abstract endpoint
"$client" "$path" "$count" >"$tmp/client1.out" 2>&1 &
client1=$!
"$client" "$path" "$count" >"$tmp/client2.out" 2>&1 &
client2=$!
"$client" -c 8K "$path" "$count" >"$tmp/client3.out" 2>&1 &
client3=$!
"$client" -c 64K "$abstract" "$count" >"$tmp/client4.out" 2>&1 &
client4=$!
children="$children $client1 $client2 $client3 $client4"
check_client client1 "$client1"
check_client client2 "$client2"
check_client client3 "$client3"
check_client client4 "$client4"

#   Both servers still serve, and logged every client
kill -0 "$server1" 2>/dev/null || fail "server1 died"
kill -0 "$server2" 2>/dev/null || fail "server2 died"
[ "$(grep -c 'connected' "$tmp/server1.err")" -ge 3 ] || fail "server1 logged too few connects"
[ "$(grep -c "closed (peer left): in $count msgs" "$tmp/server1.err")" -eq 3 ] \
    || fail "server1 did not log three clean closes"

#   A second server may not steal a live endpoint
if "$server" "$path" >"$tmp/thief.out" 2>"$tmp/thief.err"; then
    fail "a second server took over a live endpoint"
fi
grep -q "cannot listen on $path" "$tmp/thief.err" || fail "no clear error for a busy endpoint"

stop_server server1 "$server1"
stop_server server2 "$server2"
[ ! -e "$tmp/echo" ] || fail "server1 left its socket file behind"
"$client" "$abstract" 10 >"$tmp/late.out" 2>&1 && fail "the abstract endpoint outlived server2"

#   A missing endpoint: non-zero, and says why
"$client" "shm://$tmp/missing" 10 >"$tmp/missing.out" 2>"$tmp/missing.err"
rc=$?
[ "$rc" -eq 1 ] || fail "client on a missing endpoint exited $rc, expected 1"
grep -q "cannot connect to shm://$tmp/missing: No such file or directory" "$tmp/missing.err" \
    || fail "client on a missing endpoint gave no clear error"
cat "$tmp/missing.err"

#   Bad usage is refused, not guessed at
"$client" >/dev/null 2>&1 && fail "client ran without an endpoint"
"$server" -c 0 "$path" >/dev/null 2>&1 && fail "server took a zero capacity"
echo "PASS"
