/*  =========================================================================
    test_hardening_plugin - the czmq layer against what real programs do:
    messages of very many frames, signals arriving all the time, plain
    zsock_destroy, returning from main with sockets live, ZMQ_IMMEDIATE.
    Each test states the right behaviour; each failed before its fix.

    Owns the sockets of each test and the helper processes it starts
    (tests/careless/shmipc-careless); every test ends with its descriptors,
    mappings and threads back to where they were.
    =========================================================================
*/

#include "testutil_plugin.h"

#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

#define S_ENDPOINT_MAX 256

//  A frame bigger than this is big (kept out of line by libzmq, pooled by
//  the plugin); at most 33 bytes libzmq keeps it inside the zmq_msg_t.
#define S_LARGE_FRAME   (100 * 1024)

//  --------------------------------------------------------------------------
//  Multipart messages (D1): plugin/peer.c, s_read_out, took each frame's
//  iovec as it read the frame; when a message of more than 8 frames grew the
//  frame array, the frames kept inside their zmq_msg_t moved and the iovecs
//  of the first ones pointed into freed memory. Such messages arrived with
//  garbage, or not at all (ASan: heap-use-after-free in the actor).

typedef enum { S_SMALL, S_MIXED } s_sizes_t;

//  The size of frame index of a message of count frames. Small: 0 to 33
//  bytes. Mixed: also 34 to 1000 bytes, and large frames (past the plugin's
//  64 KiB pool threshold) spread over the first 2000 frames and last.
static size_t
s_frame_size (s_sizes_t sizes, size_t index, size_t count)
{
    if (sizes == S_SMALL)
        return (index * 7 + count) % 34;
    static const size_t pattern [] = { 0, 33, 1, 34, 0, 1000, 17, 32, 8, 300, 0, 65 };
    if (count > 1 && (index + 1 == count || (index % 97 == 2 && index < 2000)))
        return index % 2 ? S_LARGE_FRAME : 65537;
    return pattern [index % (sizeof pattern / sizeof pattern [0])];
}

//  Two messages of count frames each way between two PAIRs over shm://,
//  with rings of capacity bytes (a message bigger than the ring streams).
static void
s_multipart_round (s_sizes_t sizes, size_t count, size_t capacity, uint64_t seed)
{
    char endpoint [S_ENDPOINT_MAX];
    zsock_t *server = pt_sock (ZMQ_PAIR);
    zsock_t *client = pt_sock (ZMQ_PAIR);
    assert_int_equal (shmipc_set_capacity (server, capacity), 0);
    assert_int_equal (shmipc_set_capacity (client, capacity), 0);
    pt_bind (server, &pt_shm, endpoint, sizeof endpoint);
    pt_connect (client, endpoint);
    pt_wait_peers (server, 1);
    size_t *frames = (size_t *) malloc (count * sizeof (size_t));
    assert_non_null (frames);
    for (size_t index = 0; index < count; index++)
        frames [index] = s_frame_size (sizes, index, count);
    zsock_t *from = client, *to = server;
    for (int direction = 0; direction < 2; direction++) {
        //  Back to back: the boundary between them must hold too
        pt_send_frames (from, frames, count, seed);
        pt_send_frames (from, frames, count, seed + 1);
        pt_expect_frames (to, frames, count, seed);
        pt_expect_frames (to, frames, count, seed + 1);
        seed += 2;
        from = server;
        to = client;
    }
    free (frames);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.msgs_in, 2);
    assert_int_equal (stats.msgs_out, 2);
    assert_int_equal (stats.errors, 0);
    shmipc_sock_destroy (&client);
    shmipc_sock_destroy (&server);
}

