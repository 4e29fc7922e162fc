/*  =========================================================================
    test_reliability_hostile - a genuine plugin socket survives hostile
    peers. The victim is a ROUTER echo service on shm:// in this process;
    four well-behaved DEALERs in another process (shmipc-reliability-peer)
    echo with sequence numbers the whole time; each test runs hostile peers
    (shmipc-hostile, each its own process, speaking the protocol by hand)
    against it. After each one the victim must have closed that connection
    only, for a reason it logged and counted, its descriptors, segment
    mappings and threads must be back where they were (resident memory
    within a few MiB), and the good clients must still be served. At the end
    they stop, and every echo they sent must have come back, in order, once.

    Owns the service, the clients and the hostile processes it starts.
    SHMIPC_TEST_SCALE scales the random rounds; the stress version
    (stress_reliability_hostile.c) runs many more.
    =========================================================================
*/

#include "testutil_reliability.h"

//  Random rounds of the attacks that take a seed (scaled).
#ifndef S_RANDOM_ROUNDS
#   define S_RANDOM_ROUNDS  6
#endif

//  Messages the peer that never reads sends (1 KiB each).
#ifndef S_NOREAD_MESSAGES
#   define S_NOREAD_MESSAGES 32768
#endif

#define S_GOOD_CLIENTS  4

static struct {
    char endpoint [256];            //  The victim's
    rl_service_args_t args;         //  Its configuration
    zactor_t *service;              //  The victim
    tu_child_t clients;             //  The well-behaved clients
    rl_usage_t serving;             //  Our usage with the clients connected
    long attacks;                   //  Hostile connections so far
    bool failed;                    //  A test failed: keep the log
    tu_child_t hostiles [4];        //  Hostile processes of the running test
} s_fx;

//  Start a hostile peer in a free slot (finished by the test, or by
//  s_test_teardown if the test fails first).
static tu_child_t *
s_hostile_start (const char *mode, const char *variant, const char *endpoint,
                 const char *seed)
{
    for (int index = 0; index < 4; index++) {
        tu_child_t *hostile = &s_fx.hostiles [index];
        if (hostile->pid == 0 && hostile->out < 0) {
            rl_start (hostile, "shmipc-hostile", mode, variant, endpoint, seed, NULL);
            s_fx.attacks++;
            return hostile;
        }
    }
    fail_msg ("no free slot for a hostile peer");
    return NULL;
}

//  After each test: pass on its messages; if it failed, kill what it left
//  and wait until only the good clients are connected, so that the next
//  test starts clean.
static int
s_test_teardown (void **state)
{
    rl_log_forward (state);
    for (int index = 0; index < 4; index++)
        tu_child_finish (&s_fx.hostiles [index], SIGKILL);
    if (s_fx.failed) {
        rl_stats_t stats;
        int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
        do {
            zclock_sleep (10);
            rl_service_stats (s_fx.service, &stats);
        } while (stats.accepted - stats.closed != S_GOOD_CLIENTS
                 && zclock_mono () < deadline);
        s_fx.serving = rl_usage ();
    }
    return 0;
}

static int
s_setup (void **state)
{
    pt_warm_up ();
    rl_log_start ();
    for (int index = 0; index < 4; index++)
        s_fx.hostiles [index] = (tu_child_t) { .pid = 0, .in = -1, .out = -1 };
    tu_endpoint (s_fx.endpoint, sizeof s_fx.endpoint, 'a');
    s_fx.args = (rl_service_args_t) { .endpoint = s_fx.endpoint, .capacity = 65536 };
    s_fx.service = rl_service_new (&s_fx.args);
    char connect [300];
    snprintf (connect, sizeof connect, ">%s", s_fx.endpoint);
    setenv ("SHMIPC_RL_CAPACITY", "65536", 1);
    rl_start (&s_fx.clients, "shmipc-reliability-peer", "clients", connect, "4", "4",
              "512", "2000", "good", NULL);
    rl_expect (&s_fx.clients, "ready", NULL, 0);
    RL_WAIT_STAT (s_fx.service, peers, S_GOOD_CLIENTS);
    s_fx.serving = rl_usage ();
    return 0;
}

static int
s_teardown (void **state)
{
    //  Every echo the good clients sent came back, in order, once
    tu_child_stop (&s_fx.clients);
    char line [256];
    rl_expect (&s_fx.clients, "ok ", line, sizeof line);
    assert_int_equal (tu_child_finish (&s_fx.clients, 0), 0);
    rl_stats_t stats;
    rl_service_stats (s_fx.service, &stats);
    print_message ("    %ld hostile connections; good clients: '%s' (clients, echoes "
                   "checked: 0 lost, 0 out of order, 0 duplicated); victim: %" PRIu64
                   " accepted, %" PRIu64 " closed, %" PRIu64 " errors\n",
                   s_fx.attacks, line, stats.accepted, stats.closed, stats.errors);
    zactor_destroy (&s_fx.service);
    rl_log_stop (s_fx.failed);
    pt_remove_socket_files ();
    return 0;
}

