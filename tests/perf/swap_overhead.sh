#!/bin/bash
#   swap_overhead.sh [BUILD_DIR] [REPS]: what the launcher costs a program
#   that never mentions shm://. libzmq's own perf tools (local_thr/
#   remote_thr, local_lat/remote_lat, embedded below verbatim) run over
#   ipc:// without the launcher ("plain") and with both processes under
#   BUILD_DIR/shmipc-run ("launcher"), alternating, REPS times each; then
#   the medians, their ratio launcher/plain, and the threads a process has
#   with and without the launcher.
#
#   A benchmark, not a test: it always exits 0, and says so plainly when a
#   ratio leaves 0.9-1.1. The machine may be shared and noisy: read the
#   ratios of one run, and the plain spread beside them (how much plain
#   varies against itself), not absolute figures across runs.
#
#   BUILD_DIR   a build tree with shmipc-run and libshmipc-preload.so
#               (default ./build); cmake --build B --target shmipc-preload
#   REPS        repetitions of each measurement and mode (default 5)
#   Environment: SWAP_OVH_SIZES (message sizes, default "64 1024"),
#   SWAP_OVH_THR_COUNT (messages per throughput run, default 1000000),
#   SWAP_OVH_LAT_COUNT (round trips per latency run, default 100000),
#   SWAP_OVH_TIMEOUT (seconds any one process may take, default 300),
#   SWAP_OVH_TAIL_WAIT (seconds local_thr may take after remote_thr ends,
#   default 10: past it the tail was lost, and the run is done again).
#   Needs g++ and libzmq's header and library (libzmq3-dev); strace is
#   optional (it counts every thread a run creates, start to end).
set -u

build=$(readlink -f "${1:-./build}")
reps=${2:-5}
sizes=${SWAP_OVH_SIZES:-"64 1024"}
thr_count=${SWAP_OVH_THR_COUNT:-1000000}
lat_count=${SWAP_OVH_LAT_COUNT:-100000}
limit=${SWAP_OVH_TIMEOUT:-300}
tail_wait=${SWAP_OVH_TAIL_WAIT:-10}
launcher="$build/shmipc-run"

say () { printf '%s\n' "$*"; }
skip () { say "swap_overhead: SKIPPED: $*"; exit 0; }

