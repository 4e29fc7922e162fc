/*  =========================================================================
    test_plugin_api - the czmq layer's API: genuine zsock_t sockets, endpoint
    lists, errors, attach, destroy with linger, counters

    Owns the sockets of each test and the helper processes it starts;
    every test ends with its descriptors, mappings and threads back to
    where they were.
    =========================================================================
*/

#include "testutil_plugin.h"

#include <sys/stat.h>
#include <sys/un.h>

#define S_ENDPOINT_MAX 256

//  --------------------------------------------------------------------------
//  Genuine zsock_t

static int
s_loop_reader (zloop_t *loop, zsock_t *reader, void *arg)
{
    char **received = (char **) arg;
    *received = zstr_recv (reader);
    return -1;                  //  Got it: end the loop
}

static int
s_loop_timeout (zloop_t *loop, int timer_id, void *arg)
{
    return -1;
}

static void
test_sock_new_returns_a_genuine_zsock (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], bind [S_ENDPOINT_MAX + 1], connect [S_ENDPOINT_MAX + 1];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (bind, sizeof bind, "@%s", endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    zsock_t *pull = shmipc_sock_new (ZMQ_PULL, bind);
    zsock_t *push = shmipc_sock_new (ZMQ_PUSH, connect);
    assert_non_null (pull);
    assert_non_null (push);
    zsock_set_rcvtimeo (pull, PT_PATIENCE_MS);

    assert_true (zsock_is (pull));
    assert_int_equal (zsock_type (pull), ZMQ_PULL);
    assert_string_equal (zsock_type_str (push), "PUSH");
    void *handle = zsock_resolve (pull);
    assert_non_null (handle);
    assert_ptr_not_equal (handle, pull);
    //  The private inproc endpoint stays private
    assert_null (zsock_endpoint (pull));

    //  libzmq calls on the resolved handle
    assert_int_equal (zmq_send (zsock_resolve (push), "raw", 3, 0), 3);
    char buffer [16];
    assert_int_equal (zmq_recv (handle, buffer, sizeof buffer, 0), 3);
    assert_memory_equal (buffer, "raw", 3);

    //  zpoller
    zpoller_t *poller = zpoller_new (pull, NULL);
    assert_int_equal (zstr_send (push, "polled"), 0);
    assert_ptr_equal (zpoller_wait (poller, PT_PATIENCE_MS), pull);
    char *string = zstr_recv (pull);
    assert_string_equal (string, "polled");
    free (string);
    zpoller_destroy (&poller);

    //  zloop reader
    zloop_t *loop = zloop_new ();
    char *received = NULL;
    assert_int_equal (zloop_reader (loop, pull, s_loop_reader, &received), 0);
    assert_true (zloop_timer (loop, PT_PATIENCE_MS, 1, s_loop_timeout, NULL) >= 0);
    assert_int_equal (zstr_send (push, "looped"), 0);
    zloop_start (loop);
    assert_non_null (received);
    assert_string_equal (received, "looped");
    free (received);
    zloop_destroy (&loop);

    //  zsock_send / zsock_recv pictures
    zframe_t *frame = zframe_new ("frame", 5);
    assert_int_equal (zsock_send (push, "si8bf", "text", -42, (uint64_t) 1 << 40,
                                  "bytes", (size_t) 5, frame), 0);
    zframe_destroy (&frame);
    char *text = NULL;
    int number = 0;
    uint64_t big = 0;
    byte *bytes = NULL;
    size_t size = 0;
    assert_int_equal (zsock_recv (pull, "si8bf", &text, &number, &big, &bytes, &size,
                                  &frame), 0);
    assert_string_equal (text, "text");
    assert_int_equal (number, -42);
    assert_true (big == (uint64_t) 1 << 40);
    assert_int_equal (size, 5);
    assert_memory_equal (bytes, "bytes", 5);
    assert_true (zframe_streq (frame, "frame"));
    free (text);
    free (bytes);
    zframe_destroy (&frame);

    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    assert_null (pull);
    shmipc_sock_destroy (&pull);        //  Idempotent
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Endpoint lists

static void
s_mixed_list (bool tcp_first)
{
    tu_baseline_t baseline = pt_baseline ();
    char path [S_ENDPOINT_MAX], list [2 * S_ENDPOINT_MAX];
    tu_endpoint (path, sizeof path, 'p');
    if (tcp_first)
        snprintf (list, sizeof list, "@tcp://127.0.0.1:*,@%s", path);
    else
        snprintf (list, sizeof list, "@%s,@tcp://127.0.0.1:*", path);
    zsock_t *pull = shmipc_sock_new (ZMQ_PULL, list);
    assert_non_null (pull);
    zsock_set_rcvtimeo (pull, PT_PATIENCE_MS);
    //  The last endpoint libzmq bound is the tcp one, with its port
    const char *tcp = zsock_endpoint (pull);
    assert_non_null (tcp);
    assert_true (strncmp (tcp, "tcp://127.0.0.1:", 16) == 0);
    assert_true (atoi (tcp + 16) > 0);

    zsock_t *over_tcp = shmipc_sock_new (ZMQ_PUSH, tcp);
    zsock_t *over_shm = shmipc_sock_new (ZMQ_PUSH, path);
    assert_non_null (over_tcp);
    assert_non_null (over_shm);
    assert_int_equal (zstr_send (over_tcp, "tcp"), 0);
    assert_int_equal (zstr_send (over_shm, "shm"), 0);
    bool seen_tcp = false, seen_shm = false;
    for (int index = 0; index < 2; index++) {
        char *string = zstr_recv (pull);
        assert_non_null (string);
        if (streq (string, "tcp"))
            seen_tcp = true;
        else
        if (streq (string, "shm"))
            seen_shm = true;
        free (string);
    }
    assert_true (seen_tcp && seen_shm);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (pull, &stats), 0);
    assert_int_equal (stats.accepted, 1);
    assert_int_equal (stats.msgs_in, 1);

    shmipc_sock_destroy (&over_tcp);
    shmipc_sock_destroy (&over_shm);
    shmipc_sock_destroy (&pull);
    struct stat st;
    assert_int_equal (stat (path + strlen ("shm://"), &st), -1);
    assert_int_equal (errno, ENOENT);
    pt_assert_baseline (baseline);
}

