/*  =========================================================================
    test_plugin_patterns - shm:// behaves like ipc:// (and tcp://) for every
    core ZeroMQ pattern: each body runs once per transport

    Owns the sockets of each test; every test ends with its descriptors,
    mappings and threads back to where they were.
    =========================================================================
*/

#include "testutil_plugin.h"

#define S_ENDPOINT_MAX 256

//  Receive one frame as a string (fails the test on timeout).
static char *
s_recv_str (zsock_t *sock)
{
    char *string = zstr_recv (sock);
    if (!string)
        print_error ("receive timed out: %s\n", zmq_strerror (zmq_errno ()));
    assert_non_null (string);
    return string;
}

static void
s_expect_str (zsock_t *sock, const char *expected)
{
    char *string = s_recv_str (sock);
    assert_string_equal (string, expected);
    free (string);
}

//  Assert that zmsg's frames are exactly the strings given (NULL ends).
static void
s_expect_frames (zmsg_t *msg, ...)
{
    assert_non_null (msg);
    va_list args;
    va_start (args, msg);
    zframe_t *frame = zmsg_first (msg);
    const char *expected;
    while ((expected = va_arg (args, const char *))) {
        assert_non_null (frame);
        assert_int_equal (zframe_size (frame), strlen (expected));
        assert_memory_equal (zframe_data (frame), expected, strlen (expected));
        frame = zmsg_next (msg);
    }
    va_end (args);
    assert_null (frame);
}

//  --------------------------------------------------------------------------
//  Ordering and atomic multipart

//  Send message index: 1 + index % 7 frames "index.frame", then a payload
//  frame of (index * 37) % 5000 bytes filled from index.
static void
s_send_numbered (zsock_t *sock, int index)
{
    zmsg_t *msg = zmsg_new ();
    for (int frame = 0; frame < 1 + index % 7; frame++)
        zmsg_addstrf (msg, "%d.%d", index, frame);
    size_t size = (size_t) (index * 37) % 5000;
    zframe_t *payload = zframe_new (NULL, size);
    tu_fill (zframe_data (payload), size, (uint64_t) index);
    zmsg_append (msg, &payload);
    assert_int_equal (zmsg_send (&msg, sock), 0);
}

static void
s_expect_numbered (zsock_t *sock, int index)
{
    zmsg_t *msg = zmsg_recv (sock);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 2 + index % 7);
    for (int frame = 0; frame < 1 + index % 7; frame++) {
        char *string = zmsg_popstr (msg);
        char expected [32];
        snprintf (expected, sizeof expected, "%d.%d", index, frame);
        assert_string_equal (string, expected);
        free (string);
    }
    zframe_t *payload = zmsg_pop (msg);
    assert_int_equal (zframe_size (payload), (size_t) (index * 37) % 5000);
    assert_true (tu_check (zframe_data (payload), zframe_size (payload), (uint64_t) index));
    zframe_destroy (&payload);
    zmsg_destroy (&msg);
}

static void
s_multipart_in_order (const pt_transport_t *t, size_t capacity)
{
    struct { int server, client; } pairs [] = {
        { ZMQ_PULL, ZMQ_PUSH }, { ZMQ_PAIR, ZMQ_PAIR }, { ZMQ_DEALER, ZMQ_DEALER }
    };
    int count = (int) tu_scaled (6000, 200);
    tu_baseline_t baseline = pt_baseline ();
    for (size_t pair = 0; pair < sizeof pairs / sizeof pairs [0]; pair++) {
        zsock_t *server = pt_sock (pairs [pair].server);
        zsock_t *client = pt_sock (pairs [pair].client);
        if (capacity) {
            assert_int_equal (shmipc_set_capacity (server, capacity), 0);
            assert_int_equal (shmipc_set_capacity (client, capacity), 0);
        }
        char endpoint [S_ENDPOINT_MAX];
        pt_bind (server, t, endpoint, sizeof endpoint);
        pt_connect (client, endpoint);
        //  In batches, so that one thread can both send and receive
        for (int index = 0; index < count; index += 300) {
            int end = index + 300 < count ? index + 300 : count;
            for (int sent = index; sent < end; sent++)
                s_send_numbered (client, sent);
            for (int received = index; received < end; received++)
                s_expect_numbered (server, received);
        }
        //  And back, where the pattern allows
        if (pairs [pair].server != ZMQ_PULL) {
            for (int index = 0; index < 300; index++)
                s_send_numbered (server, index);
            for (int index = 0; index < 300; index++)
                s_expect_numbered (client, index);
        }
        shmipc_sock_destroy (&client);
        shmipc_sock_destroy (&server);
    }
    pt_assert_baseline (baseline);
}

