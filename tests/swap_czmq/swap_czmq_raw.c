/*  =========================================================================
    swap_czmq_raw - an unmodified raw libzmq program on shm://, for the
    launcher tests: linger and the context-terminate calls

    Links libzmq only, never libshmipc: under shmipc-run, its own
    zmq_ctx_new contexts get shm:// by LD_PRELOAD. Each case is one ctest
    (CMakeLists.txt here):

        linger      linger -1 and unsent messages: we send 2000 x 4 KiB
                    (far more than a 1 MiB ring) to a helper process that
                    starts reading only later; zmq_close + zmq_ctx_term
                    return only after it has started reading, it counts
                    them all, and nothing of ours is left
        term        zmq_ctx_term, zmq_term, zmq_ctx_destroy and
                    zmq_ctx_shutdown + zmq_ctx_term on a context whose
                    sockets had shm:// endpoints: each returns, leaving
                    nothing

    Both processes check that they mapped shmipc's memfd segments while
    connected: the proof that shared memory carried the messages.

        swap_czmq_raw CASE              run one case (under shmipc-run)
        swap_czmq_raw ROLE ARGS...      a helper process a case starts

    Exits 0 when the case passes, 1 with a message on stderr when a check
    fails, 3 when the watchdog finds a process stuck.
    =========================================================================
*/

#include <zmq.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "swap_util.h"

#define S_PROGRAM       "swap_czmq_raw"
#define S_DIR_MAX       256         //  Our temporary directories' names
#define S_ENDPOINT_MAX  512

#define S_COUNT         2000        //  2000 x 4 KiB: 8 MiB, where the ring
#define S_SIZE          4096        //  holds 1 MiB
#define S_DELAY_MS      500         //  the receiver reads only after this
#define S_HWM           10          //  and buffers little itself


//  --------------------------------------------------------------------------
//  libzmq with every failure a message

static void *
s_socket (void *ctx, int type)
{
    void *sock = zmq_socket (ctx, type);
    su_assert (sock, "zmq_socket: %s", zmq_strerror (errno));
    int timeout = SU_TIMEOUT_MS;
    su_assert (zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout) == 0
               && zmq_setsockopt (sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout) == 0,
               "zmq_setsockopt: %s", zmq_strerror (errno));
    return sock;
}

static void
s_set_int (void *sock, int option, int value)
{
    su_assert (zmq_setsockopt (sock, option, &value, sizeof value) == 0,
               "zmq_setsockopt %d: %s", option, zmq_strerror (errno));
}

static void
s_bind (void *sock, const char *endpoint)
{
    su_assert (zmq_bind (sock, endpoint) == 0, "zmq_bind %s: %s%s", endpoint,
               zmq_strerror (errno),
               errno == EPROTONOSUPPORT ? " (not run under shmipc-run?)" : "");
}

static void
s_connect (void *sock, const char *endpoint)
{
    su_assert (zmq_connect (sock, endpoint) == 0, "zmq_connect %s: %s", endpoint,
               zmq_strerror (errno));
}

static void
s_send_str (void *sock, const char *string)
{
    su_assert (zmq_send (sock, string, strlen (string), 0) == (int) strlen (string),
               "send \"%s\": %s", string, zmq_strerror (errno));
}

static void
s_expect_str (void *sock, const char *expected)
{
    char buffer [64];
    int size = zmq_recv (sock, buffer, sizeof buffer - 1, 0);
    su_assert (size >= 0, "receive \"%s\": %s", expected,
               errno == EAGAIN ? "timed out" : zmq_strerror (errno));
    buffer [size < (int) sizeof buffer - 1 ? size : (int) sizeof buffer - 1] = 0;
    su_assert (streq (buffer, expected), "received \"%s\", expected \"%s\"", buffer,
               expected);
}

//  A message: frame 0 "SEQ", frame 1 size bytes filled from seq
static void
s_send_seq (void *sock, int seq, size_t size)
{
    char head [16];
    int length = snprintf (head, sizeof head, "%d", seq);
    su_assert (zmq_send (sock, head, (size_t) length, ZMQ_SNDMORE) == length,
               "send %d: %s", seq, zmq_strerror (errno));
    zmq_msg_t body;
    su_assert (zmq_msg_init_size (&body, size) == 0, "zmq_msg_init_size");
    unsigned char *data = zmq_msg_data (&body);
    for (size_t index = 0; index < size; index++)
        data [index] = (unsigned char) (seq * 7 + index);
    su_assert (zmq_msg_send (&body, sock, 0) == (int) size, "send %d: %s", seq,
               zmq_strerror (errno));
}