static void
test_mixed_endpoint_list_serves_tcp_and_shm_on_one_socket (void **state)
{
    s_mixed_list (true);
    s_mixed_list (false);
}

//  Return true if czmq's zsock_new_<type> binds an endpoint without prefix.
static bool
s_czmq_binds (int type)
{
    char endpoint [S_ENDPOINT_MAX];
    snprintf (endpoint, sizeof endpoint, "ipc:///tmp/shmipc-ptest-%d-default", (int) getpid ());
    zsock_t *sock = NULL;
    switch (type) {
        case ZMQ_PUB:    sock = zsock_new_pub (endpoint); break;
        case ZMQ_SUB:    sock = zsock_new_sub (endpoint, NULL); break;
        case ZMQ_REQ:    sock = zsock_new_req (endpoint); break;
        case ZMQ_REP:    sock = zsock_new_rep (endpoint); break;
        case ZMQ_DEALER: sock = zsock_new_dealer (endpoint); break;
        case ZMQ_ROUTER: sock = zsock_new_router (endpoint); break;
        case ZMQ_PUSH:   sock = zsock_new_push (endpoint); break;
        case ZMQ_PULL:   sock = zsock_new_pull (endpoint); break;
        case ZMQ_XPUB:   sock = zsock_new_xpub (endpoint); break;
        case ZMQ_XSUB:   sock = zsock_new_xsub (endpoint); break;
        case ZMQ_PAIR:   sock = zsock_new_pair (endpoint); break;
    }
    assert_non_null (sock);
    //  zsock remembers bound endpoints only
    bool binds = zsock_endpoint (sock) != NULL;
    zsock_destroy (&sock);
    return binds;
}

