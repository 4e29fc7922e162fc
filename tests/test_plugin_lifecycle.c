/*  =========================================================================
    test_plugin_lifecycle - connections come and go over shm:// as over
    ipc:// and tcp://: back-pressure, connect before bind, reconnect after a
    server restart, many peers, a peer killed mid-stream

    Owns the sockets of each test and the helper processes it starts
    (tests/peer/shmipc-test-peer); every test ends with its descriptors,
    mappings and threads back to where they were.
    =========================================================================
*/

#include "testutil_plugin.h"

#define S_ENDPOINT_MAX 256

//  --------------------------------------------------------------------------
//  Back-pressure

#define S_HWM_MSG_SIZE  (32 * 1024)
#define S_HWM           10

//  Send one message of S_HWM_MSG_SIZE bytes without waiting.
static int
s_send_block (zsock_t *sock)
{
    static char block [S_HWM_MSG_SIZE];
    return zmq_send (zsock_resolve (sock), block, sizeof block, ZMQ_DONTWAIT);
}

//  A PUSH whose receiver never reads: sends fail with EAGAIN once the
//  high-water marks and the buffers between are full, and the sender's
//  memory stops growing.
static void
test_push_stops_at_the_high_water_mark_when_nobody_reads (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_sndhwm (push, S_HWM);
    if (pt_is_shm (t))
        assert_int_equal (shmipc_set_capacity (push, 128 * 1024), 0);
    pt_watch_t watch;
    pt_watch_start (&watch, push, t);
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1];
    pt_bind (push, t, endpoint, sizeof endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    tu_child_t sink;
    pt_peer_start (&sink, PT_PEER, "sink", connect, "10", NULL);
    pt_peer_expect (&sink, "ready");
    pt_watch_wait (&watch, 'h', 1);
    pt_watch_stop (&watch);

    long rss_before = tu_rss_kib ();
    //  Fill until nothing moves: EAGAIN, and no room comes within a
    //  generous wait
    int sent = 0;
    while (sent < 20000) {
        if (s_send_block (push) == S_HWM_MSG_SIZE) {
            sent++;
            continue;
        }
        assert_int_equal (zmq_errno (), EAGAIN);
        zmq_pollitem_t item = { .socket = zsock_resolve (push), .events = ZMQ_POLLOUT };
        if (zmq_poll (&item, 1, 2000) == 0)
            break;
    }
    long rss_full = tu_rss_kib ();
    print_message ("%s: %d messages of %d bytes accepted, RSS +%ld KiB\n", t->name,
                   sent, S_HWM_MSG_SIZE, rss_full - rss_before);
    //  Bounded: the high-water marks (10 here, 10 at the sink), the ring or
    //  socket buffers (loopback tcp takes megabytes), a few in hand; far
    //  from the 20000 a sender without back-pressure would take
    assert_true (sent > S_HWM);
    assert_true (sent < (t->kind == PT_TCP ? 1000 : 100));
    assert_true (rss_full - rss_before < 16 * 1024);

    //  Stays full: every further send fails, memory does not grow
    for (int attempt = 0; attempt < 50; attempt++) {
        assert_int_equal (s_send_block (push), -1);
        assert_int_equal (zmq_errno (), EAGAIN);
    }
    assert_true (tu_rss_kib () - rss_full < 8 * 1024);

    assert_int_equal (tu_child_finish (&sink, SIGKILL), 128 + SIGKILL);
    shmipc_sock_destroy (&push);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Connect before bind

static void
test_connect_before_bind_delivers_what_was_queued (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);

    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_reconnect_ivl (push, 20);
    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    zsock_set_identity (dealer, "early");
    zsock_set_reconnect_ivl (dealer, 20);
    zsock_t *sub = pt_sock (ZMQ_SUB);
    zsock_set_reconnect_ivl (sub, 20);
    char second [S_ENDPOINT_MAX], third [S_ENDPOINT_MAX];
    pt_fresh (t, second, sizeof second);
    pt_fresh (t, third, sizeof third);
    pt_connect (push, endpoint);
    pt_connect (dealer, second);
    pt_connect (sub, third);
    zsock_set_subscribe (sub, "topic");
    //  Nobody there yet: the messages wait in the connecting socket
    for (int index = 0; index < 10; index++)
        assert_int_equal (zmq_send (zsock_resolve (push), &index, sizeof index,
                                    ZMQ_DONTWAIT), sizeof index);
    assert_int_equal (zstr_send (dealer, "queued"), 0);

    zsock_t *pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
    for (int index = 0; index < 10; index++) {
        int value = -1;
        assert_int_equal (zmq_recv (zsock_resolve (pull), &value, sizeof value, 0),
                          sizeof value);
        assert_int_equal (value, index);
    }
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    assert_int_equal (shmipc_bind (router, "%s", second), 0);
    char *id, *body;
    assert_int_equal (zstr_recvx (router, &id, &body, NULL), 2);
    assert_string_equal (id, "early");
    assert_string_equal (body, "queued");
    zstr_free (&id);
    zstr_free (&body);
    //  The subscription made before the publisher existed reaches it
    zsock_t *xpub = pt_sock (ZMQ_XPUB);
    assert_int_equal (shmipc_bind (xpub, "%s", third), 0);
    zframe_t *frame = zframe_recv (xpub);
    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), 6);
    assert_memory_equal (zframe_data (frame), "\001topic", 6);
    zframe_destroy (&frame);

    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&dealer);
    shmipc_sock_destroy (&sub);
    shmipc_sock_destroy (&pull);
    shmipc_sock_destroy (&router);
    shmipc_sock_destroy (&xpub);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Reconnect after the server restarts

