/*  =========================================================================
    shmipc-careless - a user who forgets to clean up, in its own process, for
    tests/test_hardening_plugin.c

    Owns its one socket, which it never destroys: main returns with it live
    and czmq's exit handler is left to deal with it. Prints "ready" once the
    socket is attached and "sent COUNT" once COUNT tagged messages (tag "X",
    payload 100 bytes, see testutil_plugin.h) are sent; exits 0 when main
    returns, 1 on a failed call, 2 on bad use. An endpoint starts with '@'
    (bind) or '>' (connect), as for zsock_new.

        exit-live ENDPOINT COUNT [LINGER]
                        a PUSH made by shmipc_sock_new (any scheme), linger
                        LINGER ms (default 2000), COUNT messages sent, then
                        return from main with the socket live
        exit-live-ipc ENDPOINT COUNT [LINGER]
                        the same with czmq alone (zsock_new, zsock_attach),
                        for an ipc:// or tcp:// endpoint: what czmq and
                        libzmq do, to compare with
    =========================================================================
*/

#include "testutil_plugin.h"


//  The socket left live. Kept in a global, as a program that forgets its
//  sockets typically does: still reachable at exit, so that LeakSanitizer
//  and valgrind count it as the program's, not as a leak of ours.
static zsock_t *volatile s_sock;

//  Attach a PUSH to endpoint (through shmipc or czmq alone), send count
//  tagged messages, and leave the socket live. Returns the exit code.
static int
s_exit_live (const char *endpoint, long count, int linger, bool czmq_only)
{
    zsock_t *sock = czmq_only ? zsock_new (ZMQ_PUSH) : shmipc_sock_new (ZMQ_PUSH, NULL);
    s_sock = sock;
    if (!sock)
        return 1;
    zsock_set_linger (sock, linger);
    zsock_set_sndtimeo (sock, PT_PATIENCE_MS);
    zsock_set_reconnect_ivl (sock, 20);
    int rc = czmq_only ? zsock_attach (sock, endpoint, false)
                       : shmipc_attach (sock, endpoint, false);
    if (rc) {
        fprintf (stderr, "careless: attach %s: %s\n", endpoint, strerror (errno));
        return 1;
    }
    printf ("ready\n");
    fflush (stdout);
    //  A bound PUSH waits here for its first peer
    for (long seq = 0; seq < count; seq++)
        if (pt_send_tagged (zsock_resolve (sock), "X", seq, 100, 0) == -1) {
            fprintf (stderr, "careless: send %ld: %s\n", seq, zmq_strerror (zmq_errno ()));
            return 1;
        }
    printf ("sent %ld\n", count);
    fflush (stdout);
    return 0;                   //  The socket stays live: that's the point
}

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    if (!tu_child_init ())
        return 2;
    const char *mode = argc > 1 ? argv [1] : "";
    int linger = argc > 4 ? atoi (argv [4]) : 2000;
    if (streq (mode, "exit-live") && (argc == 4 || argc == 5))
        return s_exit_live (argv [2], atol (argv [3]), linger, false);
    if (streq (mode, "exit-live-ipc") && (argc == 4 || argc == 5)
    &&  !strstr (argv [2], "shm://"))
        return s_exit_live (argv [2], atol (argv [3]), linger, true);
    fprintf (stderr, "usage: shmipc-careless exit-live|exit-live-ipc ENDPOINT COUNT [LINGER]\n");
    return 2;
}