static void
test_multipart_messages_arrive_whole_and_in_order (void **state)
{
    s_multipart_in_order (*state, 0);
}

//  Rings far smaller than a batch: writers and readers wait on each other
//  all the time, and a few messages are bigger than the ring
static void
test_multipart_messages_arrive_whole_and_in_order_through_small_rings (void **state)
{
    s_multipart_in_order (*state, 4096);
}

//  --------------------------------------------------------------------------
//  PUSH / PULL

#define S_PULLERS   4

//  Receive total messages over the pullers and count them per puller;
//  every message is "seq", all distinct.
static void
s_collect_pullers (zsock_t **pullers, int npullers, int total, int *counts)
{
    zpoller_t *poller = zpoller_new (NULL);
    for (int index = 0; index < npullers; index++)
        zpoller_add (poller, pullers [index]);
    bool *seen = (bool *) calloc ((size_t) total, sizeof (bool));
    for (int received = 0; received < total; received++) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, PT_PATIENCE_MS);
        assert_non_null (which);
        char *string = s_recv_str (which);
        int seq = atoi (string);
        free (string);
        assert_true (seq >= 0 && seq < total);
        assert_false (seen [seq]);
        seen [seq] = true;
        for (int index = 0; index < npullers; index++)
            if (pullers [index] == which)
                counts [index]++;
    }
    free (seen);
    zpoller_destroy (&poller);
}

static void
s_push_round_robin (const pt_transport_t *t, bool push_binds)
{
    int per_puller = (int) tu_scaled (200, 20);
    int total = per_puller * S_PULLERS;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_t *pullers [S_PULLERS];
    if (push_binds) {
        pt_watch_t watch;
        pt_watch_start (&watch, push, t);
        char endpoint [S_ENDPOINT_MAX];
        pt_bind (push, t, endpoint, sizeof endpoint);
        for (int index = 0; index < S_PULLERS; index++) {
            pullers [index] = pt_sock (ZMQ_PULL);
            pt_connect (pullers [index], endpoint);
        }
        //  Every puller is connected before the first message
        pt_watch_wait (&watch, 'h', S_PULLERS);
        pt_watch_stop (&watch);
    }
    else {
        //  A connecting PUSH queues for each endpoint from the start
        for (int index = 0; index < S_PULLERS; index++) {
            char endpoint [S_ENDPOINT_MAX];
            pullers [index] = pt_sock (ZMQ_PULL);
            pt_bind (pullers [index], t, endpoint, sizeof endpoint);
            pt_connect (push, endpoint);
        }
    }
    for (int seq = 0; seq < total; seq++)
        assert_int_equal (zstr_sendf (push, "%d", seq), 0);
    int counts [S_PULLERS] = { 0 };
    s_collect_pullers (pullers, S_PULLERS, total, counts);
    for (int index = 0; index < S_PULLERS; index++) {
        if (counts [index] != per_puller)
            print_error ("%s: puller %d got %d of %d\n", t->name, index,
                         counts [index], total);
        assert_int_equal (counts [index], per_puller);
    }
    shmipc_sock_destroy (&push);
    for (int index = 0; index < S_PULLERS; index++)
        shmipc_sock_destroy (&pullers [index]);
    pt_assert_baseline (baseline);
}

