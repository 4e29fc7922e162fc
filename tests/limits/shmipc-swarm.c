/*  =========================================================================
    shmipc-swarm - many shm:// client connections from one process, for the
    limits tests (tests/test_hardening_limits.c): crowds that connect at
    once, bare connects that never speak, idle connections, and one that
    echoes while the others sit

    Owns its sockets and channels. Uses the core only, no ZeroMQ context:
    a connection is shmipc_endpoint_connect + a CLIENT channel + the
    plugin's greeting as a DEALER (plugin/greeting.h), so that a ROUTER
    serves it as one of its DEALERs. Prints one line per result; exits 0
    when it ran, 1 when a step of its own failed, 2 on bad use.

        shmipc-swarm [-n NOFILE|max] [-c CAPACITY] [-t TIMEOUT_MS] [-w]
                     ENDPOINT COUNT bare|greet

    -n  set our soft RLIMIT_NOFILE first ("max": to the hard limit)
    -c  ring capacity of each connection (default 4096)
    -t  how long a connection may take to be greeted (default 20000)
    -w  greet: stop after the handshakes ("shook S refused R timedout T")
        and send the greetings on the command "greet"

    bare    COUNT connect()s that never send anything; a full backlog is
            not waited for. Says "connected C refused R"
    greet   COUNT connections, all under way at once, each through the
            handshake and both greetings. Says
            "greeted G refused R timedout T": refused, the server closed it
            or would not take it; timed out, no answer within -t

    Then it holds them and takes commands on stdin, one line each, each
    answered by one line:
        greet       (-w) the connections that shook hands greet, as above:
                    "greeted G refused R timedout T"
        echo-all    every greeted connection sends one message and takes
                    its echo: "echoed E failed F"
        echo M      the first greeted connection echoes M messages, one
                    after another: "echoed M in US us" (or "failed ...")
    End of stdin closes everything and exits.
    =========================================================================
*/

#include "shmipc_channel.h"
#include "shmipc_endpoint.h"
#include "greeting.h"
#include "testutil.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define streq(one, two) (strcmp ((one), (two)) == 0)

typedef enum {
    S_CONNECTING,               //  connect () not done yet (backlog full)
    S_HANDSHAKE,                //  Our HELLO sent, waiting for the server's
    S_SHOOK,                    //  -w: handshake done, our greeting held
    S_GREETING,                 //  Our greeting sent, waiting for the server's
    S_READY,                    //  Greeted both ways
    S_REFUSED,                  //  Closed or refused by the server
    S_TIMEDOUT                  //  No answer in time
} s_state_t;

typedef struct {
    int sock;                   //  bare: the connected socket; owned
    shmipc_channel_t *channel;  //  greet: the channel; owned
    s_state_t state;            //  Where it is
    bool dirty;                 //  May have progress to make without waiting
    bool sent;                  //  echo-all: its message went
} s_conn_t;

typedef struct {
    const char *endpoint;       //  The server's
    size_t capacity;            //  Each ring's bytes
    int timeout_ms;             //  Bound on each greeting
    bool hold;                  //  -w: greet only when told to
    s_conn_t *conns;            //  COUNT of them; owned
    size_t count;               //  How many
} s_swarm_t;

//  A step of our own failed: say why, exit 1.
static void
s_fail (const char *what)
{
    fprintf (stderr, "shmipc-swarm %d: %s: %s\n", (int) getpid (), what, strerror (errno));
    tu_say ("FAIL %s: %s", what, strerror (errno));
    exit (1);
}

static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

//  Set our soft descriptor limit: a number, or "max" for the hard limit.
static void
s_set_nofile (const char *value)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit))
        s_fail ("getrlimit");
    limit.rlim_cur = streq (value, "max") ? limit.rlim_max : (rlim_t) atol (value);
    if (setrlimit (RLIMIT_NOFILE, &limit))
        s_fail ("setrlimit");
}

//  Our descriptors ran out: that is our failure, not the server's refusal.
static bool
s_out_of_fds (int code)
{
    return code == EMFILE || code == ENFILE;
}

//  --------------------------------------------------------------------------
//  bare: connect and say nothing