//  Wait until the service has echoed count more messages than it had in
//  stats: the good clients are still being served.
static void
s_assert_clients_served (const rl_stats_t *stats, uint64_t count)
{
    RL_WAIT_STAT (s_fx.service, echoed, stats->echoed + count);
}

//  Check what a hostile connection left: it was closed (once), for reason
//  (NULL: any reason that is an error) and counted as an error if error;
//  everything it cost is given back; the good clients are still served.
static void
s_assert_victim_recovered (const rl_stats_t *before, off_t mark, int connections,
                           const char *reason, bool error)
{
    rl_stats_t after = RL_WAIT_STAT (s_fx.service, closed, before->closed + connections);
    assert_int_equal (after.closed, before->closed + connections);
    assert_int_equal (after.accepted, before->accepted + connections);
    assert_int_equal (after.errors, before->errors + (error ? connections : 0));
    rl_log_expect (mark, reason ? reason : " closed: ");
    assert_int_equal (after.peers, S_GOOD_CLIENTS);
    rl_assert_usage (s_fx.serving);
    s_assert_clients_served (&after, 16);
}

//  Run one hostile peer in mode and variant to its end; its last line must
//  be last (NULL: anything). Then check the victim as above.
static void
s_attack (const char *mode, const char *variant, const char *last,
          const char *reason, bool error)
{
    rl_stats_t before;
    rl_service_stats (s_fx.service, &before);
    off_t mark = rl_log_mark ();
    char seed [32];
    snprintf (seed, sizeof seed, "%ld", s_fx.attacks);
    tu_child_t *hostile = s_hostile_start (mode, variant, s_fx.endpoint, seed);
    char line [256], final [256] = "";
    while (tu_child_read_line (hostile, line, sizeof line, RL_PATIENCE_MS) == 0)
        snprintf (final, sizeof final, "%s", line);
    assert_int_equal (tu_child_finish (hostile, 0), 0);
    if (last && strcmp (final, last))
        print_error ("%s %s: last said '%s', expected '%s'\n", mode, variant, final, last);
    if (last)
        assert_string_equal (final, last);
    s_assert_victim_recovered (&before, mark, 1, reason, error);
}

//  Count a test as failed if it does not reach its end (keeps the log).
#define S_BEGIN     s_fx.failed = true
#define S_END       s_fx.failed = false

//  --------------------------------------------------------------------------
//  Isolation by the kernel, seen from the other process

static void
test_hostile_peer_cannot_write_resize_or_punch_our_segment (void **state)
{
    S_BEGIN;
    rl_stats_t before;
    rl_service_stats (s_fx.service, &before);
    off_t mark = rl_log_mark ();
    tu_child_t *hostile = s_hostile_start ("seals", "-", s_fx.endpoint, NULL);
    //  Every attempt on our segment's descriptor (and on its own, which we
    //  map) is refused by the kernel; then it still gets its echo
    char line [256];
    int refused = 0;
    while (tu_child_read_line (hostile, line, sizeof line, RL_PATIENCE_MS) == 0
    &&     strncmp (line, "echo", 4)) {
        if (strncmp (line, "refused ", 8))
            print_error ("hostile peer: %s\n", line);
        assert_memory_equal (line, "refused ", 8);
        refused++;
    }
    assert_string_equal (line, "echo ok");
    assert_int_equal (tu_child_finish (hostile, 0), 0);
    print_message ("    %d ways to write, resize or punch a segment: all refused\n", refused);
    assert_int_equal (refused, 17);
    //  It closed, as a peer may: not an error
    s_assert_victim_recovered (&before, mark, 1, "peer closed the connection", false);
    S_END;
}

//  --------------------------------------------------------------------------
//  Hostile rings

static void
test_hostile_peer_scribbling_over_its_segment_is_cut_off (void **state)
{
    S_BEGIN;
    long rounds = tu_scaled (S_RANDOM_ROUNDS, 2);
    for (long round = 0; round < rounds; round++)
        s_attack ("scribble", "-", "closed", NULL, true);
    print_message ("    %ld peers writing random bytes over their segment: each cut off\n",
                   rounds);
    S_END;
}