static void
s_multipart (s_sizes_t sizes)
{
    tu_baseline_t baseline = pt_baseline ();
    size_t counts [] = { 1, 8, 9, 33, 1000, 10000, (size_t) tu_scaled (100000, 1000) };
    //  The default ring, and one that every large frame must stream through
    size_t capacities [] = { 1 << 20, 64 * 1024 };
    uint64_t seed = 1;
    for (size_t at = 0; at < sizeof counts / sizeof counts [0]; at++)
        for (size_t ring = 0; ring < 2; ring++) {
            s_multipart_round (sizes, counts [at], capacities [ring], seed);
            seed += 4;
        }
    print_message ("    %zu messages of 1 to %zu frames, both ways, over two ring sizes\n",
                   (size_t) (seed - 1), counts [sizeof counts / sizeof counts [0] - 1]);
    pt_assert_baseline (baseline);
}

static void
test_multipart_of_many_small_frames_crosses_intact (void **state)
{
    s_multipart (S_SMALL);
}

static void
test_multipart_of_mixed_empty_small_and_large_frames_crosses_intact (void **state)
{
    s_multipart (S_MIXED);
}

//  --------------------------------------------------------------------------
//  Signals (D7): plugin/shmipc_sock.c, s_wait and shmipc_sock_stats, gave up
//  on the actor's reply when a signal interrupted the wait (EINTR), and left
//  the reply in the pipe for the next command to take as its own. With a
//  handler installed without SA_RESTART, binds failed with EINTR now and
//  then, and from then on every command got the previous one's answer.
//  Sends can be cut too: zmq_send fails with EINTR when a signal is pending
//  (libzmq looks at its commands first), and zmsg_send gives up after the
//  frame that failed, leaving half a command in the pipe. libzmq's zmq_bind
//  never fails with EINTR.

static atomic_long s_signals_delivered;

static void
s_on_signal (int signum)
{
    atomic_fetch_add_explicit (&s_signals_delivered, 1, memory_order_relaxed);
}

//  A thread that sends SIGUSR1 to one thread every 50 to 200 us. It is also
//  the watchdog: a lost command or reply leaves the test thread waiting for
//  ever in zsock_wait, which has no timeout, so if the test thread makes no
//  progress for PT_PATIENCE_MS it ends the program.
typedef struct {
    pthread_t target;           //  The thread signalled
    pthread_t thread;           //  The storm's own thread
    atomic_bool stop;           //  Set to end it
    atomic_long progress;       //  Bumped by the test thread at each round
    long sent;                  //  Signals sent
    bool running;               //  Started and not yet joined
    struct sigaction saved;     //  SIGUSR1's handler before
} s_storm_t;

static s_storm_t s_storm;

static void *
s_storm_run (void *args)
{
    s_storm_t *storm = (s_storm_t *) args;
    uint64_t state = 0x2545F4914F6CDD1DULL;
    long seen = -1;
    int64_t seen_at = zclock_mono ();
    while (!atomic_load (&storm->stop)) {
        long progress = atomic_load (&storm->progress);
        if (progress != seen) {
            seen = progress;
            seen_at = zclock_mono ();
        }
        else
        if (zclock_mono () - seen_at > PT_PATIENCE_MS) {
            fprintf (stderr, "round %ld: no reply for %d ms: a command or its reply "
                     "was lost\n", progress, PT_PATIENCE_MS);
            _exit (1);
        }
        pthread_kill (storm->target, SIGUSR1);
        storm->sent++;
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        struct timespec pause = { 0, (long) (50 + state % 151) * 1000 };
        nanosleep (&pause, NULL);
    }
    return NULL;
}

//  Install the handler (no SA_RESTART: interrupted calls fail with EINTR)
//  and start the storm against the calling thread.
static void
s_storm_start (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    action.sa_flags = 0;
    assert_int_equal (sigaction (SIGUSR1, &action, &s_storm.saved), 0);
    atomic_store (&s_signals_delivered, 0);
    atomic_store (&s_storm.stop, false);
    atomic_store (&s_storm.progress, 0);
    s_storm.sent = 0;
    s_storm.target = pthread_self ();
    assert_int_equal (pthread_create (&s_storm.thread, NULL, s_storm_run, &s_storm), 0);
    s_storm.running = true;
}