static void
s_bare (s_swarm_t *self)
{
    size_t connected = 0, refused = 0;
    for (size_t index = 0; index < self->count; index++) {
        int sock = shmipc_endpoint_connect (self->endpoint, SHMIPC_DONTWAIT);
        if (sock < 0 && s_out_of_fds (errno))
            s_fail ("connect");
        self->conns [index].sock = sock;
        self->conns [index].state = sock >= 0 ? S_READY : S_REFUSED;
        if (sock >= 0)
            connected++;
        else
            refused++;
    }
    tu_say ("connected %zu refused %zu", connected, refused);
}

//  --------------------------------------------------------------------------
//  greet: connect, handshake and greet, all connections at once

//  Give up on a connection: close it (the server sees it go).
static void
s_drop (s_conn_t *conn, s_state_t state)
{
    shmipc_channel_destroy (&conn->channel);
    conn->state = state;
}

//  Send our greeting, as a DEALER without a routing id.
static void
s_send_greeting (s_conn_t *conn)
{
    uint8_t greeting [SHMIPC__GREETING_MAX];
    size_t size = shmipc__greeting_encode (greeting, ZMQ_DEALER, NULL, 0);
    if (shmipc_channel_send_ctrl (conn->channel, greeting, size))
        s_drop (conn, S_REFUSED);
    else
        conn->state = S_GREETING;
}

//  Move one connection on as far as it goes without waiting. Returns -1
//  if the server's backlog is full (try again later), else 0.
static int
s_step (s_swarm_t *self, s_conn_t *conn, int64_t deadline)
{
    if (conn->state == S_CONNECTING) {
        int sock = shmipc_endpoint_connect (self->endpoint, SHMIPC_DONTWAIT);
        if (sock < 0) {
            if (s_out_of_fds (errno))
                s_fail ("connect");
            if (errno == EAGAIN)
                return -1;
            conn->state = S_REFUSED;
            return 0;
        }
        conn->channel = shmipc_channel_new (sock, "swarm", self->capacity, SHMIPC_CLIENT);
        if (!conn->channel) {
            if (s_out_of_fds (errno))
                s_fail ("channel");
            close (sock);
            conn->state = S_REFUSED;
            return 0;
        }
        int left = (int) (deadline - s_now_ms ());
        shmipc_channel_set_handshake_timeout (conn->channel, left > 0 ? left : 1);
        conn->state = S_HANDSHAKE;
    }
    if (conn->state == S_HANDSHAKE) {
        if (shmipc_channel_handshake (conn->channel, 0)) {
            if (errno == ETIMEDOUT)
                s_drop (conn, S_TIMEDOUT);
            else
            if (errno != EAGAIN)
                s_drop (conn, S_REFUSED);
            return 0;
        }
        conn->state = S_SHOOK;
        if (self->hold)
            return 0;
        s_send_greeting (conn);
    }
    if (conn->state == S_GREETING) {
        uint8_t buffer [SHMIPC_CTRL_MAX];
        ssize_t size = shmipc_channel_recv_ctrl (conn->channel, buffer, sizeof buffer);
        if (size < 0) {
            if (errno != EAGAIN)
                s_drop (conn, S_REFUSED);
            return 0;
        }
        shmipc__greeting_t greeting;
        if (shmipc__greeting_decode (buffer, (size_t) size, &greeting)) {
            errno = EPROTO;
            s_fail ("the server's greeting");
        }
        conn->state = S_READY;
    }
    return 0;
}

static bool
s_final (s_state_t state)
{
    return state == S_READY || state == S_REFUSED || state == S_TIMEDOUT
        || state == S_SHOOK;
}