//  Receive the message s_send_seq sent as seq, with size bytes
static void
s_expect_seq (void *sock, int seq, size_t size)
{
    char head [16];
    int length = zmq_recv (sock, head, sizeof head - 1, 0);
    su_assert (length >= 0, "message %d: %s", seq,
               errno == EAGAIN ? "timed out" : zmq_strerror (errno));
    head [length] = 0;
    su_assert (atoi (head) == seq, "message %s where %d was due", head, seq);
    zmq_msg_t body;
    zmq_msg_init (&body);
    su_assert (zmq_msg_recv (&body, sock, 0) == (int) size && !zmq_msg_more (&body),
               "message %d: payload of %zu bytes (%s), expected %zu", seq,
               zmq_msg_size (&body), zmq_strerror (errno), size);
    const unsigned char *data = zmq_msg_data (&body);
    for (size_t index = 0; index < size; index++)
        su_assert (data [index] == (unsigned char) (seq * 7 + index),
                   "message %d: payload corrupt at byte %zu", seq, index);
    zmq_msg_close (&body);
}

//  One exchange over shm:// in a context of its own, ended: what libshmipc
//  keeps for the life of the process (czmq's context, which its actors
//  use) is then in the baseline, and everything else must go each time.
static void
s_warm_up_shm (void)
{
    su_stage ("warm-up");
    char endpoint [S_ENDPOINT_MAX];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_czmq_raw-%d-warm", (int) getpid ());
    void *ctx = zmq_ctx_new ();
    void *server = s_socket (ctx, ZMQ_PAIR);
    void *client = s_socket (ctx, ZMQ_PAIR);
    s_bind (server, endpoint);
    s_connect (client, endpoint);
    s_send_str (client, "warm");
    s_expect_str (server, "warm");
    su_assert (zmq_close (client) == 0 && zmq_close (server) == 0, "zmq_close: %s",
               zmq_strerror (errno));
    su_assert (zmq_ctx_term (ctx) == 0, "zmq_ctx_term: %s", zmq_strerror (errno));
    su_warm_up ();
}


//  --------------------------------------------------------------------------
//  linger: zmq_close + zmq_ctx_term deliver what was unsent

//  linger-pull ENDPOINT COUNT SIZE DELAY: bind a PULL, say "bound", sleep
//  DELAY ms, say "reading MS" (the monotonic clock), receive COUNT, say
//  "got COUNT"
static int
s_role_linger_pull (const char *endpoint, int count, size_t size, int delay)
{
    su_stage ("linger receiver");
    void *ctx = zmq_ctx_new ();
    void *pull = s_socket (ctx, ZMQ_PULL);
    //  Little room here (the actor's bridge copies both marks): what does
    //  not fit the ring waits in the sender
    s_set_int (pull, ZMQ_RCVHWM, S_HWM);
    s_set_int (pull, ZMQ_SNDHWM, S_HWM);
    s_bind (pull, endpoint);
    tu_say ("bound");
    su_sleep_ms (delay);
    tu_say ("reading %lld", (long long) su_now_ms ());
    for (int seq = 0; seq < count; seq++) {
        s_expect_seq (pull, seq, size);
        if (seq == 0)
            su_expect_shared_memory (0, "the receiver, its sender in zmq_ctx_term");
    }
    tu_say ("got %d", count);
    su_assert (zmq_close (pull) == 0, "zmq_close: %s", zmq_strerror (errno));
    su_assert (zmq_ctx_term (ctx) == 0, "zmq_ctx_term: %s", zmq_strerror (errno));
    return 0;
}

static int
s_case_linger (void)
{
    s_warm_up_shm ();
    su_counts_t before = su_settled_counts ();
    su_stage ("linger");
    char dir [S_DIR_MAX], endpoint [S_ENDPOINT_MAX], count [16], size [16], delay [16];
    su_temp_dir (dir, sizeof dir, "linger");
    snprintf (endpoint, sizeof endpoint, "shm://%s/linger.sock", dir);
    snprintf (count, sizeof count, "%d", S_COUNT);
    snprintf (size, sizeof size, "%d", S_SIZE);
    snprintf (delay, sizeof delay, "%d", S_DELAY_MS);
    su_child_t receiver;
    su_spawn (&receiver, NULL, "linger-pull", endpoint, count, size, delay, NULL);
    su_child_expect (&receiver, "bound");

    void *ctx = zmq_ctx_new ();
    void *push = s_socket (ctx, ZMQ_PUSH);
    s_set_int (push, ZMQ_LINGER, -1);
    s_set_int (push, ZMQ_SNDHWM, 0);        //  Every message is taken at once
    s_connect (push, endpoint);
    for (int seq = 0; seq < S_COUNT; seq++)
        s_send_seq (push, seq, S_SIZE);
    su_expect_shared_memory (0, "the sender, connected, before zmq_close");
    int64_t closing = su_now_ms ();
    su_stage ("zmq_close");
    su_assert (zmq_close (push) == 0, "zmq_close: %s", zmq_strerror (errno));
    su_stage ("zmq_ctx_term with linger -1 and unsent messages");
    su_assert (zmq_ctx_term (ctx) == 0, "zmq_ctx_term: %s", zmq_strerror (errno));
    int64_t done = su_now_ms ();

    su_stage ("linger results");
    char line [64];
    long long reading = 0;
    su_child_line (&receiver, line, sizeof line);
    su_assert (sscanf (line, "reading %lld", &reading) == 1, "the receiver said \"%s\"", line);
    //  8 MiB cannot be in a 1 MiB ring and a few messages: delivered means
    //  the receiver was reading by then
    su_assert (done >= reading,
               "zmq_ctx_term returned at %lld ms, before the receiver began to read at "
               "%lld: what did not fit the ring was dropped or is still unsent",
               (long long) done, reading);
    snprintf (line, sizeof line, "got %d", S_COUNT);
    su_child_expect (&receiver, line);
    su_child_reap (&receiver);
    //  Nothing of the socket, its actor or the context runs on
    su_expect_counts (before, "after zmq_close and zmq_ctx_term");
    su_remove_dir (dir);
    printf ("swap_czmq_raw linger: %d messages of %d bytes unsent at zmq_close; "
            "zmq_ctx_term returned after %d ms, %d ms after the receiver began to "
            "read, and it got them all\n", S_COUNT, S_SIZE, (int) (done - closing),
            (int) (done - reading));
    return 0;
}


