/*  =========================================================================
    test_reliability_api - bad input from the application: malformed
    endpoints, NULL where it is allowed, wrong types and sizes, oversize
    messages, and every call after the peer vanished. Each gets a clear
    error (or works), none crashes, hangs or leaks.

    Owns the sockets, channels and processes it starts.
    =========================================================================
*/

#include "testutil_reliability.h"
#include "shmipc_fdpass.h"
#include "endpoint.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"

#include <sys/socket.h>

//  --------------------------------------------------------------------------
//  Malformed endpoints

static void
test_malformed_endpoints_fail_with_einval_on_every_path (void **state)
{
    rl_usage_t start = rl_usage ();
    char long_path [160], long_name [160], long_relative [160];
    snprintf (long_path, sizeof long_path, "shm:///tmp/%0108d", 0);
    snprintf (long_name, sizeof long_name, "shm://@%0107d", 0);
    //  Relative paths are good (as over ipc://) unless too long once
    //  resolved against the working directory
    snprintf (long_relative, sizeof long_relative, "shm://%0106d", 0);
    const char *bad [] = {
        "shm://", "shm:///", long_relative, "shm://@",
        long_path, long_name, "shm:///tmp/new\nline", "shm://@tab\there",
        "shm:///tmp/del\x7f", "shm://@\x01",
    };
    zsock_t *sock = pt_sock (ZMQ_PULL);
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        char prefixed [300];
        errno = 0;
        assert_int_equal (shmipc_bind (sock, "%s", bad [index]), -1);
        assert_int_equal (errno, EINVAL);
        errno = 0;
        assert_int_equal (shmipc_connect (sock, "%s", bad [index]), -1);
        assert_int_equal (errno, EINVAL);
        snprintf (prefixed, sizeof prefixed, ">%s", bad [index]);
        errno = 0;
        assert_int_equal (shmipc_attach (sock, prefixed, true), -1);
        assert_int_equal (errno, EINVAL);
        snprintf (prefixed, sizeof prefixed, "@%s", bad [index]);
        errno = 0;
        assert_null (shmipc_sock_new (ZMQ_PULL, prefixed));
        assert_int_equal (errno, EINVAL);
        //  Nothing was attached: nothing to undo
        assert_int_equal (shmipc_unbind (sock, "%s", bad [index]), -1);
        assert_int_equal (shmipc_disconnect (sock, "%s", bad [index]), -1);
    }
    //  Lists: an empty element, a trailing comma, an element too long
    char good [256], list [600];
    tu_endpoint (good, sizeof good, 'a');
    for (int index = 0; index < 4; index++) {
        if (index == 0)
            snprintf (list, sizeof list, ",");
        else
        if (index == 1)
            snprintf (list, sizeof list, "@%s,,", good);
        else
        if (index == 2)
            snprintf (list, sizeof list, "@%s,@", good);
        else
            snprintf (list, sizeof list, ">");
        errno = 0;
        zsock_t *other = shmipc_sock_new (ZMQ_PULL, list);
        if (other)
            print_error ("list '%s' was accepted\n", list);
        assert_null (other);
        assert_int_not_equal (errno, 0);
    }
    memset (list, 'x', 300);
    list [300] = 0;
    errno = 0;
    assert_int_equal (shmipc_attach (sock, list, true), -1);
    assert_int_equal (errno, EINVAL);
    shmipc_sock_destroy (&sock);
    print_message ("    %zu malformed endpoints on 6 paths each, 5 malformed lists: "
                   "all refused\n", sizeof bad / sizeof bad [0]);
    rl_assert_usage (start);
}

//  --------------------------------------------------------------------------
//  NULL where allowed, and wrong types and sizes