//  Move every connection on until each has reached a final state (or the
//  timeout), then say how many are where: "WORD N refused R timedout T".
static void
s_run (s_swarm_t *self, const char *word)
{
    //  Two items a connection: its socket and its wake pipe
    struct pollfd *items = (struct pollfd *) calloc (2 * self->count, sizeof *items);
    size_t *which = (size_t *) calloc (2 * self->count, sizeof *which);
    if (!items || !which)
        s_fail ("calloc");
    int64_t deadline = s_now_ms () + self->timeout_ms;
    while (true) {
        //  Step every connection that may move on; arm the others
        //  (connecting in order, until the server's backlog is full)
        size_t count = 0;
        bool connecting = false, again = false, full = false;
        for (size_t index = 0; index < self->count; index++) {
            s_conn_t *conn = &self->conns [index];
            if (s_final (conn->state))
                continue;
            if (conn->dirty || (conn->state == S_CONNECTING && !full)) {
                if (s_step (self, conn, deadline) == -1)
                    full = true;
                if (s_final (conn->state))
                    continue;
                conn->dirty = false;
                if (conn->state != S_CONNECTING) {
                    //  The last call before we wait on its descriptors
                    int events = shmipc_channel_events (conn->channel);
                    if (events & (SHMIPC_POLLCTRL | SHMIPC_POLLERR))
                        conn->dirty = again = true;
                }
            }
            if (conn->state == S_CONNECTING) {
                connecting = true;
                continue;
            }
            //  The pipe is asked for after events: it appears when the
            //  handshake completes (-1 before, which poll skips)
            items [count] = (struct pollfd) {
                .fd = shmipc_channel_fd (conn->channel), .events = POLLIN };
            which [count++] = index;
            items [count] = (struct pollfd) {
                .fd = shmipc_channel_wake_fd (conn->channel), .events = POLLIN };
            which [count++] = index;
        }
        int64_t now = s_now_ms ();
        if (count == 0 && !connecting)
            break;
        if (now >= deadline) {
            for (size_t index = 0; index < self->count; index++)
                if (!s_final (self->conns [index].state))
                    s_drop (&self->conns [index], S_TIMEDOUT);
            break;
        }
        int timeout = again ? 0 : connecting ? 10 : (int) (deadline - now);
        if (timeout > 100)
            timeout = 100;          //  Handshake deadlines pass unseen
        int ready = poll (items, (nfds_t) count, timeout);
        if (ready < 0 && errno != EINTR)
            s_fail ("poll");
        for (size_t item = 0; ready > 0 && item < count; item++)
            if (items [item].revents)
                self->conns [which [item]].dirty = true;
        if (ready == 0)
            //  Nothing came: let the handshakes look at their deadlines
            for (size_t item = 0; item < count; item++)
                if (self->conns [which [item]].state == S_HANDSHAKE)
                    self->conns [which [item]].dirty = true;
    }
    size_t done = 0, refused = 0, timedout = 0;
    for (size_t index = 0; index < self->count; index++) {
        s_state_t state = self->conns [index].state;
        done += state == S_READY || state == S_SHOOK;
        refused += state == S_REFUSED;
        timedout += state == S_TIMEDOUT;
    }
    tu_say ("%s %zu refused %zu timedout %zu", word, done, refused, timedout);
    free (items);
    free (which);
}

static void
s_greet (s_swarm_t *self)
{
    for (size_t index = 0; index < self->count; index++)
        self->conns [index] = (s_conn_t) { .sock = -1, .state = S_CONNECTING, .dirty = true };
    s_run (self, self->hold ? "shook" : "greeted");
}

//  -w: the connections that shook hands greet now.
static void
s_greet_held (s_swarm_t *self)
{
    for (size_t index = 0; index < self->count; index++) {
        s_conn_t *conn = &self->conns [index];
        if (conn->state == S_SHOOK) {
            s_send_greeting (conn);
            conn->dirty = true;
        }
    }
    s_run (self, "greeted");
}

//  --------------------------------------------------------------------------
//  Commands

//  Each greeted connection sends one message, then takes its echo.
static void
s_echo_all (s_swarm_t *self)
{
    size_t echoed = 0, failed = 0;
    char text [64];
    for (size_t index = 0; index < self->count; index++) {
        s_conn_t *conn = &self->conns [index];
        if (conn->state != S_READY || !conn->channel)
            continue;
        int size = snprintf (text, sizeof text, "swarm-%zu", index);
        shmipc_channel_set_sndtimeo (conn->channel, self->timeout_ms);
        conn->sent = shmipc_channel_send (conn->channel, text, (size_t) size, 0) == 0;
        failed += !conn->sent;
    }
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg)
        s_fail ("shmipc_msg_new");
    int64_t deadline = s_now_ms () + self->timeout_ms;
    for (size_t index = 0; index < self->count; index++) {
        s_conn_t *conn = &self->conns [index];
        if (conn->state != S_READY || !conn->sent)
            continue;
        conn->sent = false;
        int size = snprintf (text, sizeof text, "swarm-%zu", index);
        int left = (int) (deadline - s_now_ms ());
        shmipc_channel_set_rcvtimeo (conn->channel, left > 0 ? left : 0);
        if (shmipc_channel_recv_into (conn->channel, msg, 0) == 0
        &&  shmipc_msg_frames (msg) == 1 && shmipc_msg_size (msg, 0) == (size_t) size
        &&  memcmp (shmipc_msg_data (msg, 0), text, (size_t) size) == 0)
            echoed++;
        else
            failed++;
    }
    shmipc_msg_destroy (&msg);
    tu_say ("echoed %zu failed %zu", echoed, failed);
}