static void
test_push_round_robins_across_pullers_it_connects_to (void **state)
{
    s_push_round_robin (*state, false);
}

static void
test_push_round_robins_across_pullers_connected_to_it (void **state)
{
    s_push_round_robin (*state, true);
}

//  Three pushers in other processes each send a stream; the PULL gets
//  every message once, in order per pusher. And it takes from each in
//  turn: with every message already waiting in the socket, the order is
//  an exact rotation. Only over shm can the test know that they all wait
//  there (the actor's counters); over ipc and tcp they may still be on
//  the way, and a pusher still on the way is skipped, as it should be.
static void
test_pull_fair_queues_from_pushers (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    zsock_set_rcvhwm (pull, 0);         //  Room for all of it
    pt_watch_t watch;
    pt_watch_start (&watch, pull, t);
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1];
    pt_bind (pull, t, endpoint, sizeof endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    const char *tags [] = { "A", "B", "C" };
    long each = tu_scaled (5000, 200);
    char count [32];
    snprintf (count, sizeof count, "%ld", each);
    tu_child_t pushers [3];
    for (int index = 0; index < 3; index++) {
        pt_peer_start (&pushers [index], PT_PEER, "pushloop", connect, tags [index], "100",
                       count, NULL);
        pt_peer_expect (&pushers [index], "ready");
    }
    pt_watch_wait (&watch, 'h', 3);
    pt_watch_stop (&watch);
    bool all_waiting = false;
    if (pt_is_shm (t)) {
        //  Everything crossed: it waits in the socket's pipes
        int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
        shmipc_stats_t stats = { 0 };
        while (zclock_mono () < deadline) {
            assert_int_equal (shmipc_sock_stats (pull, &stats), 0);
            if (stats.msgs_in == (uint64_t) (3 * each))
                break;
            zclock_sleep (5);
        }
        assert_int_equal (stats.msgs_in, 3 * each);
        all_waiting = true;
    }
    long next [3] = { 0, 0, 0 };
    int order [3] = { -1, -1, -1 };
    for (long received = 0; received < 3 * each; received++) {
        char tag [8];
        long seq;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq), 0);
        int which = tag [0] - 'A';
        assert_true (which >= 0 && which < 3 && tag [1] == 0);
        assert_int_equal (seq, next [which]);
        next [which]++;
        if (all_waiting) {
            //  A, B, C in some order, then the same order again and again
            if (received < 3) {
                for (long before = 0; before < received; before++)
                    assert_int_not_equal (order [before], which);
                order [received] = which;
            }
            else
            if (which != order [received % 3])
                print_error ("%s: message %ld from %s breaks the rotation\n",
                             t->name, received, tag);
            assert_int_equal (which, order [received % 3]);
        }
    }
    for (int index = 0; index < 3; index++) {
        assert_int_equal (next [index], each);
        assert_int_equal (tu_child_finish (&pushers [index], SIGKILL), 128 + SIGKILL);
    }
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  PUB / SUB / XPUB

#define S_SUBSCRIBERS 4