//  Send "ping seq" from a DEALER to an echo REP; return 0 once the echo of
//  a ping sent by this call arrives, trying for PT_PATIENCE_MS.
static int
s_ping_until_echo (zsock_t *dealer, int *seq)
{
    int first = *seq;
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    zsock_set_rcvtimeo (dealer, 200);
    while (zclock_mono () < deadline) {
        char ping [32];
        snprintf (ping, sizeof ping, "ping %d", (*seq)++);
        assert_int_equal (zstr_sendx (dealer, "", ping, NULL), 0);
        zmsg_t *reply;
        while ((reply = zmsg_recv (dealer))) {
            char *empty = zmsg_popstr (reply);
            char *echo = zmsg_popstr (reply);
            int got = -1;
            bool ok = empty && echo && *empty == 0 && sscanf (echo, "ping %d", &got) == 1;
            free (empty);
            free (echo);
            zmsg_destroy (&reply);
            assert_true (ok);
            if (got >= first)
                return 0;
        }
    }
    return -1;
}

static void
test_client_reconnects_after_the_server_is_killed_and_restarted (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], bind [S_ENDPOINT_MAX + 1];
    pt_fresh (t, endpoint, sizeof endpoint);
    snprintf (bind, sizeof bind, "@%s", endpoint);

    tu_child_t server;
    pt_peer_start (&server, PT_PEER, "echo", bind, NULL);
    pt_peer_expect (&server, "ready");
    zsock_t *client = pt_sock (ZMQ_DEALER);
    zsock_set_reconnect_ivl (client, 20);
    pt_watch_t watch;
    pt_watch_start (&watch, client, t);
    pt_connect (client, endpoint);
    int seq = 0;
    assert_int_equal (s_ping_until_echo (client, &seq), 0);

    for (int restart = 0; restart < 3; restart++) {
        assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
        pt_watch_wait (&watch, 'e', restart + 1);
        //  Again on the same endpoint (a path endpoint's socket file is
        //  still there, left by the killed process)
        pt_peer_start (&server, PT_PEER, "echo", bind, NULL);
        pt_peer_expect (&server, "ready");
        assert_int_equal (s_ping_until_echo (client, &seq), 0);
    }
    pt_watch_stop (&watch);
    if (pt_is_shm (t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (client, &stats), 0);
        assert_int_equal (stats.connected, 4);
        assert_int_equal (stats.closed, 3);
        assert_int_equal (stats.peers, 1);
    }
    assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
    shmipc_sock_destroy (&client);
    pt_assert_baseline (baseline);
}

