/*  =========================================================================
    shmipc-test-peer - the far end of the plugin tests, in its own process
    (a test process that already runs czmq must not fork and use it again)

    Owns its one socket. Prints "ready" once its socket is attached, then
    plays its role; exits 0 on success, 1 on a failed check, 2 on bad use.
    An endpoint starts with '@' (bind) or '>' (connect), as for zsock_new.

        pull ENDPOINT COUNT [RCVHWM]   receive COUNT tagged messages from one
                                       sender, in order, payloads checked;
                                       print "ok COUNT"
        sink ENDPOINT RCVHWM           a PULL that never reads, until killed
        pushloop ENDPOINT TAG SIZE [COUNT]
                                       send tagged messages for ever (or
                                       COUNT of them, then wait to be killed)
        echo ENDPOINT                  a REP that sends back every request
    =========================================================================
*/

#include "testutil_plugin.h"


static zsock_t *
s_socket (int type, const char *endpoint, int rcvhwm)
{
    zsock_t *sock = shmipc_sock_new (type, NULL);
    if (!sock)
        return NULL;
    if (rcvhwm > 0)
        zsock_set_rcvhwm (sock, rcvhwm);
    zsock_set_rcvtimeo (sock, PT_PATIENCE_MS);
    if (shmipc_attach (sock, endpoint, false)) {
        fprintf (stderr, "peer: attach %s: %s\n", endpoint, strerror (errno));
        shmipc_sock_destroy (&sock);
        return NULL;
    }
    printf ("ready\n");
    fflush (stdout);
    return sock;
}

static int
s_pull (const char *endpoint, long count, int rcvhwm)
{
    zsock_t *sock = s_socket (ZMQ_PULL, endpoint, rcvhwm);
    if (!sock)
        return 1;
    int rc = 0;
    char first [32] = "";
    for (long expected = 0; expected < count; expected++) {
        char tag [32];
        long seq;
        if (pt_recv_tagged (zsock_resolve (sock), tag, sizeof tag, &seq)) {
            fprintf (stderr, "peer: pull: message %ld of %ld missing or bad: %s\n",
                     expected, count, strerror (errno));
            rc = 1;
            break;
        }
        if (expected == 0)
            snprintf (first, sizeof first, "%s", tag);
        if (seq != expected || strcmp (tag, first)) {
            fprintf (stderr, "peer: pull: got %s:%ld, expected %s:%ld\n",
                     tag, seq, first, expected);
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        printf ("ok %ld\n", count);
        fflush (stdout);
    }
    shmipc_sock_destroy (&sock);
    return rc;
}

static int
s_sink (const char *endpoint, int rcvhwm)
{
    zsock_t *sock = s_socket (ZMQ_PULL, endpoint, rcvhwm);
    if (!sock)
        return 1;
    while (!zsys_interrupted)
        zclock_sleep (100);
    shmipc_sock_destroy (&sock);
    return 0;
}

static int
s_pushloop (const char *endpoint, const char *tag, size_t size, long count)
{
    zsock_t *sock = s_socket (ZMQ_PUSH, endpoint, 0);
    if (!sock)
        return 1;
    zsock_set_sndtimeo (sock, -1);
    for (long seq = 0; !zsys_interrupted && (count < 0 || seq < count); seq++)
        if (pt_send_tagged (zsock_resolve (sock), tag, seq, size, 0) == -1)
            break;
    while (!zsys_interrupted)
        zclock_sleep (100);
    shmipc_sock_destroy (&sock);
    return 0;
}

static int
s_echo (const char *endpoint)
{
    zsock_t *sock = s_socket (ZMQ_REP, endpoint, 0);
    if (!sock)
        return 1;
    zsock_set_rcvtimeo (sock, -1);
    while (!zsys_interrupted) {
        zmsg_t *msg = zmsg_recv (sock);
        if (!msg)
            break;
        zmsg_send (&msg, sock);
    }
    shmipc_sock_destroy (&sock);
    return 0;
}

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    if (!tu_child_init ())
        return 2;
    const char *role = argc > 1 ? argv [1] : "";
    int rc = 2;
    if (streq (role, "pull") && argc >= 4)
        rc = s_pull (argv [2], atol (argv [3]), argc > 4 ? atoi (argv [4]) : 0);
    else
    if (streq (role, "sink") && argc == 4)
        rc = s_sink (argv [2], atoi (argv [3]));
    else
    if (streq (role, "pushloop") && (argc == 5 || argc == 6))
        rc = s_pushloop (argv [2], argv [3], (size_t) atol (argv [4]),
                         argc == 6 ? atol (argv [5]) : -1);
    else
    if (streq (role, "echo") && argc == 3)
        rc = s_echo (argv [2]);
    else
        fprintf (stderr, "usage: shmipc-test-peer pull|sink|pushloop|echo ...\n");
    return rc;
}