static void
test_pub_delivers_to_each_subscriber_exactly_its_prefixes (void **state)
{
    const pt_transport_t *t = *state;
    //  Each subscriber's prefixes, '|' apart
    const char *prefixes [S_SUBSCRIBERS] = {
        "news.", "sport.|weather.", "", "news.local"
    };
    const char *topics [] = {
        "news.world", "news.local.town", "sport.f1", "weather.rain", "other", "new"
    };
    size_t ntopics = sizeof topics / sizeof topics [0];
    int rounds = (int) tu_scaled (50, 5);
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pub = pt_sock (ZMQ_PUB);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (pub, t, endpoint, sizeof endpoint);
    zsock_t *subs [S_SUBSCRIBERS];
    for (int index = 0; index < S_SUBSCRIBERS; index++) {
        subs [index] = pt_sock (ZMQ_SUB);
        pt_connect (subs [index], endpoint);
        char *list = strdup (prefixes [index]);
        char *save = NULL;
        for (char *prefix = strtok_r (list, "|", &save); prefix;
             prefix = strtok_r (NULL, "|", &save))
            zsock_set_subscribe (subs [index], prefix);
        if (*prefixes [index] == 0)
            zsock_set_subscribe (subs [index], "");
        free (list);
        //  Last: once "!sync" arrives, the prefixes before it are in force;
        //  "!end" closes the stream
        zsock_set_subscribe (subs [index], "!");
    }
    //  Publish "!sync" until every subscriber has seen one
    bool synced [S_SUBSCRIBERS] = { false };
    int nsynced = 0;
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    while (nsynced < S_SUBSCRIBERS && zclock_mono () < deadline) {
        zstr_send (pub, "!sync");
        zclock_sleep (10);
        for (int index = 0; index < S_SUBSCRIBERS; index++) {
            char buffer [16];
            while (zmq_recv (zsock_resolve (subs [index]), buffer, sizeof buffer,
                             ZMQ_DONTWAIT) >= 0)
                if (!synced [index]) {
                    synced [index] = true;
                    nsynced++;
                }
        }
    }
    assert_int_equal (nsynced, S_SUBSCRIBERS);

    for (int round = 0; round < rounds; round++)
        for (size_t topic = 0; topic < ntopics; topic++)
            zstr_sendx (pub, topics [topic], "body", NULL);
    zstr_send (pub, "!end");

    for (int index = 0; index < S_SUBSCRIBERS; index++) {
        //  Expected: every matching topic, in publishing order
        zlist_t *expected = zlist_new ();
        for (int round = 0; round < rounds; round++)
            for (size_t topic = 0; topic < ntopics; topic++) {
                char *list = strdup (prefixes [index]);
                char *save = NULL;
                bool match = *prefixes [index] == 0;
                for (char *prefix = strtok_r (list, "|", &save); prefix && !match;
                     prefix = strtok_r (NULL, "|", &save))
                    match = strncmp (topics [topic], prefix, strlen (prefix)) == 0;
                free (list);
                if (match)
                    zlist_append (expected, (void *) topics [topic]);
            }
        while (true) {
            zmsg_t *msg = zmsg_recv (subs [index]);
            assert_non_null (msg);
            char *topic = zmsg_popstr (msg);
            if (streq (topic, "!end")) {
                free (topic);
                zmsg_destroy (&msg);
                break;
            }
            if (!streq (topic, "!sync")) {
                const char *want = (const char *) zlist_pop (expected);
                if (!want || strcmp (want, topic))
                    print_error ("%s: subscriber %d got '%s', expected '%s'\n",
                                 t->name, index, topic, want ? want : "nothing");
                assert_non_null (want);
                assert_string_equal (topic, want);
                s_expect_frames (msg, "body", NULL);
            }
            free (topic);
            zmsg_destroy (&msg);
        }
        assert_int_equal (zlist_size (expected), 0);
        zlist_destroy (&expected);
    }
    for (int index = 0; index < S_SUBSCRIBERS; index++)
        shmipc_sock_destroy (&subs [index]);
    shmipc_sock_destroy (&pub);
    pt_assert_baseline (baseline);
}

static void
s_expect_subscription (zsock_t *xpub, bool subscribe, const char *topic)
{
    zframe_t *frame = zframe_recv (xpub);
    if (!frame)
        print_error ("no %s '%s'\n", subscribe ? "subscribe" : "unsubscribe", topic);
    assert_non_null (frame);
    size_t size = strlen (topic);
    if (zframe_size (frame) != size + 1 || zframe_data (frame) [0] != (subscribe ? 1 : 0)
    ||  memcmp (zframe_data (frame) + 1, topic, size))
        print_error ("expected %s '%s', got %zu bytes starting %d\n",
                     subscribe ? "subscribe" : "unsubscribe", topic,
                     zframe_size (frame),
                     zframe_size (frame) ? zframe_data (frame) [0] : -1);
    assert_int_equal (zframe_size (frame), size + 1);
    assert_int_equal (zframe_data (frame) [0], subscribe ? 1 : 0);
    assert_memory_equal (zframe_data (frame) + 1, topic, size);
    zframe_destroy (&frame);
}

