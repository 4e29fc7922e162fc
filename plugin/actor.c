/*  =========================================================================
    actor - the shmipc actor: serves the shm:// endpoints of one user socket

    Owns: every listener, connection (peer) and bridge socket of those
    endpoints, and the epoll set that watches them. Never touches the
    user's socket: it reaches it only through the socket's private inproc
    endpoint, so ZeroMQ's one-thread-per-socket rule holds.

    One loop: epoll over the pipe's ZMQ_FD, the listeners, and each peer's
    descriptors (channel socket, bridge's ZMQ_FD). Only connections that
    are ready, or had work left, are visited, so idle connections cost
    nothing per message. Idle, the actor sleeps in epoll_wait.

    Limits a peer cannot push past (docs/reliability.md):
      - at most S_PENDING_MAX accepted connections per listener that have
        not finished their handshake and greeting; while there are that
        many, the listener is not read and the kernel's backlog holds (and
        then refuses) the rest;
      - when accept fails for want of descriptors or memory, the listener
        rests S_ACCEPT_REST_MS (logged once per episode), so the actor
        never spins at the limit;
      - a connection whose channel or bridge cannot be made is refused and
        logged; the others are served.

    Command protocol on the pipe (replies marked <-):
      BIND endpoint inproc routing_id type sndhwm rcvhwm ivl ivl_max
            immediate capacity maxmsgsize max_peer_capacity uids
            picture "sssbiiiiii888s" (maxmsgsize: 0 for no limit;
            max_peer_capacity: 0 for the channel's default; uids: extra
            uids allowed, comma-separated, may be empty); <- signal 0, or
            an errno
      CONNECT (same arguments)          <- signal 0 (the connection is made
            in the background and remade after failures, like zmq_connect),
            or an errno (EINVAL: bad endpoint)
      UNBIND endpoint                   <- signal 0, or ENOENT
      DISCONNECT endpoint               <- signal 0, or ENOENT
      STATS                             <- "STATS" "key=value ..." totals,
            then one "key=value ..." frame per connected peer
      STOP                              <- signal 0 once no new bridge can
            appear: listeners closed, connections that would make their
            own bridge closed or not remade (those that reuse their
            endpoint's lasting bridge go on, for LINGER). Sent before the
            user's socket closes: a bridge connecting to its inproc
            endpoint after that would wait for it in libzmq for good
      LINGER ms                         <- signal 0 once every bridge is
            drained into its ring, or ms passed (-1: no limit)
      $TERM                             ends the actor (closes everything)
    =========================================================================
*/

#include "shmipc.h"
#include "peer.h"
#include "greeting.h"
#include "util.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>

//  Messages moved per peer and direction before looking at the others.
#define S_BATCH     256

//  Accepted connections per listener still in their handshake or greeting.
#define S_PENDING_MAX       128

//  How long a listener rests after accept ran out of descriptors (ms).
#define S_ACCEPT_REST_MS    100

//  First reconnect interval when ZMQ_RECONNECT_IVL is 0 (ms).
#define S_RECONNECT_MS      100

//  Events taken from epoll per wait.
#define S_EVENTS            64

//  Spinning: after messages went both ways (within S_SPIN_WINDOW_US), the
//  loop looks at the peers that moved them for up to S_SPIN_US before it
//  sleeps, so that a conversation in progress does not pay a sleep and a
//  wake-up per message. Bounded, and only after traffic: an idle actor
//  never spins. Nor does it spin when every core is taken (the kernel's
//  count of runnable threads, in /proc/loadavg, is above the number of
//  cores): the time would be taken from threads that have work, often the
//  very ones we wait for. SHMIPC_SPIN_US in the environment changes the
//  bound (0 turns spinning off, at most 10000).
#define S_SPIN_US           100
#define S_SPIN_US_MAX       10000
#define S_SPIN_WINDOW_US    2000

//  What an entry of the epoll set stands for.
typedef enum {
    S_WATCH_PIPE,                   //  The command pipe's ZMQ_FD
    S_WATCH_LISTENER,               //  A listener (object: s_endpoint_t)
    S_WATCH_LINK                    //  A peer's descriptors (s_link_t)
} s_watch_kind_t;

//  The data.ptr of an epoll entry.
typedef struct {
    s_watch_kind_t kind;            //  See s_watch_kind_t
    void *object;                   //  The endpoint or link, or NULL
} s_watch_t;

//  One shm:// endpoint we bind or connect.
typedef struct {
    s_watch_t watch;                //  Its listener's epoll entry
    char *endpoint;                 //  As given; owned
    bool bind;                      //  Bound (listener) or connected
    shmipc_listener_t *listener;    //  Bind: our listener; owned
    bool listening;                 //  Bind: the listener is in the set
    int64_t rest_until;             //  Bind: no accepts before (ms; -1:
                                    //  not resting)
    bool rest_logged;               //  Bind: this rest was logged
    size_t pending;                 //  Bind: connections not yet greeted
    bool pending_logged;            //  Bind: the pending limit was logged
    shmipc__sockinfo_t info;        //  The user socket at bind/connect time
    shmipc__peer_t *peer;           //  Connect: the live connection, if any
    void *bridge;                   //  Connect: a bridge that outlives
                                    //  connections (lent to peers); owned
    int ivl;                        //  Connect: ZMQ_RECONNECT_IVL (-1: never)
    int ivl_max;                    //  Connect: ZMQ_RECONNECT_IVL_MAX
    int backoff;                    //  Connect: the interval in force
    int64_t reconnect_at;           //  Connect: when to try again (-1: not)
    uid_t uids [16];                //  Peers' uids allowed besides ours and
                                    //  root's
    size_t nuids;                   //  How many
} s_endpoint_t;

