/*  =========================================================================
    actor_echo - an echo service and its clients written as czmq actors,
    talking over shm://

    Owns: one server actor (a ROUTER that echoes) and S_CLIENTS client
    actors (a DEALER each, that send S_COUNT messages and check every echo).
    Each actor owns its socket, which only its own thread touches; main
    talks to them over their pipes, as to zbeacon or zproxy, and checks
    what each one reports.

        actor_echo [ENDPOINT]           (default shm://@actor-echo-PID)
    =========================================================================
*/

#include "shmipc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_NAME      "actor_echo"
#define S_CLIENTS   4               //  Client actors
#define S_COUNT     10000           //  Messages each client sends
#define S_WINDOW    50              //  Messages in flight per client
#define S_STALL_MS  10000           //  A client gives up after this silence
#define S_WAIT_MS   60000           //  main gives up after this silence

//  ==========================================================================
//  The server actor. Commands on its pipe (replies marked <-):
//    BIND endpoint         <- signal 0, or an errno
//    STATS                 <- "888": echoes sent, shm:// connections
//                             accepted, shm:// connections that failed
//    $TERM                 ends the actor

typedef struct {
    zsock_t *pipe;              //  Actor command pipe
    zsock_t *router;            //  Echoes to the clients; owned
    zpoller_t *poller;          //  Pipe and router; owned
    uint64_t echoed;            //  Messages sent back
    bool terminated;            //  $TERM received
} server_t;

