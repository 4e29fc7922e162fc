/*  =========================================================================
    test_reliability_crash - crashes around a genuine plugin socket

    Crash storm: a ROUTER echo service on shm:// in this process; client
    processes connect, send and are killed with SIGKILL at random points,
    one cycle after another: mid-handshake, at a random time after start,
    mid-message (messages bigger than the ring, streaming), and while
    blocked on full rings. Two well-behaved clients echo all along. The
    server stays up, loses none of their echoes, and its descriptors,
    segment mappings, threads and memory come back to where they were.

    Restart: the server (its own process) is killed and started again on
    the same endpoint, again and again, under live clients in this
    process; they reconnect and resume, and every echo they get is theirs.

    Owns the sockets and processes it starts. The stress version
    (stress_reliability_crash.c) runs 1,000 cycles and 50 restarts.
    =========================================================================
*/

#include "testutil_reliability.h"

#ifndef S_STORM_CYCLES
#   define S_STORM_CYCLES   160
#endif
#ifndef S_RESTARTS
#   define S_RESTARTS       5
#endif

//  Ring capacity on both sides: messages of S_BIG_MESSAGE stream through it.
#define S_CAPACITY      65536
#define S_BIG_MESSAGE   300000

#define S_GOOD_CLIENTS  2

//  Kill points of the storm, one per cycle in turn.
typedef enum {
    S_RAW_HANDSHAKE,            //  A raw peer, HELLO sent, killed in the handshake
    S_RANDOM_TIME,              //  A czmq client killed 0-40 ms after its start
    S_MID_MESSAGE,              //  Killed while streaming a message through the ring
    S_BLOCKED,                  //  Killed while blocked: the server does not read
    S_KINDS
} s_kind_t;

static const char *s_kind_names [] = {
    "mid-handshake", "random time", "mid-message", "blocked on a full ring"
};

//  Wait until only the good clients are connected to service.
static rl_stats_t
s_wait_settled (zactor_t *service)
{
    rl_stats_t stats;
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    rl_service_stats (service, &stats);
    while ((stats.accepted - stats.closed != S_GOOD_CLIENTS || stats.peers != S_GOOD_CLIENTS)
    &&     zclock_mono () < deadline) {
        zclock_sleep (10);
        rl_service_stats (service, &stats);
    }
    assert_int_equal (stats.accepted - stats.closed, S_GOOD_CLIENTS);
    assert_int_equal (stats.peers, S_GOOD_CLIENTS);
    return stats;
}