//  One connection with the endpoint it came from.
typedef struct _s_link_t {
    s_watch_t watch;                //  Its peer's epoll entries
    shmipc__peer_t *peer;           //  Owned (NULL once closed)
    s_endpoint_t *endpoint;         //  Not owned
    size_t slot;                    //  Its index in links []
    bool pending;                   //  In its handshake or greeting:
                                    //  counted in endpoint->pending
    bool closed;                    //  Closed; freed at the end of the turn
    uint64_t queued;                //  The turn it was last queued for
    int64_t moved_at;               //  When it last moved messages (us)
    struct _s_link_t *next_closed;  //  Next in self->closed
} s_link_t;

//  A growable array of pointers.
typedef struct {
    void **items;                   //  The pointers; owned (not what they
                                    //  point to)
    size_t count;                   //  How many
    size_t slots;                   //  Room in items []
} s_array_t;

//  Counters of peers that have gone, added to the live ones in STATS.
typedef struct {
    uint64_t accepted;              //  Connections accepted
    uint64_t connected;             //  Connections made
    uint64_t closed;                //  Connections closed
    uint64_t errors;                //  Of those, closed by an error
    shmipc__peer_stats_t gone;      //  Traffic of closed connections
} s_totals_t;

typedef struct {
    zsock_t *pipe;                  //  Actor command pipe
    s_watch_t pipe_watch;           //  Its epoll entry
    bool pipe_dirty;                //  Used since ZMQ_EVENTS last said it
                                    //  was empty: look before sleeping
    int epfd;                       //  The epoll set; owned
    bool terminated;                //  $TERM received
    s_array_t endpoints;            //  Our endpoints (s_endpoint_t); owned
    s_array_t links;                //  Our connections (s_link_t); owned
    s_array_t pending;              //  Links still greeting (not owned)
    s_array_t run;                  //  Links to process this turn
    s_array_t next;                 //  Links with work left for the next
    s_array_t recent;               //  Links that moved messages in the
                                    //  last turn (for the spin)
    s_link_t *closed;               //  Links closed this turn, freed at
                                    //  its end; owned
    uint64_t turn;                  //  Turn counter (s_link_t.queued)
    bool ran;                       //  This turn's links have run: what is
                                    //  queued now runs next turn
    s_totals_t totals;              //  Counters
    int64_t linger_until;           //  LINGER deadline (-1: none pending;
                                    //  -2: no limit)
    bool lingering;                 //  A LINGER reply is owed
    bool stopped;                   //  STOP received: no new connections
    int spin_us;                    //  Spin bound (S_SPIN_US or the
                                    //  environment's), 0: no spin
    int loadavg;                    //  /proc/loadavg, open (-1: none)
    long cores;                     //  Cores online
    int64_t in_at;                  //  When messages last came in (us)
    int64_t out_at;                 //  When messages last went out (us)
} self_t;

//  --------------------------------------------------------------------------
//  Arrays

//  Append item. Returns 0, or -1 (ENOMEM).
static int
s_array_push (s_array_t *self, void *item)
{
    if (self->count == self->slots) {
        size_t slots = self->slots ? self->slots * 2 : 16;
        void **items = (void **) realloc (self->items, slots * sizeof *items);
        if (!items) {
            errno = ENOMEM;
            return -1;
        }
        self->items = items;
        self->slots = slots;
    }
    self->items [self->count++] = item;
    return 0;
}

//  Remove item (order not kept). Returns true if it was there.
static bool
s_array_remove (s_array_t *self, void *item)
{
    for (size_t index = 0; index < self->count; index++)
        if (self->items [index] == item) {
            self->items [index] = self->items [--self->count];
            return true;
        }
    return false;
}

static void
s_array_free (s_array_t *self)
{
    free (self->items);
    *self = (s_array_t) { 0 };
}

#define S_ENDPOINT(self, index) ((s_endpoint_t *) (self)->endpoints.items [index])
#define S_LINK(array, index)    ((s_link_t *) (array)->items [index])

//  --------------------------------------------------------------------------
//  Endpoints and links