static void
test_hostile_peer_publishing_impossible_indices_is_cut_off (void **state)
{
    S_BEGIN;
    static const struct {
        const char *variant;
        const char *reason;
    } cases [] = {
        { "tail-at-start", "peer ring indices not at start" },
        { "head-beyond", "peer ring index or record header out of range" },
        { "head-back", "peer ring index or record header out of range" },
        { "head-unaligned", "peer ring index or record header out of range" },
        { "record-size", "peer ring index or record header out of range" },
        { "record-flags", "peer ring index or record header out of range" },
        { "chunk-more", "record flags CHUNK and MORE together" },
        { "tail-beyond", "peer read index out of range" },
        { "tail-back", "peer read index out of range" },
        { "tail-unaligned", "peer read index out of range" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++)
        s_attack ("indices", cases [index].variant, "closed", cases [index].reason, true);
    S_END;
}

//  --------------------------------------------------------------------------
//  Hostile socket records and descriptors

static void
test_hostile_peer_sending_bogus_descriptors_is_cut_off (void **state)
{
    S_BEGIN;
    static const struct {
        const char *variant;
        const char *reason;
    } cases [] = {
        { "pipe", "refused descriptor: not a memfd" },
        { "file", "refused descriptor: not a memfd" },
        { "unsealed", "refused descriptor: wrong seals" },
        { "tiny", "refused descriptor: size out of range" },
        { "seals", "refused descriptor: wrong seals" },
        { "write-seal", "refused descriptor: wrong seals" },
        { "none", "HELLO without a segment descriptor" },
        { "two", "bad HELLO record or descriptors" },
        { "flood", "bad HELLO record or descriptors" },
        { "after", "descriptors or oversize record on the socket" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++)
        s_attack ("fd", cases [index].variant, "closed", cases [index].reason, true);
    S_END;
}

static void
test_hostile_peer_sending_garbage_records_is_cut_off (void **state)
{
    S_BEGIN;
    static const struct {
        const char *variant;
        const char *reason;
    } cases [] = {
        { "hello-short", "short HELLO" },
        { "hello-long", "bad HELLO record or descriptors" },
        { "hello-again", "HELLO after the handshake" },
        { "ctrl-truncated", "bad CTRL size" },
        { "short", "short record" },
        { "oversize", "descriptors or oversize record on the socket" },
        { "ack", "ACK for control messages never sent" },
        { "wake-value", "bad WAKE" },
        { "reserved", "reserved bits set" },
        { "unknown", "unknown record type" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++)
        s_attack ("garbage", cases [index].variant, "closed", cases [index].reason, true);
    //  Random bytes instead of a HELLO, and random records after one
    long rounds = tu_scaled (S_RANDOM_ROUNDS, 2);
    for (long round = 0; round < rounds; round++) {
        s_attack ("garbage", "hello-random", "closed", NULL, true);
        s_attack ("garbage", "records", "closed", NULL, true);
    }
    print_message ("    %zu malformed records and %ld random ones of each kind: each refused\n",
                   sizeof cases / sizeof cases [0], rounds);
    S_END;
}

//  --------------------------------------------------------------------------
//  Stalls

static void
test_hostile_peers_that_stall_are_cut_off_at_the_deadline (void **state)
{
    S_BEGIN;
    //  All three at once: the deadlines (5 s) run side by side
    rl_stats_t before;
    rl_service_stats (s_fx.service, &before);
    off_t mark = rl_log_mark ();
    const char *variants [] = { "connect", "hello", "greeting" };
    tu_child_t *hostiles [3];
    for (int index = 0; index < 3; index++) {
        hostiles [index] = s_hostile_start ("stall", variants [index], s_fx.endpoint, NULL);
        rl_expect (hostiles [index], "ready", NULL, 0);
    }
    //  Meanwhile the others are served
    s_assert_clients_served (&before, 100);
    for (int index = 0; index < 3; index++) {
        rl_expect (hostiles [index], "closed", NULL, 0);
        assert_int_equal (tu_child_finish (hostiles [index], 0), 0);
    }
    s_assert_victim_recovered (&before, mark, 3, "handshake timed out", true);
    rl_log_expect (mark, "greeting timed out");
    S_END;
}

static void
test_hostile_peer_that_never_reads_costs_bounded_memory (void **state)
{
    S_BEGIN;
    rl_stats_t before;
    rl_service_stats (s_fx.service, &before);
    off_t mark = rl_log_mark ();
    tu_child_t *hostile = s_hostile_start ("stall", "noread", s_fx.endpoint, NULL);
    rl_expect (hostile, "ready", NULL, 0);
    //  It sends requests and never takes a reply: the replies fill its
    //  ring, then the ROUTER's pipe to it, then ROUTER drops them
    long rss_peak = 0;
    long want = tu_scaled (S_NOREAD_MESSAGES, 4096) / 4096 * 4096;
    char line [64], expected [64];
    for (long sent = 4096; sent <= want; sent += 4096) {
        snprintf (expected, sizeof expected, "sent %ld", sent);
        rl_expect (hostile, expected, line, sizeof line);
        long rss = rl_rss_kib ();
        if (rss > rss_peak)
            rss_peak = rss;
    }
    rl_stats_t during;
    rl_service_stats (s_fx.service, &during);
    s_assert_clients_served (&during, 100);
    print_message ("    %ld requests of 1 KiB never read back: victim RSS %ld KiB at the "
                   "start, %ld at most\n", want, s_fx.serving.rss_kib, rss_peak);
    assert_true (rss_peak <= s_fx.serving.rss_kib + rl_rss_slack_kib ());
    //  Told to stop, it leaves: an ordinary close
    tu_child_stop (hostile);
    rl_expect_eventually (hostile, "stopped");
    assert_int_equal (tu_child_finish (hostile, 0), 0);
    s_assert_victim_recovered (&before, mark, 1, "peer closed the connection", false);
    S_END;
}

//  --------------------------------------------------------------------------
//  Greetings

static void
test_hostile_peer_with_a_bad_greeting_is_refused (void **state)
{
    S_BEGIN;
    static const struct {
        const char *variant;
        const char *reason;
    } cases [] = {
        { "magic", "malformed greeting" },
        { "version", "malformed greeting" },
        { "unknown-type", "malformed greeting" },
        { "id-size", "malformed greeting" },
        { "reserved", "malformed greeting" },
        { "empty", "malformed greeting" },
        { "type", "incompatible socket types" },
        { "twice", "unexpected control message" },
        { "flood", NULL },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++)
        s_attack ("greeting", cases [index].variant, "closed", cases [index].reason, true);
    S_END;
}

//  A routing id a good client already has. libzmq's ROUTER would park
//  the newcomer and never read it, so its bridge could never close: the
//  victim refuses it at the greeting, counted as an error, and gives back
//  everything it cost; the good client loses nothing (checked at the end)
static void
test_hostile_peer_with_a_duplicate_routing_id_is_refused (void **state)
{
    S_BEGIN;
    for (int round = 0; round < 3; round++) {
        rl_stats_t before;
        rl_service_stats (s_fx.service, &before);
        off_t mark = rl_log_mark ();
        tu_child_t *hostile = s_hostile_start ("dupid", "good-0", s_fx.endpoint, NULL);
        rl_expect (hostile, "sent 50", NULL, 0);
        rl_stats_t after = RL_WAIT_STAT (s_fx.service, closed, before.closed + 1);
        assert_int_equal (after.errors, before.errors + 1);
        assert_int_equal (after.peers, S_GOOD_CLIENTS);
        rl_log_expect (mark, "duplicate routing id");
        s_assert_clients_served (&after, 100);
        tu_child_stop (hostile);
        rl_expect (hostile, "replies 0", NULL, 0);
        assert_int_equal (tu_child_finish (hostile, 0), 0);
        rl_assert_usage (s_fx.serving);
    }
    S_END;
}

//  WAKE records are legal at any time: a flood costs a read each, and the
//  peer is still served
static void
test_hostile_peer_flooding_wake_records_is_still_served (void **state)
{
    S_BEGIN;
    char count [32];
    snprintf (count, sizeof count, "%ld", tu_scaled (100000, 1000));
    s_attack ("wakes", count, "echo ok", "peer closed the connection", false);
    S_END;
}

//  --------------------------------------------------------------------------
//  The other way round: a connecting socket against a hostile server

//  Take what the good pusher sent that is there, checking its order.
static void
s_drain_good (zsock_t *pull, long *next)
{
    while (zsock_events (pull) & ZMQ_POLLIN) {
        char tag [16];
        long seq;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq), 0);
        assert_string_equal (tag, "good");
        assert_int_equal (seq, *next);
        (*next)++;
    }
}

//  A PULL connects to a good PUSH server and to a hostile one; each time it
//  (re)connects to the hostile one, that connection is attacked and closed
//  for a logged reason, and the PULL reconnects; meanwhile everything the
//  good server sends arrives, in order.
static void
test_connecting_socket_survives_a_hostile_server (void **state)
{
    S_BEGIN;
    static const struct {
        const char *mode;
        const char *variant;
        const char *reason;
    } cases [] = {
        { "server-scribble", "-", NULL },
        { "server-indices", "head-beyond", "peer ring index or record header out of range" },
        { "server-indices", "tail-beyond", "peer read index out of range" },
        { "server-garbage", "records", NULL },
        { "server-fd", "pipe", "refused descriptor: not a memfd" },
        { "server-fd", "after", "descriptors or oversize record on the socket" },
        { "server-greeting", "magic", "malformed greeting" },
        { "server-greeting", "type", "incompatible socket types" },
    };
    const long attacks_each = 3;
    const long count = tu_scaled (20000, 2000);
    rl_usage_t start = rl_usage ();
    char good [256], bind [300];
    tu_endpoint (good, sizeof good, 'a');
    snprintf (bind, sizeof bind, "@%s", good);
    char text [32];
    snprintf (text, sizeof text, "%ld", count);
    tu_child_t pusher;
    rl_start (&pusher, "shmipc-reliability-peer", "push", bind, "good", "100", text, NULL);
    rl_expect (&pusher, "ready", NULL, 0);
    zsock_t *pull = pt_sock (ZMQ_PULL);
    zsock_set_reconnect_ivl (pull, 20);
    pt_connect (pull, good);
    long next = 0;
    setenv ("SHMIPC_HOSTILE_TYPE", "8", 1);         //  ZMQ_PUSH, for a PULL
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        char hostile_endpoint [256];
        tu_endpoint (hostile_endpoint, sizeof hostile_endpoint, 'a');
        shmipc_stats_t before;
        assert_int_equal (shmipc_sock_stats (pull, &before), 0);
        off_t mark = rl_log_mark ();
        tu_child_t *hostile = s_hostile_start (cases [index].mode, cases [index].variant,
                                               hostile_endpoint, NULL);
        rl_expect (hostile, "ready", NULL, 0);
        pt_connect (pull, hostile_endpoint);
        //  Attacked again at each reconnect; the good server's messages flow
        long closed = 0;
        int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
        while (closed < attacks_each && zclock_mono () < deadline) {
            s_drain_good (pull, &next);
            char line [256];
            if (tu_child_read_line (hostile, line, sizeof line, 10) == 0
            &&  streq (line, "closed"))
                closed++;
        }
        assert_int_equal (closed, attacks_each);
        assert_int_equal (shmipc_disconnect (pull, "%s", hostile_endpoint), 0);
        tu_child_stop (hostile);
        assert_int_equal (tu_child_finish (hostile, 0), 0);
        shmipc_stats_t after;
        assert_int_equal (shmipc_sock_stats (pull, &after), 0);
        assert_true (after.errors >= before.errors + (uint64_t) attacks_each);
        rl_log_expect (mark, cases [index].reason ? cases [index].reason : " closed: ");
    }
    unsetenv ("SHMIPC_HOSTILE_TYPE");
    //  The rest of what the good server sent
    zsock_set_rcvtimeo (pull, RL_PATIENCE_MS);
    while (next < count) {
        zmq_pollitem_t item = { .socket = zsock_resolve (pull), .events = ZMQ_POLLIN };
        assert_int_equal (zmq_poll (&item, 1, RL_PATIENCE_MS), 1);
        s_drain_good (pull, &next);
    }
    rl_expect (&pusher, "sent ", NULL, 0);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (pull, &stats), 0);
    print_message ("    a PULL attacked %ld times by each of %zu hostile servers: %" PRIu64
                   " connections made, %" PRIu64 " refused or cut off; all %ld messages "
                   "of its good server arrived in order\n", attacks_each,
                   sizeof cases / sizeof cases [0], stats.connected, stats.errors, next);
    shmipc_sock_destroy (&pull);
    assert_int_equal (tu_child_finish (&pusher, 0), 0);
    s_fx.attacks += attacks_each * (long) (sizeof cases / sizeof cases [0]) - 8;
    rl_assert_usage (start);
    S_END;
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_hostile_peer_cannot_write_resize_or_punch_our_segment, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_scribbling_over_its_segment_is_cut_off, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_publishing_impossible_indices_is_cut_off, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_sending_bogus_descriptors_is_cut_off, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_sending_garbage_records_is_cut_off, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peers_that_stall_are_cut_off_at_the_deadline, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_that_never_reads_costs_bounded_memory, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_with_a_bad_greeting_is_refused, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_with_a_duplicate_routing_id_is_refused, s_test_teardown),
        cmocka_unit_test_teardown (test_hostile_peer_flooding_wake_records_is_still_served, s_test_teardown),
        cmocka_unit_test_teardown (test_connecting_socket_survives_a_hostile_server, s_test_teardown),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    return cmocka_run_group_tests (tests, s_setup, s_teardown);
}