static void
test_xpub_receives_subscriptions_and_unsubscriptions (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *xpub = pt_sock (ZMQ_XPUB);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (xpub, t, endpoint, sizeof endpoint);

    zsock_t *first = pt_sock (ZMQ_SUB);
    pt_connect (first, endpoint);
    zsock_set_subscribe (first, "alpha");
    s_expect_subscription (xpub, true, "alpha");
    zsock_set_subscribe (first, "beta");
    s_expect_subscription (xpub, true, "beta");
    zsock_set_unsubscribe (first, "alpha");
    s_expect_subscription (xpub, false, "alpha");

    //  A topic someone already has is not announced again
    zsock_t *second = pt_sock (ZMQ_SUB);
    pt_connect (second, endpoint);
    zsock_set_subscribe (second, "beta");
    zsock_set_subscribe (second, "gamma");
    s_expect_subscription (xpub, true, "gamma");

    //  The data reaches the subscribers, in both directions of the bridge
    zstr_sendx (xpub, "beta.1", NULL);
    s_expect_str (first, "beta.1");
    s_expect_str (second, "beta.1");

    //  A subscriber that goes away takes its own topics with it (libzmq
    //  4.3.4 keeps an ipc/tcp connection open after zmq_disconnect, so
    //  going away here is closing the socket)
    shmipc_sock_destroy (&second);
    s_expect_subscription (xpub, false, "gamma");
    shmipc_sock_destroy (&first);
    s_expect_subscription (xpub, false, "beta");

    shmipc_sock_destroy (&xpub);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  REQ / REP / DEALER / ROUTER

#define S_REQUESTERS 5

static void
test_req_rep_keeps_lockstep_and_replies_to_the_right_requester (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *rep = pt_sock (ZMQ_REP);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (rep, t, endpoint, sizeof endpoint);
    zsock_t *reqs [S_REQUESTERS];
    for (int index = 0; index < S_REQUESTERS; index++) {
        reqs [index] = pt_sock (ZMQ_REQ);
        pt_connect (reqs [index], endpoint);
    }
    //  REQ: send, then receive; a second send is a state error
    for (int index = 0; index < S_REQUESTERS; index++) {
        assert_int_equal (zstr_sendf (reqs [index], "request %d", index), 0);
        assert_int_equal (zmq_send (zsock_resolve (reqs [index]), "again", 5, 0), -1);
        assert_int_equal (zmq_errno (), EFSM);
    }
    //  REP: receive, then reply; a second receive is a state error
    for (int round = 0; round < S_REQUESTERS; round++) {
        char *request = s_recv_str (rep);
        char buffer [8];
        assert_int_equal (zmq_recv (zsock_resolve (rep), buffer, sizeof buffer, 0), -1);
        assert_int_equal (zmq_errno (), EFSM);
        assert_int_equal (zstr_sendf (rep, "reply to %s", request), 0);
        free (request);
    }
    for (int index = 0; index < S_REQUESTERS; index++) {
        char expected [64];
        snprintf (expected, sizeof expected, "reply to request %d", index);
        s_expect_str (reqs [index], expected);
        //  And the REQ may ask again
        assert_int_equal (zstr_sendf (reqs [index], "second %d", index), 0);
    }
    for (int round = 0; round < S_REQUESTERS; round++) {
        zmsg_t *msg = zmsg_recv (rep);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 1);
        zmsg_send (&msg, rep);
    }
    for (int index = 0; index < S_REQUESTERS; index++) {
        char expected [32];
        snprintf (expected, sizeof expected, "second %d", index);
        s_expect_str (reqs [index], expected);
        shmipc_sock_destroy (&reqs [index]);
    }
    shmipc_sock_destroy (&rep);
    pt_assert_baseline (baseline);
}