static void
s_endpoint_destroy (s_endpoint_t **self_p)
{
    if (*self_p) {
        s_endpoint_t *self = *self_p;
        //  Closing the listener's descriptor takes it out of the epoll set
        shmipc_listener_destroy (&self->listener);
        shmipc__bridge_destroy (&self->bridge);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

//  Put the listener in the epoll set, or take it out, as its state wants:
//  not while it rests after running out of descriptors, nor while it has
//  S_PENDING_MAX connections still greeting.
static void
s_listener_sync (self_t *self, s_endpoint_t *endpoint)
{
    if (!endpoint->listener)
        return;
    bool want = endpoint->rest_until < 0 && endpoint->pending < S_PENDING_MAX;
    if (want == endpoint->listening)
        return;
    int fd = shmipc_listener_fd (endpoint->listener);
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = &endpoint->watch };
    if (epoll_ctl (self->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &event) == 0)
        endpoint->listening = want;
    if (endpoint->pending < S_PENDING_MAX)
        endpoint->pending_logged = false;
}

//  The link has finished its handshake and greeting, or closed: it no
//  longer counts against its listener's pending limit.
static void
s_link_unpend (self_t *self, s_link_t *link)
{
    if (!link->pending)
        return;
    link->pending = false;
    s_array_remove (&self->pending, link);
    if (link->endpoint && link->endpoint->pending) {
        link->endpoint->pending--;
        s_listener_sync (self, link->endpoint);
    }
}

//  True if a live connection already has this routing id (for the user's
//  ROUTER: see shmipc__peer_set_id_check).
static bool
s_id_taken (void *arg, const uint8_t *id, size_t size)
{
    self_t *self = (self_t *) arg;
    for (size_t index = 0; index < self->links.count; index++) {
        s_link_t *link = S_LINK (&self->links, index);
        if (link->peer && shmipc__peer_has_id (link->peer, id, size))
            return true;
    }
    return false;
}

//  Queue link to be processed this turn (once), or next turn (queue is
//  self->next, or this turn's links have run already).
static void
s_queue (self_t *self, s_link_t *link, s_array_t *queue)
{
    if (self->ran)
        queue = &self->next;
    uint64_t turn = self->turn + (queue == &self->next);
    if (link->closed || link->queued == turn)
        return;
    if (s_array_push (queue, link) == 0)
        link->queued = turn;
}

//  Start a connection over sock (taken) for endpoint. Returns 0, or -1 (the
//  socket is closed).
static int
s_link_new (self_t *self, int sock, int role, s_endpoint_t *endpoint, void *bridge)
{
    s_link_t *link = (s_link_t *) zmalloc (sizeof *link);
    if (!link || s_array_push (&self->links, link)) {
        free (link);
        close (sock);
        return -1;
    }
    link->watch = (s_watch_t) { S_WATCH_LINK, link };
    link->endpoint = endpoint;
    link->slot = self->links.count - 1;
    link->peer = shmipc__peer_new (sock, role, &endpoint->info, bridge,
                                   endpoint->endpoint, self->epfd, &link->watch);
    if (!link->peer || s_array_push (&self->pending, link)) {
        int saved = errno;
        if (link->peer)
            shmipc__peer_destroy (&link->peer);
        else
            close (sock);
        self->links.count--;
        free (link);
        errno = saved;
        return -1;
    }
    link->pending = true;
    if (endpoint->bind)
        endpoint->pending++;
    if (endpoint->info.type == ZMQ_ROUTER)
        shmipc__peer_set_id_check (link->peer, s_id_taken, self);
    if (!endpoint->bind)
        endpoint->peer = link->peer;
    s_queue (self, link, &self->run);      //  A first turn straight away
    return 0;
}

//  True if endpoint lends its connections a bridge that outlives them
//  (a connecting endpoint of a type whose bridge persists).
static bool
s_bridge_lasts (s_endpoint_t *endpoint)
{
    return endpoint && !endpoint->bind && endpoint->bridge
        && shmipc__bridge_persists (endpoint->info.type);
}

//  Count a finished peer's traffic, destroy it, and move the link to the
//  closed ones (freed at the end of the turn: events and queues of this
//  turn may still name it).
static void
s_link_close (self_t *self, s_link_t *link)
{
    if (link->closed)
        return;
    shmipc__peer_stats_t stats;
    shmipc__peer_stats (link->peer, &stats);
    self->totals.gone.msgs_out += stats.msgs_out;
    self->totals.gone.bytes_out += stats.bytes_out;
    self->totals.gone.msgs_in += stats.msgs_in;
    self->totals.gone.bytes_in += stats.bytes_in;
    self->totals.gone.wakeups += stats.wakeups;
    self->totals.closed++;
    const char *reason = shmipc__peer_reason (link->peer);
    if (*reason && strcmp (reason, "peer closed the connection") != 0)
        self->totals.errors++;
    s_link_unpend (self, link);
    s_endpoint_t *endpoint = link->endpoint;
    bool remade = endpoint && !endpoint->bind && endpoint->peer == link->peer;
    if (remade) {
        //  Connections we made are remade, as ZeroMQ reconnects
        endpoint->peer = NULL;
        if (endpoint->ivl >= 0 && (!self->stopped || s_bridge_lasts (endpoint))) {
            endpoint->reconnect_at = zclock_mono () + endpoint->backoff;
            if (endpoint->ivl_max > endpoint->ivl) {
                endpoint->backoff *= 2;
                if (endpoint->backoff > endpoint->ivl_max)
                    endpoint->backoff = endpoint->ivl_max;
            }
        }
    }
    shmipc__peer_destroy (&link->peer);
    //  A subscriber's bridge served this connection; the next one makes its
    //  own, so that the user's socket sends its subscriptions again
    if (remade && endpoint->bridge && !shmipc__bridge_persists (endpoint->info.type))
        shmipc__bridge_destroy (&endpoint->bridge);
    //  Out of links [], keeping every slot right
    s_link_t *last = S_LINK (&self->links, self->links.count - 1);
    self->links.items [link->slot] = last;
    last->slot = link->slot;
    self->links.count--;
    link->closed = true;
    link->endpoint = NULL;
    link->next_closed = self->closed;
    self->closed = link;
}

//  Remove every link that belongs to endpoint.
static void
s_close_links_of (self_t *self, s_endpoint_t *endpoint)
{
    for (size_t index = self->links.count; index-- > 0; ) {
        s_link_t *link = S_LINK (&self->links, index);
        if (link->endpoint == endpoint) {
            //  No reconnect: the endpoint goes
            if (endpoint->peer == link->peer)
                endpoint->peer = NULL;
            s_link_unpend (self, link);
            link->endpoint = NULL;
            s_link_close (self, link);
        }
    }
}

//  Add endpoint to ours. Returns 0, or -1 (and destroys it).
static int
s_endpoint_add (self_t *self, s_endpoint_t *endpoint)
{
    if (s_array_push (&self->endpoints, endpoint)) {
        s_endpoint_destroy (&endpoint);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static s_endpoint_t *
s_endpoint_find (self_t *self, const char *endpoint, bool bind)
{
    for (size_t index = 0; index < self->endpoints.count; index++)
        if (S_ENDPOINT (self, index)->bind == bind
        &&  streq (S_ENDPOINT (self, index)->endpoint, endpoint))
            return S_ENDPOINT (self, index);
    return NULL;
}

//  Return true if a peer running as uid may talk to endpoint.
static bool
s_uid_allowed (s_endpoint_t *endpoint, uid_t uid)
{
    if (uid == geteuid () || uid == 0)
        return true;
    for (size_t index = 0; index < endpoint->nuids; index++)
        if (endpoint->uids [index] == uid)
            return true;
    return false;
}

//  Try to connect now; on failure, schedule the next try.
static void
s_endpoint_connect (self_t *self, s_endpoint_t *endpoint)
{
    endpoint->reconnect_at = -1;
    int sock = shmipc_endpoint_connect (endpoint->endpoint,
                                        SHMIPC_DONTWAIT | SHMIPC_ANY_UID);
    uid_t uid = (uid_t) -1;
    if (sock >= 0
    &&  (shmipc_endpoint_peer_uid (sock, &uid) || !s_uid_allowed (endpoint, uid))) {
        shmipc__log ("%s: refused server running as uid %u", endpoint->endpoint,
                     (unsigned) uid);
        self->totals.errors++;
        close (sock);
        sock = -1;
        errno = EACCES;
    }
    if (sock < 0 || s_link_new (self, sock, SHMIPC_CLIENT, endpoint, endpoint->bridge)) {
        shmipc__log ("%s: connect failed: %s", endpoint->endpoint, strerror (errno));
        if (endpoint->ivl >= 0)
            endpoint->reconnect_at = zclock_mono () + endpoint->backoff;
        return;
    }
    endpoint->backoff = endpoint->ivl > 0 ? endpoint->ivl : S_RECONNECT_MS;
    self->totals.connected++;
}

//  --------------------------------------------------------------------------
//  Commands

//  Read the arguments of BIND and CONNECT into a new endpoint.
static s_endpoint_t *
s_endpoint_from (zmsg_t *msg, bool bind)
{
    char *name = zmsg_popstr (msg);
    char *inproc = zmsg_popstr (msg);
    zframe_t *routing_id = zmsg_pop (msg);
    char *numbers [9];
    for (int index = 0; index < 9; index++)
        numbers [index] = zmsg_popstr (msg);
    char *uids = zmsg_popstr (msg);
    s_endpoint_t *self = NULL;
    struct sockaddr_un addr;
    socklen_t addr_len;
    if (!name || !inproc || !routing_id || !numbers [8] || !uids
    ||  strlen (inproc) >= sizeof self->info.inproc
    ||  zframe_size (routing_id) > sizeof self->info.routing_id
    ||  shmipc_endpoint_parse (name, &addr, &addr_len)) {
        errno = EINVAL;
        goto done;
    }
    self = (s_endpoint_t *) zmalloc (sizeof *self);
    if (!self)
        goto done;
    self->endpoint = name;
    name = NULL;
    self->bind = bind;
    self->watch = (s_watch_t) { S_WATCH_LISTENER, self };
    self->reconnect_at = -1;
    self->rest_until = -1;
    strcpy (self->info.inproc, inproc);
    self->info.routing_id_size = zframe_size (routing_id);
    if (self->info.routing_id_size)
        memcpy (self->info.routing_id, zframe_data (routing_id), self->info.routing_id_size);
    self->info.type = atoi (numbers [0]);
    self->info.sndhwm = atoi (numbers [1]);
    self->info.rcvhwm = atoi (numbers [2]);
    self->ivl = atoi (numbers [3]);
    self->ivl_max = atoi (numbers [4]);
    self->info.immediate = atoi (numbers [5]) != 0;
    self->info.capacity = (size_t) strtoull (numbers [6], NULL, 10);
    self->info.maxmsgsize = (size_t) strtoull (numbers [7], NULL, 10);
    self->info.max_peer_capacity = (size_t) strtoull (numbers [8], NULL, 10);
    self->backoff = self->ivl > 0 ? self->ivl : S_RECONNECT_MS;
    for (char *cursor = uids; *cursor && self->nuids < 16; ) {
        char *end;
        unsigned long uid = strtoul (cursor, &end, 10);
        if (end == cursor)
            break;
        self->uids [self->nuids++] = (uid_t) uid;
        cursor = *end == ',' ? end + 1 : end;
    }
    if (!shmipc__type_supported (self->info.type)) {
        s_endpoint_destroy (&self);
        errno = ENOCOMPATPROTO;
    }
done:
    free (name);
    free (inproc);
    zframe_destroy (&routing_id);
    for (int index = 0; index < 9; index++)
        free (numbers [index]);
    free (uids);
    return self;
}

//  Close endpoint's links and remove it from ours.
static void
s_command_unlisten (self_t *self, s_endpoint_t *endpoint)
{
    s_close_links_of (self, endpoint);
    s_array_remove (&self->endpoints, endpoint);
    s_endpoint_destroy (&endpoint);
}

static int
s_command_bind (self_t *self, zmsg_t *msg)
{
    s_endpoint_t *endpoint = s_endpoint_from (msg, true);
    if (!endpoint)
        return -1;
    if (s_endpoint_find (self, endpoint->endpoint, true)) {
        s_endpoint_destroy (&endpoint);
        errno = EADDRINUSE;
        return -1;
    }
    endpoint->listener = shmipc_listener_new (endpoint->endpoint);
    if (!endpoint->listener) {
        int saved = errno;
        s_endpoint_destroy (&endpoint);
        errno = saved;
        return -1;
    }
    for (size_t index = 0; index < endpoint->nuids; index++)
        shmipc_listener_allow_uid (endpoint->listener, endpoint->uids [index]);
    if (s_endpoint_add (self, endpoint))
        return -1;
    s_listener_sync (self, endpoint);
    if (!endpoint->listening) {
        s_command_unlisten (self, endpoint);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

static int
s_command_connect (self_t *self, zmsg_t *msg)
{
    s_endpoint_t *endpoint = s_endpoint_from (msg, false);
    if (!endpoint)
        return -1;
    bool subscriber = endpoint->info.type == ZMQ_SUB || endpoint->info.type == ZMQ_XSUB;
    //  With ZMQ_IMMEDIATE, as libzmq, nothing is queued for a connection
    //  that is not up: no bridge (no pipe in the user's socket) until then
    if ((shmipc__bridge_persists (endpoint->info.type) && !endpoint->info.immediate)
    ||  subscriber) {
        //  Messages sent before the connection is up wait in this bridge;
        //  so do a subscriber's subscriptions (its bridge serves only the
        //  first connection: see s_link_close)
        endpoint->bridge = shmipc__bridge_new (&endpoint->info, NULL, 0);
        if (!endpoint->bridge) {
            int saved = errno;
            s_endpoint_destroy (&endpoint);
            errno = saved;
            return -1;
        }
    }
    if (s_endpoint_add (self, endpoint))
        return -1;
    s_endpoint_connect (self, endpoint);
    return 0;
}

//  UNBIND or DISCONNECT endpoint. As libzmq's zmq_unbind and
//  zmq_disconnect, either undoes either kind; the kind asked for first.
static int
s_command_remove (self_t *self, zmsg_t *msg, bool bind)
{
    char *name = zmsg_popstr (msg);
    s_endpoint_t *endpoint = name ? s_endpoint_find (self, name, bind) : NULL;
    if (!endpoint && name)
        endpoint = s_endpoint_find (self, name, !bind);
    free (name);
    if (!endpoint) {
        errno = ENOENT;
        return -1;
    }
    s_command_unlisten (self, endpoint);
    return 0;
}

static void
s_command_stats (self_t *self)
{
    s_totals_t *totals = &self->totals;
    shmipc__peer_stats_t sum = totals->gone;
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "STATS");
    zmsg_t *peers = zmsg_new ();
    size_t live = 0;
    for (size_t index = 0; index < self->links.count; index++) {
        s_link_t *link = S_LINK (&self->links, index);
        shmipc__peer_stats_t stats;
        shmipc__peer_stats (link->peer, &stats);
        sum.msgs_out += stats.msgs_out;
        sum.bytes_out += stats.bytes_out;
        sum.msgs_in += stats.msgs_in;
        sum.bytes_in += stats.bytes_in;
        sum.wakeups += stats.wakeups;
        if (!shmipc__peer_active (link->peer))
            continue;
        live++;
        zmsg_addstrf (peers, "endpoint=%s msgs_out=%" PRIu64 " bytes_out=%" PRIu64
                      " msgs_in=%" PRIu64 " bytes_in=%" PRIu64 " wakeups=%" PRIu64,
                      shmipc__peer_endpoint (link->peer), stats.msgs_out,
                      stats.bytes_out, stats.msgs_in, stats.bytes_in, stats.wakeups);
    }
    zmsg_addstrf (reply, "peers=%zu accepted=%" PRIu64 " connected=%" PRIu64
                  " closed=%" PRIu64 " errors=%" PRIu64 " msgs_out=%" PRIu64
                  " bytes_out=%" PRIu64 " msgs_in=%" PRIu64 " bytes_in=%" PRIu64
                  " wakeups=%" PRIu64,
                  live, totals->accepted, totals->connected, totals->closed,
                  totals->errors, sum.msgs_out, sum.bytes_out, sum.msgs_in,
                  sum.bytes_in, sum.wakeups);
    zframe_t *frame;
    while ((frame = zmsg_pop (peers)))
        zmsg_append (reply, &frame);
    zmsg_destroy (&peers);
    zmsg_send (&reply, self->pipe);
}

//  Handle one command from the pipe.
//  STOP: from now on no new bridge may appear. Listeners close; a
//  connecting endpoint goes on (connecting, reconnecting: LINGER may need
//  it) only if it lends every connection its lasting bridge.
static void
s_command_stop (self_t *self)
{
    self->stopped = true;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        s_endpoint_t *endpoint = S_ENDPOINT (self, index);
        shmipc_listener_destroy (&endpoint->listener);
        endpoint->listening = false;
        if (!s_bridge_lasts (endpoint))
            endpoint->reconnect_at = -1;
    }
    //  Not greeted yet, without a bridge: they would make one when they are
    for (size_t index = self->pending.count; index-- > 0; ) {
        s_link_t *link = S_LINK (&self->pending, index);
        if (!s_bridge_lasts (link->endpoint))
            s_link_close (self, link);
    }
}

static void
s_self_handle_pipe (self_t *self)
{
    zmsg_t *msg = zmsg_recv (self->pipe);
    if (!msg) {
        self->terminated = true;        //  Interrupted
        return;
    }
    char *command = zmsg_popstr (msg);
    if (!command)
        command = strdup ("");
    int rc = 0;
    bool reply = true;          //  Commands that can fail answer a signal
    if (streq (command, "$TERM")) {
        self->terminated = true;
        reply = false;
    }
    else
    if (streq (command, "BIND"))
        rc = s_command_bind (self, msg) ? errno : 0;
    else
    if (streq (command, "CONNECT"))
        rc = s_command_connect (self, msg) ? errno : 0;
    else
    if (streq (command, "UNBIND"))
        rc = s_command_remove (self, msg, true) ? errno : 0;
    else
    if (streq (command, "DISCONNECT"))
        rc = s_command_remove (self, msg, false) ? errno : 0;
    else
    if (streq (command, "STATS")) {
        s_command_stats (self);
        reply = false;
    }
    else
    if (streq (command, "STOP"))
        s_command_stop (self);
    else
    if (streq (command, "LINGER")) {
        char *ms = zmsg_popstr (msg);
        int linger = ms ? atoi (ms) : 0;
        free (ms);
        self->lingering = true;
        self->linger_until = linger < 0 ? -2 : zclock_mono () + linger;
        reply = false;          //  Answered when drained
    }
    else {
        zsys_error ("shmipc actor: invalid command '%s'", command);
        rc = EINVAL;
    }
    if (reply)
        zsock_signal (self->pipe, (byte) (rc > 255 ? EPROTO : rc));
    free (command);
    zmsg_destroy (&msg);
}

//  --------------------------------------------------------------------------
//  The loop

//  Accept the waiting connections on endpoint's listener, up to its limit
//  of pending ones.
static void
s_accept (self_t *self, s_endpoint_t *endpoint)
{
    while (endpoint->listener && endpoint->pending < S_PENDING_MAX) {
        int sock = shmipc_listener_accept (endpoint->listener);
        if (sock < 0) {
            if (errno == EACCES) {
                self->totals.errors++;      //  Refused by uid, logged
                continue;
            }
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                //  The connection stays in the backlog and the listener
                //  readable: rest instead of spinning on it
                if (!endpoint->rest_logged)
                    shmipc__log ("%s: cannot accept (%s): resting %d ms at a time "
                                 "until descriptors free up", endpoint->endpoint,
                                 strerror (errno), S_ACCEPT_REST_MS);
                endpoint->rest_logged = true;
                endpoint->rest_until = zclock_mono () + S_ACCEPT_REST_MS;
                s_listener_sync (self, endpoint);
            }
            return;                         //  EAGAIN, or nothing to do
        }
        endpoint->rest_logged = false;
        if (s_link_new (self, sock, SHMIPC_SERVER, endpoint, NULL)) {
            shmipc__log ("%s: connection refused: %s", endpoint->endpoint,
                         strerror (errno));
            self->totals.errors++;
            continue;
        }
        self->totals.accepted++;
    }
    if (endpoint->listener && endpoint->pending >= S_PENDING_MAX && !endpoint->pending_logged) {
        shmipc__log ("%s: %d connections still greeting: not accepting more until "
                     "they finish", endpoint->endpoint, S_PENDING_MAX);
        endpoint->pending_logged = true;
    }
    s_listener_sync (self, endpoint);
}

//  True if nothing waits to go into a ring (for LINGER): no peer holds a
//  message, and no connecting endpoint's bridge holds one for a connection
//  that is not up yet (LINGER waits for it, as libzmq's linger does).
static bool
s_drained (self_t *self)
{
    for (size_t index = 0; index < self->links.count; index++)
        if (!shmipc__peer_idle (S_LINK (&self->links, index)->peer))
            return false;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        s_endpoint_t *endpoint = S_ENDPOINT (self, index);
        if (endpoint->bridge && !endpoint->peer
        &&  (shmipc__bridge_events (endpoint->bridge) & ZMQ_POLLIN))
            return false;
    }
    return true;
}

//  True if a core is free to spin on: no runnable thread waits for one.
//  Without /proc/loadavg, assume so.
static bool
s_core_free (self_t *self)
{
    char text [128];
    ssize_t size = self->loadavg >= 0 ? pread (self->loadavg, text, sizeof text - 1, 0) : -1;
    if (size <= 0)
        return true;
    text [size] = 0;
    //  "0.50 0.40 0.30 RUNNING/TOTAL LASTPID": RUNNING counts us
    const char *field = text;
    for (int skip = 0; skip < 3 && field; skip++) {
        field = strchr (field, ' ');
        if (field)
            field++;
    }
    long running = field ? strtol (field, NULL, 10) : 0;
    return running <= self->cores;
}

//  Process one link: move what can be moved, note its traffic, and queue
//  it for the next turn if it has work left.
static void
s_process (self_t *self, s_link_t *link)
{
    if (link->closed)
        return;
    uint64_t in = 0, out = 0;
    shmipc__peer_traffic (link->peer, &in, &out);
    int rc = shmipc__peer_process (link->peer, S_BATCH);
    uint64_t in_after = 0, out_after = 0;
    shmipc__peer_traffic (link->peer, &in_after, &out_after);
    if (in_after != in || out_after != out) {
        int64_t now = zclock_usecs ();
        if (in_after != in)
            self->in_at = now;
        if (out_after != out)
            self->out_at = now;
        link->moved_at = now;
        s_array_push (&self->recent, link);
    }
    if (rc < 0) {
        s_link_close (self, link);
        return;
    }
    if (link->pending && shmipc__peer_deadline (link->peer) < 0)
        s_link_unpend (self, link);
    if (rc > 0)
        s_queue (self, link, &self->next);
}

//  Traffic just stopped: look at the links that moved messages last turn
//  for a while before sleeping, until one has work or a command comes.
//  Looking tells the remote sides not to send WAKEs, so afterwards each of
//  them takes a turn, which ends by arming its channel again.
static void
s_spin (self_t *self)
{
    int64_t until = zclock_usecs () + self->spin_us;
    bool found = false;
    while (!found && zclock_usecs () < until) {
        for (size_t index = 0; index < self->recent.count; index++) {
            s_link_t *link = S_LINK (&self->recent, index);
            if (!link->closed && shmipc__peer_spin (link->peer))
                found = true;
        }
        found |= (zsock_events (self->pipe) & ZMQ_POLLIN) != 0;
        if (!found)
            sched_yield ();
    }
    self->pipe_dirty = true;
    for (size_t index = 0; index < self->recent.count; index++)
        s_queue (self, S_LINK (&self->recent, index), &self->run);
}

//  Return the epoll timeout: 0 with work queued, else the time to the
//  next deadline (handshakes, reconnects, resting listeners, LINGER), or
//  -1 for none.
static int
s_timeout (self_t *self)
{
    if (self->run.count || self->pipe_dirty)
        return 0;
    int64_t now = zclock_mono ();
    int64_t wake = -1;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        s_endpoint_t *endpoint = S_ENDPOINT (self, index);
        if (endpoint->reconnect_at >= 0 && (wake < 0 || endpoint->reconnect_at < wake))
            wake = endpoint->reconnect_at;
        if (endpoint->rest_until >= 0 && (wake < 0 || endpoint->rest_until < wake))
            wake = endpoint->rest_until;
    }
    for (size_t index = 0; index < self->pending.count; index++) {
        int64_t deadline = shmipc__peer_deadline (S_LINK (&self->pending, index)->peer);
        if (deadline >= 0 && (wake < 0 || deadline < wake))
            wake = deadline;
    }
    if (self->lingering && self->linger_until >= 0
    &&  (wake < 0 || self->linger_until < wake))
        wake = self->linger_until;
    if (wake < 0)
        return -1;
    return wake > now ? (int) (wake - now < INT_MAX ? wake - now : INT_MAX) : 0;
}

