/*  =========================================================================
    test_reliability_regressions - bugs the reliability tests found, each
    as a test that states the right behaviour and failed before its fix.
    Each comment names the file, the function and what went wrong.

    Owns the sockets, channels and processes it starts.
    =========================================================================
*/

#include "testutil_reliability.h"

#include <sys/socket.h>

//  Run one hostile peer against a fresh ROUTER echo service until it ends;
//  return the service's stats then (the service is destroyed).
static rl_stats_t
s_run_hostile (rl_service_args_t *args, const char *mode, const char *variant)
{
    zactor_t *service = rl_service_new (args);
    tu_child_t hostile;
    rl_start (&hostile, "shmipc-hostile", mode, variant, args->endpoint, NULL);
    char line [256];
    while (tu_child_read_line (&hostile, line, sizeof line, RL_PATIENCE_MS) == 0)
        ;
    assert_int_equal (tu_child_finish (&hostile, 0), 0);
    rl_stats_t stats = RL_WAIT_STAT (service, closed, 1);
    zactor_destroy (&service);
    return stats;
}

//  --------------------------------------------------------------------------
//  BUG 1 (fixed) - src/channel.c, s_empty_record (used by s_take and
//  s_handshake_step): an empty SEQPACKET record that nothing follows is
//  taken for end of stream. recvmsg returns 0 for both; s_empty_record
//  then asks poll for POLLIN and, finding nothing more queued, decides
//  "end of stream". So the peer is marked gone (not an error) instead of
//  the channel being refused with EPROTO "empty record on the socket";
//  through the plugin the connection is closed as "peer closed the
//  connection" and not counted in the errors. No harm beyond the wrong
//  reason and count (the connection does close). Fixed: decided by
//  POLLRDHUP | POLLHUP alone (set by the kernel once the peer shut down
//  or closed): no hang-up means the 0 was an empty record.

static void
test_channel_refuses_an_empty_record_with_eproto (void **state)
{
    shmipc_channel_t *victim, *peer;
    tu_channel_pair (4096, 4096, &victim, &peer);
    //  The peer, alive, sends one empty record and nothing else
    assert_int_equal (send (shmipc_channel_fd (peer), "", 0, MSG_NOSIGNAL), 0);
    int events = shmipc_channel_events (victim);
    print_message ("    after an empty record: events %d, error %d, reason '%s'\n",
                   events, shmipc_channel_error (victim), shmipc_channel_reason (victim));
    shmipc_channel_destroy (&peer);
    int error = shmipc_channel_error (victim);
    shmipc_channel_destroy (&victim);
    assert_int_equal (error, EPROTO);
}

static void
test_plugin_counts_an_empty_record_as_an_error (void **state)
{
    char endpoint [256];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    rl_service_args_t args = { .endpoint = endpoint };
    off_t mark = rl_log_mark ();
    rl_stats_t stats = s_run_hostile (&args, "garbage", "empty");
    print_message ("    an empty record: closed %" PRIu64 ", errors %" PRIu64 "\n",
                   stats.closed, stats.errors);
    assert_int_equal (stats.errors, 1);
    rl_log_expect (mark, "empty record on the socket");
}

//  --------------------------------------------------------------------------
//  BUG 2 (fixed) - plugin/shmipc_sock.c (s_attach), plugin/actor.c
//  (s_endpoint_from), plugin/peer.c (shmipc__peer_new): ZMQ_MAXMSGSIZE of
//  the user's socket never reaches its shm:// connections, and nothing
//  calls shmipc_channel_set_maxmsgsize, so a message a peer streams is
//  reassembled without any bound. A peer of another uid that was let in
//  can send one endless frame and take all our memory (here 64 MiB with
//  ZMQ_MAXMSGSIZE at 1 MiB). Over ipc:// and tcp:// libzmq drops a peer as
//  soon as a message passes ZMQ_MAXMSGSIZE. Fixed: s_attach snapshots
//  ZMQ_MAXMSGSIZE with the other options, BIND/CONNECT carry it, and each
//  channel gets it (shmipc_channel_set_maxmsgsize) when it is created.

