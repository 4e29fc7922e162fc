#!/bin/sh
#   run_zmq_examples.sh ECHO_SERVER ECHO_CLIENT ACTOR_ECHO SWAP - the czmq
#   examples end to end: one echo server on shm://, ipc:// and tcp:// at
#   once, clients on each (two at once on shm://), a clean stop on SIGTERM,
#   a server on an ephemeral tcp:// port, the actor example, and swap over
#   every transport. Asserts outcomes, never timings.
set -u
server=$1
client=$2
actor=$3
swap=$4
count=${SHMIPC_EXAMPLE_COUNT:-20000}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmipc-zmq-examples.XXXXXX") || exit 1
shm="shm://$tmp/echo"
ipc="ipc://$tmp/echo.ipc"
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

#   A TCP port to try: another program may hold it, so callers retry
port_for () {
    echo $((20000 + ($$ * 7 + $1 * 7919) % 40000))
}

#   start_server ENDPOINT...: start the echo server, wait until it listens
#   on all of them; its pid is left in $server_pid. Returns 1 if the
#   server could not bind (so another port may be tried).
start_server () {
    SHMIPC_VERBOSE=1 "$server" -v "$@" >"$tmp/server.out" 2>"$tmp/server.err" &
    server_pid=$!
    children="$children $server_pid"
    tries=0
    until [ "$(grep -c '^echo_server: listening on ' "$tmp/server.out")" -eq $# ]; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            grep -q "Address already in use" "$tmp/server.err" && return 1
            fail "echo_server did not start"
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || fail "echo_server not listening after 10 s"
        sleep 0.1
    done
    return 0
}

#   check_client NAME PID TRANSPORT COUNT SIZE: it must exit 0 and print
#   its result line
check_client () {
    wait "$2"
    rc=$?
    [ "$rc" -eq 0 ] || fail "$1 exited $rc"
    grep -q "^echo_client: $3 $4 x $5 B in [0-9.]* s: [0-9]* msgs/s, [0-9.]* MB/s\$" \
        "$tmp/$1.out" || fail "$1 printed no result line"
    cat "$tmp/$1.out"
}

#   run_client NAME TRANSPORT ENDPOINT COUNT SIZE: one client, checked
run_client () {
    timeout -s KILL 60 "$client" "$3" "$4" "$5" >"$tmp/$1.out" 2>"$tmp/$1.err" &
    pid=$!
    children="$children $pid"
    check_client "$1" "$pid" "$2" "$4" "$5"
}

#   One server, three transports: two endpoints in one argument, one alone
attempt=0
until
    tcp="tcp://127.0.0.1:$(port_for $attempt)"
    start_server "@$shm,@$ipc" "$tcp"
do
    attempt=$((attempt + 1))
    [ "$attempt" -lt 10 ] || fail "no free TCP port after 10 tries"
done
echo "echo_server on $shm, $ipc and $tcp"

run_client shm_small shm "$shm" "$count" 64
run_client ipc_small ipc "$ipc" "$count" 64
run_client tcp_small tcp "$tcp" "$count" 64
run_client shm_large shm "$shm" 1000 65536
run_client tcp_large tcp "$tcp" 1000 65536

#   Two at once on shm://, and one on ipc:// beside them
timeout -s KILL 60 "$client" "$shm" "$count" 64 >"$tmp/shm_a.out" 2>"$tmp/shm_a.err" &
shm_a=$!
timeout -s KILL 60 "$client" "$shm" "$count" 1K >"$tmp/shm_b.out" 2>"$tmp/shm_b.err" &
shm_b=$!
timeout -s KILL 60 "$client" "$ipc" "$count" 64 >"$tmp/ipc_c.out" 2>"$tmp/ipc_c.err" &
ipc_c=$!
children="$children $shm_a $shm_b $ipc_c"
check_client shm_a "$shm_a" shm "$count" 64
check_client shm_b "$shm_b" shm "$count" 1024
check_client ipc_c "$ipc_c" ipc "$count" 64

#   SIGTERM: exit 0, the shm:// counters (-v) say all four shm:// clients
#   were served without error, and the socket file is gone
kill -0 "$server_pid" 2>/dev/null || fail "echo_server died"
kill -TERM "$server_pid"
tries=0
while kill -0 "$server_pid" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || fail "echo_server still running 5 s after SIGTERM"
    sleep 0.1
done
wait "$server_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "echo_server exited $rc after SIGTERM"
cat "$tmp/server.out"
echoes=$((count * 6 + 2000))
grep -q "^echo_server: stopping after $echoes echoes\$" "$tmp/server.out" \
    || fail "echo_server did not count $echoes echoes"
shm_msgs=$((count * 3 + 1000))
grep -q "^echo_server: shm peers=[0-9]* accepted=4 closed=[0-9]* errors=0 msgs_in=$shm_msgs bytes_in=[0-9]* msgs_out=$shm_msgs " \
    "$tmp/server.out" || fail "echo_server's shm:// counters are wrong"
[ ! -e "$tmp/echo" ] || fail "echo_server left its shm:// socket file behind"

#   A tcp:// port of *: the server names the port it got (as scripts/demo.sh
#   relies on), a client reaches it there, SIGTERM stops it
start_server "tcp://127.0.0.1:*"
line=$(grep "^echo_server: listening on tcp://127.0.0.1:\* (tcp://127.0.0.1:[0-9][0-9]*)\$" \
       "$tmp/server.out") || fail "echo_server did not name its ephemeral port"
endpoint=${line##*(}
endpoint=${endpoint%)}
run_client tcp_any tcp "$endpoint" 1000 64
kill -TERM "$server_pid"
tries=0
while kill -0 "$server_pid" 2>/dev/null; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || fail "echo_server on an ephemeral port still running 5 s after SIGTERM"
    sleep 0.1
done
wait "$server_pid"
rc=$?
[ "$rc" -eq 0 ] || fail "echo_server on an ephemeral port exited $rc after SIGTERM"
grep -q "^echo_server: stopping after 1000 echoes\$" "$tmp/server.out" \
    || fail "echo_server on an ephemeral port did not count 1000 echoes"

#   A dead server is a timeout (2), a bad argument a plain failure (1)
timeout -s KILL 30 "$client" -t 500 "$shm" 10 >"$tmp/dead.out" 2>"$tmp/dead.err"
rc=$?
[ "$rc" -eq 2 ] || fail "client of a dead server exited $rc, expected 2"
grep -q "^echo_client: no echo for 500 ms" "$tmp/dead.err" || fail "no clear timeout message"
"$client" "$shm" 10 4 >/dev/null 2>&1
rc=$?
[ "$rc" -eq 1 ] || fail "client took a 4-byte size (exit $rc)"
"$server" >/dev/null 2>&1 && fail "echo_server ran without an endpoint"
"$server" "bogus://nowhere" >"$tmp/bogus.out" 2>"$tmp/bogus.err" \
    && fail "echo_server took a bogus endpoint"
grep -q "^echo_server: cannot attach to bogus://nowhere: " "$tmp/bogus.err" \
    || fail "no clear error for a bogus endpoint"

#   The actor example, on an abstract name (its default) and on a path
timeout -s KILL 60 "$actor" >"$tmp/actor1.out" 2>"$tmp/actor1.err" \
    || fail "actor_echo exited $?"
grep -q "^actor_echo: 4 clients x 10000 messages echoed over shm://@actor-echo-" \
    "$tmp/actor1.out" || fail "actor_echo printed no result line"
timeout -s KILL 60 "$actor" "shm://$tmp/actor" >"$tmp/actor2.out" 2>"$tmp/actor2.err" \
    || fail "actor_echo on a path exited $?"
grep -q "^actor_echo: 4 clients x 10000 messages echoed over shm://$tmp/actor\$" \
    "$tmp/actor2.out" || fail "actor_echo on a path printed no result line"
[ ! -e "$tmp/actor" ] || fail "actor_echo left its socket file behind"
cat "$tmp/actor1.out" "$tmp/actor2.out"

#   swap: the same program and the same result line on every transport
swap_run () {
    timeout -s KILL 60 "$swap" "$1" "$count" >"$tmp/swap.out" 2>"$tmp/swap.err"
}
swap_check () {
    grep -q "^swap: $1: $count messages in order in [0-9.]* s, [0-9]* msgs/s\$" \
        "$tmp/swap.out" || fail "swap over $1 printed no result line"
    cat "$tmp/swap.out"
}
attempt=0
until
    endpoint="tcp://127.0.0.1:$(port_for $((attempt + 20)))"
    swap_run "$endpoint"
do
    rc=$?
    grep -q "Address already in use" "$tmp/swap.err" || fail "swap over tcp:// exited $rc"
    attempt=$((attempt + 1))
    [ "$attempt" -lt 10 ] || fail "no free TCP port for swap after 10 tries"
done
swap_check "$endpoint"
for endpoint in "ipc://$tmp/swap.ipc" "shm://$tmp/swap" "shm://@shmipc-swap-$$"; do
    swap_run "$endpoint" || fail "swap over $endpoint exited $?"
    swap_check "$endpoint"
done
[ ! -e "$tmp/swap" ] || fail "swap left its shm:// socket file behind"
"$swap" "@$shm" >/dev/null 2>&1 && fail "swap took a prefixed endpoint"
echo "PASS"