//  Stop the storm (if it runs) and put the handler back. Also the teardown
//  of the test that starts it, so that a failed assertion ends it too.
static int
s_storm_stop (void **state)
{
    if (s_storm.running) {
        atomic_store (&s_storm.stop, true);
        pthread_join (s_storm.thread, NULL);
        s_storm.running = false;
        sigaction (SIGUSR1, &s_storm.saved, NULL);
    }
    return 0;
}

//  Assert that call returned expected_rc, with expected_errno if it failed.
static void
s_expect_call (int rc, int expected_rc, int expected_errno, const char *call, long round)
{
    int error = errno;
    if (rc != expected_rc || (rc == -1 && error != expected_errno))
        print_error ("round %ld: %s returned %d (%s), expected %d (%s)\n", round, call,
                     rc, rc == -1 ? strerror (error) : "-", expected_rc,
                     expected_rc == -1 ? strerror (expected_errno) : "-");
    assert_int_equal (rc, expected_rc);
    if (rc == -1)
        assert_int_equal (error, expected_errno);
}

//  Assert that the subject's counters are what the test made them: one
//  connection accepted and up, nothing else, count messages received.
static void
s_expect_stats (zsock_t *sock, long round, uint64_t msgs_in)
{
    shmipc_stats_t stats;
    memset (&stats, 0xff, sizeof stats);
    s_expect_call (shmipc_sock_stats (sock, &stats), 0, 0, "stats", round);
    if (stats.peers != 1 || stats.accepted != 1 || stats.connected != 0
    ||  stats.closed != 0 || stats.errors != 0 || stats.msgs_in != msgs_in)
        print_error ("round %ld: stats peers %" PRIu64 " accepted %" PRIu64 " connected %"
                     PRIu64 " closed %" PRIu64 " errors %" PRIu64 " msgs_in %" PRIu64 "\n",
                     round, stats.peers, stats.accepted, stats.connected, stats.closed,
                     stats.errors, stats.msgs_in);
    assert_int_equal (stats.peers, 1);
    assert_int_equal (stats.accepted, 1);
    assert_int_equal (stats.connected, 0);
    assert_int_equal (stats.closed, 0);
    assert_int_equal (stats.errors, 0);
    assert_int_equal (stats.msgs_in, msgs_in);
}

static void
test_commands_under_a_signal_storm_never_fail_with_eintr_and_get_their_own_replies
    (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  The subject: a PULL with one live connection, so that its counters
    //  say something; A is bound and unbound, C connected and disconnected
    char served [S_ENDPOINT_MAX], bound [S_ENDPOINT_MAX], connected [S_ENDPOINT_MAX];
    zsock_t *subject = pt_sock (ZMQ_PULL);
    pt_bind (subject, &pt_shm, served, sizeof served);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    pt_connect (push, served);
    pt_wait_peers (subject, 1);
    assert_int_equal (zstr_send (push, "before"), 0);
    char *string = zstr_recv (subject);
    assert_non_null (string);
    assert_string_equal (string, "before");
    free (string);
    tu_endpoint (bound, sizeof bound, 'a');
    tu_endpoint (connected, sizeof connected, 'a');

    //  Thousands of rounds, for two seconds at least: a signal that cuts a
    //  command in two (a send interrupted) is rarer than one that cuts a wait
    long rounds = tu_scaled (5000, 100);
    int64_t until = zclock_mono () + 2000;
    long round;
    s_storm_start ();
    for (round = 0; round < rounds || zclock_mono () < until; round++) {
        atomic_store (&s_storm.progress, round);
        s_expect_call (shmipc_bind (subject, "%s", bound), 0, 0, "bind", round);
        s_expect_call (shmipc_bind (subject, "%s", bound), -1, EADDRINUSE,
                       "second bind", round);
        s_expect_stats (subject, round, 1);
        s_expect_call (shmipc_unbind (subject, "%s", bound), 0, 0, "unbind", round);
        s_expect_call (shmipc_unbind (subject, "%s", bound), -1, ENOENT,
                       "second unbind", round);
        s_expect_call (shmipc_connect (subject, "%s", connected), 0, 0, "connect", round);
        s_expect_call (shmipc_disconnect (subject, "%s", connected), 0, 0,
                       "disconnect", round);
        s_expect_call (shmipc_disconnect (subject, "%s", connected), -1, ENOENT,
                       "second disconnect", round);
    }
    rounds = round;
    s_storm_stop (NULL);
    long sent = s_storm.sent;
    long delivered = atomic_load (&s_signals_delivered);
    print_message ("    %ld rounds of 8 commands, %ld signals sent, %ld delivered\n",
                   rounds, sent, delivered);
    assert_true (delivered > 0);

    //  Nothing owed: the next commands get their own replies, and the
    //  connection still carries messages
    s_expect_call (shmipc_bind (subject, "%s", bound), 0, 0, "bind after", rounds);
    s_expect_stats (subject, rounds, 1);
    assert_int_equal (zstr_send (push, "after"), 0);
    string = zstr_recv (subject);
    assert_non_null (string);
    assert_string_equal (string, "after");
    free (string);
    s_expect_stats (subject, rounds, 2);
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&subject);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Plain zsock_destroy (D10): plugin/shmipc_sock.c keys its registry by the
//  zsock_t pointer and learnt of a socket's end only from
//  shmipc_sock_destroy. After a plain zsock_destroy the entry stayed, with
//  its actor, listener and socket file: the endpoint stayed taken, and a new
//  socket that malloc put at the same address inherited the entry, so it was
//  never bound to its own inproc endpoint and silently received nothing.