static void
test_peer_streaming_past_zmq_maxmsgsize_is_cut_off (void **state)
{
    char endpoint [256];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    rl_service_args_t args = { .endpoint = endpoint, .capacity = 65536,
                               .maxmsgsize = 1 << 20 };
    zactor_t *service = rl_service_new (&args);
    long rss_before = rl_rss_kib ();
    off_t mark = rl_log_mark ();
    tu_child_t hostile;
    rl_start (&hostile, "shmipc-hostile", "bigmsg", "64", endpoint, NULL);
    char line [64];
    assert_int_equal (tu_child_read_line (&hostile, line, sizeof line, RL_PATIENCE_MS), 0);
    long rss_after = rl_rss_kib ();
    print_message ("    a peer streamed one frame of %s MiB against ZMQ_MAXMSGSIZE 1 MiB: "
                   "our RSS +%ld KiB\n", line + strlen ("streamed "), rss_after - rss_before);
    tu_child_finish (&hostile, SIGKILL);
    zactor_destroy (&service);
    //  What should have happened: cut off at 1 MiB, memory bounded
    char *log = rl_log_since (mark);
    bool cut_off = strstr (log, "message larger than the maximum size") != NULL;
    free (log);
    assert_true (cut_off);
    assert_true (rss_after - rss_before < rl_rss_slack_kib ());
}

//  --------------------------------------------------------------------------
//  BUG 3 (fixed) - plugin/peer.c (s_accept_greeting, shmipc__bridge_new) with
//  libzmq's ROUTER: a connection whose routing id duplicates a live peer's
//  leaves its bridge socket behind for good. ROUTER parks the newcomer's
//  pipe as anonymous and never reads it; when the connection closes, the
//  bridge's pipe waits for ROUTER to read up to its delimiter, which never
//  happens, so the bridge (an eventfd, and up to its high-water mark of
//  queued messages) stays until the user's socket closes. A peer that
//  repeats this takes one of our descriptors each time. The same happens
//  with two plain libzmq DEALERs of one identity on inproc. Fixed:
//  s_accept_greeting refuses, for a user ROUTER, a routing id that a live
//  connection of the same socket already has ("duplicate routing id"),
//  before any bridge is made.

static void
test_duplicate_routing_id_connections_leave_nothing_behind (void **state)
{
    char endpoint [256], connect [300];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (connect, sizeof connect, ">%s", endpoint);
    rl_service_args_t args = { .endpoint = endpoint, .capacity = 65536 };
    zactor_t *service = rl_service_new (&args);
    tu_child_t good;
    rl_start (&good, "shmipc-reliability-peer", "clients", connect, "1", "1", "10", "1000",
              "good", NULL);
    rl_expect (&good, "ready", NULL, 0);
    rl_usage_t before = rl_usage ();
    for (int round = 0; round < 3; round++) {
        tu_child_t hostile;
        rl_start (&hostile, "shmipc-hostile", "dupid", "good-0", endpoint, NULL);
        rl_expect (&hostile, "sent 50", NULL, 0);
        tu_child_stop (&hostile);
        rl_expect (&hostile, "replies 0", NULL, 0);
        assert_int_equal (tu_child_finish (&hostile, 0), 0);
        RL_WAIT_STAT (service, closed, (uint64_t) round + 1);
    }
    rl_usage_t after = rl_usage ();
    int64_t deadline = zclock_mono () + 5000;
    while (after.fds != before.fds && zclock_mono () < deadline) {
        zclock_sleep (50);
        after = rl_usage ();
    }
    print_message ("    3 connections with a duplicate routing id came and went: "
                   "%d descriptors before, %d after\n", before.fds, after.fds);
    tu_child_stop (&good);
    rl_expect (&good, "ok ", NULL, 0);
    tu_child_finish (&good, 0);
    zactor_destroy (&service);
    assert_int_equal (after.fds, before.fds);
}

int
main (void)
{
    pt_warm_up ();
    rl_log_start ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_channel_refuses_an_empty_record_with_eproto,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_plugin_counts_an_empty_record_as_an_error,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_peer_streaming_past_zmq_maxmsgsize_is_cut_off,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_duplicate_routing_id_connections_leave_nothing_behind,
                                   rl_log_forward),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    rl_log_stop (false);
    pt_remove_socket_files ();
    return failed;
}
