/*  =========================================================================
    echo_server - a czmq ROUTER that sends every message back to whoever
    sent it, on any mix of shm://, ipc:// and tcp:// endpoints at once

    Owns: one ROUTER socket and nothing else. It is a plain czmq program:
    shmipc_attach is zsock_attach that also understands shm://, and
    shmipc_sock_destroy is zsock_destroy that also stops the shm:// actor.

        echo_server [-v] ENDPOINT [ENDPOINT...]
    =========================================================================
*/

#include "shmipc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define S_NAME      "echo_server"

//  True if an endpoint list asks for an ephemeral tcp:// port, which
//  zsock_bind reports through zsock_endpoint (the last one it bound).
static bool
s_ephemeral (const char *endpoints)
{
    return strstr (endpoints, "tcp://")
        && (strstr (endpoints, ":*") || strstr (endpoints, ":!"));
}

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: %s [-v] ENDPOINT [ENDPOINT...]\n"
        "  Echo every message back to its sender, for any number of clients.\n"
        "  ENDPOINT   shm:///path, shm://@name, ipc:///path, tcp://host:port, or a\n"
        "             comma-separated list of them (\"@tcp://*:5555,@shm:///tmp/echo\");\n"
        "             a tcp:// port of * picks a free one, printed when listening\n"
        "  -v         print the shm:// counters when stopping\n"
        "  SIGINT or SIGTERM stops it.\n", S_NAME);
}

int
main (int argc, char *argv [])
{
    bool verbose = false;
    int first = 1;
    if (first < argc && streq (argv [first], "-v")) {
        verbose = true;
        first++;
    }
    if (first >= argc || argv [first][0] == '-') {
        s_usage ();
        return 1;
    }
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    if (!router) {
        fprintf (stderr, "%s: cannot create a socket: %s\n", S_NAME, zmq_strerror (zmq_errno ()));
        return 1;
    }
    //  Each argument may be a list; unprefixed endpoints bind, as they would
    //  for zsock_new_router
    for (int index = first; index < argc; index++) {
        if (shmipc_attach (router, argv [index], true)) {
            fprintf (stderr, "%s: cannot attach to %s: %s\n", S_NAME, argv [index],
                     strerror (errno));
            shmipc_sock_destroy (&router);
            return 1;
        }
        //  Binds are done when attach returns, so a client may start now.
        //  A tcp:// port of '*' or '!' lets czmq pick a free one: name it
        if (s_ephemeral (argv [index]) && zsock_endpoint (router))
            printf ("%s: listening on %s (%s)\n", S_NAME, argv [index],
                    zsock_endpoint (router));
        else
            printf ("%s: listening on %s\n", S_NAME, argv [index]);
    }
    fflush (stdout);

    //  czmq's handler sets zsys_interrupted and makes the blocking receive
    //  return NULL, so idle we sleep in the kernel. A signal that lands
    //  between the check and the receive is noticed at the next message:
    //  czmq's flag cannot close that window, and a stop request normally
    //  finds us idle inside the receive
    uint64_t echoed = 0;
    while (!zsys_interrupted) {
        zmsg_t *msg = zmsg_recv (router);
        if (!msg)
            break;
        //  Frame 1 is the sender's routing id: sending the message back as
        //  received routes it home. A sender that left is dropped silently
        if (zmsg_send (&msg, router) == 0)
            echoed++;
        zmsg_destroy (&msg);
    }
    printf ("%s: stopping after %" PRIu64 " echoes\n", S_NAME, echoed);
    int rc = 0;
    if (verbose) {
        shmipc_stats_t stats;
        if (shmipc_sock_stats (router, &stats) == 0)
            printf ("%s: shm peers=%" PRIu64 " accepted=%" PRIu64 " closed=%" PRIu64
                    " errors=%" PRIu64 " msgs_in=%" PRIu64 " bytes_in=%" PRIu64
                    " msgs_out=%" PRIu64 " bytes_out=%" PRIu64 " wakeups=%" PRIu64 "\n",
                    S_NAME, stats.peers, stats.accepted, stats.closed, stats.errors,
                    stats.msgs_in, stats.bytes_in, stats.msgs_out, stats.bytes_out,
                    stats.wakeups);
        else {
            fprintf (stderr, "%s: cannot read the shm:// counters: %s\n", S_NAME,
                     strerror (errno));
            rc = 1;
        }
    }
    shmipc_sock_destroy (&router);
    return rc;
}
