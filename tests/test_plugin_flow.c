/*  =========================================================================
    test_plugin_flow - the actor's loop keeps messages moving through every
    change of pace: streams that fill rings and pipes, commands arriving
    while it spins, bursts separated by pauses, both directions at once

    Owns the sockets and actors of each test; every test ends with its
    descriptors, mappings and threads back to where they were. These are
    regressions: each one stalled an earlier version of the actor.
    =========================================================================
*/

#include "testutil_plugin.h"

#include <sys/resource.h>

#define S_TIMEOUT_MS    10000       //  Fail instead of hanging

//  A PULL (in its own actor thread) that receives count messages, then
//  reports how many it got: "count" on its pipe.
typedef struct {
    const char *endpoint;           //  Where to bind
    int count;                      //  How many to expect
    size_t capacity;                //  Ring bytes
} s_sink_args_t;

static void
s_sink (zsock_t *pipe, void *args)
{
    s_sink_args_t *sink = (s_sink_args_t *) args;
    zsock_t *pull = zsock_new (ZMQ_PULL);
    zsock_set_rcvhwm (pull, 1000);
    zsock_set_rcvtimeo (pull, S_TIMEOUT_MS);
    shmipc_set_capacity (pull, sink->capacity);
    //  zactor_new waits for this signal; a failed bind shows as got 0
    int rc = shmipc_bind (pull, "%s", sink->endpoint);
    zsock_signal (pipe, 0);
    int got = 0;
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    while (rc == 0 && got < sink->count
    &&     zmq_msg_recv (&msg, zsock_resolve (pull), 0) >= 0)
        got++;
    zmq_msg_close (&msg);
    zsock_send (pipe, "i", got);
    shmipc_sock_destroy (&pull);
    //  Wait for $TERM, as an actor must
    char *command = zstr_recv (pipe);
    free (command);
}

//  A stream that keeps the ring and the pipes full, while the sending
//  socket's own thread asks its actor for STATS now and then: a command
//  that interrupts the actor's spin must not leave a peer unarmed.
static void
test_stream_survives_commands_while_the_actor_spins (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "shm://@flow-stats-%d", (int) getpid ());
    int count = (int) tu_scaled (300000, 3000);
    s_sink_args_t args = { endpoint, count, 4 << 20 };
    zactor_t *sink = zactor_new (s_sink, &args);
    assert_non_null (sink);

    zsock_t *push = zsock_new (ZMQ_PUSH);
    zsock_set_sndhwm (push, 1000);
    zsock_set_sndtimeo (push, S_TIMEOUT_MS);
    assert_int_equal (shmipc_set_capacity (push, 4 << 20), 0);
    assert_int_equal (shmipc_connect (push, "%s", endpoint), 0);
    char payload [64] = { 0 };
    for (int index = 0; index < count; index++) {
        assert_int_equal (zmq_send (zsock_resolve (push), payload, sizeof payload, 0),
                          sizeof payload);
        if (index % 1000 == 0) {
            shmipc_stats_t stats;
            assert_int_equal (shmipc_sock_stats (push, &stats), 0);
        }
    }
    int got = -1;
    assert_int_equal (zsock_recv (sink, "i", &got), 0);
    assert_int_equal (got, count);
    shmipc_sock_destroy (&push);
    zactor_destroy (&sink);
    pt_assert_baseline (baseline);
}

//  An echo (in its own actor thread) of what a ROUTER receives.
static void
s_echo (zsock_t *pipe, void *args)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    shmipc_set_capacity (router, 4096);
    //  zactor_new waits for this signal; a failed bind shows as no echoes
    int rc = shmipc_bind (router, "%s", (const char *) args);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (rc == 0) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;              //  $TERM, or interrupted
        zmsg_t *msg = zmsg_recv (router);
        if (msg)
            zmsg_send (&msg, router);
    }
    zpoller_destroy (&poller);
    shmipc_sock_destroy (&router);
}

//  Messages in flight both ways over rings that hold only a few of them,
//  in bursts with pauses longer than the actor's spin: neither direction
//  may stall on a wake-up the other one consumed.
static void
test_bursts_both_ways_through_small_rings_all_arrive (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "shm://@flow-echo-%d", (int) getpid ());
    zactor_t *echo = zactor_new (s_echo, endpoint);
    assert_non_null (echo);

    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    zsock_set_rcvtimeo (dealer, S_TIMEOUT_MS);
    assert_int_equal (shmipc_set_capacity (dealer, 4096), 0);
    assert_int_equal (shmipc_connect (dealer, "%s", endpoint), 0);
    char payload [1500];
    memset (payload, 'x', sizeof payload);
    int bursts = (int) tu_scaled (40, 4);
    uint32_t next_sent = 0, next_received = 0;
    for (int burst = 0; burst < bursts; burst++) {
        //  More in flight than both rings hold together
        for (int index = 0; index < 50; index++) {
            memcpy (payload, &next_sent, sizeof next_sent);
            next_sent++;
            assert_int_equal (zmq_send (zsock_resolve (dealer), payload,
                                        sizeof payload, 0), sizeof payload);
        }
        while (next_received < next_sent) {
            char reply [sizeof payload];
            assert_int_equal (zmq_recv (zsock_resolve (dealer), reply, sizeof reply, 0),
                              sizeof reply);
            uint32_t sequence;
            memcpy (&sequence, reply, sizeof sequence);
            assert_int_equal (sequence, next_received);
            next_received++;
        }
        zclock_sleep (3);       //  Longer than the spin: the actors sleep
    }
    shmipc_sock_destroy (&dealer);
    zactor_destroy (&echo);
    pt_assert_baseline (baseline);
}

//  CPU time this process has used, all threads, in ms.
static int64_t
s_cpu_ms (void)
{
    struct rusage usage;
    getrusage (RUSAGE_SELF, &usage);
    return (int64_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000
         + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1000;
}

//  Right after traffic the actors spin, but only briefly: idle connected
//  sockets (and their actors) then sleep. A spinning actor would use a
//  whole core, 1000 ms per second; sleeping ones use next to nothing.
static void
test_idle_connected_sockets_use_no_cpu (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "shm://@flow-idle-%d", (int) getpid ());
    zsock_t *pull = zsock_new (ZMQ_PULL);
    zsock_set_rcvtimeo (pull, S_TIMEOUT_MS);
    assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
    zsock_t *push = zsock_new (ZMQ_PUSH);
    assert_int_equal (shmipc_connect (push, "%s", endpoint), 0);
    for (int round = 0; round < 3; round++) {
        for (int index = 0; index < 1000; index++)
            assert_int_equal (zstr_send (push, "traffic"), 0);
        for (int index = 0; index < 1000; index++) {
            char *text = zstr_recv (pull);
            assert_non_null (text);
            zstr_free (&text);
        }
        zclock_sleep (50);      //  Past the spin window
        int64_t before = s_cpu_ms ();
        zclock_sleep (1000);
        int64_t used = s_cpu_ms () - before;
        print_message ("    idle for 1000 ms after 1000 messages: %" PRId64 " ms CPU\n", used);
        assert_true (used < 50);
    }
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_stream_survives_commands_while_the_actor_spins),
        cmocka_unit_test (test_bursts_both_ways_through_small_rings_all_arrive),
        cmocka_unit_test (test_idle_connected_sockets_use_no_cpu),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
