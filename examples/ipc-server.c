/*  =========================================================================
    ipc-server - echo server on a shm:// endpoint: one poll loop serves any
    number of clients at once and sends every message back whole

    Owns: the listener, a signalfd, and per client its channel and the one
    message in hand. A client whose echo does not fit is not read until it
    does, so memory per client stays bounded (see s_client_t).

        ipc-server [-c BYTES] [-m BYTES] ENDPOINT
    =========================================================================
*/

#include "shmipc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#define S_NAME              "ipc-server"
#define S_CAPACITY          (1UL << 20)     //  Default ring bytes (-c)
#define S_MAXMSGSIZE        (256UL << 20)   //  Default largest message (-m)
#define S_BATCH             256             //  Messages per client per turn
#define S_ACCEPT_BATCH      64              //  Connections accepted per turn
#define S_ACCEPT_PAUSE_MS   100             //  Back-off when accept fails

//  One client. Its memory is bounded by: two rings, the message being
//  reassembled inside the channel, and msg (both at most maxmsgsize).
typedef struct {
    shmipc_channel_t *channel;  //  Owned
    shmipc_msg_t *msg;          //  Last message received; reused; owned
    uint64_t id;                //  Connection number, for the log
    bool held;                  //  msg is an echo waiting for ring space
    bool busy;                  //  Turn ended with messages perhaps left
    bool dead;                  //  Close at the end of this turn
    int error;                  //  Why (errno), once dead
} s_client_t;

typedef struct {
    shmipc_listener_t *listener;    //  Owned
    int signal_fd;                  //  SIGINT and SIGTERM; owned
    size_t capacity;                //  Ring bytes per client
    size_t maxmsgsize;              //  Largest message accepted
    s_client_t **clients;           //  Live clients; owned
    size_t nclients;                //  How many
    size_t slots;                   //  Allocated entries in clients []
    struct pollfd *items;           //  Poll set: signals, listener, then
                                    //  two per client (socket, wake pipe)
    uint64_t next_id;               //  Next connection number
    int64_t accept_paused;          //  Accepting again at this time (ms)
} s_server_t;

static int64_t
s_now_ms (void)
{
    //  The clock shmipc_channel_deadline uses
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Parse a byte count with an optional K, M or G suffix (powers of 1024).
//  Returns 0, or -1 if it is not a positive number.
static int
s_parse_size (const char *text, size_t *size)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else
    if (*end == 'M' || *end == 'm')
        shift = 20;
    else
    if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || value == 0 || value > (SIZE_MAX >> shift))
        return -1;
    *size = (size_t) value << shift;
    return 0;
}

//  --------------------------------------------------------------------------
//  Clients