//  Queue what is due: connections whose handshake deadline passed (to
//  time out), reconnects, listeners whose rest is over.
static void
s_timers (self_t *self)
{
    int64_t now = zclock_mono ();
    size_t count = self->endpoints.count;
    for (size_t index = 0; index < count; index++) {
        s_endpoint_t *endpoint = S_ENDPOINT (self, index);
        if (!endpoint->bind && !endpoint->peer && endpoint->reconnect_at >= 0
        &&  now >= endpoint->reconnect_at)
            s_endpoint_connect (self, endpoint);
        if (endpoint->rest_until >= 0 && now >= endpoint->rest_until) {
            endpoint->rest_until = -1;
            s_listener_sync (self, endpoint);
        }
    }
    for (size_t index = 0; index < self->pending.count; index++) {
        s_link_t *link = S_LINK (&self->pending, index);
        int64_t deadline = shmipc__peer_deadline (link->peer);
        if (deadline >= 0 && now >= deadline)
            s_queue (self, link, &self->run);
    }
}

//  Drop closed links from array.
static void
s_array_drop_closed (s_array_t *array)
{
    size_t kept = 0;
    for (size_t index = 0; index < array->count; index++)
        if (!S_LINK (array, index)->closed)
            array->items [kept++] = array->items [index];
    array->count = kept;
}