//  A subscriber whose publisher went away subscribes again to the next
//  one on the same endpoint, as libzmq resends subscriptions on reconnect.
static void
test_subscriber_subscribes_again_after_the_publisher_restarts (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    zsock_t *sub = pt_sock (ZMQ_SUB);
    zsock_set_reconnect_ivl (sub, 20);
    zsock_set_rcvtimeo (sub, 20);
    pt_connect (sub, endpoint);
    zsock_set_subscribe (sub, "news");
    for (int generation = 0; generation < 3; generation++) {
        zsock_t *pub = pt_sock (ZMQ_PUB);
        assert_int_equal (shmipc_bind (pub, "%s", endpoint), 0);
        //  Publish until the subscriber (receiving, so processing its
        //  socket's commands) has subscribed to this publisher
        char expected [32];
        snprintf (expected, sizeof expected, "news %d", generation);
        bool received = false;
        int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
        while (!received && zclock_mono () < deadline) {
            zstr_send (pub, "other");
            zstr_send (pub, expected);
            char *string;
            while ((string = zstr_recv (sub))) {
                //  Only what it subscribed to, and only from this publisher
                assert_string_equal (string, expected);
                received = true;
                free (string);
            }
        }
        assert_true (received);
        shmipc_sock_destroy (&pub);
    }
    shmipc_sock_destroy (&sub);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Many peers on one endpoint

#define S_DEALERS 100

//  The routing id of dealer index (odd ones set one; even ones get one
//  made up by the ROUTER).
static const char *
s_identity (int index, char *buffer, size_t size)
{
    snprintf (buffer, size, "dealer-%03d", index);
    return buffer;
}

static void
test_send_right_after_disconnect_and_connect_again_is_delivered (void **state)
{
    //  zmq_disconnect ends the socket's pipe at once: a message sent just
    //  after a disconnect and a new connect must take the new connection,
    //  never the one going away (over shm:// it once did, 7 times in 100)
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (pull, t, endpoint, sizeof endpoint);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    pt_connect (push, endpoint);
    int rounds = (int) tu_scaled (100, 10);
    for (int round = 0; round < rounds; round++) {
        assert_int_equal (zstr_sendf (push, "%d", round), 0);
        char *text = zstr_recv (pull);
        assert_non_null (text);
        assert_int_equal (atoi (text), round);
        free (text);
        assert_int_equal (shmipc_disconnect (push, "%s", endpoint), 0);
        assert_int_equal (shmipc_connect (push, "%s", endpoint), 0);
    }
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

static void
test_router_serves_a_hundred_dealers_on_one_endpoint (void **state)
{
    const pt_transport_t *t = *state;
    int ndealers = (int) tu_scaled (S_DEALERS, 20);
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    zsock_set_router_mandatory (router, 1);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (router, t, endpoint, sizeof endpoint);
    zsock_t **dealers = (zsock_t **) calloc ((size_t) ndealers, sizeof (zsock_t *));
    for (int index = 0; index < ndealers; index++) {
        dealers [index] = pt_sock (ZMQ_DEALER);
        char name [32];
        if (index % 2)
            zsock_set_identity (dealers [index], s_identity (index, name, sizeof name));
        pt_connect (dealers [index], endpoint);
    }
    //  Each says hello three times; the ROUTER sees distinct identities,
    //  each with its own three messages in order
    for (int round = 0; round < 3; round++)
        for (int index = 0; index < ndealers; index++)
            assert_int_equal (zstr_sendf (dealers [index], "%d %d", index, round), 0);
    zhash_t *ids = zhash_new ();
    int *next = (int *) calloc ((size_t) ndealers, sizeof (int));
    for (int received = 0; received < 3 * ndealers; received++) {
        zmsg_t *msg = zmsg_recv (router);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 2);
        zframe_t *id = zmsg_pop (msg);
        char *body = zmsg_popstr (msg);
        int index, round;
        assert_int_equal (sscanf (body, "%d %d", &index, &round), 2);
        assert_true (index >= 0 && index < ndealers);
        assert_int_equal (round, next [index]);
        next [index]++;
        char *key = zframe_strhex (id);
        if (round == 0) {
            //  A new peer: an identity nobody else has
            assert_null (zhash_lookup (ids, key));
            zhash_insert (ids, key, (void *) (intptr_t) (index + 1));
            char name [32];
            if (index % 2)
                assert_true (zframe_streq (id, s_identity (index, name, sizeof name)));
        }
        else
            assert_int_equal ((intptr_t) zhash_lookup (ids, key), index + 1);
        //  Answer at once, through the envelope
        zframe_send (&id, router, ZFRAME_MORE);
        zstr_sendf (router, "for %d %d", index, round);
        free (key);
        free (body);
        zmsg_destroy (&msg);
    }
    assert_int_equal (zhash_size (ids), (size_t) ndealers);
    for (int index = 0; index < ndealers; index++)
        for (int round = 0; round < 3; round++) {
            char *reply = zstr_recv (dealers [index]);
            assert_non_null (reply);
            char expected [32];
            snprintf (expected, sizeof expected, "for %d %d", index, round);
            assert_string_equal (reply, expected);
            free (reply);
        }
    if (pt_is_shm (t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (router, &stats), 0);
        assert_int_equal (stats.peers, (uint64_t) ndealers);
        assert_int_equal (stats.accepted, (uint64_t) ndealers);
        assert_int_equal (stats.msgs_in, (uint64_t) (3 * ndealers));
        assert_int_equal (stats.msgs_out, (uint64_t) (3 * ndealers));
    }
    for (int index = 0; index < ndealers; index++)
        shmipc_sock_destroy (&dealers [index]);
    free (dealers);
    free (next);
    zhash_destroy (&ids);
    shmipc_sock_destroy (&router);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  A peer killed mid-stream

//  Receive tagged messages until want [] of each tag ("A", "B") arrived;
//  check each tag's sequence. Messages of a tag not wanted are counted.
static void
s_drain_tags (zsock_t *pull, long *next, long want_a, long want_b)
{
    while (next [0] < want_a || next [1] < want_b) {
        char tag [8];
        long seq;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq), 0);
        int which = tag [0] - 'A';
        assert_true ((which == 0 || which == 1) && tag [1] == 0);
        assert_int_equal (seq, next [which]);
        next [which]++;
    }
}