static void
test_req_to_router_carries_the_native_envelope (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (router, t, endpoint, sizeof endpoint);
    zsock_t *named = pt_sock (ZMQ_REQ);
    zsock_set_identity (named, "requester");
    pt_connect (named, endpoint);
    zsock_t *anonymous = pt_sock (ZMQ_REQ);
    pt_connect (anonymous, endpoint);

    assert_int_equal (zstr_send (named, "hello"), 0);
    zmsg_t *msg = zmsg_recv (router);
    s_expect_frames (msg, "requester", "", "hello", NULL);
    zmsg_destroy (&msg);

    //  Without a routing id the ROUTER makes one, as libzmq does: 5 bytes,
    //  the first 0
    assert_int_equal (zstr_send (anonymous, "anon"), 0);
    msg = zmsg_recv (router);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 3);
    zframe_t *id = zmsg_pop (msg);
    assert_int_equal (zframe_size (id), 5);
    assert_int_equal (zframe_data (id) [0], 0);
    s_expect_frames (msg, "", "anon", NULL);
    zmsg_destroy (&msg);

    //  Replies follow the envelope back; the REQ strips it
    zstr_sendx (router, "requester", "", "world", NULL);
    zframe_send (&id, router, ZFRAME_MORE);
    zstr_sendx (router, "", "to anon", NULL);
    msg = zmsg_recv (named);
    s_expect_frames (msg, "world", NULL);
    zmsg_destroy (&msg);
    msg = zmsg_recv (anonymous);
    s_expect_frames (msg, "to anon", NULL);
    zmsg_destroy (&msg);

    shmipc_sock_destroy (&named);
    shmipc_sock_destroy (&anonymous);
    shmipc_sock_destroy (&router);
    pt_assert_baseline (baseline);
}

static void
test_dealer_to_rep_carries_the_native_envelope (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *rep = pt_sock (ZMQ_REP);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (rep, t, endpoint, sizeof endpoint);
    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    pt_connect (dealer, endpoint);

    zstr_sendx (dealer, "", "hello", "more", NULL);
    zmsg_t *msg = zmsg_recv (rep);
    s_expect_frames (msg, "hello", "more", NULL);
    zmsg_destroy (&msg);
    zstr_sendx (rep, "world", NULL);
    msg = zmsg_recv (dealer);
    s_expect_frames (msg, "", "world", NULL);
    zmsg_destroy (&msg);

    shmipc_sock_destroy (&dealer);
    shmipc_sock_destroy (&rep);
    pt_assert_baseline (baseline);
}

static void
test_router_sees_dealer_routing_ids_and_replies_reach_each_dealer (void **state)
{
    const pt_transport_t *t = *state;
    const char *names [] = { "alpha", "beta", "gamma" };
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (router, t, endpoint, sizeof endpoint);
    zsock_t *dealers [3];
    for (int index = 0; index < 3; index++) {
        dealers [index] = pt_sock (ZMQ_DEALER);
        //  ZMQ_ROUTING_ID, set before connecting
        assert_int_equal (zmq_setsockopt (zsock_resolve (dealers [index]), ZMQ_ROUTING_ID,
                                          names [index], strlen (names [index])), 0);
        pt_connect (dealers [index], endpoint);
        zstr_sendf (dealers [index], "from %s", names [index]);
    }
    for (int round = 0; round < 3; round++) {
        zmsg_t *msg = zmsg_recv (router);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 2);
        char *id = zmsg_popstr (msg);
        char *body = zmsg_popstr (msg);
        char expected [32];
        snprintf (expected, sizeof expected, "from %s", id);
        assert_string_equal (body, expected);
        zstr_sendx (router, id, "to", id, NULL);
        free (id);
        free (body);
        zmsg_destroy (&msg);
    }
    for (int index = 0; index < 3; index++) {
        zmsg_t *msg = zmsg_recv (dealers [index]);
        s_expect_frames (msg, "to", names [index], NULL);
        zmsg_destroy (&msg);
        shmipc_sock_destroy (&dealers [index]);
    }
    shmipc_sock_destroy (&router);
    pt_assert_baseline (baseline);
}

