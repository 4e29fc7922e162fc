/*  =========================================================================
    shmipc-reliability-peer - the well-behaved far ends of the reliability
    tests, each in its own process (a test process that runs czmq must not
    fork and use it again)

    Owns its sockets. Prints "ready" once it is attached, then one line per
    event; exits 0 on success, 1 on a failed check, 2 on bad use. Closing
    its stdin asks it to finish.

        clients ENDPOINT N WINDOW SIZE PACE_US [ID_PREFIX]
            N DEALERs, each with up to WINDOW requests in flight: tagged
            messages (tag "c<i>", a sequence number, a payload of up to SIZE
            bytes filled from it), one every PACE_US (0: as fast as they
            go). Every echo must come back, in order, once, intact. Says
            "ready" once every client had an echo; when stdin closes, stops
            sending, waits for the echoes in flight and says
            "ok CLIENTS ECHOES". ID_PREFIX sets routing ids ID_PREFIX-<i>.
        server ENDPOINT
            a ROUTER that sends every message back, until killed
        storm ENDPOINT SIZE run|block
            one DEALER. run: sends tagged messages of SIZE bytes and takes
            the echoes, for ever (says "sending" after the first). block:
            sends until a send times out (its rings and pipes are full:
            the server does not read), says "blocked", and waits
        push ENDPOINT TAG SIZE COUNT
            a PUSH that sends COUNT tagged messages of SIZE bytes (waiting
            as long as it takes), says "sent COUNT", and waits
        slowpull ENDPOINT RCVHWM DELAY_US COUNT
            a PULL that takes COUNT tagged messages from one sender, in
            order, payloads checked, DELAY_US apart; says "ok COUNT"

    SHMIPC_RL_CAPACITY in the environment sets the ring capacity.
    =========================================================================
*/

#include "testutil_reliability.h"


//  How long a client may wait for an echo before it calls it lost.
#define S_LOST_MS   RL_PATIENCE_MS

static zsock_t *
s_socket (int type, const char *endpoint)
{
    zsock_t *sock = shmipc_sock_new (type, NULL);
    if (!sock)
        return NULL;
    const char *capacity = getenv ("SHMIPC_RL_CAPACITY");
    if (capacity)
        shmipc_set_capacity (sock, (size_t) atol (capacity));
    zsock_set_rcvtimeo (sock, RL_PATIENCE_MS);
    zsock_set_sndtimeo (sock, RL_PATIENCE_MS);
    return sock;
}

static int
s_attach (zsock_t *sock, const char *endpoint)
{
    if (shmipc_attach (sock, endpoint, false)) {
        fprintf (stderr, "reliability-peer: attach %s: %s\n", endpoint, strerror (errno));
        return -1;
    }
    return 0;
}

//  True once our stdin is closed (or says anything).
static bool
s_stdin_closed (int timeout_ms)
{
    struct pollfd item = { .fd = STDIN_FILENO, .events = POLLIN };
    return poll (&item, 1, timeout_ms) > 0;
}

//  --------------------------------------------------------------------------
//  clients

typedef struct {
    zsock_t *sock;              //  Owned
    void *handle;               //  zsock_resolve (sock)
    char tag [16];              //  "c<i>"
    long sent;                  //  Requests sent (the next seq)
    long received;              //  Echoes received (the next expected)
    int64_t waiting_since;      //  When the oldest echo in flight was due
    int64_t next_send;          //  Pacing: when the next request may go
} s_client_t;

//  The payload size of request seq: every size from 0 to max comes up.
static size_t
s_payload_size (long seq, size_t max)
{
    return max ? (size_t) ((uint64_t) seq * 7919 % (max + 1)) : 0;
}

//  Take every echo waiting for client. Returns 0, or -1 on a wrong one.
static int
s_client_take (s_client_t *client, int index)
{
    while (zsock_events (client->sock) & ZMQ_POLLIN) {
        char tag [16];
        long seq;
        if (pt_recv_tagged (client->handle, tag, sizeof tag, &seq)) {
            tu_say ("FAIL client %d: malformed echo after %ld", index, client->received);
            return -1;
        }
        if (strcmp (tag, client->tag) || seq != client->received) {
            tu_say ("FAIL client %d: got %s:%ld, expected %s:%ld", index, tag, seq,
                   client->tag, client->received);
            return -1;
        }
        client->received++;
        client->waiting_since = zclock_mono ();
    }
    return 0;
}