static void
test_endpoints_without_prefix_bind_or_connect_as_zsock_new_does (void **state)
{
    struct { int type, peer; } types [] = {
        { ZMQ_PUB, ZMQ_SUB }, { ZMQ_SUB, ZMQ_PUB }, { ZMQ_REQ, ZMQ_REP },
        { ZMQ_REP, ZMQ_REQ }, { ZMQ_DEALER, ZMQ_ROUTER }, { ZMQ_ROUTER, ZMQ_DEALER },
        { ZMQ_PUSH, ZMQ_PULL }, { ZMQ_PULL, ZMQ_PUSH }, { ZMQ_XPUB, ZMQ_XSUB },
        { ZMQ_XSUB, ZMQ_XPUB }, { ZMQ_PAIR, ZMQ_PAIR }
    };
    size_t ntypes = sizeof types / sizeof types [0];
    bool czmq_binds [sizeof types / sizeof types [0]];
    for (size_t index = 0; index < ntypes; index++)
        czmq_binds [index] = s_czmq_binds (types [index].type);
    //  Closed sockets release their descriptors in libzmq's reaper thread
    zclock_sleep (100);
    for (size_t index = 0; index < ntypes; index++) {
        bool binds = czmq_binds [index];
        tu_baseline_t baseline = pt_baseline ();
        char endpoint [S_ENDPOINT_MAX], other [S_ENDPOINT_MAX + 1];
        tu_endpoint (endpoint, sizeof endpoint, 'a');
        snprintf (other, sizeof other, "%c%s", binds ? '>' : '@', endpoint);
        zsock_t *sock = shmipc_sock_new (types [index].type, endpoint);
        assert_non_null (sock);
        zsock_t *peer = shmipc_sock_new (types [index].peer, other);
        assert_non_null (peer);
        pt_wait_peers (sock, 1);
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (sock, &stats), 0);
        if (stats.accepted != (binds ? 1u : 0u))
            print_error ("%s: czmq %s, shmipc did not\n", zsys_sockname (types [index].type),
                         binds ? "binds" : "connects");
        assert_int_equal (stats.accepted, binds ? 1 : 0);
        assert_int_equal (stats.connected, binds ? 0 : 1);
        shmipc_sock_destroy (&peer);
        shmipc_sock_destroy (&sock);
        pt_assert_baseline (baseline);
    }
}

//  --------------------------------------------------------------------------
//  Errors

static void
test_malformed_shm_endpoints_fail_with_einval (void **state)
{
    char long_path [200], long_name [200], long_relative [200];
    snprintf (long_path, sizeof long_path, "shm:///tmp/%0120d", 7);
    snprintf (long_name, sizeof long_name, "shm://@%0120d", 7);
    //  A relative path counts as made absolute
    snprintf (long_relative, sizeof long_relative, "shm://%0105d", 7);
    const char *endpoints [] = {
        "shm://", "shm://@", "shm:///", long_relative,
        long_path, long_name, "shm:///tmp/bad\nname", "shm://@bad\001name"
    };
    tu_baseline_t baseline = pt_baseline ();
    for (size_t index = 0; index < sizeof endpoints / sizeof endpoints [0]; index++) {
        const char *endpoint = endpoints [index];
        char attached [S_ENDPOINT_MAX + 1];
        for (int form = 0; form < 3; form++) {
            snprintf (attached, sizeof attached, "%s%s",
                      form == 0 ? "@" : form == 1 ? ">" : "", endpoint);
            errno = 0;
            zsock_t *sock = shmipc_sock_new (ZMQ_PULL, attached);
            if (sock || errno != EINVAL)
                print_error ("'%s': %s\n", attached, sock ? "created" : strerror (errno));
            assert_null (sock);
            assert_int_equal (errno, EINVAL);
        }
        zsock_t *sock = zsock_new (ZMQ_PULL);
        assert_int_equal (shmipc_bind (sock, "%s", endpoint), -1);
        assert_int_equal (errno, EINVAL);
        assert_int_equal (shmipc_connect (sock, "%s", endpoint), -1);
        assert_int_equal (errno, EINVAL);
        //  Nothing started for it
        assert_null (shmipc_sock_actor (sock));
        shmipc_sock_destroy (&sock);
    }
    //  A list that is good up to a bad endpoint fails as a whole
    char list [2 * S_ENDPOINT_MAX];
    char good [S_ENDPOINT_MAX];
    tu_endpoint (good, sizeof good, 'a');
    snprintf (list, sizeof list, "@%s,@shm:///", good);
    errno = 0;
    assert_null (shmipc_sock_new (ZMQ_PULL, list));
    assert_int_equal (errno, EINVAL);
    pt_assert_baseline (baseline);
}