static void
s_survives_a_killed_peer (const pt_transport_t *t, const char *size)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    if (pt_is_shm (t))
        assert_int_equal (shmipc_set_capacity (pull, 64 * 1024), 0);
    pt_watch_t watch;
    pt_watch_start (&watch, pull, t);
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1];
    pt_bind (pull, t, endpoint, sizeof endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    tu_child_t victim, survivor;
    pt_peer_start (&victim, PT_PEER, "pushloop", connect, "A", size, NULL);
    pt_peer_start (&survivor, PT_PEER, "pushloop", connect, "B", "100", NULL);
    pt_peer_expect (&victim, "ready");
    pt_peer_expect (&survivor, "ready");

    long next [2] = { 0, 0 };
    s_drain_tags (pull, next, 20, 20);
    assert_int_equal (tu_child_finish (&victim, SIGKILL), 128 + SIGKILL);
    //  The other pusher goes on; what the victim had sent before it died
    //  may still arrive, in order
    long victim_seen = next [0];
    s_drain_tags (pull, next, 0, next [1] + tu_scaled (3000, 300));
    //  Reading on until the socket has seen the victim go: its last
    //  messages may stand in line before the end of its stream
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    while (pt_watch_count (&watch, 'e') < 1 && zclock_mono () < deadline)
        s_drain_tags (pull, next, 0, next [1] + 100);
    assert_int_equal (pt_watch_count (&watch, 'e'), 1);
    s_drain_tags (pull, next, 0, next [1] + 100);
    assert_true (next [0] >= victim_seen);
    if (pt_is_shm (t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (pull, &stats), 0);
        assert_int_equal (stats.peers, 1);
        assert_int_equal (stats.accepted, 2);
        assert_int_equal (stats.closed, 1);
    }
    pt_watch_stop (&watch);
    assert_int_equal (tu_child_finish (&survivor, SIGKILL), 128 + SIGKILL);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

static void
test_socket_keeps_serving_others_when_a_peer_is_killed (void **state)
{
    s_survives_a_killed_peer (*state, "1000");
}

//  The victim's messages are bigger than the ring: it dies part-way
//  through one, which the survivor's side must drop whole
static void
test_socket_drops_a_message_cut_short_by_a_killed_peer (void **state)
{
    s_survives_a_killed_peer (*state, "3000000");
}

//  --------------------------------------------------------------------------

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        PT_TEST (test_push_stops_at_the_high_water_mark_when_nobody_reads, shm),
        PT_TEST (test_push_stops_at_the_high_water_mark_when_nobody_reads, ipc),
        PT_TEST (test_push_stops_at_the_high_water_mark_when_nobody_reads, tcp),
        PT_TEST (test_connect_before_bind_delivers_what_was_queued, shm),
        PT_TEST (test_connect_before_bind_delivers_what_was_queued, shm_path),
        PT_TEST (test_connect_before_bind_delivers_what_was_queued, ipc),
        PT_TEST (test_client_reconnects_after_the_server_is_killed_and_restarted, shm),
        PT_TEST (test_client_reconnects_after_the_server_is_killed_and_restarted, shm_path),
        PT_TEST (test_client_reconnects_after_the_server_is_killed_and_restarted, ipc),
        PT_TEST (test_subscriber_subscribes_again_after_the_publisher_restarts, shm),
        PT_TEST (test_subscriber_subscribes_again_after_the_publisher_restarts, shm_path),
        PT_TEST (test_subscriber_subscribes_again_after_the_publisher_restarts, ipc),
        PT_TEST (test_send_right_after_disconnect_and_connect_again_is_delivered, shm),
        PT_TEST (test_send_right_after_disconnect_and_connect_again_is_delivered, ipc),
        PT_TEST (test_router_serves_a_hundred_dealers_on_one_endpoint, shm),
        PT_TEST (test_router_serves_a_hundred_dealers_on_one_endpoint, ipc),
        PT_TEST (test_router_serves_a_hundred_dealers_on_one_endpoint, tcp),
        PT_TEST (test_socket_keeps_serving_others_when_a_peer_is_killed, shm),
        PT_TEST (test_socket_keeps_serving_others_when_a_peer_is_killed, ipc),
        PT_TEST (test_socket_keeps_serving_others_when_a_peer_is_killed, tcp),
        PT_TEST (test_socket_drops_a_message_cut_short_by_a_killed_peer, shm),
        PT_TEST (test_socket_drops_a_message_cut_short_by_a_killed_peer, ipc),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