//  The first greeted connection echoes count messages, one at a time.
static void
s_echo (s_swarm_t *self, long count)
{
    s_conn_t *conn = NULL;
    for (size_t index = 0; index < self->count && !conn; index++)
        if (self->conns [index].state == S_READY && self->conns [index].channel)
            conn = &self->conns [index];
    if (!conn) {
        tu_say ("failed: no connection");
        return;
    }
    shmipc_channel_set_sndtimeo (conn->channel, self->timeout_ms);
    shmipc_channel_set_rcvtimeo (conn->channel, self->timeout_ms);
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg)
        s_fail ("shmipc_msg_new");
    int64_t started = s_now_us ();
    char text [64];
    for (long seq = 0; seq < count; seq++) {
        int size = snprintf (text, sizeof text, "echo-%ld", seq);
        if (shmipc_channel_send (conn->channel, text, (size_t) size, 0)
        ||  shmipc_channel_recv_into (conn->channel, msg, 0)
        ||  shmipc_msg_frames (msg) != 1 || shmipc_msg_size (msg, 0) != (size_t) size
        ||  memcmp (shmipc_msg_data (msg, 0), text, (size_t) size)) {
            tu_say ("failed at %ld of %ld: %s", seq, count, strerror (errno));
            shmipc_msg_destroy (&msg);
            return;
        }
    }
    int64_t elapsed = s_now_us () - started;
    shmipc_msg_destroy (&msg);
    tu_say ("echoed %ld in %" PRId64 " us", count, elapsed);
}

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    if (!tu_child_init ())
        return 2;
    s_swarm_t self = { .capacity = 4096, .timeout_ms = 20000 };
    int opt;
    while ((opt = getopt (argc, argv, "n:c:t:w")) != -1) {
        if (opt == 'n')
            s_set_nofile (optarg);
        else
        if (opt == 'c')
            self.capacity = (size_t) atol (optarg);
        else
        if (opt == 't')
            self.timeout_ms = atoi (optarg);
        else
        if (opt == 'w')
            self.hold = true;
        else
            return 2;
    }
    if (argc - optind != 3 || atol (argv [optind + 1]) < 1) {
        fprintf (stderr, "usage: shmipc-swarm [-n NOFILE|max] [-c CAPACITY] "
                 "[-t TIMEOUT_MS] [-w] ENDPOINT COUNT bare|greet\n");
        return 2;
    }
    self.endpoint = argv [optind];
    self.count = (size_t) atol (argv [optind + 1]);
    const char *mode = argv [optind + 2];
    self.conns = (s_conn_t *) calloc (self.count, sizeof *self.conns);
    if (!self.conns)
        s_fail ("calloc");
    if (streq (mode, "bare"))
        s_bare (&self);
    else
    if (streq (mode, "greet"))
        s_greet (&self);
    else
        return 2;

    char line [128];
    while (tu_read_line (STDIN_FILENO, line, sizeof line, INT32_MAX) == 0) {
        if (streq (line, "greet") && self.hold)
            s_greet_held (&self);
        else
        if (streq (line, "echo-all"))
            s_echo_all (&self);
        else
        if (strncmp (line, "echo ", 5) == 0)
            s_echo (&self, atol (line + 5));
        else
            tu_say ("unknown command '%s'", line);
    }
    for (size_t index = 0; index < self.count; index++) {
        if (self.conns [index].sock >= 0)
            close (self.conns [index].sock);
        shmipc_channel_destroy (&self.conns [index].channel);
    }
    free (self.conns);
    return 0;
}