static void
test_socket_at_the_address_of_one_plainly_destroyed_binds_and_receives (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    snprintf (connect, sizeof connect, ">%s", endpoint);
    zsock_t *sock = zsock_new (ZMQ_PULL);
    assert_non_null (sock);
    assert_int_equal (shmipc_bind (sock, "%s", endpoint), 0);
    void *freed [21];
    size_t nfreed = 0;
    freed [nfreed++] = sock;
    zsock_destroy (&sock);
    int reused = 0;
    for (int round = 0; round < 20; round++) {
        sock = zsock_new (ZMQ_PULL);
        assert_non_null (sock);
        zsock_set_rcvtimeo (sock, PT_PATIENCE_MS);
        for (size_t index = 0; index < nfreed; index++)
            reused += freed [index] == (void *) sock;
        //  The endpoint is free again, and the socket gets what is sent
        int rc = shmipc_bind (sock, "%s", endpoint);
        if (rc)
            print_error ("round %d: bind %s: %s\n", round, endpoint, strerror (errno));
        assert_int_equal (rc, 0);
        zsock_t *push = shmipc_sock_new (ZMQ_PUSH, connect);
        assert_non_null (push);
        assert_int_equal (zstr_sendf (push, "round %d", round), 0);
        char *string = zstr_recv (sock);
        char expected [32];
        snprintf (expected, sizeof expected, "round %d", round);
        if (!string || strcmp (string, expected))
            print_error ("round %d: received %s\n", round, string ? string : "nothing");
        assert_non_null (string);
        assert_string_equal (string, expected);
        free (string);
        shmipc_sock_destroy (&push);
        freed [nfreed++] = sock;
        zsock_destroy (&sock);
    }
    print_message ("    20 sockets after a plain zsock_destroy: %d at a freed address\n",
                   reused);
    //  Under ASan and valgrind freed blocks wait in quarantine, so the same
    //  address does not come back; nor can we count on it under TSan.
    if (!tu_under_asan () && !tu_under_tsan () && !tu_under_valgrind ())
        assert_true (reused > 0);
    pt_assert_baseline (baseline);
}

