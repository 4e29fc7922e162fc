#!/bin/sh
#   run_guide.sh SCENARIO BINDIR SHMIPC_RUN - runs one Guide scenario: its
#   programs (from BINDIR), each under the launcher, servers first and
#   clients after, in a fresh working directory (so relative shm://
#   endpoints are its own) with abstract names unique to this run. Every
#   process must exit 0 by itself and print a non-zero "shm-mappings:" line
#   (the proof that it talked through shared memory); some scenarios check
#   more. Any failure prints every log and exits 1. Asserts outcomes, never
#   timings.
#
#   GUIDE_TIMEOUT (seconds, default 60) bounds each process.
set -u
scenario=$1
bin=$2
run=$3
limit=${GUIDE_TIMEOUT:-60}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/shmipc-guide-$scenario.XXXXXX") || exit 1
work="$tmp/work"
mkdir "$work" || exit 1
cd "$work" || exit 1
#   Abstract names are machine-wide: this run's own
tag="guide-$scenario-$$"
names=""

#   Whatever happens, leave no process and no file behind: each program
#   runs under timeout, which leads a process group of its own. Only those
#   still running (no exit code yet), so a pid never refers to another's
cleanup () {
    for name in $names; do
        [ -f "$tmp/$name.rc" ] && continue
        pid=$(cat "$tmp/$name.pid" 2>/dev/null) || continue
        kill -KILL -- "-$pid" 2>/dev/null
        kill -KILL "$pid" 2>/dev/null
    done
    for name in $names; do
        wpid=$(cat "$tmp/$name.wrapper" 2>/dev/null) && wait "$wpid" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

fail () {
    echo "FAIL: guide_$scenario: $*" >&2
    for name in $names; do
        for log in "$tmp/$name.out" "$tmp/$name.err"; do
            [ -s "$log" ] && { echo "--- $log"; cat "$log"; } >&2
        done
    done
    exit 1
}

#   start NAME PROGRAM ARGS...: run PROGRAM under the launcher in the
#   background; NAME.out/.err hold its output, NAME.rc its exit code
start () {
    name=$1
    program=$2
    shift 2
    [ -x "$bin/$program" ] || fail "no program $bin/$program"
    (
        timeout -s KILL "$limit" "$run" "$bin/$program" "$@" \
            >"$tmp/$name.out" 2>"$tmp/$name.err" &
        echo $! >"$tmp/$name.pid"
        wait $!
        echo $? >"$tmp/$name.rc"
    ) 2>/dev/null &
    echo $! >"$tmp/$name.wrapper"
    names="$names $name"
}

#   wait_line NAME TEXT: wait until NAME has printed TEXT
wait_line () {
    tries=0
    until grep -q "$2" "$tmp/$1.out" 2>/dev/null; do
        [ -f "$tmp/$1.rc" ] && fail "$1 ended before it printed '$2'"
        tries=$((tries + 1))
        [ "$tries" -lt 300 ] || fail "$1 did not print '$2' in 30 s"
        sleep 0.1
    done
}

#   wait_all: every process started must end with 0 and its proof of
#   shared memory; the first failure ends the scenario at once
wait_all () {
    pending=$names
    while [ -n "$pending" ]; do
        still=""
        for name in $pending; do
            if [ ! -s "$tmp/$name.rc" ]; then
                still="$still $name"
                continue
            fi
            rc=$(cat "$tmp/$name.rc")
            [ "$rc" -eq 137 ] && fail "$name was killed after $limit s (or by SIGKILL)"
            [ "$rc" -eq 0 ] || fail "$name exited $rc"
            grep -q "shm-mappings: [1-9]" "$tmp/$name.out" \
                || fail "$name printed no non-zero shm-mappings line"
        done
        pending=$still
        [ -n "$pending" ] && sleep 0.05
    done
}

#   expect NAME PATTERN: NAME's output has a line matching PATTERN
expect () {
    grep -q -- "$2" "$tmp/$1.out" || fail "$1 printed no line matching '$2'"
}

#   total NAME_PREFIX SED_EXPRESSION: sum of the numbers the expression
#   extracts from the outputs of the processes named NAME_PREFIX*
total () {
    cat "$tmp/$1"*.out | sed -n "$2" | awk '{ sum += $1 } END { print sum + 0 }'
}

case $scenario in
    hwserver)
        #   REQ/REP: one server, three clients, relative endpoint
        start hwserver hwserver 30
        for n in 1 2 3; do
            start hwclient-$n hwclient shm://hello.shm 10
        done
        wait_all
        expect hwserver "bound to shm://hello.shm$"
        expect hwserver "answered 30 requests"
        ;;
    hwserver_wildcard)
        #   The same over "shm://*": the server says where it is; the
        #   endpoint is gone once the server has closed its socket
        start hwserver hwserver 20 "shm://*"
        wait_line hwserver "bound to "
        endpoint=$(sed -n 's/^hwserver: bound to \(shm:\/\/\/.*\)$/\1/p' "$tmp/hwserver.out")
        [ -n "$endpoint" ] || fail "hwserver bound shm://* to no absolute shm:// path"
        for n in 1 2; do
            start hwclient-$n hwclient "$endpoint" 10
        done
        wait_all
        expect hwserver "answered 20 requests"
        path=${endpoint#shm://}
        [ ! -e "$path" ] || fail "$path is still there after the server closed"
        #   and so is the private directory made for it
        [ ! -e "${path%/*}" ] || fail "${path%/*} is still there after the server closed"
        ;;
    wuserver)
        #   PUB/SUB with a zip-code filter; REQ/REP to say done
        pub="shm://@$tag-weather"
        sync="shm://@$tag-sync"
        start wuserver wuserver 2 "$pub" "$sync"
        start wuclient-10001 wuclient 10001 "$pub" "$sync"
        start wuclient-10042 wuclient 10042 "$pub" "$sync"
        wait_all
        expect wuclient-10001 "average temperature for zipcode '10001'"
        expect wuclient-10042 "average temperature for zipcode '10042'"
        ;;
    taskvent)
        #   PUSH/PULL pipeline with a PUB/SUB kill switch
        control="shm://@$tag-control"
        start tasksink tasksink "$control"
        for n in 1 2 3; do
            start taskwork-$n taskwork "$control"
        done
        for n in 1 2 3; do
            wait_line taskwork-$n "connected"
        done
        start taskvent taskvent 100 500
        wait_all
        expect tasksink "^tasksink: 100 results"
        done=$(total taskwork 's/^taskwork: did \([0-9]*\) tasks$/\1/p')
        [ "$done" -eq 100 ] || fail "the workers did $done tasks, not 100"
        ;;
    rrbroker)
        #   ROUTER/DEALER zmq_proxy broker, REQ clients, REP workers
        start rrbroker rrbroker 30
        start rrworker-1 rrworker 3000
        start rrworker-2 rrworker 3000
        #   Workers first, as the Guide says, so that both get requests
        wait_line rrworker-1 "connected"
        wait_line rrworker-2 "connected"
        for n in 1 2 3; do
            start hwclient-$n hwclient shm://frontend.shm 10
        done
        wait_all
        served=$(total rrworker 's/^rrworker: served \([0-9]*\)$/\1/p')
        [ "$served" -eq 30 ] || fail "the workers served $served requests, not 30"
        ;;
    lbbroker)
        #   ROUTER/ROUTER load balancing, REQ workers and clients
        frontend="shm://@$tag-frontend"
        backend="shm://@$tag-backend"
        start lbbroker lbbroker 30 3 "$frontend" "$backend"
        for n in 1 2 3; do
            start lbworker-$n lbworker "$backend"
        done
        for n in 1 2 3; do
            start lbclient-$n lbclient 10 "$frontend"
        done
        wait_all
        expect lbbroker "balanced 30 requests over 3 workers"
        served=$(total lbworker 's/^lbworker: W-[0-9]* served \([0-9]*\)$/\1/p')
        [ "$served" -eq 30 ] || fail "the workers served $served requests, not 30"
        ;;
    asyncsrv)
        #   ROUTER -> inproc DEALER -> worker threads; DEALER clients
        start asyncsrv asyncsrv 60 4
        for n in 1 2 3; do
            start asyncclient-$n asyncclient 20
        done
        wait_all
        #   Request n gets n % 3 + 1 replies: 39 for requests 0 to 19
        expect asyncsrv "60 requests, 117 replies"
        ;;
    psenvpub)
        #   XPUB waits for both subscriptions; two-frame envelopes
        endpoint="shm://@$tag-psenv"
        start psenvpub psenvpub 2 100 "$endpoint"
        start psenvsub-A psenvsub A 100 "$endpoint"
        start psenvsub-B psenvsub B 100 "$endpoint"
        wait_all
        expect psenvsub-A "\[A\] 100 messages in order"
        expect psenvsub-B "\[B\] 100 messages in order"
        ;;
    lpserver)
        #   Lazy Pirate: the client starts first and retries; the server
        #   comes late and overloads twice
        endpoint="shm://@$tag-lazy-pirate"
        start lpclient lpclient 10 "$endpoint"
        sleep 0.5
        start lpserver lpserver 10 "$endpoint"
        wait_all
        retries=$(sed -n 's/^lpclient: 10 replies, retries: \([0-9]*\)$/\1/p' "$tmp/lpclient.out")
        #   Each overload outlasts two of the client's timeouts
        [ "${retries:-0}" -ge 4 ] \
            || fail "the client retried ${retries:-0} times, expected 4 or more"
        ;;
    mtserver)
        #   zmq_proxy ROUTER -> inproc DEALER -> REP threads; absolute path
        endpoint="shm://$work/mtserver.shm"
        start mtserver mtserver 30 "$endpoint" 4
        for n in 1 2 3; do
            start hwclient-$n hwclient "$endpoint" 10
        done
        wait_all
        expect mtserver "served 30 requests with 4 worker threads"
        ;;
    pairchain)
        #   PAIR over an abstract name, an absolute and a relative path,
        #   with an inproc PAIR between two threads in each middle stage
        start first pairchain first - "shm://@$tag-chain-a" 200
        start m1 pairchain m1 "shm://@$tag-chain-a" "shm://$work/chain-b.shm"
        start m2 pairchain m2 "shm://$work/chain-b.shm" shm://chain-c.shm
        start last pairchain last shm://chain-c.shm -
        wait_all
        expect first "200 rounds, path: first>m1>m2>last$"
        expect last "acknowledged 200 rounds"
        ;;
    without_launcher)
        #   The same program without the launcher: libzmq alone does not
        #   know shm://, so the Guide programs really depend on the preload
        "$bin/hwserver" 1 >"$tmp/plain.out" 2>"$tmp/plain.err"
        rc=$?
        names="plain"
        [ "$rc" -ne 0 ] || fail "hwserver bound shm:// without the launcher"
        grep -q "Protocol not supported" "$tmp/plain.err" \
            || fail "hwserver failed without the launcher, but not with EPROTONOSUPPORT"
        ;;
    *)
        fail "no scenario '$scenario'"
        ;;
esac
echo "guide_$scenario: passed"
for name in $names; do
    sed 's/^/  /' "$tmp/$name.out"
done
exit 0