static server_t *
s_server_new (zsock_t *pipe)
{
    server_t *self = (server_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->router = zsock_new (ZMQ_ROUTER);
    self->poller = self->router ? zpoller_new (pipe, self->router, NULL) : NULL;
    if (!self->poller) {
        zsock_destroy (&self->router);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_server_destroy (server_t **self_p)
{
    if (*self_p) {
        server_t *self = *self_p;
        zpoller_destroy (&self->poller);
        //  Not zsock_destroy: this also stops the router's shm:// actor
        shmipc_sock_destroy (&self->router);
        free (self);
        *self_p = NULL;
    }
}

static void
s_server_handle_pipe (server_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request) {
        self->terminated = true;        //  Interrupted
        return;
    }
    char *command = zmsg_popstr (request);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    else
    if (command && streq (command, "BIND")) {
        char *endpoint = zmsg_popstr (request);
        int rc = EINVAL;
        if (endpoint)
            rc = shmipc_bind (self->router, "%s", endpoint) ? errno : 0;
        zsock_signal (self->pipe, (byte) rc);
        free (endpoint);
    }
    else
    if (command && streq (command, "STATS")) {
        shmipc_stats_t stats;
        //  On failure the counters read 0, which main reports as wrong
        shmipc_sock_stats (self->router, &stats);
        zsock_send (self->pipe, "888", self->echoed, stats.accepted, stats.errors);
    }
    else {
        zsys_error ("%s: invalid server command '%s'", S_NAME, command ? command : "");
        zsock_signal (self->pipe, EINVAL);
    }
    free (command);
    zmsg_destroy (&request);
}

//  Echo one message: frame 1 is the sender's routing id, so sending the
//  message back as it came routes it home.
static void
s_server_echo (server_t *self)
{
    zmsg_t *msg = zmsg_recv (self->router);
    if (msg && zmsg_send (&msg, self->router) == 0)
        self->echoed++;
    zmsg_destroy (&msg);
}

static void
s_server_actor (zsock_t *pipe, void *args)
{
    server_t *self = s_server_new (pipe);
    //  zactor_new ignores this status; a server that could not start fails
    //  its first BIND instead (below)
    zsock_signal (pipe, 0);
    while (self && !self->terminated) {
        void *which = zpoller_wait (self->poller, -1);
        if (which == self->pipe)
            s_server_handle_pipe (self);
        else
        if (which == self->router)
            s_server_echo (self);
        else
            break;                      //  Interrupted
    }
    if (!self) {
        char *command;
        while ((command = zstr_recv (pipe)) && !streq (command, "$TERM")) {
            zsock_signal (pipe, ENOMEM);
            zstr_free (&command);
        }
        zstr_free (&command);
    }
    s_server_destroy (&self);
}

//  ==========================================================================
//  A client actor; args is its number. Commands on its pipe:
//    START endpoint count  <- signal 0, or an errno; then, when done, one
//                             report "s8s": "DONE" or "FAILED", the echoes
//                             checked, and why it failed ("" if it did not)
//    $TERM                 ends the actor
//  Each message is "48": the client's number and a sequence number, so an
//  echo delivered to the wrong client, lost or reordered is caught.

typedef struct {
    zsock_t *pipe;              //  Actor command pipe
    zsock_t *dealer;            //  Owned, once started
    zpoller_t *poller;          //  Pipe, then dealer too; owned
    uint32_t number;            //  Ours, carried in every message
    uint64_t count;             //  Messages to send
    uint64_t sent;              //  Sent so far
    uint64_t received;          //  Echoes checked so far
    bool running;               //  Started and not yet reported
    bool terminated;            //  $TERM received
} client_t;

static client_t *
s_client_new (zsock_t *pipe, uint32_t number)
{
    client_t *self = (client_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->number = number;
    self->poller = zpoller_new (pipe, NULL);
    if (!self->poller) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_client_destroy (client_t **self_p)
{
    if (*self_p) {
        client_t *self = *self_p;
        zpoller_destroy (&self->poller);
        shmipc_sock_destroy (&self->dealer);
        free (self);
        *self_p = NULL;
    }
}

//  Send the one report main waits for, and stop.
static void
s_client_report (client_t *self, const char *reason)
{
    zsock_send (self->pipe, "s8s", *reason ? "FAILED" : "DONE", self->received, reason);
    self->running = false;
}

//  Fill the window.
static void
s_client_send (client_t *self)
{
    while (self->running && self->sent < self->count
    &&     self->sent - self->received < S_WINDOW) {
        if (zsock_send (self->dealer, "48", self->number, self->sent)) {
            s_client_report (self, "send failed");
            return;
        }
        self->sent++;
    }
}

static void
s_client_start (client_t *self, zmsg_t *request)
{
    char *endpoint = zmsg_popstr (request);
    char *count = zmsg_popstr (request);
    int rc = EINVAL;
    if (self->dealer)
        rc = EALREADY;
    else
    if (endpoint && count && atoll (count) > 0) {
        self->count = (uint64_t) atoll (count);
        self->dealer = shmipc_sock_new (ZMQ_DEALER, endpoint);
        rc = self->dealer ? 0 : errno;
    }
    zsock_signal (self->pipe, (byte) rc);
    if (rc == 0) {
        zpoller_add (self->poller, self->dealer);
        self->running = true;
        s_client_send (self);
    }
    free (endpoint);
    free (count);
}

static void
s_client_handle_pipe (client_t *self)
{
    zmsg_t *request = zmsg_recv (self->pipe);
    if (!request) {
        self->terminated = true;        //  Interrupted
        return;
    }
    char *command = zmsg_popstr (request);
    if (command && streq (command, "$TERM"))
        self->terminated = true;
    else
    if (command && streq (command, "START"))
        s_client_start (self, request);
    else {
        zsys_error ("%s: invalid client command '%s'", S_NAME, command ? command : "");
        zsock_signal (self->pipe, EINVAL);
    }
    free (command);
    zmsg_destroy (&request);
}

//  Check one echo, then refill the window or report.
static void
s_client_receive (client_t *self)
{
    uint32_t number;
    uint64_t seq;
    if (zsock_recv (self->dealer, "48", &number, &seq)) {
        s_client_report (self, "receive failed");
        return;
    }
    if (!self->running)
        return;                         //  Already failed: ignore the rest
    if (number != self->number)
        s_client_report (self, "received another client's echo");
    else
    if (seq != self->received)
        s_client_report (self, "echo lost or out of order");
    else
    if (++self->received == self->count)
        s_client_report (self, "");
    else
        s_client_send (self);
}

static void
s_client_actor (zsock_t *pipe, void *args)
{
    client_t *self = s_client_new (pipe, (uint32_t) (uintptr_t) args);
    zsock_signal (pipe, 0);
    while (self && !self->terminated) {
        //  The timeout only catches a silent server; idle, we just wait
        void *which = zpoller_wait (self->poller, self->running ? S_STALL_MS : -1);
        if (which == self->pipe)
            s_client_handle_pipe (self);
        else
        if (which == self->dealer)
            s_client_receive (self);
        else
        if (zpoller_terminated (self->poller))
            break;
        else
        if (self->running)
            s_client_report (self, "the server went silent");
    }
    if (!self) {
        char *command;
        while ((command = zstr_recv (pipe)) && !streq (command, "$TERM")) {
            zsock_signal (pipe, ENOMEM);
            zstr_free (&command);
        }
        zstr_free (&command);
    }
    s_client_destroy (&self);
}

//  ==========================================================================
//  main: start the server, then the clients; collect and check

//  Wait for every client's report. Returns the number that failed.
static int
s_collect (zactor_t **clients)
{
    zpoller_t *poller = zpoller_new (NULL);
    for (int index = 0; index < S_CLIENTS; index++)
        zpoller_add (poller, clients [index]);
    int failed = 0;
    for (int reports = 0; reports < S_CLIENTS; reports++) {
        zactor_t *which = (zactor_t *) zpoller_wait (poller, S_WAIT_MS);
        if (!which) {
            fprintf (stderr, "%s: %s\n", S_NAME, zpoller_terminated (poller)
                     ? "interrupted" : "a client neither finished nor failed in time");
            failed += S_CLIENTS - reports;
            break;
        }
        int number = 0;
        while (clients [number] != which)
            number++;
        char *status = NULL, *reason = NULL;
        uint64_t checked = 0;
        if (zsock_recv (which, "s8s", &status, &checked, &reason) == 0
        &&  streq (status, "DONE") && checked == S_COUNT)
            printf ("%s: client %d: %" PRIu64 " echoes checked\n", S_NAME, number, checked);
        else {
            fprintf (stderr, "%s: client %d failed after %" PRIu64 " echoes: %s\n",
                     S_NAME, number, checked, reason ? reason : "no report");
            failed++;
        }
        zstr_free (&status);
        zstr_free (&reason);
        //  One report per client: stop listening to it
        zpoller_remove (poller, which);
    }
    zpoller_destroy (&poller);
    return failed;
}

int
main (int argc, char *argv [])
{
    if (argc > 2 || (argc == 2 && argv [1][0] == '-')) {
        fprintf (stderr,
            "usage: %s [ENDPOINT]\n"
            "  Serve an echo over ENDPOINT (default shm://@actor-echo-PID) from one\n"
            "  actor, with %d client actors sending %d messages each; exit 0 if\n"
            "  every echo came back right.\n", S_NAME, S_CLIENTS, S_COUNT);
        return 1;
    }
    char fallback [64];
    snprintf (fallback, sizeof fallback, "shm://@actor-echo-%d", (int) getpid ());
    const char *endpoint = argc == 2 ? argv [1] : fallback;

    //  zactor_new cannot report a failed start, so the commands that can
    //  fail come after it and answer with a signal
    zactor_t *server = zactor_new (s_server_actor, NULL);
    zsock_send (server, "ss", "BIND", endpoint);
    int status = zsock_wait (server);
    if (status != 0) {
        fprintf (stderr, "%s: cannot bind %s: %s\n", S_NAME, endpoint,
                 strerror (status > 0 ? status : EINTR));
        zactor_destroy (&server);
        return 1;
    }
    printf ("%s: serving %s\n", S_NAME, endpoint);

    zactor_t *clients [S_CLIENTS] = { NULL };
    int failed = 0;
    for (int index = 0; index < S_CLIENTS && !failed; index++) {
        clients [index] = zactor_new (s_client_actor, (void *) (uintptr_t) index);
        zsock_send (clients [index], "ssi", "START", endpoint, S_COUNT);
        status = zsock_wait (clients [index]);
        if (status != 0) {
            fprintf (stderr, "%s: client %d cannot connect to %s: %s\n", S_NAME,
                     index, endpoint, strerror (status > 0 ? status : EINTR));
            failed = S_CLIENTS;
        }
    }
    if (!failed)
        failed = s_collect (clients);

    //  The server counts too: every echo, and one connection per client
    uint64_t echoed = 0, accepted = 0, errors = 0;
    if (!failed) {
        zsock_send (server, "s", "STATS");
        zsock_recv (server, "888", &echoed, &accepted, &errors);
        if (echoed != (uint64_t) S_CLIENTS * S_COUNT || accepted != S_CLIENTS || errors) {
            fprintf (stderr, "%s: the server echoed %" PRIu64 " messages over %" PRIu64
                     " connections with %" PRIu64 " errors; expected %d over %d, no"
                     " errors\n", S_NAME, echoed, accepted, errors,
                     S_CLIENTS * S_COUNT, S_CLIENTS);
            failed++;
        }
    }
    for (int index = 0; index < S_CLIENTS; index++)
        zactor_destroy (&clients [index]);
    zactor_destroy (&server);
    if (failed)
        return 1;
    printf ("%s: %d clients x %d messages echoed over %s\n", S_NAME,
            S_CLIENTS, S_COUNT, endpoint);
    return 0;
}