static void
test_plain_zsock_destroy_leaves_no_thread_descriptor_mapping_or_socket_file
    (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char endpoint [S_ENDPOINT_MAX], other [S_ENDPOINT_MAX];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    tu_endpoint (other, sizeof other, 'p');
    const char *path = endpoint + strlen ("shm://");
    //  A server with a bound endpoint and a live connection, a client with a
    //  live connection and one to nowhere (its bridge waits)
    zsock_t *server = zsock_new (ZMQ_DEALER);
    zsock_t *client = zsock_new (ZMQ_DEALER);
    assert_non_null (server);
    assert_non_null (client);
    zsock_set_rcvtimeo (server, PT_PATIENCE_MS);
    zsock_set_rcvtimeo (client, PT_PATIENCE_MS);
    assert_int_equal (shmipc_bind (server, "%s", endpoint), 0);
    assert_int_equal (shmipc_connect (client, "%s", endpoint), 0);
    assert_int_equal (shmipc_connect (client, "%s", other), 0);
    pt_wait_peers (server, 1);
    pt_wait_peers (client, 1);
    struct stat st;
    assert_int_equal (stat (path, &st), 0);
    assert_int_equal (zstr_send (client, "ping"), 0);
    char *string = zstr_recv (server);
    assert_non_null (string);
    free (string);
    assert_int_equal (zstr_send (server, "pong"), 0);
    string = zstr_recv (client);
    assert_non_null (string);
    free (string);

    zsock_destroy (&server);
    //  The socket file goes with the socket, as with shmipc_sock_destroy
    assert_int_equal (stat (path, &st), -1);
    assert_int_equal (errno, ENOENT);
    zsock_destroy (&client);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Returning from main with a live socket (D11): czmq's exit handler closes
//  every socket left open, the actor's pipe among them, under the running
//  actor: the program died of SIGABRT in libzmq. Over ipc:// it exits 0,
//  and with a linger what was sent still reaches a peer that is up.

//  A helper process: tests/careless/shmipc-careless, next to this program.
typedef struct {
    tu_child_t process;         //  Its pid and stdout
    char errors [64];           //  The file its stderr goes to
} s_careless_t;

//  Start the helper with arguments (NULL-terminated list); as pt_peer_start,
//  with its stderr kept in a file for s_careless_exit to look at.
static void
s_careless_start (s_careless_t *careless, const char *arg, ...)
{
    static int counter = 0;
    const char *args [16];
    va_list list;
    va_start (list, arg);
    tu_collect_args (args, 16, arg, list);
    va_end (list);
    //  Named as pt_remove_socket_files cleans up after a failed test
    snprintf (careless->errors, sizeof careless->errors, "/tmp/shmipc-ptest-%d-careless-%d",
              (int) getpid (), counter++);
    tu_spawn_t how = { .stderr_path = careless->errors };
    tu_spawn (&careless->process, "careless/shmipc-careless", args, &how);
}

//  Wait up to timeout_ms for the helper to exit; return its exit code (or
//  128 + signal), or -1 if it had to be killed. Its stderr is passed on to
//  ours; *asserted is set if it reports a failed assertion (the exit status
//  alone can miss one: an assertion in another thread races with exit).
static int
s_careless_exit (s_careless_t *careless, int timeout_ms, bool *asserted)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    int status = 0;
    pid_t pid;
    while ((pid = waitpid (careless->process.pid, &status, WNOHANG)) == 0
    &&     zclock_mono () < deadline)
        zclock_sleep (10);
    int code = -1;
    if (pid == careless->process.pid)
        code = WIFSIGNALED (status) ? 128 + WTERMSIG (status) : WEXITSTATUS (status);
    else {
        kill (careless->process.pid, SIGKILL);
        tu_wait (careless->process.pid);
    }
    careless->process.pid = 0;
    tu_child_finish (&careless->process, 0);
    *asserted = false;
    FILE *file = fopen (careless->errors, "r");
    if (file) {
        char line [512];
        while (fgets (line, sizeof line, file)) {
            fputs (line, stderr);
            *asserted |= strstr (line, "Assertion") != NULL;
        }
        fclose (file);
    }
    unlink (careless->errors);
    return code;
}

#define S_LINGER_MS     2000