static void
test_crash_storm_leaves_the_server_serving_and_at_baseline (void **state)
{
    long cycles = tu_scaled (S_STORM_CYCLES, 2 * S_KINDS);
    rl_usage_t start = rl_usage ();
    char endpoint [256], connect [300];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (connect, sizeof connect, ">%s", endpoint);
    setenv ("SHMIPC_RL_CAPACITY", "65536", 1);
    rl_service_args_t args = { .endpoint = endpoint, .capacity = S_CAPACITY, .rcvhwm = 10 };
    zactor_t *service = rl_service_new (&args);
    tu_child_t good;
    rl_start (&good, "shmipc-reliability-peer", "clients", connect, "2", "4", "1000",
              "1000", NULL);
    rl_expect (&good, "ready", NULL, 0);
    RL_WAIT_STAT (service, peers, S_GOOD_CLIENTS);
    rl_usage_t serving = rl_usage ();
    rl_usage_t peak = serving;

    uint64_t seed = 20261126, random = seed;
    long kills [S_KINDS] = { 0 };
    int64_t started = zclock_mono ();
    for (long cycle = 0; cycle < cycles; cycle++) {
        s_kind_t kind = (s_kind_t) (cycle % S_KINDS);
        tu_child_t client;
        char size [32];
        switch (kind) {
            case S_RAW_HANDSHAKE:
                rl_start (&client, "shmipc-hostile", "stall", "hello", endpoint, NULL);
                rl_expect (&client, "ready", NULL, 0);
                usleep ((useconds_t) (tu_random (&random) % 3000));
                break;
            case S_RANDOM_TIME:
                rl_start (&client, "shmipc-reliability-peer", "storm", connect, "2000",
                          "run", NULL);
                usleep ((useconds_t) (tu_random (&random) % 40000));
                break;
            case S_MID_MESSAGE:
                snprintf (size, sizeof size, "%d", S_BIG_MESSAGE);
                rl_start (&client, "shmipc-reliability-peer", "storm", connect, size,
                          "run", NULL);
                rl_expect (&client, "ready", NULL, 0);
                rl_expect (&client, "sending", NULL, 0);
                usleep ((useconds_t) (tu_random (&random) % 5000));
                break;
            default:
                rl_service_pause (service, true);
                rl_start (&client, "shmipc-reliability-peer", "storm", connect, "100000",
                          "block", NULL);
                rl_expect (&client, "ready", NULL, 0);
                rl_expect (&client, "blocked", NULL, 0);
                break;
        }
        assert_int_equal (tu_child_finish (&client, SIGKILL), 128 + SIGKILL);
        if (kind == S_BLOCKED)
            rl_service_pause (service, false);
        kills [kind]++;
        rl_usage_t now = rl_usage ();
        if (now.fds > peak.fds)
            peak.fds = now.fds;
        if (now.memfds > peak.memfds)
            peak.memfds = now.memfds;
        if (now.rss_kib > peak.rss_kib)
            peak.rss_kib = now.rss_kib;
        //  Now and then, and at the end: everything the dead left is gone
        if (cycle % 40 == 39 || cycle + 1 == cycles) {
            s_wait_settled (service);
            rl_assert_usage (serving);
        }
    }
    int64_t elapsed = zclock_mono () - started;
    rl_stats_t stats = s_wait_settled (service);
    rl_usage_t after = rl_assert_usage (serving);
    //  Bounded all along: what a dead client left queued is at most its
    //  share of the high-water marks and rings
    assert_true (peak.rss_kib <= serving.rss_kib + rl_rss_slack_kib ());

    //  The good clients: every echo back, in order, once
    tu_child_stop (&good);
    char line [128];
    rl_expect (&good, "ok ", line, sizeof line);
    assert_int_equal (tu_child_finish (&good, 0), 0);
    print_message ("    %ld cycles in %.1f s (seed %" PRIu64 "): killed %ld %s, %ld at a %s, "
                   "%ld %s, %ld %s\n", cycles, elapsed / 1000.0, seed,
                   kills [0], s_kind_names [0], kills [1], s_kind_names [1],
                   kills [2], s_kind_names [2], kills [3], s_kind_names [3]);
    print_message ("    server: %" PRIu64 " connections accepted, %" PRIu64 " closed, %"
                   PRIu64 " by an error; good clients '%s', none lost\n",
                   stats.accepted, stats.closed, stats.errors, line);
    print_message ("    server usage: %d fds, %d memfd maps, %ld KiB RSS at the start; "
                   "peak %d, %d, %ld; after %d, %d, %ld\n", serving.fds, serving.memfds,
                   serving.rss_kib, peak.fds, peak.memfds, peak.rss_kib, after.fds,
                   after.memfds, after.rss_kib);
    zactor_destroy (&service);
    rl_assert_usage (start);
}

//  --------------------------------------------------------------------------
//  Server restart

#define S_CLIENTS       8
#define S_RESEND_MS     200

typedef struct {
    zsock_t *sock;              //  Owned
    long seq;                   //  The request in flight
    int64_t sent_at;            //  When it (last) went
    long echoes;                //  Echoes received in this generation
    long late;                  //  Echoes of requests already answered
    long resent;                //  Requests sent again after S_RESEND_MS
} s_client_t;