static int
s_clients (const char *endpoint, int count, long window, size_t size, int pace_us,
           const char *prefix)
{
    s_client_t *clients = (s_client_t *) calloc ((size_t) count, sizeof *clients);
    zmq_pollitem_t *items = (zmq_pollitem_t *) calloc ((size_t) count + 1, sizeof *items);
    if (!clients || !items)
        return 1;
    int rc = 0;
    for (int index = 0; index < count && rc == 0; index++) {
        s_client_t *client = &clients [index];
        client->sock = s_socket (ZMQ_DEALER, endpoint);
        if (!client->sock) {
            rc = 1;
            break;
        }
        if (prefix) {
            char id [64];
            snprintf (id, sizeof id, "%s-%d", prefix, index);
            zsock_set_identity (client->sock, id);
        }
        zsock_set_reconnect_ivl (client->sock, 20);
        if (s_attach (client->sock, endpoint))
            rc = 1;
        client->handle = zsock_resolve (client->sock);
        snprintf (client->tag, sizeof client->tag, "c%d", index);
        client->waiting_since = zclock_mono ();
    }
    items [count] = (zmq_pollitem_t) { .fd = STDIN_FILENO, .events = ZMQ_POLLIN };
    bool stopping = false, ready = false;
    long total = 0;
    while (rc == 0) {
        int64_t now = zclock_mono ();
        int64_t wake = now + 1000;
        bool drained = true, all_answered = true;
        for (int index = 0; index < count && rc == 0; index++) {
            s_client_t *client = &clients [index];
            while (!stopping && client->sent - client->received < window
            &&     (pace_us == 0 || now >= client->next_send)) {
                if (client->sent == client->received)
                    client->waiting_since = now;
                if (pt_send_tagged (client->handle, client->tag, client->sent,
                                    s_payload_size (client->sent, size), ZMQ_DONTWAIT) == -1) {
                    if (zmq_errno () != EAGAIN)
                        rc = 1;
                    break;
                }
                client->sent++;
                if (pace_us)
                    client->next_send = now + (pace_us + 999) / 1000;
            }
            if (pace_us && !stopping && client->next_send < wake)
                wake = client->next_send;
            if (client->sent > client->received) {
                drained = false;
                if (now - client->waiting_since > S_LOST_MS) {
                    tu_say ("FAIL client %d: no echo of %s:%ld for %d ms", index,
                           client->tag, client->received, S_LOST_MS);
                    rc = 1;
                }
            }
            all_answered &= client->received > 0;
            items [index] = (zmq_pollitem_t) { .socket = client->handle, .events = ZMQ_POLLIN };
        }
        if (rc)
            break;
        if (!ready && all_answered) {
            ready = true;
            tu_say ("ready");
        }
        if (stopping && drained)
            break;
        long timeout = wake > now ? (long) (wake - now) : 0;
        if (zmq_poll (items, stopping ? count : count + 1, timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            rc = 1;
            break;
        }
        for (int index = 0; index < count && rc == 0; index++)
            if (items [index].revents & ZMQ_POLLIN)
                rc = s_client_take (&clients [index], index) ? 1 : 0;
        //  End of file on a pipe is POLLHUP alone (ZMQ_POLLERR here)
        if (!stopping && items [count].revents)
            stopping = true;
    }
    for (int index = 0; index < count; index++) {
        s_client_t *client = &clients [index];
        if (rc && client->sock) {
            //  For the post-mortem: where its messages are
            shmipc_stats_t stats;
            shmipc_sock_stats (client->sock, &stats);
            fprintf (stderr, "reliability-peer: client %d: sent %ld, received %ld; "
                     "over shm: %" PRIu64 " out, %" PRIu64 " in, %" PRIu64 " peers\n",
                     index, client->sent, client->received, stats.msgs_out,
                     stats.msgs_in, stats.peers);
        }
        total += client->received;
        shmipc_sock_destroy (&client->sock);
    }
    if (rc == 0)
        tu_say ("ok %d %ld", count, total);
    free (clients);
    free (items);
    return rc;
}

//  --------------------------------------------------------------------------
//  server

static int
s_server (const char *endpoint)
{
    zsock_t *router = s_socket (ZMQ_ROUTER, endpoint);
    if (!router || s_attach (router, endpoint))
        return 1;
    zsock_set_rcvtimeo (router, -1);
    tu_say ("ready");
    while (true) {
        zmsg_t *msg = zmsg_recv (router);
        if (!msg)
            break;
        zmsg_send (&msg, router);
    }
    shmipc_sock_destroy (&router);
    return 0;
}

//  --------------------------------------------------------------------------
//  storm

static int
s_storm (const char *endpoint, size_t size, bool block)
{
    zsock_t *dealer = s_socket (ZMQ_DEALER, endpoint);
    if (!dealer)
        return 1;
    zsock_set_sndhwm (dealer, 10);
    if (s_attach (dealer, endpoint))
        return 1;
    void *handle = zsock_resolve (dealer);
    tu_say ("ready");
    if (block) {
        zsock_set_sndtimeo (dealer, 100);
        for (long seq = 0; ; seq++)
            if (pt_send_tagged (handle, "storm", seq, size, 0) == -1) {
                tu_say ("blocked %ld", seq);
                break;
            }
        while (!s_stdin_closed (-1))
            ;
    }
    else {
        bool said = false;
        for (long seq = 0; !s_stdin_closed (0); ) {
            if (pt_send_tagged (handle, "storm", seq, size, ZMQ_DONTWAIT) != -1) {
                seq++;
                if (!said) {
                    tu_say ("sending");
                    said = true;
                }
            }
            else {
                zmq_pollitem_t item = { .socket = handle, .events = ZMQ_POLLIN | ZMQ_POLLOUT };
                zmq_poll (&item, 1, 10);
            }
            zmsg_t *echo;
            while ((zsock_events (dealer) & ZMQ_POLLIN) && (echo = zmsg_recv (dealer)))
                zmsg_destroy (&echo);
        }
    }
    shmipc_sock_destroy (&dealer);
    return 0;
}

//  --------------------------------------------------------------------------
//  push

static int
s_push (const char *endpoint, const char *tag, size_t size, long count)
{
    zsock_t *push = s_socket (ZMQ_PUSH, endpoint);
    if (!push || s_attach (push, endpoint))
        return 1;
    zsock_set_sndtimeo (push, -1);
    tu_say ("ready");
    for (long seq = 0; seq < count; seq++)
        if (pt_send_tagged (zsock_resolve (push), tag, seq, size, 0) == -1) {
            tu_say ("FAIL send %ld: %s", seq, zmq_strerror (zmq_errno ()));
            shmipc_sock_destroy (&push);
            return 1;
        }
    tu_say ("sent %ld", count);
    while (!s_stdin_closed (-1))
        ;
    zsock_set_linger (push, 0);
    shmipc_sock_destroy (&push);
    return 0;
}

//  --------------------------------------------------------------------------
//  slowpull

static int
s_slowpull (const char *endpoint, int rcvhwm, int delay_us, long count)
{
    zsock_t *pull = s_socket (ZMQ_PULL, endpoint);
    if (!pull)
        return 1;
    zsock_set_rcvhwm (pull, rcvhwm);
    if (s_attach (pull, endpoint))
        return 1;
    tu_say ("ready");
    int rc = 0;
    for (long expected = 0; expected < count; expected++) {
        char tag [32];
        long seq;
        if (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &seq) || seq != expected) {
            tu_say ("FAIL message %ld of %ld missing or wrong", expected, count);
            rc = 1;
            break;
        }
        if (delay_us)
            usleep ((useconds_t) delay_us);
    }
    if (rc == 0)
        tu_say ("ok %ld", count);
    shmipc_sock_destroy (&pull);
    return rc;
}

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    if (!tu_child_init ())
        return 2;
    const char *role = argc > 1 ? argv [1] : "";
    if (streq (role, "clients") && (argc == 7 || argc == 8))
        return s_clients (argv [2], atoi (argv [3]), atol (argv [4]),
                          (size_t) atol (argv [5]), atoi (argv [6]),
                          argc == 8 ? argv [7] : NULL);
    if (streq (role, "server") && argc == 3)
        return s_server (argv [2]);
    if (streq (role, "storm") && argc == 5)
        return s_storm (argv [2], (size_t) atol (argv [3]), streq (argv [4], "block"));
    if (streq (role, "push") && argc == 6)
        return s_push (argv [2], argv [3], (size_t) atol (argv [4]), atol (argv [5]));
    if (streq (role, "slowpull") && argc == 6)
        return s_slowpull (argv [2], atoi (argv [3]), atoi (argv [4]), atol (argv [5]));
    fprintf (stderr, "usage: shmipc-reliability-peer clients|server|storm|push|slowpull ...\n");
    return 2;
}