static void
s_exit_live (const pt_transport_t *t, bool helper_binds, bool peer_up)
{
    tu_baseline_t baseline = pt_baseline ();
    long count = tu_scaled (200, 20);
    char endpoint [S_ENDPOINT_MAX], attach [S_ENDPOINT_MAX + 1], count_text [32],
         sent [48], linger [16];
    pt_fresh (t, endpoint, sizeof endpoint);
    snprintf (attach, sizeof attach, "%c%s", helper_binds ? '@' : '>', endpoint);
    snprintf (count_text, sizeof count_text, "%ld", count);
    snprintf (sent, sizeof sent, "sent %ld", count);
    snprintf (linger, sizeof linger, "%d", S_LINGER_MS);
    //  Over ipc:// the helper uses czmq alone: libzmq's behaviour
    const char *mode = pt_is_shm (t) ? "exit-live" : "exit-live-ipc";
    zsock_t *pull = NULL;
    if (peer_up && !helper_binds) {
        pull = pt_sock (ZMQ_PULL);
        assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
    }
    s_careless_t careless = { { 0, -1, -1 }, "" };
    s_careless_start (&careless, mode, attach, count_text, linger, NULL);
    pt_peer_expect (&careless.process, "ready");
    if (peer_up && helper_binds) {
        pull = pt_sock (ZMQ_PULL);
        pt_connect (pull, endpoint);
    }
    pt_peer_expect (&careless.process, sent);
    int64_t started = zclock_mono ();
    bool asserted;
    int code = s_careless_exit (&careless, PT_PATIENCE_MS + S_LINGER_MS, &asserted);
    int64_t took = zclock_mono () - started;
    print_message ("    %s, %s, peer %s: exit code %d after %" PRId64 " ms%s\n", t->name,
                   helper_binds ? "bound" : "connected", peer_up ? "up" : "absent",
                   code, took, asserted ? ", an assertion failed" : "");
    assert_false (asserted);
    assert_int_equal (code, 0);
    if (pull) {
        //  Everything sent reached us, in order
        for (long expected = 0; expected < count; expected++) {
            char tag [16];
            long seq = -1;
            int rc = pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq);
            if (rc || seq != expected)
                print_error ("%s: message %ld of %ld: %s\n", t->name, expected, count,
                             rc ? "missing or bad" : "out of order");
            assert_int_equal (rc, 0);
            assert_string_equal (tag, "X");
            assert_int_equal (seq, expected);
        }
        shmipc_sock_destroy (&pull);
    }
    pt_assert_baseline (baseline);
}

static void
test_program_returning_with_a_live_socket_exits_0_and_delivers (void **state)
{
    const pt_transport_t *t = *state;
    s_exit_live (t, false, true);
    s_exit_live (t, true, true);
}

static void
test_program_returning_with_a_live_socket_and_no_peer_exits_0 (void **state)
{
    const pt_transport_t *t = *state;
    s_exit_live (t, false, false);
}

//  --------------------------------------------------------------------------
//  ZMQ_IMMEDIATE (D12): plugin/actor.c connected each endpoint's bridge to
//  the user's socket at once, whether the shm:// connection was up or not,
//  so a PUSH with ZMQ_IMMEDIATE set dealt messages to endpoints nobody
//  served, where they waited. libzmq queues nothing for a peer that is not
//  connected when ZMQ_IMMEDIATE is set; without it, it does.

#define S_IMMEDIATE_COUNT   10

//  Receive every message waiting at pull (none more within quiet_ms), mark
//  their seqs in seen; return how many.
static int
s_drain_tagged (zsock_t *pull, bool *seen, int quiet_ms)
{
    int got = 0;
    zpoller_t *poller = zpoller_new (pull, NULL);
    while (zpoller_wait (poller, quiet_ms) == pull) {
        char tag [16];
        long seq = -1;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq), 0);
        assert_true (seq >= 0 && seq < S_IMMEDIATE_COUNT);
        assert_false (seen [seq]);
        seen [seq] = true;
        got++;
    }
    zpoller_destroy (&poller);
    return got;
}