//  Echo with every client until each has had want echoes since the
//  server's (re)start. A request that gets no answer in S_RESEND_MS goes
//  again (the server may have died with it); an echo of one already
//  answered is a late duplicate of such a resend.
static void
s_echo_until (s_client_t *clients, long want)
{
    for (int index = 0; index < S_CLIENTS; index++)
        clients [index].echoes = 0;
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    while (true) {
        bool done = true;
        int64_t now = zclock_mono ();
        zmq_pollitem_t items [S_CLIENTS];
        for (int index = 0; index < S_CLIENTS; index++) {
            s_client_t *client = &clients [index];
            done &= client->echoes >= want;
            if (client->sent_at == 0 || now - client->sent_at >= S_RESEND_MS) {
                if (client->sent_at)
                    client->resent++;
                assert_true (pt_send_tagged (zsock_resolve (client->sock), "r",
                                             client->seq, 100, 0) != -1);
                client->sent_at = now;
            }
            items [index] = (zmq_pollitem_t) {
                .socket = zsock_resolve (client->sock), .events = ZMQ_POLLIN };
        }
        if (done)
            break;
        assert_true (zclock_mono () < deadline);
        if (zmq_poll (items, S_CLIENTS, 20) <= 0)
            continue;
        for (int index = 0; index < S_CLIENTS; index++) {
            s_client_t *client = &clients [index];
            while (zsock_events (client->sock) & ZMQ_POLLIN) {
                char tag [8];
                long seq;
                assert_int_equal (pt_recv_tagged (zsock_resolve (client->sock), tag,
                                                  sizeof tag, &seq), 0);
                assert_string_equal (tag, "r");
                //  Its own requests only, never one it has not sent
                assert_true (seq <= client->seq);
                if (seq < client->seq) {
                    client->late++;
                    continue;
                }
                client->seq++;
                client->echoes++;
                client->sent_at = 0;        //  The next one goes now
            }
        }
    }
}

static void
s_restarts (char kind)
{
    long restarts = tu_scaled (S_RESTARTS, 2);
    rl_usage_t baseline = rl_usage ();
    char endpoint [256], bind [300];
    tu_endpoint (endpoint, sizeof endpoint, kind);
    snprintf (bind, sizeof bind, "@%s", endpoint);
    setenv ("SHMIPC_RL_CAPACITY", "65536", 1);

    tu_child_t server;
    rl_start (&server, "shmipc-reliability-peer", "server", bind, NULL);
    rl_expect (&server, "ready", NULL, 0);
    s_client_t clients [S_CLIENTS];
    memset (clients, 0, sizeof clients);
    for (int index = 0; index < S_CLIENTS; index++) {
        clients [index].sock = pt_sock (ZMQ_DEALER);
        zsock_set_reconnect_ivl (clients [index].sock, 20);
        assert_int_equal (shmipc_set_capacity (clients [index].sock, 65536), 0);
        pt_connect (clients [index].sock, endpoint);
    }
    s_echo_until (clients, 20);
    long resumed = 0;
    int64_t started = zclock_mono ();
    for (long restart = 0; restart < restarts; restart++) {
        //  Killed with requests in flight
        for (int index = 0; index < S_CLIENTS; index++)
            assert_true (pt_send_tagged (zsock_resolve (clients [index].sock), "r",
                                         clients [index].seq, 100, 0) != -1);
        assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
        rl_start (&server, "shmipc-reliability-peer", "server", bind, NULL);
        rl_expect (&server, "ready", NULL, 0);
        s_echo_until (clients, 20);
        for (int index = 0; index < S_CLIENTS; index++)
            resumed += clients [index].echoes;
    }
    int64_t elapsed = zclock_mono () - started;
    long late = 0, resent = 0;
    for (int index = 0; index < S_CLIENTS; index++) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (clients [index].sock, &stats), 0);
        //  One connection per server generation: reconnected every time
        assert_int_equal (stats.connected, (uint64_t) restarts + 1);
        assert_int_equal (stats.peers, 1);
        late += clients [index].late;
        resent += clients [index].resent;
        shmipc_sock_destroy (&clients [index].sock);
    }
    assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
    print_message ("    %s: %ld restarts in %.1f s under %d clients: all reconnected, "
                   "%ld echoes after restarts, %ld requests resent, %ld late echoes "
                   "of resent ones\n", kind == 'a' ? "abstract" : "path", restarts,
                   elapsed / 1000.0, S_CLIENTS, resumed, resent, late);
    rl_assert_usage (baseline);
}

static void
test_clients_resume_after_the_server_is_killed_and_restarted (void **state)
{
    s_restarts ('a');
}

//  The same on a path endpoint: each new server replaces the socket file
//  its killed predecessor left
static void
test_clients_resume_after_the_server_is_killed_and_restarted_on_a_path (void **state)
{
    s_restarts ('p');
}

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_crash_storm_leaves_the_server_serving_and_at_baseline),
        cmocka_unit_test (test_clients_resume_after_the_server_is_killed_and_restarted),
        cmocka_unit_test (test_clients_resume_after_the_server_is_killed_and_restarted_on_a_path),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
