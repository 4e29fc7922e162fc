/*  =========================================================================
    shmipc-limits-server - a ROUTER echo server on shm:// in its own
    process, for the limits tests (tests/test_hardening_limits.c), so that
    a test can cap its descriptors and read its CPU time and memory from
    /proc while clients (shmipc-swarm) crowd it

    Owns its socket. Sets its descriptor limit before anything else, binds,
    says "ready", then sends every message back to whoever sent it. Exits 0
    when its stdin closes, 1 if it cannot start, 2 on bad use.

        shmipc-limits-server [-n NOFILE|max] [-c CAPACITY] [-l LOGFILE] ENDPOINT

    -n  set the soft RLIMIT_NOFILE first ("max": to the hard limit)
    -c  ring capacity of its shm:// connections (default: the plugin's)
    -l  verbose: our diagnostics (shmipc_set_verbose) go to LOGFILE

    On stdin, "stats" (and end of stdin, before it exits) prints
        stats peers=P accepted=A closed=C errors=E msgs_in=I msgs_out=O
              echoed=N cpu_us=U
    (one line): shmipc_sock_stats, the messages echoed, and the user plus
    system CPU time of the whole process (getrusage, every thread).
    =========================================================================
*/

#include "shmipc.h"
#include "testutil.h"

#include <fcntl.h>
#include <sys/resource.h>

static void
s_stats (zsock_t *router, uint64_t echoed)
{
    shmipc_stats_t stats = { 0 };
    shmipc_sock_stats (router, &stats);
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    int64_t cpu_us = (int64_t) usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec
                   + (int64_t) usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    tu_say ("stats peers=%" PRIu64 " accepted=%" PRIu64 " closed=%" PRIu64 " errors=%"
           PRIu64 " msgs_in=%" PRIu64 " msgs_out=%" PRIu64 " echoed=%" PRIu64
           " cpu_us=%" PRId64, stats.peers, stats.accepted, stats.closed, stats.errors,
           stats.msgs_in, stats.msgs_out, echoed, cpu_us);
}

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    if (!tu_child_init ())
        return 2;
    size_t capacity = 0;
    const char *log = NULL;
    int opt;
    while ((opt = getopt (argc, argv, "n:c:l:")) != -1) {
        if (opt == 'n') {
            //  First, before czmq and libzmq open anything
            struct rlimit limit;
            getrlimit (RLIMIT_NOFILE, &limit);
            limit.rlim_cur = streq (optarg, "max") ? limit.rlim_max : (rlim_t) atol (optarg);
            if (setrlimit (RLIMIT_NOFILE, &limit)) {
                fprintf (stderr, "limits-server: setrlimit: %s\n", strerror (errno));
                return 1;
            }
        }
        else
        if (opt == 'c')
            capacity = (size_t) atol (optarg);
        else
        if (opt == 'l')
            log = optarg;
        else
            return 2;
    }
    if (argc - optind != 1) {
        fprintf (stderr, "usage: shmipc-limits-server [-n NOFILE|max] [-c CAPACITY] "
                 "[-l LOGFILE] ENDPOINT\n");
        return 2;
    }
    const char *endpoint = argv [optind];
    if (log) {
        int fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || dup2 (fd, STDERR_FILENO) < 0) {
            fprintf (stderr, "limits-server: %s: %s\n", log, strerror (errno));
            return 1;
        }
        close (fd);
        shmipc_set_verbose (true);
    }
    zsock_t *router = shmipc_sock_new (ZMQ_ROUTER, NULL);
    if (!router
    ||  (capacity && shmipc_set_capacity (router, capacity))
    ||  shmipc_bind (router, "%s", endpoint)) {
        tu_say ("FAIL bind %s: %s", endpoint, strerror (errno));
        shmipc_sock_destroy (&router);
        return 1;
    }
    tu_say ("ready");
    uint64_t echoed = 0;
    while (true) {
        zmq_pollitem_t items [] = {
            { .socket = zsock_resolve (router), .events = ZMQ_POLLIN },
            { .fd = STDIN_FILENO, .events = ZMQ_POLLIN }
        };
        if (zmq_poll (items, 2, -1) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            break;
        }
        if (items [0].revents & ZMQ_POLLIN) {
            //  What is waiting (a bounded batch), then back to stdin
            zmsg_t *msg;
            for (int count = 0; count < 1000 && (zsock_events (router) & ZMQ_POLLIN)
                                && (msg = zmsg_recv (router)); count++) {
                zmsg_send (&msg, router);
                echoed++;
            }
        }
        if (items [1].revents) {
            char line [64];
            if (tu_read_line (STDIN_FILENO, line, sizeof line, 1000))
                break;          //  End of stdin
            if (streq (line, "stats"))
                s_stats (router, echoed);
            else
                tu_say ("unknown command '%s'", line);
        }
    }
    s_stats (router, echoed);
    shmipc_sock_destroy (&router);
    return 0;
}