static void
s_immediate (const pt_transport_t *t, bool immediate)
{
    tu_baseline_t baseline = pt_baseline ();
    char dead [S_ENDPOINT_MAX], live [S_ENDPOINT_MAX];
    pt_fresh (t, dead, sizeof dead);
    zsock_t *live_pull = pt_sock (ZMQ_PULL);
    pt_bind (live_pull, t, live, sizeof live);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_immediate (push, immediate);
    zsock_set_reconnect_ivl (push, 20);
    pt_watch_t watch;
    pt_watch_start (&watch, push, t);
    pt_connect (push, dead);
    pt_connect (push, live);
    pt_watch_wait (&watch, 'h', 1);
    for (long seq = 0; seq < S_IMMEDIATE_COUNT; seq++)
        assert_true (pt_send_tagged (zsock_resolve (push), "I", seq, 10, 0) >= 0);
    //  Enough time for all of them; a message dealt to the dead endpoint
    //  never comes
    bool seen [S_IMMEDIATE_COUNT] = { false };
    int quiet_ms = tu_under_valgrind () ? 2000 : 500;
    int at_live = s_drain_tagged (live_pull, seen, quiet_ms);
    //  Once the dead endpoint comes to life, what waited for it arrives
    zsock_t *dead_pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (dead_pull, "%s", dead), 0);
    pt_watch_wait (&watch, 'h', 2);
    int at_dead = s_drain_tagged (dead_pull, seen, quiet_ms);
    print_message ("    %s, immediate %d: %d of %d to the live endpoint, %d waited "
                   "for the dead one\n", t->name, immediate, at_live,
                   S_IMMEDIATE_COUNT, at_dead);
    //  Clean up first, so that a failure here leaves nothing to the next test
    pt_watch_stop (&watch);
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&dead_pull);
    shmipc_sock_destroy (&live_pull);
    pt_assert_baseline (baseline);
    if (immediate) {
        assert_int_equal (at_live, S_IMMEDIATE_COUNT);
        assert_int_equal (at_dead, 0);
    }
    else {
        //  Round robin over both from the start
        assert_int_equal (at_live, S_IMMEDIATE_COUNT / 2);
        assert_int_equal (at_dead, S_IMMEDIATE_COUNT / 2);
    }
}

static void
test_immediate_push_queues_nothing_for_a_dead_endpoint (void **state)
{
    s_immediate (&pt_ipc, true);         //  libzmq's behaviour
    s_immediate (&pt_shm, true);
    s_immediate (&pt_shm_path, true);
}

static void
test_push_without_immediate_keeps_messages_for_a_dead_endpoint (void **state)
{
    s_immediate (&pt_ipc, false);        //  libzmq's behaviour
    s_immediate (&pt_shm, false);
    s_immediate (&pt_shm_path, false);
}

//  --------------------------------------------------------------------------

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_multipart_of_many_small_frames_crosses_intact),
        cmocka_unit_test (test_multipart_of_mixed_empty_small_and_large_frames_crosses_intact),
        cmocka_unit_test_teardown (
            test_commands_under_a_signal_storm_never_fail_with_eintr_and_get_their_own_replies,
            s_storm_stop),
        cmocka_unit_test (test_socket_at_the_address_of_one_plainly_destroyed_binds_and_receives),
        cmocka_unit_test (test_plain_zsock_destroy_leaves_no_thread_descriptor_mapping_or_socket_file),
        PT_TEST (test_program_returning_with_a_live_socket_exits_0_and_delivers, shm),
        PT_TEST (test_program_returning_with_a_live_socket_exits_0_and_delivers, shm_path),
        PT_TEST (test_program_returning_with_a_live_socket_exits_0_and_delivers, ipc),
        PT_TEST (test_program_returning_with_a_live_socket_and_no_peer_exits_0, shm),
        PT_TEST (test_program_returning_with_a_live_socket_and_no_peer_exits_0, ipc),
        cmocka_unit_test (test_immediate_push_queues_nothing_for_a_dead_endpoint),
        cmocka_unit_test (test_push_without_immediate_keeps_messages_for_a_dead_endpoint),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