static void
test_router_mandatory_refuses_unknown_and_departed_peers (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    zsock_set_router_mandatory (router, 1);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (router, t, endpoint, sizeof endpoint);
    void *handle = zsock_resolve (router);

    assert_int_equal (zmq_send (handle, "nobody", 6, ZMQ_SNDMORE), -1);
    assert_int_equal (zmq_errno (), EHOSTUNREACH);

    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    zsock_set_identity (dealer, "d1");
    pt_connect (dealer, endpoint);
    zstr_send (dealer, "hi");
    zmsg_t *msg = zmsg_recv (router);
    s_expect_frames (msg, "d1", "hi", NULL);
    zmsg_destroy (&msg);
    assert_int_equal (zstr_sendx (router, "d1", "back", NULL), 0);
    s_expect_str (dealer, "back");

    //  Once the DEALER is gone, sends to it fail
    shmipc_sock_destroy (&dealer);
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    int rc = 0;
    while (zclock_mono () < deadline) {
        rc = zmq_send (handle, "d1", 2, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (rc == -1)
            break;
        zmq_send (handle, "late", 4, 0);
        zclock_sleep (5);
    }
    assert_int_equal (rc, -1);
    assert_int_equal (zmq_errno (), EHOSTUNREACH);

    shmipc_sock_destroy (&router);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Message sizes

static void
test_messages_from_0_bytes_to_64_mib_arrive_intact (void **state)
{
    const pt_transport_t *t = *state;
    size_t largest = (size_t) tu_scaled (64L << 20, 2L << 20);
    size_t sizes [] = { 0, 1, 1024, 1 << 20, largest };
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *server = pt_sock (ZMQ_PAIR);
    zsock_t *client = pt_sock (ZMQ_PAIR);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (server, t, endpoint, sizeof endpoint);
    pt_connect (client, endpoint);
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++) {
        pt_send_frames (client, &sizes [index], 1, index);
        pt_expect_frames (server, &sizes [index], 1, index);
        pt_send_frames (server, &sizes [index], 1, index + 100);
        pt_expect_frames (client, &sizes [index], 1, index + 100);
    }
    //  Several in flight at once, the large one between small ones
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++)
        pt_send_frames (client, &sizes [index], 1, index + 200);
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++)
        pt_expect_frames (server, &sizes [index], 1, index + 200);
    shmipc_sock_destroy (&client);
    shmipc_sock_destroy (&server);
    pt_assert_baseline (baseline);
}