static void
test_second_bind_to_a_live_endpoint_fails_with_eaddrinuse (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    zsock_t *first = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (first, "%s", endpoint), 0);
    //  The same socket again, and another socket
    assert_int_equal (shmipc_bind (first, "%s", endpoint), -1);
    assert_int_equal (errno, EADDRINUSE);
    zsock_t *second = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (second, "%s", endpoint), -1);
    assert_int_equal (errno, EADDRINUSE);
    //  The first one still serves
    zsock_t *push = pt_sock (ZMQ_PUSH);
    pt_connect (push, endpoint);
    assert_int_equal (zstr_send (push, "still here"), 0);
    char *string = zstr_recv (first);
    assert_non_null (string);
    assert_string_equal (string, "still here");
    free (string);
    shmipc_sock_destroy (&push);
    //  Once it is gone, the endpoint is free again
    shmipc_sock_destroy (&first);
    assert_int_equal (shmipc_bind (second, "%s", endpoint), 0);
    shmipc_sock_destroy (&second);
    pt_assert_baseline (baseline);
}

static void
test_bind_over_a_file_that_is_not_a_socket_fails (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    const char *path = endpoint + strlen ("shm://");
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fclose (file);
    zsock_t *sock = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (sock, "%s", endpoint), -1);
    assert_int_equal (errno, EEXIST);
    shmipc_sock_destroy (&sock);
    //  And the file is left alone
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    unlink (path);
    pt_assert_baseline (baseline);
}

