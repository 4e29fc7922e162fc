/*  =========================================================================
    test_reliability_load - a genuine plugin socket under load

    256 DEALERs in four processes (shmipc-reliability-peer) echo with
    sequence numbers through one ROUTER on shm:// in this process for a
    bounded time: every echo comes back, in order, once (each client
    checks), and the server counts exactly as many as the clients.

    A producer whose consumer is slow: with a high-water mark set, the
    producer's resident memory stays bounded whatever it offers, and the
    consumer gets every message, in order.

    Owns the sockets and processes it starts. The stress version
    (stress_reliability_load.c) runs for a minute.
    =========================================================================
*/

#include "testutil_reliability.h"

#ifndef S_LOAD_MS
#   define S_LOAD_MS        5000
#endif
#ifndef S_SLOW_MESSAGES
#   define S_SLOW_MESSAGES  2000
#endif

#define S_PROCESSES     4
#define S_PER_PROCESS   "64"
#define S_CLIENTS       256

static void
test_256_clients_echo_with_no_loss_reordering_or_duplicates (void **state)
{
    rl_usage_t start = rl_usage ();
    char endpoint [256], connect [300];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (connect, sizeof connect, ">%s", endpoint);
    setenv ("SHMIPC_RL_CAPACITY", "65536", 1);
    rl_service_args_t args = { .endpoint = endpoint, .capacity = 65536 };
    zactor_t *service = rl_service_new (&args);
    rl_usage_t idle = rl_usage ();

    //  Window of 8 requests in flight each, payloads of 0 to 256 bytes
    tu_child_t clients [S_PROCESSES];
    for (int index = 0; index < S_PROCESSES; index++)
        rl_start (&clients [index], "shmipc-reliability-peer", "clients", connect,
                  S_PER_PROCESS, "8", "256", "0", NULL);
    for (int index = 0; index < S_PROCESSES; index++)
        rl_expect (&clients [index], "ready", NULL, 0);
    rl_stats_t begin = RL_WAIT_STAT (service, peers, S_CLIENTS);
    assert_int_equal (begin.peers, S_CLIENTS);

    long duration = tu_scaled (S_LOAD_MS, 500);
    rl_usage_t peak = rl_usage ();
    int64_t started = zclock_mono ();
    while (zclock_mono () - started < duration) {
        zclock_sleep (250);
        rl_usage_t now = rl_usage ();
        if (now.fds > peak.fds)
            peak.fds = now.fds;
        if (now.memfds > peak.memfds)
            peak.memfds = now.memfds;
        if (now.threads > peak.threads)
            peak.threads = now.threads;
        if (now.rss_kib > peak.rss_kib)
            peak.rss_kib = now.rss_kib;
    }
    //  Stop: each process waits for its echoes in flight, then counts
    long total = 0;
    for (int index = 0; index < S_PROCESSES; index++)
        tu_child_stop (&clients [index]);
    for (int index = 0; index < S_PROCESSES; index++) {
        char line [128];
        rl_expect (&clients [index], "ok ", line, sizeof line);
        int count;
        long echoes;
        assert_int_equal (sscanf (line, "ok %d %ld", &count, &echoes), 2);
        assert_int_equal (count, 64);
        total += echoes;
        assert_int_equal (tu_child_finish (&clients [index], 0), 0);
    }
    int64_t elapsed = zclock_mono () - started;
    rl_stats_t end = RL_WAIT_STAT (service, closed, S_CLIENTS);
    //  The server saw each request once and sent each echo once
    assert_int_equal (end.echoed, (uint64_t) total);
    assert_int_equal (end.msgs_in, (uint64_t) total);
    assert_int_equal (end.msgs_out, (uint64_t) total);
    assert_int_equal (end.errors, 0);
    rl_usage_t after = rl_assert_usage (idle);
    print_message ("    %d clients in %d processes, %.1f s: %ld echoes checked (%.0f/s), "
                   "0 lost, 0 out of order, 0 duplicated\n", S_CLIENTS, S_PROCESSES,
                   elapsed / 1000.0, total, total * 1000.0 / (double) elapsed);
    print_message ("    server usage idle: %d fds, %d memfd maps, %d threads, %ld KiB; "
                   "peak %d, %d, %d, %ld KiB; after %d, %d, %d, %ld KiB\n",
                   idle.fds, idle.memfds, idle.threads, idle.rss_kib, peak.fds,
                   peak.memfds, peak.threads, peak.rss_kib, after.fds, after.memfds,
                   after.threads, after.rss_kib);
    zactor_destroy (&service);
    rl_assert_usage (start);
}

//  The producer sets its ring capacity first and its high-water mark after:
//  the mark must still hold (the inproc pipes take it when shm:// binds)
static void
test_slow_consumer_keeps_the_producer_memory_bounded (void **state)
{
    long count = tu_scaled (S_SLOW_MESSAGES, 200);
    rl_usage_t start = rl_usage ();
    zsock_t *push = pt_sock (ZMQ_PUSH);
    assert_int_equal (shmipc_set_capacity (push, 65536), 0);
    zsock_set_sndhwm (push, 4);
    char endpoint [256], connect [300];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (connect, sizeof connect, ">%s", endpoint);
    assert_int_equal (shmipc_bind (push, "%s", endpoint), 0);
    setenv ("SHMIPC_RL_CAPACITY", "65536", 1);
    tu_child_t pull;
    char text [32];
    snprintf (text, sizeof text, "%ld", count);
    rl_start (&pull, "shmipc-reliability-peer", "slowpull", connect, "4", "500", text, NULL);
    rl_expect (&pull, "ready", NULL, 0);
    pt_wait_peers (push, 1);

    //  64 KiB messages, as fast as it is let: far more than any buffer
    long rss_start = rl_rss_kib (), rss_peak = rss_start;
    const size_t size = 65536;
    zsock_set_sndtimeo (push, RL_PATIENCE_MS);
    for (long seq = 0; seq < count; seq++) {
        assert_true (pt_send_tagged (zsock_resolve (push), "slow", seq, size, 0) != -1);
        if (seq % 50 == 0) {
            long rss = rl_rss_kib ();
            if (rss > rss_peak)
                rss_peak = rss;
        }
    }
    char line [64];
    rl_expect (&pull, "ok ", line, sizeof line);
    assert_int_equal (tu_child_finish (&pull, 0), 0);
    print_message ("    %ld messages of 64 KiB (%ld MiB) to a slow consumer, SNDHWM 4: "
                   "producer RSS %ld KiB at the start, %ld at most; consumer: '%s'\n",
                   count, count * 64 / 1024, rss_start, rss_peak, line);
    assert_true (rss_peak - rss_start < rl_rss_slack_kib ());
    shmipc_sock_destroy (&push);
    rl_assert_usage (start);
}

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_256_clients_echo_with_no_loss_reordering_or_duplicates),
        cmocka_unit_test (test_slow_consumer_keeps_the_producer_memory_bounded),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