[ -x "$launcher" ] || skip "$launcher not found (build the shmipc-preload target)"
[ -f "$build/libshmipc-preload.so" ] || skip "$build/libshmipc-preload.so not found"
command -v g++ >/dev/null || skip "g++ not found"
case "$reps" in ''|*[!0-9]*|0) skip "REPS must be a positive number, not '$reps'" ;; esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/swap_overhead.XXXXXX") || skip "mktemp failed"
children=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup () {
    for pid in $children; do kill "$pid" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 0' INT TERM

#   ---------------------------------------------------------------------
#   libzmq's perf tools, verbatim from zeromq/libzmq tag v4.3.5 (commit
#   622fc6dde99ee172ebaa9c8628d85a7a1995a21d), perf/*.cpp, MPL-2.0 as
#   their header says; byte for byte the same as v4.3.4's but for that
#   header (v4.3.4 carried the LGPL text). Git blob ids, checked below
#   when git is at hand:
#     local_thr.cpp  0f039cfa1d3597d34ea8b2f7e3a53871b63848d1
#     remote_thr.cpp 8d4fcaef7451cbe0260e1a8b3a0d285e63ed80c5
#     local_lat.cpp  d5bcab8c728b3cf0785d3547e3a09b8c3a78e12c
#     remote_lat.cpp 2b4539087e9213ef4d5caf70581c985f1286671f
#   They include "../include/zmq.h": include/zmq.h here forwards to the
#   system's <zmq.h>, so the files stay unchanged.
#   ---------------------------------------------------------------------
mkdir -p "$tmp/perf" "$tmp/include" "$tmp/bin"
printf '#include <zmq.h>\n' > "$tmp/include/zmq.h"

cat > "$tmp/perf/local_thr.cpp" <<'END_OF_LOCAL_THR_CPP'
/* SPDX-License-Identifier: MPL-2.0 */

#include "../include/zmq.h"
#include <stdio.h>
#include <stdlib.h>

// keys are arbitrary but must match remote_lat.cpp
const char server_prvkey[] = "{X}#>t#jRGaQ}gMhv=30r(Mw+87YGs+5%kh=i@f8";

int main (int argc, char *argv[])
{
    const char *bind_to;
    int message_count;
    size_t message_size;
    void *ctx;
    void *s;
    int rc;
    int i;
    zmq_msg_t msg;
    void *watch;
    unsigned long elapsed;
    double throughput;
    double megabits;
    int curve = 0;

    if (argc != 4 && argc != 5) {
        printf ("usage: local_thr <bind-to> <message-size> <message-count> "
                "[<enable_curve>]\n");
        return 1;
    }
    bind_to = argv[1];
    message_size = atoi (argv[2]);
    message_count = atoi (argv[3]);
    if (argc >= 5 && atoi (argv[4])) {
        curve = 1;
    }

    ctx = zmq_init (1);
    if (!ctx) {
        printf ("error in zmq_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    s = zmq_socket (ctx, ZMQ_PULL);
    if (!s) {
        printf ("error in zmq_socket: %s\n", zmq_strerror (errno));
        return -1;
    }

    //  Add your socket options here.
    //  For example ZMQ_RATE, ZMQ_RECOVERY_IVL and ZMQ_MCAST_LOOP for PGM.
    if (curve) {
        rc = zmq_setsockopt (s, ZMQ_CURVE_SECRETKEY, server_prvkey,
                             sizeof (server_prvkey));
        if (rc != 0) {
            printf ("error in zmq_setsockoopt: %s\n", zmq_strerror (errno));
            return -1;
        }
        int server = 1;
        rc = zmq_setsockopt (s, ZMQ_CURVE_SERVER, &server, sizeof (int));
        if (rc != 0) {
            printf ("error in zmq_setsockoopt: %s\n", zmq_strerror (errno));
            return -1;
        }
    }

    rc = zmq_bind (s, bind_to);
    if (rc != 0) {
        printf ("error in zmq_bind: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_msg_init (&msg);
    if (rc != 0) {
        printf ("error in zmq_msg_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_recvmsg (s, &msg, 0);
    if (rc < 0) {
        printf ("error in zmq_recvmsg: %s\n", zmq_strerror (errno));
        return -1;
    }
    if (zmq_msg_size (&msg) != message_size) {
        printf ("message of incorrect size received\n");
        return -1;
    }

    watch = zmq_stopwatch_start ();

    for (i = 0; i != message_count - 1; i++) {
        rc = zmq_recvmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_recvmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
        if (zmq_msg_size (&msg) != message_size) {
            printf ("message of incorrect size received\n");
            return -1;
        }
    }

    elapsed = zmq_stopwatch_stop (watch);
    if (elapsed == 0)
        elapsed = 1;

    rc = zmq_msg_close (&msg);
    if (rc != 0) {
        printf ("error in zmq_msg_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    throughput = ((double) message_count / (double) elapsed * 1000000);
    megabits = ((double) throughput * message_size * 8) / 1000000;

    printf ("message size: %d [B]\n", (int) message_size);
    printf ("message count: %d\n", (int) message_count);
    printf ("mean throughput: %d [msg/s]\n", (int) throughput);
    printf ("mean throughput: %.3f [Mb/s]\n", (double) megabits);

    rc = zmq_close (s);
    if (rc != 0) {
        printf ("error in zmq_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_ctx_term (ctx);
    if (rc != 0) {
        printf ("error in zmq_ctx_term: %s\n", zmq_strerror (errno));
        return -1;
    }

    return 0;
}
END_OF_LOCAL_THR_CPP

cat > "$tmp/perf/remote_thr.cpp" <<'END_OF_REMOTE_THR_CPP'
/* SPDX-License-Identifier: MPL-2.0 */

#include "../include/zmq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// keys are arbitrary but must match local_lat.cpp
const char server_pubkey[] = "DX4nh=yUn{-9ugra0X3Src4SU-4xTgqxcYY.+<SH";
const char client_pubkey[] = "<n^oA}I:66W+*ds3tAmi1+KJzv-}k&fC2aA5Bj0K";
const char client_prvkey[] = "9R9bV}[6z6DC-%$!jTVTKvWc=LEL{4i4gzUe$@Zx";

int main (int argc, char *argv[])
{
    const char *connect_to;
    int message_count;
    int message_size;
    void *ctx;
    void *s;
    int rc;
    int i;
    zmq_msg_t msg;
    int curve = 0;

    if (argc != 4 && argc != 5) {
        printf ("usage: remote_thr <connect-to> <message-size> "
                "<message-count> [<enable_curve>]\n");
        return 1;
    }
    connect_to = argv[1];
    message_size = atoi (argv[2]);
    message_count = atoi (argv[3]);
    if (argc >= 5 && atoi (argv[4])) {
        curve = 1;
    }

    ctx = zmq_init (1);
    if (!ctx) {
        printf ("error in zmq_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    s = zmq_socket (ctx, ZMQ_PUSH);
    if (!s) {
        printf ("error in zmq_socket: %s\n", zmq_strerror (errno));
        return -1;
    }

    //  Add your socket options here.
    //  For example ZMQ_RATE, ZMQ_RECOVERY_IVL and ZMQ_MCAST_LOOP for PGM.
    if (curve) {
        rc = zmq_setsockopt (s, ZMQ_CURVE_SECRETKEY, client_prvkey,
                             sizeof (client_prvkey));
        if (rc != 0) {
            printf ("error in zmq_setsockoopt: %s\n", zmq_strerror (errno));
            return -1;
        }

        rc = zmq_setsockopt (s, ZMQ_CURVE_PUBLICKEY, client_pubkey,
                             sizeof (client_pubkey));
        if (rc != 0) {
            printf ("error in zmq_setsockoopt: %s\n", zmq_strerror (errno));
            return -1;
        }

        rc = zmq_setsockopt (s, ZMQ_CURVE_SERVERKEY, server_pubkey,
                             sizeof (server_pubkey));
        if (rc != 0) {
            printf ("error in zmq_setsockoopt: %s\n", zmq_strerror (errno));
            return -1;
        }
    }

    rc = zmq_connect (s, connect_to);
    if (rc != 0) {
        printf ("error in zmq_connect: %s\n", zmq_strerror (errno));
        return -1;
    }

    for (i = 0; i != message_count; i++) {
        rc = zmq_msg_init_size (&msg, message_size);
        if (rc != 0) {
            printf ("error in zmq_msg_init_size: %s\n", zmq_strerror (errno));
            return -1;
        }
        rc = zmq_sendmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_sendmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
        rc = zmq_msg_close (&msg);
        if (rc != 0) {
            printf ("error in zmq_msg_close: %s\n", zmq_strerror (errno));
            return -1;
        }
    }

    rc = zmq_close (s);
    if (rc != 0) {
        printf ("error in zmq_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_ctx_term (ctx);
    if (rc != 0) {
        printf ("error in zmq_ctx_term: %s\n", zmq_strerror (errno));
        return -1;
    }

    return 0;
}
END_OF_REMOTE_THR_CPP

cat > "$tmp/perf/local_lat.cpp" <<'END_OF_LOCAL_LAT_CPP'
/* SPDX-License-Identifier: MPL-2.0 */

#include "../include/zmq.h"
#include <stdio.h>
#include <stdlib.h>

int main (int argc, char *argv[])
{
    const char *bind_to;
    int roundtrip_count;
    size_t message_size;
    void *ctx;
    void *s;
    int rc;
    int i;
    zmq_msg_t msg;

    if (argc != 4) {
        printf ("usage: local_lat <bind-to> <message-size> "
                "<roundtrip-count>\n");
        return 1;
    }
    bind_to = argv[1];
    message_size = atoi (argv[2]);
    roundtrip_count = atoi (argv[3]);

    ctx = zmq_init (1);
    if (!ctx) {
        printf ("error in zmq_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    s = zmq_socket (ctx, ZMQ_REP);
    if (!s) {
        printf ("error in zmq_socket: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_bind (s, bind_to);
    if (rc != 0) {
        printf ("error in zmq_bind: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_msg_init (&msg);
    if (rc != 0) {
        printf ("error in zmq_msg_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    for (i = 0; i != roundtrip_count; i++) {
        rc = zmq_recvmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_recvmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
        if (zmq_msg_size (&msg) != message_size) {
            printf ("message of incorrect size received\n");
            return -1;
        }
        rc = zmq_sendmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_sendmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
    }

    rc = zmq_msg_close (&msg);
    if (rc != 0) {
        printf ("error in zmq_msg_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    zmq_sleep (1);

    rc = zmq_close (s);
    if (rc != 0) {
        printf ("error in zmq_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_ctx_term (ctx);
    if (rc != 0) {
        printf ("error in zmq_ctx_term: %s\n", zmq_strerror (errno));
        return -1;
    }

    return 0;
}
END_OF_LOCAL_LAT_CPP

cat > "$tmp/perf/remote_lat.cpp" <<'END_OF_REMOTE_LAT_CPP'
/* SPDX-License-Identifier: MPL-2.0 */

#include "../include/zmq.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main (int argc, char *argv[])
{
    const char *connect_to;
    int roundtrip_count;
    size_t message_size;
    void *ctx;
    void *s;
    int rc;
    int i;
    zmq_msg_t msg;
    void *watch;
    unsigned long elapsed;
    double latency;

    if (argc != 4) {
        printf ("usage: remote_lat <connect-to> <message-size> "
                "<roundtrip-count>\n");
        return 1;
    }
    connect_to = argv[1];
    message_size = atoi (argv[2]);
    roundtrip_count = atoi (argv[3]);

    ctx = zmq_init (1);
    if (!ctx) {
        printf ("error in zmq_init: %s\n", zmq_strerror (errno));
        return -1;
    }

    s = zmq_socket (ctx, ZMQ_REQ);
    if (!s) {
        printf ("error in zmq_socket: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_connect (s, connect_to);
    if (rc != 0) {
        printf ("error in zmq_connect: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_msg_init_size (&msg, message_size);
    if (rc != 0) {
        printf ("error in zmq_msg_init_size: %s\n", zmq_strerror (errno));
        return -1;
    }
    memset (zmq_msg_data (&msg), 0, message_size);

    watch = zmq_stopwatch_start ();

    for (i = 0; i != roundtrip_count; i++) {
        rc = zmq_sendmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_sendmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
        rc = zmq_recvmsg (s, &msg, 0);
        if (rc < 0) {
            printf ("error in zmq_recvmsg: %s\n", zmq_strerror (errno));
            return -1;
        }
        if (zmq_msg_size (&msg) != message_size) {
            printf ("message of incorrect size received\n");
            return -1;
        }
    }

    elapsed = zmq_stopwatch_stop (watch);

    rc = zmq_msg_close (&msg);
    if (rc != 0) {
        printf ("error in zmq_msg_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    latency = (double) elapsed / (roundtrip_count * 2);

    printf ("message size: %d [B]\n", (int) message_size);
    printf ("roundtrip count: %d\n", (int) roundtrip_count);
    printf ("average latency: %.3f [us]\n", (double) latency);

    rc = zmq_close (s);
    if (rc != 0) {
        printf ("error in zmq_close: %s\n", zmq_strerror (errno));
        return -1;
    }

    rc = zmq_ctx_term (ctx);
    if (rc != 0) {
        printf ("error in zmq_ctx_term: %s\n", zmq_strerror (errno));
        return -1;
    }

    return 0;
}
END_OF_REMOTE_LAT_CPP

#   The embedded files are exactly libzmq's, when git can tell
if command -v git >/dev/null 2>&1; then
    for pair in local_thr:0f039cfa1d3597d34ea8b2f7e3a53871b63848d1 \
                remote_thr:8d4fcaef7451cbe0260e1a8b3a0d285e63ed80c5 \
                local_lat:d5bcab8c728b3cf0785d3547e3a09b8c3a78e12c \
                remote_lat:2b4539087e9213ef4d5caf70581c985f1286671f; do
        name=${pair%%:*}
        got=$(git hash-object "$tmp/perf/$name.cpp" 2>/dev/null)
        [ "$got" = "${pair#*:}" ] \
            || say "swap_overhead: warning: perf/$name.cpp is not libzmq v4.3.5's ($got)"
    done
fi

#   -w: the tools use zmq_sendmsg/zmq_recvmsg, deprecated but still there
for name in local_thr remote_thr local_lat remote_lat; do
    if ! g++ -O2 -w -o "$tmp/bin/$name" "$tmp/perf/$name.cpp" -lzmq 2>"$tmp/cc.err"; then
        cat "$tmp/cc.err"
        skip "cannot build $name.cpp against the system libzmq (libzmq3-dev?)"
    fi
done

zmq_version=$(pkg-config --modversion libzmq 2>/dev/null || echo "?")
say "swap_overhead: build $build"
say "  libzmq $zmq_version, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "  $reps reps per mode, alternating (odd reps plain first, even reps launcher first)"
say "  throughput: local_thr/remote_thr, $thr_count messages; latency: local_lat/remote_lat, $lat_count round trips"
say "  transport ipc:// in $tmp; sizes: $sizes B"
say ""

#   The command prefix of MODE, in the array prefix
set_prefix () {
    prefix=()
    if [ "$1" = launcher ]; then prefix=("$launcher"); fi
}

#   Wait until socket file $1 exists, or process $2 is gone, or 10 s pass
wait_socket () {
    local tries=0
    while [ ! -S "$1" ] && [ "$tries" -lt 1000 ] && kill -0 "$2" 2>/dev/null; do
        sleep 0.01
        tries=$((tries + 1))
    done
}

#   One attempt: KIND (thr|lat) MODE (plain|launcher) SIZE COUNT. Sets
#   result to msg/s (thr, local_thr's figure) or us (lat, remote_lat's
#   one-way figure), or to LOST when remote_thr ended but local_thr still
#   waited for messages after $tail_wait s (libzmq drops the tail of a
#   PUSH stream now and then when the sender terminates: issue #1922; it
#   happens without the launcher too), or to FAIL.
attempt () {
    local kind=$1 mode=$2 size=$3 count=$4 socket="$tmp/$1.ipc" lpid rrc lrc waited=0
    set_prefix "$mode"
    rm -f "$socket"
    timeout "$limit" ${prefix[@]+"${prefix[@]}"} "$tmp/bin/local_$kind" \
        "ipc://$socket" "$size" "$count" >"$tmp/local.out" 2>&1 &
    lpid=$!
    children="$lpid"
    wait_socket "$socket" "$lpid"
    timeout "$limit" ${prefix[@]+"${prefix[@]}"} "$tmp/bin/remote_$kind" \
        "ipc://$socket" "$size" "$count" >"$tmp/remote.out" 2>&1
    rrc=$?
    while kill -0 "$lpid" 2>/dev/null && [ "$waited" -lt $((tail_wait * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if kill -0 "$lpid" 2>/dev/null; then
        kill "$lpid" 2>/dev/null
        wait "$lpid" 2>/dev/null
        children=""
        if [ "$rrc" -eq 0 ]; then
            result=LOST
        else
            say "swap_overhead: $kind $mode $size B failed (remote rc $rrc):" >&2
            sed 's/^/    remote: /' "$tmp/remote.out" >&2
            result=FAIL
        fi
        return
    fi
    wait "$lpid"
    lrc=$?
    children=""
    if [ "$kind" = thr ]; then
        result=$(awk '/mean throughput:.*msg\/s/ { print $3 }' "$tmp/local.out")
    else
        result=$(awk '/average latency:/ { print $3 }' "$tmp/remote.out")
    fi
    if [ "$rrc" -ne 0 ] || [ "$lrc" -ne 0 ] || [ -z "$result" ]; then
        say "swap_overhead: $kind $mode $size B failed (local rc $lrc, remote rc $rrc):" >&2
        sed 's/^/    local: /' "$tmp/local.out" >&2
        sed 's/^/    remote: /' "$tmp/remote.out" >&2
        result=FAIL
    fi
}

#   One measurement: attempt, again after a lost tail (up to 3 times in
#   all), counting the lost tails of each mode in lost_MODE
lost_plain=0
lost_launcher=0
run_one () {
    local _
    for _ in 1 2 3; do
        attempt "$@"
        [ "$result" = LOST ] || return
        eval "lost_$2=\$((lost_$2 + 1))"
    done
    result=FAIL
}

#   Statistics of the numbers given (FAIL skipped): "median min max n"
stats () {
    printf '%s\n' "$@" | grep -v FAIL | sort -g | awk '
        { v[NR] = $1 }
        END {
            if (NR == 0) { print "NA NA NA 0"; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            print m, v[1], v[NR], NR
        }'
}

rows=()
raws=()
outside=0
for size in $sizes; do
    for kind in thr lat; do
        if [ "$kind" = thr ]; then count=$thr_count; else count=$lat_count; fi
        plain=()
        swap=()
        printf 'running %s %s B ' "$kind" "$size" >&2
        for rep in $(seq 1 "$reps"); do
            if [ $((rep % 2)) -eq 1 ]; then order="plain launcher"; else order="launcher plain"; fi
            for mode in $order; do
                run_one "$kind" "$mode" "$size" "$count"
                if [ "$mode" = plain ]; then plain+=("$result"); else swap+=("$result"); fi
                printf '.' >&2
            done
        done
        printf '\n' >&2
        read -r pm pmin pmax pn <<<"$(stats "${plain[@]}")"
        read -r sm smin smax sn <<<"$(stats "${swap[@]}")"
        #   Paired: each rep's launcher figure over its plain neighbour's
        paired=()
        for i in "${!plain[@]}"; do
            if [ "${plain[$i]}" != FAIL ] && [ "${swap[$i]}" != FAIL ]; then
                paired+=("$(awk -v s="${swap[$i]}" -v p="${plain[$i]}" 'BEGIN { print (p > 0) ? s / p : "FAIL" }')")
            fi
        done
        read -r qm _ _ _ <<<"$(stats ${paired[@]+"${paired[@]}"})"
        line=$(awk -v kind="$kind" -v size="$size" -v pm="$pm" -v pmin="$pmin" \
                   -v pmax="$pmax" -v pn="$pn" -v sm="$sm" -v smin="$smin" \
                   -v smax="$smax" -v sn="$sn" -v reps="$reps" -v qm="$qm" 'BEGIN {
            what = (kind == "thr") ? "throughput [msg/s]" : "latency [us]"
            label = sprintf ("%-18s %5d B", what, size)
            if (pn == 0 || sn == 0 || pm == 0) {
                printf "%s  %12s %12s %7s %7s %8s %8s  %s\n", label, pm, sm, "-", "-", "-", "-",
                       "FAILED (see above)"
                exit 1
            }
            ratio = sm / pm
            verdict = (ratio < 0.9 || ratio > 1.1) ? "OUTSIDE 0.9-1.1" : "within 0.9-1.1"
            if (pn < reps || sn < reps) verdict = verdict " (" pn "+" sn " of " reps "+" reps " runs)"
            fmt = (kind == "thr") ? "%12.0f %12.0f" : "%12.2f %12.2f"
            printf "%s  " fmt " %7.3f %7.3f %7.1f%% %7.1f%%  %s\n", label, pm, sm, ratio, qm,
                   100 * (pmax - pmin) / pm, 100 * (smax - smin) / sm, verdict
            exit (ratio < 0.9 || ratio > 1.1) ? 1 : 0
        }') || outside=1
        rows+=("$line")
        raws+=("$(printf '%s %4d B  plain:    %s' "$kind" "$size" "${plain[*]}")")
        raws+=("$(printf '%s %4d B  launcher: %s' "$kind" "$size" "${swap[*]}")")
    done
done

say "== ipc:// through libzmq's perf tools: medians of $reps, ratio = launcher / plain"
say "   (throughput: higher is better; latency: lower is better; paired = median of each"
say "   rep's launcher/plain; spread = (max-min)/median of a mode; verdict on ratio)"
printf '%-26s  %12s %12s %7s %7s %8s %8s  %s\n' "measurement" "plain" "launcher" "ratio" \
       "paired" "spread-p" "spread-l" "verdict"
for line in "${rows[@]}"; do say "$line"; done
say ""
say "lost tails (libzmq #1922, run again): plain $lost_plain, launcher $lost_launcher"
say "raw figures, in run order per mode:"
for line in "${raws[@]}"; do say "  $line"; done
say ""

#   Threads: a process parked in libzmq, plain and under the launcher.
#   probe MODE SOCKET-TO-WAIT-FOR|- PROGRAM ARGS...: sets probe_out to
#   "threads names preload-mapped rss-kB shared-objects"
probe () {
    local mode=$1 socket=$2 pid names preload rss libs threads
    shift 2
    set_prefix "$mode"
    rm -f "$tmp/probe.ipc"
    ${prefix[@]+"${prefix[@]}"} "$@" >/dev/null 2>&1 &
    pid=$!
    children="$pid"
    if [ "$socket" != - ]; then wait_socket "$socket" "$pid"; fi
    sleep 1
    if [ -d "/proc/$pid/task" ]; then
        threads=$(find "/proc/$pid/task" -mindepth 1 -maxdepth 1 | wc -l)
        names=$(cat /proc/"$pid"/task/*/comm 2>/dev/null | paste -sd, -)
        preload=no
        grep -q 'libshmipc-preload\.so' "/proc/$pid/maps" 2>/dev/null && preload=yes
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
        libs=$(awk '$6 ~ /\.so/ { print $6 }' "/proc/$pid/maps" | sort -u | wc -l)
        probe_out="$threads $names $preload $rss $libs"
    else
        probe_out="? (exited) ? ? ?"
    fi
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    children=""
}

say "== threads of a process waiting in libzmq (1 s after start)"
printf '%-38s %-9s %7s  %-8s %8s %5s  %s\n' "process" "mode" "threads" "preload" "RSS[kB]" "libs" "thread names"
declare -A probed
for what in "local_thr (PULL, bound)" "remote_lat (REQ, connecting, no peer)"; do
    for mode in plain launcher; do
        case "$what" in
            local_thr*) probe "$mode" "$tmp/probe.ipc" "$tmp/bin/local_thr" "ipc://$tmp/probe.ipc" 64 1000 ;;
            *)          probe "$mode" - "$tmp/bin/remote_lat" "ipc://$tmp/nobody.ipc" 64 1000 ;;
        esac
        read -r threads names preload rss libs <<<"$probe_out"
        probed["$what/$mode"]=$threads
        printf '%-38s %-9s %7s  %-8s %8s %5s  %s\n' "$what" "$mode" "$threads" "$preload" "$rss" "$libs" "$names"
    done
done
extra_threads=0
for what in "local_thr (PULL, bound)" "remote_lat (REQ, connecting, no peer)"; do
    [ "${probed[$what/plain]}" = "${probed[$what/launcher]}" ] || extra_threads=1
done
say ""

#   Every thread a whole throughput run creates, start to end (strace)
strace_note="strace not found: lifetime thread count skipped"
if command -v strace >/dev/null 2>&1; then
    say "== threads created over a whole run (strace -f, clone with CLONE_THREAD), thr 64 B x 100000"
    printf '%-9s %10s %11s\n' "mode" "local_thr" "remote_thr"
    strace_note=""
    for mode in plain launcher; do
        set_prefix "$mode"
        socket="$tmp/strace.ipc"
        rm -f "$socket"
        timeout "$limit" strace -f -qq -e trace=clone,clone3 -o "$tmp/strace.local" \
            ${prefix[@]+"${prefix[@]}"} "$tmp/bin/local_thr" "ipc://$socket" 64 100000 >/dev/null 2>&1 &
        lpid=$!
        children="$lpid"
        wait_socket "$socket" "$lpid"
        timeout "$limit" strace -f -qq -e trace=clone,clone3 -o "$tmp/strace.remote" \
            ${prefix[@]+"${prefix[@]}"} "$tmp/bin/remote_thr" "ipc://$socket" 64 100000 >/dev/null 2>&1
        rrc=$?
        #   A lost tail (see attempt) leaves local_thr waiting: its threads
        #   were all made by then
        waited=0
        while kill -0 "$lpid" 2>/dev/null && [ "$waited" -lt $((tail_wait * 10)) ]; do
            sleep 0.1
            waited=$((waited + 1))
        done
        lrc=0
        kill "$lpid" 2>/dev/null       # timeout: it passes it on to strace
        wait "$lpid" 2>/dev/null
        children=""
        if [ "$rrc" -ne 0 ] || [ "$lrc" -ne 0 ]; then
            printf '%-9s %10s %11s\n' "$mode" "n/a" "n/a"
            strace_note="strace failed (ptrace not allowed here?)"
            continue
        fi
        lt=$(grep -c 'CLONE_THREAD' "$tmp/strace.local")
        rt=$(grep -c 'CLONE_THREAD' "$tmp/strace.remote")
        eval "strace_$mode=\"$lt $rt\""
        printf '%-9s %10s %11s\n' "$mode" "$lt" "$rt"
    done
    if [ -z "$strace_note" ] && [ "${strace_plain:-}" != "${strace_launcher:-}" ]; then
        extra_threads=1
    fi
    say ""
fi

if [ "$outside" -eq 0 ]; then
    say "swap_overhead: every ratio launcher/plain is within 0.9-1.1"
else
    say "swap_overhead: NOTE: a ratio launcher/plain is OUTSIDE 0.9-1.1 (or a run failed);"
    say "  compare it with the plain spread: on a noisy machine rerun with more REPS"
fi
if [ "$extra_threads" -eq 0 ]; then
    say "swap_overhead: the launcher adds no threads"
else
    say "swap_overhead: NOTE: thread counts differ with the launcher (see above)"
fi
[ -n "$strace_note" ] && say "swap_overhead: $strace_note"
exit 0