//  Free the links closed this turn, once nothing can name them: drop them
//  from the lists kept for the next turn first.
static void
s_reap (self_t *self)
{
    if (!self->closed)
        return;
    s_array_drop_closed (&self->next);
    s_array_drop_closed (&self->recent);
    while (self->closed) {
        s_link_t *link = self->closed;
        self->closed = link->next_closed;
        free (link);
    }
}

static void
s_self_run (self_t *self)
{
    struct epoll_event events [S_EVENTS];
    while (!self->terminated) {
        //  This turn runs the links queued for it (queued == turn)
        self->turn++;
        self->ran = false;
        //  Spin in a conversation only (messages both ways lately): a
        //  one-way stream is better served by sleeping, which leaves the
        //  cores to the threads that produce and consume it
        int timeout = s_timeout (self);
        int64_t usecs = zclock_usecs ();
        if (timeout != 0 && self->recent.count && self->spin_us
        &&  usecs - self->in_at < S_SPIN_WINDOW_US
        &&  usecs - self->out_at < S_SPIN_WINDOW_US) {
            self->in_at = self->out_at = 0;     //  One spin per lull
            if (s_core_free (self))
                s_spin (self);
            timeout = s_timeout (self);
        }
        int count = epoll_wait (self->epfd, events, S_EVENTS, timeout);
        if (count == -1) {
            if (errno == EINTR)
                continue;
            shmipc__log ("shmipc actor: epoll_wait: %s", strerror (errno));
            break;
        }
        self->recent.count = 0;
        bool pipe_ready = self->pipe_dirty;
        for (int index = 0; index < count; index++) {
            s_watch_t *watch = (s_watch_t *) events [index].data.ptr;
            if (watch->kind == S_WATCH_PIPE)
                pipe_ready = true;
            else
            if (watch->kind == S_WATCH_LISTENER)
                s_accept (self, (s_endpoint_t *) watch->object);
            else
                s_queue (self, (s_link_t *) watch->object, &self->run);
        }
        s_timers (self);
        //  Links queued while this runs (a first turn for a new one) run
        //  in it too
        for (size_t index = 0; index < self->run.count; index++)
            s_process (self, S_LINK (&self->run, index));
        self->ran = true;
        //  The pipe: ZMQ_EVENTS last, after every use of it, so that its
        //  ZMQ_FD signals whatever comes next
        self->pipe_dirty = false;
        if (pipe_ready)
            while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN))
                s_self_handle_pipe (self);
        if (self->lingering
        &&  (s_drained (self)
             || (self->linger_until >= 0 && zclock_mono () >= self->linger_until))) {
            self->lingering = false;
            self->linger_until = -1;
            zsock_signal (self->pipe, 0);
            self->pipe_dirty = true;
        }
        //  The links with work left run next turn, without waiting
        s_reap (self);
        s_array_t done = self->run;
        self->run = self->next;
        self->next = done;
        self->next.count = 0;
    }
}

