/*  =========================================================================
    swap - one czmq program, any transport: a PUSH/PULL pair over the
    endpoint given on the command line, and no line of code that knows
    which transport that is

    This is the whole change that moves an existing czmq program from
    ipc:// (or tcp://) to shared memory:

        -   zsock_t *pull = zsock_new_pull ("@ipc:///tmp/x");
        +   zsock_t *pull = shmipc_sock_new (ZMQ_PULL, "@shm:///tmp/x");
            ...
        -   zsock_destroy (&pull);
        +   shmipc_sock_destroy (&pull);

    Once made, the change serves every scheme: shmipc_sock_new hands
    tcp:// and ipc:// to libzmq unchanged. So here the endpoint is an
    argument, and tcp://, ipc:// and shm:// run the same code.

    Owns: the PULL socket (main thread) and a pusher actor that owns the
    PUSH socket. Two threads, because ZeroMQ sockets are not shared
    between threads; the shm:// traffic still crosses shared memory.

        swap ENDPOINT [COUNT]
    =========================================================================
*/

#include "shmipc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_NAME      "swap"
#define S_COUNT     100000          //  Default messages
#define S_BATCH     1000            //  Messages per turn of the pusher
#define S_SILENT_MS 10000           //  Give up after this silence
#define S_MIX       UINT64_C (0x9E3779B97F4A7C15)   //  Check word salt

//  Every message is one 16-byte frame: a sequence number and a check word
//  derived from it, so a lost, repeated, reordered or damaged one shows.
typedef struct {
    uint64_t seq;
    uint64_t check;
} s_body_t;

//  ==========================================================================
//  The pusher actor. It signals at once, then pushes args->count messages
//  as fast as the PULL side takes them; if its socket cannot be made it
//  sends "FAILED" and the reason instead. $TERM ends it at any time.

typedef struct {
    const char *endpoint;           //  Where to push
    uint64_t count;                 //  How many
} s_args_t;

typedef struct {
    zsock_t *pipe;                  //  Actor command pipe
    zsock_t *push;                  //  Owned
    uint64_t count;                 //  Messages to push
    uint64_t sent;                  //  Pushed so far
    bool terminated;                //  $TERM received
} pusher_t;

static void
s_pusher_handle_pipe (pusher_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command || streq (command, "$TERM"))
        self->terminated = true;
    else
        zsys_error ("%s: invalid pusher command '%s'", S_NAME, command);
    zstr_free (&command);
}

//  Push until the socket would block, or a batch is done (so that $TERM
//  is looked at between batches).
static void
s_pusher_push (pusher_t *self)
{
    for (int index = 0; index < S_BATCH && self->sent < self->count; index++) {
        s_body_t body = { self->sent, self->sent * S_MIX };
        zframe_t *frame = zframe_new (&body, sizeof body);
        if (!frame)
            return;
        if (zframe_send (&frame, self->push, ZFRAME_DONTWAIT)) {
            //  czmq 4.2.1 keeps a frame that did not go (later versions
            //  destroy it): either way it is ours to drop, and we make a
            //  new one when there is room
            zframe_destroy (&frame);
            return;
        }
        self->sent++;
    }
}

static void
s_pusher_actor (zsock_t *pipe, void *args)
{
    zsock_signal (pipe, 0);
    s_args_t *settings = (s_args_t *) args;
    pusher_t self = { .pipe = pipe, .count = settings->count };
    //  A PUSH socket connects its unprefixed endpoints
    self.push = shmipc_sock_new (ZMQ_PUSH, settings->endpoint);
    if (!self.push)
        zsock_send (pipe, "ss", "FAILED", strerror (errno));
    while (!self.terminated) {
        //  zpoller knows only POLLIN; waiting for room on PUSH takes zmq_poll
        zmq_pollitem_t items [2] = { { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 } };
        int nitems = 1;
        if (self.push && self.sent < self.count)
            items [nitems++] = (zmq_pollitem_t) {
                zsock_resolve (self.push), 0, ZMQ_POLLOUT, 0 };
        if (zmq_poll (items, nitems, -1) == -1)
            break;                      //  Interrupted
        if (items [0].revents & ZMQ_POLLIN)
            s_pusher_handle_pipe (&self);
        else
        if (nitems == 2 && (items [1].revents & ZMQ_POLLOUT))
            s_pusher_push (&self);
    }
    shmipc_sock_destroy (&self.push);
}