static s_client_t *
s_client_new (s_server_t *server, int sock)
{
    s_client_t *self = (s_client_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->msg = shmipc_msg_new ();
    self->channel = shmipc_channel_new (sock, S_NAME, server->capacity, SHMIPC_SERVER);
    if (!self->msg || !self->channel) {
        int saved = errno;
        shmipc_msg_destroy (&self->msg);
        shmipc_channel_destroy (&self->channel);
        free (self);
        errno = saved;
        return NULL;
    }
    shmipc_channel_set_maxmsgsize (self->channel, server->maxmsgsize);
    self->id = ++server->next_id;
    return self;
}

//  Close the client; why is the errno that ended it (0: we stop). A peer
//  that left is normal and logged only in verbose mode; anything else always.
static void
s_client_destroy (s_client_t **self_p, int why)
{
    s_client_t *self = *self_p;
    bool normal = why == 0 || why == ECONNRESET || why == EPIPE;
    const char *reason = shmipc_channel_reason (self->channel);
    if (!*reason)
        reason = why == 0 ? "server stopping"
               : normal ? "peer left" : strerror (why);
    if (shmipc_verbose () || !normal) {
        shmipc_channel_stats_t stats;
        shmipc_channel_stats (self->channel, &stats);
        fprintf (stderr, "%s: client %" PRIu64 " closed (%s): in %" PRIu64 " msgs %"
                 PRIu64 " bytes, out %" PRIu64 " msgs %" PRIu64 " bytes, wakeups %"
                 PRIu64 " sent %" PRIu64 " received\n", S_NAME, self->id, reason,
                 stats.msgs_received, stats.bytes_received, stats.msgs_sent,
                 stats.bytes_sent, stats.wakeups_sent, stats.wakeups_received);
    }
    shmipc_channel_destroy (&self->channel);
    shmipc_msg_destroy (&self->msg);
    free (self);
    *self_p = NULL;
}

//  Send msg back, or hold it if the ring is full. Returns 0 or -1 with
//  errno (EAGAIN: held). A message bigger than the ring may be part-sent
//  when held: the channel goes on when we repeat the call with it.
static int
s_client_send (s_client_t *self)
{
    if (shmipc_channel_send_msg (self->channel, self->msg,
                                 SHMIPC_DONTWAIT | SHMIPC_DEFER) == 0) {
        self->held = false;
        return 0;
    }
    if (errno == EAGAIN)
        self->held = true;
    return -1;
}

//  Echo up to S_BATCH messages. Stops early when none is left (the channel
//  then signals the next one) or an echo is held (it signals space).
static int
s_client_echo (s_client_t *self)
{
    int rc = -1;
    self->busy = false;
    for (int count = 0; count < S_BATCH; count++) {
        if (shmipc_channel_recv_into (self->channel, self->msg, SHMIPC_DONTWAIT)
        ||  s_client_send (self)) {
            if (errno == EAGAIN)
                rc = 0;
            goto flush;
        }
    }
    //  More may be waiting and no wake-up is armed: serve again at once
    self->busy = true;
    rc = 0;
flush:;
    int saved = errno;
    if (shmipc_channel_flush (self->channel) && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

//  Do what the client's descriptor, or its deadline, calls for. Returns 0,
//  or -1 with errno when the client must be closed.
static int
s_client_serve (s_client_t *self)
{
    shmipc_channel_t *channel = self->channel;
    if (!shmipc_channel_ready (channel)) {
        if (shmipc_channel_handshake (channel, 0))
            return errno == EAGAIN ? 0 : -1;
        if (shmipc_verbose ())
            fprintf (stderr, "%s: client %" PRIu64 " connected: peer '%s', rings %zu"
                     " bytes out, %zu in\n", S_NAME, self->id,
                     shmipc_channel_peer_name (channel),
                     shmipc_channel_capacity (channel),
                     shmipc_channel_peer_capacity (channel));
        //  The client may have written already; no wake-up will say so
        return s_client_echo (self);
    }
    if (self->held) {
        int events = shmipc_channel_events (channel);
        if (events & SHMIPC_POLLERR) {
            errno = shmipc_channel_error (channel);
            if (!errno)
                errno = EPIPE;
            return -1;
        }
        //  Without POLLOUT, events has armed the wake-up for space; a retry
        //  now would only read the socket behind its back
        if (!(events & SHMIPC_POLLOUT))
            return 0;
        if (s_client_send (self)) {
            if (errno != EAGAIN)
                return -1;
            int saved = errno;
            if (shmipc_channel_flush (channel))
                return -1;
            errno = saved;
            return 0;
        }
    }
    return s_client_echo (self);
}

//  --------------------------------------------------------------------------
//  Server

static void
s_server_destroy (s_server_t **self_p)
{
    s_server_t *self = *self_p;
    if (!self)
        return;
    for (size_t index = 0; index < self->nclients; index++)
        s_client_destroy (&self->clients [index], 0);
    free (self->clients);
    free (self->items);
    shmipc_listener_destroy (&self->listener);
    if (self->signal_fd >= 0)
        close (self->signal_fd);
    free (self);
    *self_p = NULL;
}

static s_server_t *
s_server_new (const char *endpoint, size_t capacity, size_t maxmsgsize)
{
    s_server_t *self = (s_server_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = capacity;
    self->maxmsgsize = maxmsgsize;
    //  Signals arrive as readable data in the same poll, never mid-call
    sigset_t mask;
    sigemptyset (&mask);
    sigaddset (&mask, SIGINT);
    sigaddset (&mask, SIGTERM);
    if (sigprocmask (SIG_BLOCK, &mask, NULL) == -1
    ||  (self->signal_fd = signalfd (-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) == -1) {
        fprintf (stderr, "%s: signalfd: %s\n", S_NAME, strerror (errno));
        self->signal_fd = -1;
        s_server_destroy (&self);
        return NULL;
    }
    self->listener = shmipc_listener_new (endpoint);
    if (!self->listener) {
        fprintf (stderr, "%s: cannot listen on %s: %s\n", S_NAME, endpoint,
                 strerror (errno));
        s_server_destroy (&self);
        return NULL;
    }
    return self;
}

//  Make room for one more client and its poll item.
static int
s_server_grow (s_server_t *self)
{
    if (self->nclients < self->slots)
        return 0;
    size_t slots = self->slots ? self->slots * 2 : 16;
    s_client_t **clients = (s_client_t **) realloc (self->clients,
                                                    slots * sizeof *clients);
    if (!clients)
        return -1;
    self->clients = clients;
    struct pollfd *items = (struct pollfd *) realloc (self->items,
                                                      (2 * slots + 2) * sizeof *items);
    if (!items)
        return -1;
    self->items = items;
    self->slots = slots;
    return 0;
}

//  Accept waiting peers and start their handshakes.
static void
s_server_accept (s_server_t *self)
{
    for (int count = 0; count < S_ACCEPT_BATCH; count++) {
        int sock = shmipc_listener_accept (self->listener);
        if (sock == -1) {
            if (errno == EAGAIN)
                return;
            if (errno == EACCES)
                continue;           //  Refused by uid; logged in verbose mode
            //  Out of descriptors or memory: the listener stays readable,
            //  so stop watching it for a while rather than spin
            fprintf (stderr, "%s: accept: %s\n", S_NAME, strerror (errno));
            self->accept_paused = s_now_ms () + S_ACCEPT_PAUSE_MS;
            return;
        }
        s_client_t *client = NULL;
        if (s_server_grow (self) == 0)
            client = s_client_new (self, sock);
        if (!client) {
            fprintf (stderr, "%s: cannot serve a client: %s\n", S_NAME, strerror (errno));
            close (sock);
            continue;
        }
        self->clients [self->nclients++] = client;
        //  Its HELLO may be here already
        if (s_client_serve (client)) {
            client->dead = true;
            client->error = errno;
        }
    }
}

//  Return the poll timeout: 0 if a client has work, else until the nearest
//  handshake deadline or the end of an accept pause, else for ever.
static int
s_server_timeout (s_server_t *self)
{
    int64_t now = s_now_ms ();
    int64_t until = -1;
    if (self->accept_paused)
        until = self->accept_paused;
    for (size_t index = 0; index < self->nclients; index++) {
        s_client_t *client = self->clients [index];
        if (client->busy || client->dead)
            return 0;
        int64_t deadline = shmipc_channel_deadline (client->channel);
        if (deadline >= 0 && (until < 0 || deadline < until))
            until = deadline;
    }
    if (until < 0)
        return -1;
    //  One ms late rather than early: an early wake finds nothing to do
    int64_t left = until - now + 1;
    return left < 0 ? 0 : left > 60000 ? 60000 : (int) left;
}

//  Close and remove every client marked dead.
static void
s_server_reap (s_server_t *self)
{
    size_t kept = 0;
    for (size_t index = 0; index < self->nclients; index++) {
        s_client_t *client = self->clients [index];
        if (client->dead)
            s_client_destroy (&client, client->error);
        else
            self->clients [kept++] = client;
    }
    self->nclients = kept;
}

//  Serve until SIGINT or SIGTERM. Returns 0, or -1 if poll itself failed.
static int
s_server_run (s_server_t *self)
{
    if (s_server_grow (self))
        return -1;
    while (true) {
        int timeout = s_server_timeout (self);
        if (self->accept_paused && s_now_ms () >= self->accept_paused)
            self->accept_paused = 0;
        size_t polled = self->nclients;
        self->items [0] = (struct pollfd) { .fd = self->signal_fd, .events = POLLIN };
        self->items [1] = (struct pollfd) {
            .fd = self->accept_paused ? -1 : shmipc_listener_fd (self->listener),
            .events = POLLIN };
        //  Each client's socket and wake pipe: the pipe is asked for anew
        //  each turn, as it appears only when the handshake completes (-1
        //  before, which poll skips)
        for (size_t index = 0; index < polled; index++) {
            shmipc_channel_t *channel = self->clients [index]->channel;
            self->items [2 * index + 2] = (struct pollfd) {
                .fd = shmipc_channel_fd (channel), .events = POLLIN };
            self->items [2 * index + 3] = (struct pollfd) {
                .fd = shmipc_channel_wake_fd (channel), .events = POLLIN };
        }
        if (poll (self->items, 2 * polled + 2, timeout) == -1) {
            if (errno == EINTR)
                continue;
            fprintf (stderr, "%s: poll: %s\n", S_NAME, strerror (errno));
            return -1;
        }
        if (self->items [0].revents) {
            struct signalfd_siginfo info;
            if (read (self->signal_fd, &info, sizeof info) == (ssize_t) sizeof info
            &&  shmipc_verbose ())
                fprintf (stderr, "%s: %s, stopping with %zu client(s)\n", S_NAME,
                         strsignal ((int) info.ssi_signo), self->nclients);
            return 0;
        }
        int64_t now = s_now_ms ();
        for (size_t index = 0; index < polled; index++) {
            s_client_t *client = self->clients [index];
            int64_t deadline = shmipc_channel_deadline (client->channel);
            if (client->dead)
                continue;
            if (self->items [2 * index + 2].revents || self->items [2 * index + 3].revents
            ||  client->busy
            ||  (deadline >= 0 && now >= deadline)) {
                if (s_client_serve (client)) {
                    client->dead = true;
                    client->error = errno;
                }
            }
        }
        //  After the clients, so that new ones wait for the next turn's poll
        if (self->items [1].revents)
            s_server_accept (self);
        s_server_reap (self);
    }
}

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: %s [-c BYTES] [-m BYTES] ENDPOINT\n"
        "  Echo every message back to its sender, for any number of clients.\n"
        "  ENDPOINT   shm:///absolute/path or shm://@abstract-name\n"
        "  -c BYTES   ring capacity per client (default 1M; K, M, G suffixes)\n"
        "  -m BYTES   largest message accepted (default 256M)\n"
        "  SIGINT or SIGTERM stops it; SHMIPC_VERBOSE=1 logs every client.\n",
        S_NAME);
}

int
main (int argc, char *argv [])
{
    size_t capacity = S_CAPACITY;
    size_t maxmsgsize = S_MAXMSGSIZE;
    int option;
    while ((option = getopt (argc, argv, "c:m:h")) != -1) {
        if (option == 'c' && s_parse_size (optarg, &capacity) == 0
        &&  capacity <= SHMIPC_RING_MAX)
            continue;
        if (option == 'm' && s_parse_size (optarg, &maxmsgsize) == 0)
            continue;
        s_usage ();
        return 2;
    }
    if (optind != argc - 1) {
        s_usage ();
        return 2;
    }
    s_server_t *server = s_server_new (argv [optind], capacity, maxmsgsize);
    if (!server)
        return 1;
    printf ("%s: listening on %s\n", S_NAME, argv [optind]);
    fflush (stdout);
    int rc = s_server_run (server);
    s_server_destroy (&server);
    return rc ? 1 : 0;
}