static void
test_multipart_messages_with_large_frames_arrive_intact (void **state)
{
    const pt_transport_t *t = *state;
    size_t frames [] = { 3 << 20, 0, (5 << 20) + 1, 1, 1 << 20, 4096 };
    size_t nframes = sizeof frames / sizeof frames [0];
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (pull, t, endpoint, sizeof endpoint);
    pt_connect (push, endpoint);
    for (uint64_t round = 0; round < 3; round++)
        pt_send_frames (push, frames, nframes, round * 10);
    for (uint64_t round = 0; round < 3; round++)
        pt_expect_frames (pull, frames, nframes, round * 10);
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Socket types that may not talk

static void
s_refused (const pt_transport_t *t, int server_type, int client_type)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *server = pt_sock (server_type);
    if (server_type == ZMQ_SUB)
        zsock_set_subscribe (server, "");
    pt_watch_t server_watch, client_watch;
    pt_watch_start (&server_watch, server, t);
    char endpoint [S_ENDPOINT_MAX];
    pt_bind (server, t, endpoint, sizeof endpoint);
    zsock_t *client = pt_sock (client_type);
    zsock_set_reconnect_ivl (client, 20);
    pt_watch_start (&client_watch, client, t);
    pt_connect (client, endpoint);
    //  The client queues a message, as a connecting socket does
    assert_int_equal (zmq_send (zsock_resolve (client), "", 0, ZMQ_SNDMORE), 0);
    assert_int_equal (zmq_send (zsock_resolve (client), "x", 1, ZMQ_DONTWAIT), 1);
    //  Refused at the handshake: the connection ended and never got past
    //  it (the shm actor counts an error on each side)
    pt_watch_wait (&server_watch, 'e', 1);
    if (pt_is_shm (t)) {
        pt_watch_wait (&server_watch, 'r', 1);
        pt_watch_wait (&client_watch, 'r', 1);
    }
    else {
        assert_int_equal (pt_watch_count (&server_watch, 'h'), 0);
        assert_int_equal (pt_watch_count (&client_watch, 'h'), 0);
    }
    pt_watch_stop (&server_watch);
    pt_watch_stop (&client_watch);

    //  Nothing crossed
    if (server_type == ZMQ_SUB) {
        zsock_set_rcvtimeo (server, 200);
        zmsg_t *msg = zmsg_recv (server);
        assert_null (msg);
    }
    if (server_type == ZMQ_REQ) {
        //  A bound REQ with no accepted peer has nowhere to send
        assert_int_equal (zmq_send (zsock_resolve (server), "q", 1, ZMQ_DONTWAIT), -1);
        assert_int_equal (zmq_errno (), EAGAIN);
    }
    if (pt_is_shm (t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (server, &stats), 0);
        assert_true (stats.errors >= 1);
        assert_int_equal (stats.peers, 0);
        assert_int_equal (stats.msgs_in, 0);
        assert_int_equal (stats.msgs_out, 0);
        assert_int_equal (shmipc_sock_stats (client, &stats), 0);
        assert_true (stats.errors >= 1);
        assert_int_equal (stats.peers, 0);
        assert_int_equal (stats.msgs_in, 0);
        assert_int_equal (stats.msgs_out, 0);
    }
    shmipc_sock_destroy (&client);
    shmipc_sock_destroy (&server);
    pt_assert_baseline (baseline);
}

static void
test_push_to_pub_is_refused (void **state)
{
    s_refused (*state, ZMQ_PUB, ZMQ_PUSH);
}

static void
test_push_to_sub_is_refused (void **state)
{
    s_refused (*state, ZMQ_SUB, ZMQ_PUSH);
}

static void
test_req_to_req_is_refused (void **state)
{
    s_refused (*state, ZMQ_REQ, ZMQ_REQ);
}

//  --------------------------------------------------------------------------

#define S_TEST3(fn) PT_TEST (fn, shm), PT_TEST (fn, ipc), PT_TEST (fn, tcp)

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        S_TEST3 (test_multipart_messages_arrive_whole_and_in_order),
        PT_TEST (test_multipart_messages_arrive_whole_and_in_order_through_small_rings, shm),
        S_TEST3 (test_push_round_robins_across_pullers_it_connects_to),
        S_TEST3 (test_push_round_robins_across_pullers_connected_to_it),
        S_TEST3 (test_pull_fair_queues_from_pushers),
        S_TEST3 (test_pub_delivers_to_each_subscriber_exactly_its_prefixes),
        S_TEST3 (test_xpub_receives_subscriptions_and_unsubscriptions),
        S_TEST3 (test_req_rep_keeps_lockstep_and_replies_to_the_right_requester),
        S_TEST3 (test_req_to_router_carries_the_native_envelope),
        S_TEST3 (test_dealer_to_rep_carries_the_native_envelope),
        S_TEST3 (test_router_sees_dealer_routing_ids_and_replies_reach_each_dealer),
        S_TEST3 (test_router_mandatory_refuses_unknown_and_departed_peers),
        S_TEST3 (test_messages_from_0_bytes_to_64_mib_arrive_intact),
        S_TEST3 (test_multipart_messages_with_large_frames_arrive_intact),
        S_TEST3 (test_push_to_pub_is_refused),
        S_TEST3 (test_push_to_sub_is_refused),
        S_TEST3 (test_req_to_req_is_refused),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