static self_t *
s_self_new (zsock_t *pipe)
{
    self_t *self = (self_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->pipe_watch = (s_watch_t) { S_WATCH_PIPE, NULL };
    self->pipe_dirty = true;
    self->linger_until = -1;
    self->spin_us = S_SPIN_US;
    self->loadavg = open ("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    self->cores = sysconf (_SC_NPROCESSORS_ONLN);
    const char *spin = getenv ("SHMIPC_SPIN_US");
    if (spin && *spin) {
        char *end;
        long value = strtol (spin, &end, 10);
        if (*end == 0 && value >= 0 && value <= S_SPIN_US_MAX)
            self->spin_us = (int) value;
    }
    self->epfd = epoll_create1 (EPOLL_CLOEXEC);
    int fd = -1;
    size_t size = sizeof fd;
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = &self->pipe_watch };
    if (self->epfd < 0
    ||  zmq_getsockopt (zsock_resolve (pipe), ZMQ_FD, &fd, &size)
    ||  epoll_ctl (self->epfd, EPOLL_CTL_ADD, fd, &event)) {
        if (self->epfd >= 0)
            close (self->epfd);
        if (self->loadavg >= 0)
            close (self->loadavg);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_self_destroy (self_t **self_p)
{
    if (*self_p) {
        self_t *self = *self_p;
        //  Peers first: they may borrow bridges from endpoints
        while (self->links.count)
            s_link_close (self, S_LINK (&self->links, self->links.count - 1));
        self->next.count = 0;
        s_reap (self);
        for (size_t index = 0; index < self->endpoints.count; index++) {
            s_endpoint_t *endpoint = S_ENDPOINT (self, index);
            s_endpoint_destroy (&endpoint);
        }
        s_array_free (&self->endpoints);
        s_array_free (&self->links);
        s_array_free (&self->pending);
        s_array_free (&self->run);
        s_array_free (&self->next);
        s_array_free (&self->recent);
        close (self->epfd);
        if (self->loadavg >= 0)
            close (self->loadavg);
        free (self);
        *self_p = NULL;
    }
}

void
shmipc_actor (zsock_t *pipe, void *args)
{
    self_t *self = s_self_new (pipe);
    zsock_signal (pipe, 0);
    if (!self) {
        //  zactor_new ignores the start signal's status, so say it on every
        //  command instead, until $TERM
        while (true) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            free (command);
            if (term)
                break;
            zsock_signal (pipe, ENOMEM);
        }
        return;
    }
    s_self_run (self);
    s_self_destroy (&self);
}