static void
test_unbind_or_disconnect_of_an_unknown_endpoint_fails_with_enoent (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], unknown [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    pt_fresh (t, unknown, sizeof unknown);
    //  A socket that never had an endpoint of this transport
    zsock_t *sock = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_unbind (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_disconnect (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    //  One that has others
    assert_int_equal (shmipc_bind (sock, "%s", endpoint), 0);
    assert_int_equal (shmipc_unbind (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_disconnect (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_unbind (sock, "%s", endpoint), 0);
    assert_int_equal (shmipc_unbind (sock, "%s", endpoint), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_connect (sock, "%s", unknown), 0);
    assert_int_equal (shmipc_disconnect (sock, "%s", unknown), 0);
    assert_int_equal (shmipc_disconnect (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    //  As in libzmq, either call undoes either kind
    assert_int_equal (shmipc_bind (sock, "%s", endpoint), 0);
    assert_int_equal (shmipc_disconnect (sock, "%s", endpoint), 0);
    assert_int_equal (shmipc_unbind (sock, "%s", endpoint), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_connect (sock, "%s", unknown), 0);
    assert_int_equal (shmipc_unbind (sock, "%s", unknown), 0);
    assert_int_equal (shmipc_disconnect (sock, "%s", unknown), -1);
    assert_int_equal (errno, ENOENT);
    //  An unbound endpoint is free for others
    zsock_t *other = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (other, "%s", endpoint), 0);
    shmipc_sock_destroy (&other);
    shmipc_sock_destroy (&sock);
    pt_assert_baseline (baseline);
}

static void
test_unbind_closes_the_connections_it_accepted (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    zsock_t *server = pt_sock (ZMQ_PAIR);
    assert_int_equal (shmipc_bind (server, "%s", endpoint), 0);
    zsock_t *client = pt_sock (ZMQ_PAIR);
    pt_connect (client, endpoint);
    assert_int_equal (zstr_send (client, "hello"), 0);
    char *string = zstr_recv (server);
    assert_string_equal (string, "hello");
    free (string);
    assert_int_equal (shmipc_unbind (server, "%s", endpoint), 0);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.peers, 0);
    assert_int_equal (stats.closed, 1);
    assert_int_equal (stats.errors, 0);
    //  The socket file went with it
    struct stat st;
    assert_int_equal (stat (endpoint + strlen ("shm://"), &st), -1);
    assert_int_equal (errno, ENOENT);
    shmipc_sock_destroy (&client);
    shmipc_sock_destroy (&server);
    pt_assert_baseline (baseline);
}

static void
test_stream_sockets_are_refused_with_enocompatproto (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], attached [S_ENDPOINT_MAX + 1];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (attached, sizeof attached, "@%s", endpoint);
    errno = 0;
    assert_null (shmipc_sock_new (ZMQ_STREAM, attached));
    assert_int_equal (errno, ENOCOMPATPROTO);
    zsock_t *stream = zsock_new (ZMQ_STREAM);
    assert_int_equal (shmipc_bind (stream, "%s", endpoint), -1);
    assert_int_equal (errno, ENOCOMPATPROTO);
    assert_int_equal (shmipc_connect (stream, "%s", endpoint), -1);
    assert_int_equal (errno, ENOCOMPATPROTO);
    assert_null (shmipc_sock_actor (stream));
    //  Other transports still work for it
    assert_true (shmipc_bind (stream, "tcp://127.0.0.1:*") > 0);
    shmipc_sock_destroy (&stream);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Attach

static void
test_attach_serves_shm_on_a_plain_zsock (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], ipc [S_ENDPOINT_MAX], list [2 * S_ENDPOINT_MAX + 4];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (ipc, sizeof ipc, "ipc:///tmp/shmipc-ptest-%d-attach", (int) getpid ());
    zsock_t *rep = zsock_new (ZMQ_REP);
    zsock_set_rcvtimeo (rep, PT_PATIENCE_MS);
    assert_null (shmipc_sock_actor (rep));
    assert_int_equal (shmipc_attach (rep, NULL, true), 0);
    assert_int_equal (shmipc_attach (rep, "", true), 0);
    snprintf (list, sizeof list, "%s,@%s", endpoint, ipc);
    assert_int_equal (shmipc_attach (rep, list, true), 0);
    assert_non_null (shmipc_sock_actor (rep));
    //  serverish false: no prefix connects
    zsock_t *over_shm = zsock_new (ZMQ_REQ);
    zsock_t *over_ipc = zsock_new (ZMQ_REQ);
    zsock_set_rcvtimeo (over_shm, PT_PATIENCE_MS);
    zsock_set_rcvtimeo (over_ipc, PT_PATIENCE_MS);
    assert_int_equal (shmipc_attach (over_shm, endpoint, false), 0);
    assert_int_equal (shmipc_attach (over_ipc, ipc, false), 0);
    zsock_t *clients [2] = { over_shm, over_ipc };
    for (int index = 0; index < 2; index++) {
        assert_int_equal (zstr_sendf (clients [index], "question %d", index), 0);
        char *question = zstr_recv (rep);
        assert_non_null (question);
        assert_int_equal (zstr_sendf (rep, "answer to %s", question), 0);
        free (question);
        char *answer = zstr_recv (clients [index]);
        char expected [32];
        snprintf (expected, sizeof expected, "answer to question %d", index);
        assert_string_equal (answer, expected);
        free (answer);
    }
    shmipc_sock_destroy (&over_shm);
    shmipc_sock_destroy (&over_ipc);
    shmipc_sock_destroy (&rep);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Destroy and linger

//  Send count tagged messages, every tenth bigger than the ring.
static void
s_send_stream (zsock_t *push, long count)
{
    for (long seq = 0; seq < count; seq++)
        assert_true (pt_send_tagged (zsock_resolve (push), "L", seq,
                                     seq % 10 ? 1000 : 200000, 0) >= 0);
}

static void
s_linger_delivers (const pt_transport_t *t, bool server_first, int linger)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], bind [S_ENDPOINT_MAX + 1];
    pt_fresh (t, endpoint, sizeof endpoint);
    snprintf (bind, sizeof bind, "@%s", endpoint);
    long count = tu_scaled (2000, 100);
    char count_text [32], done [48];
    snprintf (count_text, sizeof count_text, "%ld", count);
    snprintf (done, sizeof done, "ok %ld", count);
    tu_child_t server = { 0, -1, -1 };
    if (server_first) {
        pt_peer_start (&server, PT_PEER, "pull", bind, count_text, NULL);
        pt_peer_expect (&server, "ready");
    }
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_sndhwm (push, 0);
    zsock_set_linger (push, linger);
    zsock_set_reconnect_ivl (push, 20);
    if (pt_is_shm (t))
        assert_int_equal (shmipc_set_capacity (push, 64 * 1024), 0);
    pt_connect (push, endpoint);
    //  Sent just before destroy: nothing has crossed yet
    s_send_stream (push, count);
    if (!server_first) {
        //  Not even a server to cross to
        pt_peer_start (&server, PT_PEER, "pull", bind, count_text, NULL);
        pt_peer_expect (&server, "ready");
    }
    shmipc_sock_destroy (&push);
    assert_null (push);
    pt_peer_expect (&server, done);
    assert_int_equal (tu_child_finish (&server, 0), 0);
    pt_assert_baseline (baseline);
}

static void
test_destroy_with_linger_delivers_what_was_sent (void **state)
{
    s_linger_delivers (*state, true, 1000);
}

static void
test_destroy_with_infinite_linger_delivers_what_was_sent (void **state)
{
    s_linger_delivers (*state, true, -1);
}

static void
test_destroy_with_linger_delivers_once_the_server_comes (void **state)
{
    s_linger_delivers (*state, false, 5000);
}

static void
test_destroy_without_linger_returns_and_leaves_nothing (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1];
    zsock_t *push = pt_sock (ZMQ_PUSH);
    assert_int_equal (zsock_linger (push), 0);        //  czmq's default
    pt_watch_t watch;
    pt_watch_start (&watch, push, t);
    pt_bind (push, t, endpoint, sizeof endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    tu_child_t sink;
    pt_peer_start (&sink, PT_PEER, "sink", connect, "10", NULL);
    pt_peer_expect (&sink, "ready");
    pt_watch_wait (&watch, 'h', 1);
    pt_watch_stop (&watch);
    //  More than can go anywhere: it stays queued in the socket
    while (pt_send_tagged (zsock_resolve (push), "Q", 0, 10000, ZMQ_DONTWAIT) >= 0)
        ;
    assert_int_equal (zmq_errno (), EAGAIN);
    shmipc_sock_destroy (&push);
    assert_int_equal (tu_child_finish (&sink, SIGKILL), 128 + SIGKILL);
    pt_assert_baseline (baseline);
}

static void
test_destroy_leaves_no_socket_file_descriptor_mapping_or_thread (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    const char *path = endpoint + strlen ("shm://");
    zsock_t *servers [3], *clients [3];
    for (int index = 0; index < 3; index++) {
        servers [index] = pt_sock (ZMQ_ROUTER);
        clients [index] = pt_sock (ZMQ_DEALER);
    }
    assert_int_equal (shmipc_bind (servers [0], "%s", endpoint), 0);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_true (S_ISSOCK (st.st_mode));
    //  Owner-only socket file
    assert_int_equal (st.st_mode & 0777, 0600);
    for (int index = 0; index < 3; index++) {
        pt_connect (clients [index], endpoint);
        assert_int_equal (zstr_send (clients [index], "hi"), 0);
        zmsg_t *msg = zmsg_recv (servers [0]);
        assert_non_null (msg);
        zmsg_send (&msg, servers [0]);
        char *echo = zstr_recv (clients [index]);
        assert_string_equal (echo, "hi");
        free (echo);
    }
    //  Servers first (the clients then reconnect in vain), then clients
    for (int index = 0; index < 3; index++)
        shmipc_sock_destroy (&servers [index]);
    assert_int_equal (stat (path, &st), -1);
    assert_int_equal (errno, ENOENT);
    for (int index = 0; index < 3; index++)
        shmipc_sock_destroy (&clients [index]);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Counters and the actor

static void
test_stats_count_messages_and_bytes_both_ways (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    zsock_t *server = pt_sock (ZMQ_PAIR);
    shmipc_stats_t stats;
    //  No shm endpoint yet: zeros
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.msgs_in + stats.msgs_out + stats.peers + stats.accepted, 0);
    assert_null (shmipc_sock_actor (server));

    pt_bind (server, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *client = pt_sock (ZMQ_PAIR);
    pt_connect (client, endpoint);
    //  Client to server: 3 messages, 1 + 1000 + (10 + 0) bytes
    zstr_send (client, "a");
    char block [1000] = { 0 };
    zmq_send (zsock_resolve (client), block, sizeof block, 0);
    zmq_send (zsock_resolve (client), block, 10, ZMQ_SNDMORE);
    zmq_send (zsock_resolve (client), block, 0, 0);
    //  Server to client: 2 messages, 5 + 100 bytes
    zmq_send (zsock_resolve (server), block, 5, 0);
    zmq_send (zsock_resolve (server), block, 100, 0);
    for (int index = 0; index < 3; index++) {
        zmsg_t *msg = zmsg_recv (server);
        assert_non_null (msg);
        zmsg_destroy (&msg);
    }
    for (int index = 0; index < 2; index++) {
        zmsg_t *msg = zmsg_recv (client);
        assert_non_null (msg);
        zmsg_destroy (&msg);
    }
    assert_int_equal (shmipc_sock_stats (client, &stats), 0);
    assert_int_equal (stats.peers, 1);
    assert_int_equal (stats.connected, 1);
    assert_int_equal (stats.accepted, 0);
    assert_int_equal (stats.closed, 0);
    assert_int_equal (stats.errors, 0);
    assert_int_equal (stats.msgs_out, 3);
    assert_int_equal (stats.bytes_out, 1011);
    assert_int_equal (stats.msgs_in, 2);
    assert_int_equal (stats.bytes_in, 105);
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.peers, 1);
    assert_int_equal (stats.connected, 0);
    assert_int_equal (stats.accepted, 1);
    assert_int_equal (stats.msgs_out, 2);
    assert_int_equal (stats.bytes_out, 105);
    assert_int_equal (stats.msgs_in, 3);
    assert_int_equal (stats.bytes_in, 1011);

    //  The actor answers STATS itself: "STATS", the eleven totals as czmq's
    //  '8' sends them (SHMIPC_ACTOR_STATS_PICTURE), then one frame per peer
    zactor_t *actor = shmipc_sock_actor (server);
    assert_non_null (actor);
    zstr_send (actor, "STATS");
    zmsg_t *reply = zmsg_recv (actor);
    assert_non_null (reply);
    assert_int_equal (zmsg_size (reply), 13);
    char *head = zmsg_popstr (reply);
    assert_string_equal (head, "STATS");
    free (head);
    char *peers = zmsg_popstr (reply);
    assert_string_equal (peers, "1");
    free (peers);
    zmsg_destroy (&reply);

    //  A peer that leaves is counted as closed, not as an error, and its
    //  traffic stays in the totals
    shmipc_sock_destroy (&client);
    pt_wait_peers (server, 0);
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.closed, 1);
    assert_int_equal (stats.errors, 0);
    assert_int_equal (stats.msgs_in, 3);
    assert_int_equal (stats.bytes_in, 1011);
    assert_int_equal (stats.msgs_out, 2);
    shmipc_sock_destroy (&server);
    pt_assert_baseline (baseline);
}

static void
test_set_capacity_accepts_only_ring_sizes (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_set_capacity (pull, 0), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_set_capacity (pull, SHMIPC_RING_MIN - 1), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_set_capacity (pull, SHMIPC_RING_MAX + 1), -1);
    assert_int_equal (errno, EINVAL);
    //  Not a power of two: rounded up, and messages still flow
    assert_int_equal (shmipc_set_capacity (pull, 100000), 0);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (pull, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    assert_int_equal (shmipc_set_capacity (push, SHMIPC_RING_MIN), 0);
    pt_connect (push, endpoint);
    for (long seq = 0; seq < 20; seq++)
        assert_true (pt_send_tagged (zsock_resolve (push), "C", seq, (size_t) seq * 1000, 0) >= 0);
    for (long seq = 0; seq < 20; seq++) {
        char tag [8];
        long got;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &got), 0);
        assert_int_equal (got, seq);
    }
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_sock_new_returns_a_genuine_zsock),
        cmocka_unit_test (test_mixed_endpoint_list_serves_tcp_and_shm_on_one_socket),
        cmocka_unit_test (test_endpoints_without_prefix_bind_or_connect_as_zsock_new_does),
        cmocka_unit_test (test_malformed_shm_endpoints_fail_with_einval),
        PT_TEST (test_second_bind_to_a_live_endpoint_fails_with_eaddrinuse, shm),
        PT_TEST (test_second_bind_to_a_live_endpoint_fails_with_eaddrinuse, shm_path),
        cmocka_unit_test (test_bind_over_a_file_that_is_not_a_socket_fails),
        PT_TEST (test_unbind_or_disconnect_of_an_unknown_endpoint_fails_with_enoent, shm),
        PT_TEST (test_unbind_or_disconnect_of_an_unknown_endpoint_fails_with_enoent, ipc),
        cmocka_unit_test (test_unbind_closes_the_connections_it_accepted),
        cmocka_unit_test (test_stream_sockets_are_refused_with_enocompatproto),
        cmocka_unit_test (test_attach_serves_shm_on_a_plain_zsock),
        PT_TEST (test_destroy_with_linger_delivers_what_was_sent, shm),
        PT_TEST (test_destroy_with_linger_delivers_what_was_sent, ipc),
        PT_TEST (test_destroy_with_infinite_linger_delivers_what_was_sent, shm),
        PT_TEST (test_destroy_with_infinite_linger_delivers_what_was_sent, ipc),
        PT_TEST (test_destroy_with_linger_delivers_once_the_server_comes, shm),
        PT_TEST (test_destroy_with_linger_delivers_once_the_server_comes, ipc),
        PT_TEST (test_destroy_without_linger_returns_and_leaves_nothing, shm),
        PT_TEST (test_destroy_without_linger_returns_and_leaves_nothing, ipc),
        cmocka_unit_test (test_destroy_leaves_no_socket_file_descriptor_mapping_or_thread),
        cmocka_unit_test (test_stats_count_messages_and_bytes_both_ways),
        cmocka_unit_test (test_set_capacity_accepts_only_ring_sizes),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