//  ==========================================================================
//  main: bind PULL, start the pusher, receive and check every message

//  Receive what is waiting (pull has a zero receive timeout) and check it.
//  Returns 0, or -1 on a bad message.
static int
s_pull_some (zsock_t *pull, uint64_t *received, uint64_t count)
{
    zframe_t *frame;
    while (*received < count && (frame = zframe_recv (pull))) {
        s_body_t body = { 0, 0 };
        size_t size = zframe_size (frame);
        if (size == sizeof body)
            memcpy (&body, zframe_data (frame), sizeof body);
        zframe_destroy (&frame);
        if (size != sizeof body || body.seq != *received || body.check != body.seq * S_MIX) {
            fprintf (stderr, "%s: message %" PRIu64 " is wrong (%zu bytes, sequence"
                     " number %" PRIu64 ")\n", S_NAME, *received, size, body.seq);
            return -1;
        }
        (*received)++;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    uint64_t count = S_COUNT;
    char *end = NULL;
    if (argc == 3)
        count = strtoull (argv [2], &end, 10);
    if (argc < 2 || argc > 3 || argv [1][0] == '-' || argv [1][0] == '@'
    ||  argv [1][0] == '>' || (end && (*end || !count || argv [2][0] == '-'))) {
        fprintf (stderr,
            "usage: %s ENDPOINT [COUNT]\n"
            "  Push COUNT messages (default %d) from one thread to another over\n"
            "  ENDPOINT and check each one; the same code for every transport.\n"
            "  ENDPOINT   tcp://127.0.0.1:PORT, ipc:///path, shm:///path or\n"
            "             shm://@name, without '@' or '>': PULL binds it, PUSH\n"
            "             connects to it\n", S_NAME, S_COUNT);
        return 1;
    }
    const char *endpoint = argv [1];

    //  A PULL socket binds its unprefixed endpoints
    zsock_t *pull = shmipc_sock_new (ZMQ_PULL, endpoint);
    if (!pull) {
        fprintf (stderr, "%s: cannot bind %s: %s\n", S_NAME, endpoint, strerror (errno));
        return 1;
    }
    //  The poller waits; receives then take what is there without waiting
    zsock_set_rcvtimeo (pull, 0);
    s_args_t args = { endpoint, count };
    zactor_t *pusher = zactor_new (s_pusher_actor, &args);
    zpoller_t *poller = zpoller_new (pull, pusher, NULL);

    int rc = 0;
    uint64_t received = 0;
    int64_t start = zclock_usecs ();
    while (rc == 0 && received < count) {
        void *which = zpoller_wait (poller, S_SILENT_MS);
        if (which == pull)
            rc = s_pull_some (pull, &received, count) ? 1 : 0;
        else
        if (which == pusher) {
            char *status = NULL, *reason = NULL;
            zsock_recv (pusher, "ss", &status, &reason);
            fprintf (stderr, "%s: the pusher %s: %s\n", S_NAME,
                     status ? status : "failed", reason ? reason : "no reason");
            zstr_free (&status);
            zstr_free (&reason);
            rc = 1;
        }
        else
        if (zpoller_terminated (poller)) {
            fprintf (stderr, "%s: interrupted\n", S_NAME);
            rc = 1;
        }
        else {
            fprintf (stderr, "%s: nothing for %d ms after %" PRIu64 " messages\n",
                     S_NAME, S_SILENT_MS, received);
            rc = 2;
        }
    }
    double seconds = (double) (zclock_usecs () - start) / 1e6;
    if (seconds <= 0)
        seconds = 1e-6;
    if (rc == 0)
        printf ("%s: %s: %" PRIu64 " messages in order in %.3f s, %.0f msgs/s\n",
                S_NAME, endpoint, received, seconds, (double) received / seconds);

    zpoller_destroy (&poller);
    zactor_destroy (&pusher);
    shmipc_sock_destroy (&pull);
    return rc;
}