static void
test_null_arguments_and_wrong_values_get_clear_answers (void **state)
{
    rl_usage_t start = rl_usage ();
    //  The plugin
    zsock_t *sock = shmipc_sock_new (ZMQ_DEALER, NULL);
    assert_non_null (sock);
    assert_int_equal (shmipc_attach (sock, NULL, true), 0);
    assert_int_equal (shmipc_attach (sock, "", false), 0);
    assert_null (shmipc_sock_actor (sock));
    shmipc_stats_t stats;
    memset (&stats, 0xff, sizeof stats);
    assert_int_equal (shmipc_sock_stats (sock, &stats), 0);
    assert_int_equal (stats.peers + stats.accepted + stats.errors + stats.msgs_in, 0);
    errno = 0;
    assert_int_equal (shmipc_unbind (sock, "shm://@never-bound-%d", (int) getpid ()), -1);
    assert_int_equal (errno, ENOENT);
    errno = 0;
    assert_int_equal (shmipc_set_capacity (sock, 0), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_set_capacity (sock, SIZE_MAX), -1);
    assert_int_equal (errno, EINVAL);
    for (uid_t uid = 1000; uid < 1016; uid++)
        assert_int_equal (shmipc_allow_uid (sock, uid), 0);
    errno = 0;
    assert_int_equal (shmipc_allow_uid (sock, 2000), -1);
    assert_int_equal (errno, ENOSPC);
    shmipc_sock_destroy (&sock);
    assert_null (sock);
    shmipc_sock_destroy (&sock);
    //  Types the transport does not serve, and types that do not exist
    char endpoint [256], attach [300];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (attach, sizeof attach, "@%s", endpoint);
    errno = 0;
    assert_null (shmipc_sock_new (ZMQ_STREAM, attach));
    assert_int_equal (errno, ENOCOMPATPROTO);
    errno = 0;
    assert_null (shmipc_sock_new (12345, attach));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_sock_new (-1, NULL));
    assert_int_equal (errno, EINVAL);

    //  The core
    struct sockaddr_un addr;
    socklen_t addr_len;
    assert_false (shmipc_endpoint_is_shm (NULL));
    errno = 0;
    assert_int_equal (shmipc__endpoint_parse (NULL, &addr, &addr_len), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect (NULL, 0), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_listener_new (NULL));
    assert_int_equal (errno, EINVAL);
    shmipc_listener_t *listener = NULL;
    shmipc_listener_destroy (&listener);
    shmipc_channel_t *channel = NULL;
    shmipc_channel_destroy (&channel);
    shmipc_segment_t *segment = NULL;
    shmipc_segment_destroy (&segment);
    shmipc_msg_t *msg = NULL;
    shmipc_msg_destroy (&msg);
    errno = 0;
    assert_null (shmipc_segment_attach (-1, 4096, 8192, 0));
    assert_int_equal (errno, EBADF);
    //  Channels over what is not a connected SEQPACKET socket
    errno = 0;
    assert_null (shmipc_channel_new (-1, "x", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EBADF);
    int pipe_fds [2];
    assert_int_equal (pipe (pipe_fds), 0);
    errno = 0;
    assert_null (shmipc_channel_new (pipe_fds [0], "x", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, ENOTSOCK);
    close (pipe_fds [0]);
    close (pipe_fds [1]);
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, pair), 0);
    errno = 0;
    assert_null (shmipc_channel_new (pair [0], "x", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EPROTOTYPE);
    close (pair [0]);
    close (pair [1]);
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    errno = 0;
    assert_null (shmipc_channel_new (pair [0], "bad\nname", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_channel_new (pair [0], "x", 0, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_channel_new (pair [0], "x", SHMIPC_RING_MAX + 1, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    close (pair [0]);
    close (pair [1]);
    rl_assert_usage (start);
}

//  --------------------------------------------------------------------------
//  Oversize messages

//  A message of more frames than the protocol carries (SHMIPC_FRAMES_MAX):
//  the sending side cannot put it in its ring. The application's socket
//  survives; the connection drops it, says why, and comes back for the
//  messages after it.
static void
test_message_with_too_many_frames_is_dropped_and_the_socket_goes_on (void **state)
{
    if (tu_under_valgrind ())
        skip ();
    rl_usage_t start = rl_usage ();
    char endpoint [256];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    zsock_t *pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_reconnect_ivl (push, 20);
    pt_connect (push, endpoint);
    off_t mark = rl_log_mark ();
    size_t frames = SHMIPC_FRAMES_MAX + 1;
    void *handle = zsock_resolve (push);
    for (size_t index = 0; index + 1 < frames; index++)
        assert_int_equal (zmq_send (handle, "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal (zmq_send (handle, "", 0, 0), 0);
    assert_int_equal (zstr_send (push, "after"), 0);
    char *after = zstr_recv (pull);
    assert_non_null (after);
    assert_string_equal (after, "after");
    free (after);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (push, &stats), 0);
    print_message ("    a message of %zu frames: dropped, the next one arrived; the pushing "
                   "side made %" PRIu64 " connections, closed %" PRIu64 "\n", frames,
                   stats.connected, stats.closed);
    rl_log_expect (mark, "closed: ");
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    rl_assert_usage (start);
}

//  --------------------------------------------------------------------------
//  Every call after the peer vanished

static void
test_every_plugin_call_works_after_the_peer_vanished (void **state)
{
    rl_usage_t start = rl_usage ();
    char endpoint [256], bind [300], other [256];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    tu_endpoint (other, sizeof other, 'a');
    snprintf (bind, sizeof bind, "@%s", endpoint);
    tu_child_t server;
    rl_start (&server, "shmipc-reliability-peer", "server", bind, NULL);
    rl_expect (&server, "ready", NULL, 0);
    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    pt_connect (dealer, endpoint);
    assert_int_equal (zstr_send (dealer, "hello"), 0);
    char *echo = zstr_recv (dealer);
    assert_non_null (echo);
    free (echo);
    assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
    shmipc_stats_t stats;
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    do {
        zclock_sleep (5);
        assert_int_equal (shmipc_sock_stats (dealer, &stats), 0);
    } while (stats.closed < 1 && zclock_mono () < deadline);
    assert_int_equal (stats.closed, 1);
    assert_int_equal (stats.peers, 0);

    //  Sends queue for the next connection, as with libzmq; receives time out
    assert_int_equal (zstr_send (dealer, "queued"), 0);
    zsock_set_rcvtimeo (dealer, 50);
    assert_null (zstr_recv (dealer));
    assert_int_equal (zmq_errno (), EAGAIN);
    assert_non_null (shmipc_sock_actor (dealer));
    assert_int_equal (shmipc_set_capacity (dealer, 4096), 0);
    assert_int_equal (shmipc_allow_uid (dealer, 4242), 0);
    assert_int_equal (shmipc_bind (dealer, "%s", other), 0);
    assert_int_equal (shmipc_unbind (dealer, "%s", other), 0);
    assert_int_equal (shmipc_disconnect (dealer, "%s", endpoint), 0);
    errno = 0;
    assert_int_equal (shmipc_disconnect (dealer, "%s", endpoint), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_connect (dealer, "%s", endpoint), 0);
    //  And closing with a linger returns once it has passed, with nobody
    //  there to take what is queued
    assert_int_equal (zstr_send (dealer, "queued for nobody"), 0);
    zsock_set_linger (dealer, 200);
    int64_t before = zclock_mono ();
    shmipc_sock_destroy (&dealer);
    int64_t took = zclock_mono () - before;
    print_message ("    destroy with linger 200 ms and a message queued for nobody: "
                   "returned in %" PRId64 " ms\n", took);
    assert_true (took < RL_PATIENCE_MS);

    //  A ROUTER that insists on delivery is told the peer is gone
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    zsock_set_router_mandatory (router, 1);
    assert_int_equal (shmipc_bind (router, "%s", other), 0);
    char connect [300];
    snprintf (connect, sizeof connect, ">%s", other);
    tu_child_t client;
    rl_start (&client, "shmipc-reliability-peer", "storm", connect, "10", "run", NULL);
    zmsg_t *msg = zmsg_recv (router);
    assert_non_null (msg);
    zframe_t *id = zmsg_pop (msg);
    zmsg_destroy (&msg);
    assert_int_equal (tu_child_finish (&client, SIGKILL), 128 + SIGKILL);
    deadline = zclock_mono () + RL_PATIENCE_MS;
    do {
        zclock_sleep (5);
        assert_int_equal (shmipc_sock_stats (router, &stats), 0);
    } while (stats.closed < 1 && zclock_mono () < deadline);
    //  Take what it sent before it died, then the route is gone
    zsock_set_rcvtimeo (router, 0);
    while ((msg = zmsg_recv (router)))
        zmsg_destroy (&msg);
    assert_int_equal (zmq_send (zsock_resolve (router), zframe_data (id), zframe_size (id),
                                ZMQ_SNDMORE | ZMQ_DONTWAIT), -1);
    assert_int_equal (zmq_errno (), EHOSTUNREACH);
    zframe_destroy (&id);
    shmipc_sock_destroy (&router);
    rl_assert_usage (start);
}

static void
test_every_channel_call_fails_cleanly_after_the_peer_vanished (void **state)
{
    rl_usage_t start = rl_usage ();
    //  Gone after the handshake
    shmipc_channel_t *channel, *peer;
    tu_channel_pair (4096, 4096, &channel, &peer);
    assert_int_equal (shmipc_channel_send (peer, "last", 4, 0), 0);
    shmipc_channel_destroy (&peer);
    assert_int_equal (shmipc_channel_events (channel) & SHMIPC_POLLERR, SHMIPC_POLLERR);
    //  What it sent before it went is still delivered, then ECONNRESET
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
    assert_int_equal (shmipc_msg_size (msg, 0), 4);
    errno = 0;
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_null (shmipc_channel_recv (channel, SHMIPC_DONTWAIT));
    assert_int_equal (errno, ECONNRESET);
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (channel, &frames, &nframes, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    shmipc_channel_recv_done (channel);
    shmipc_msg_t *msgs [4];
    assert_int_equal (shmipc_channel_recv_vectored (channel, msgs, 4, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    char buffer [16];
    assert_int_equal (shmipc_channel_recv_ctrl (channel, buffer, sizeof buffer), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_send (channel, "x", 1, 0), -1);
    assert_int_equal (errno, EPIPE);
    struct iovec frame = { .iov_base = "x", .iov_len = 1 };
    assert_int_equal (shmipc_channel_sendv (channel, &frame, 1, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_msg_addmem (msg, "y", 1), 0);
    assert_int_equal (shmipc_channel_send_msg (channel, msg, 0), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_flush (channel), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_send_ctrl (channel, "c", 1), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_handshake (channel, 0), 0);
    assert_true (shmipc_channel_events (channel) & SHMIPC_POLLERR);
    assert_true (shmipc_channel_fd (channel) >= 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_int_equal (stats.msgs_received, 1);
    shmipc_channel_destroy (&channel);

    //  Gone during the handshake
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    channel = shmipc_channel_new (pair [0], "alone", 4096, SHMIPC_CLIENT);
    assert_non_null (channel);
    close (pair [1]);
    assert_int_equal (shmipc_channel_handshake (channel, 1000), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_events (channel), SHMIPC_POLLERR);
    assert_int_equal (shmipc_channel_send (channel, "x", 1, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_send_ctrl (channel, "c", 1), -1);
    assert_int_equal (shmipc_channel_error (channel), ECONNRESET);
    assert_string_not_equal (shmipc_channel_reason (channel), "");
    shmipc_channel_destroy (&channel);
    shmipc_msg_destroy (&msg);
    rl_assert_usage (start);
}

int
main (void)
{
    pt_warm_up ();
    //  No SIGPIPE handler: a send to a vanished peer must not raise it
    signal (SIGPIPE, SIG_DFL);
    rl_log_start ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_malformed_endpoints_fail_with_einval_on_every_path,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_null_arguments_and_wrong_values_get_clear_answers,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_message_with_too_many_frames_is_dropped_and_the_socket_goes_on,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_every_plugin_call_works_after_the_peer_vanished,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_every_channel_call_fails_cleanly_after_the_peer_vanished,
                                   rl_log_forward),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    rl_log_stop (failed != 0);
    pt_remove_socket_files ();
    return failed;
}