//  --------------------------------------------------------------------------
//  term: each way to end a context whose sockets had shm:// endpoints

static int
s_ctx_term (void *ctx)
{
    return zmq_ctx_term (ctx);
}

static int
s_term (void *ctx)
{
    return zmq_term (ctx);
}

static int
s_ctx_destroy (void *ctx)
{
    return zmq_ctx_destroy (ctx);
}

typedef struct {
    const char *name;           //  For messages (the watchdog's too)
    int (*term) (void *ctx);
    bool shutdown_first;        //  zmq_ctx_shutdown before the sockets close
} s_ending_t;

static const s_ending_t s_endings [] = {
    { "zmq_ctx_term", s_ctx_term, false },
    { "zmq_term", s_term, false },
    { "zmq_ctx_destroy", s_ctx_destroy, false },
    { "zmq_ctx_shutdown, zmq_close, zmq_ctx_term", s_ctx_term, true },
};

static void
s_end_context (const s_ending_t *ending, int index)
{
    su_stage (ending->name);
    char endpoint [S_ENDPOINT_MAX], idle [S_ENDPOINT_MAX];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_czmq_raw-%d-term-%d", (int) getpid (),
              index);
    snprintf (idle, sizeof idle, "shm://@swap_czmq_raw-%d-idle-%d", (int) getpid (), index);
    void *ctx = zmq_ctx_new ();
    //  A pair that talked, both with linger -1; a ROUTER bound and idle
    void *server = s_socket (ctx, ZMQ_PAIR);
    void *client = s_socket (ctx, ZMQ_PAIR);
    void *router = s_socket (ctx, ZMQ_ROUTER);
    s_set_int (server, ZMQ_LINGER, -1);
    s_set_int (client, ZMQ_LINGER, -1);
    s_bind (server, endpoint);
    s_connect (client, endpoint);
    s_bind (router, idle);
    s_send_str (client, "ping");
    s_expect_str (server, "ping");
    s_send_str (server, "pong");
    s_expect_str (client, "pong");
    su_expect_shared_memory (0, "both ends in this process, connected");
    if (ending->shutdown_first)
        su_assert (zmq_ctx_shutdown (ctx) == 0, "zmq_ctx_shutdown: %s", zmq_strerror (errno));
    su_assert (zmq_close (client) == 0 && zmq_close (server) == 0 && zmq_close (router) == 0,
               "zmq_close: %s", zmq_strerror (errno));
    su_assert (ending->term (ctx) == 0, "%s: %s", ending->name, zmq_strerror (errno));
}

static int
s_case_term (void)
{
    s_warm_up_shm ();
    su_counts_t before = su_settled_counts ();
    for (size_t index = 0; index < sizeof s_endings / sizeof s_endings [0]; index++) {
        s_end_context (&s_endings [index], (int) index);
        su_expect_counts (before, s_endings [index].name);
    }
    printf ("swap_czmq_raw term: zmq_ctx_term, zmq_term, zmq_ctx_destroy and "
            "zmq_ctx_shutdown + zmq_ctx_term each ended a context with shm:// sockets "
            "and left nothing\n");
    return 0;
}


//  --------------------------------------------------------------------------

int
main (int argc, char *argv [])
{
    const char *name = argc > 1 ? argv [1] : "";
    su_init (S_PROGRAM, name);
    if (streq (name, "linger-pull") && argc == 6)
        return s_role_linger_pull (argv [2], atoi (argv [3]), (size_t) atol (argv [4]),
                                   atoi (argv [5]));
    if (streq (name, "linger") && argc == 2)
        return s_case_linger ();
    if (streq (name, "term") && argc == 2)
        return s_case_term ();
    fprintf (stderr, "usage: swap_czmq_raw linger|term (under shmipc-run)\n");
    return 2;
}
