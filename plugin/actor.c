/*  =========================================================================
    actor - the shmipc actor: serves the shm:// endpoints of one user socket

    Owns: every listener, connection (peer) and bridge socket of those
    endpoints. Never touches the user's socket: it reaches it only through
    the socket's private inproc endpoint, so ZeroMQ's one-thread-per-socket
    rule holds. One poll loop over the pipe, listeners, channels and
    bridges; idle, it sleeps in zmq_poll.

    Command protocol on the pipe (replies marked <-):
      BIND endpoint inproc routing_id type sndhwm rcvhwm ivl ivl_max capacity
            maxmsgsize uids
            picture "sssbiiiii88s" (maxmsgsize: 0 for no limit; uids: extra
            uids allowed, comma-separated, may be empty); <- signal 0, or an
            errno
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

//  Messages moved per peer and direction before looking at the others.
#define S_BATCH     256

//  Spinning: after messages went both ways (within S_SPIN_WINDOW_US), the
//  loop looks at its peers for up to S_SPIN_US before it sleeps, so that a
//  conversation in progress does not pay a sleep and a wake-up per message.
//  Bounded, and only after traffic: an idle actor never spins. Nor does it spin when
//  every core is taken (the kernel's count of runnable threads, in
//  /proc/loadavg, is above the number of cores): the time would be taken
//  from threads that have work, often the very ones we wait for.
//  SHMIPC_SPIN_US in the environment changes the bound (0 turns spinning
//  off, at most 10000).
#define S_SPIN_US           100
#define S_SPIN_US_MAX       10000
#define S_SPIN_WINDOW_US    2000

//  One shm:// endpoint we bind or connect.
typedef struct {
    char *endpoint;                 //  As given; owned
    bool bind;                      //  Bound (listener) or connected
    shmipc_listener_t *listener;    //  Bind: our listener; owned
    shmipc__sockinfo_t info;        //  The user socket at bind/connect time
    shmipc__peer_t *peer;           //  Connect: the live connection, if any
    zsock_t *bridge;                //  Connect: a bridge that outlives
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
typedef struct {
    shmipc__peer_t *peer;           //  Owned
    s_endpoint_t *endpoint;         //  Not owned
    bool hot;                       //  Had work left after its last turn
    int item;                       //  Its first poll item this turn
    int items;                      //  How many
} s_link_t;

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
    bool terminated;                //  $TERM received
    s_endpoint_t **endpoints;       //  Our endpoints; owned
    size_t nendpoints;              //  How many
    size_t endpoint_slots;          //  Room in endpoints []
    s_link_t **links;               //  Our connections; owned
    size_t nlinks;                  //  How many (closed ones are NULL
                                    //  until the end of the turn)
    size_t link_slots;              //  Room in links []
    zmq_pollitem_t *items;          //  Poll set, rebuilt each turn
    size_t item_slots;              //  Room in items []
    s_totals_t totals;              //  Counters
    int64_t linger_until;           //  LINGER deadline (-1: none pending;
                                    //  -2: no limit)
    bool lingering;                 //  A LINGER reply is owed
    bool stopped;                   //  STOP received: no new connections
    int spin_us;                    //  Spin bound (S_SPIN_US or the
                                    //  environment's), 0: no spin
    int loadavg;                    //  /proc/loadavg, open (-1: none)
    long cores;                     //  Cores online
    uint64_t traffic_in;            //  Messages moved shm -> user socket
    uint64_t traffic_out;           //  And user socket -> shm, as of the
                                    //  last turn
    int64_t in_at;                  //  When messages last came in (us)
    int64_t out_at;                 //  When messages last went out (us)
} self_t;

//  --------------------------------------------------------------------------
//  Endpoints and links

static void
s_endpoint_destroy (s_endpoint_t **self_p)
{
    if (*self_p) {
        s_endpoint_t *self = *self_p;
        shmipc_listener_destroy (&self->listener);
        zsock_destroy (&self->bridge);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

static void
s_link_destroy (s_link_t **self_p)
{
    if (*self_p) {
        s_link_t *self = *self_p;
        if (self->endpoint && self->endpoint->peer == self->peer)
            self->endpoint->peer = NULL;
        shmipc__peer_destroy (&self->peer);
        free (self);
        *self_p = NULL;
    }
}

//  Grow an array of pointers to hold one more. Returns 0 or -1.
static int
s_grow (void ***array, size_t count, size_t *slots)
{
    if (count < *slots)
        return 0;
    size_t want = *slots ? *slots * 2 : 8;
    void **grown = (void **) realloc (*array, want * sizeof *grown);
    if (!grown)
        return -1;
    *array = grown;
    *slots = want;
    return 0;
}

static self_t *
s_self_new (zsock_t *pipe)
{
    self_t *self = (self_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
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
    return self;
}

static void
s_self_destroy (self_t **self_p)
{
    if (*self_p) {
        self_t *self = *self_p;
        //  Peers first: they may borrow bridges from endpoints
        for (size_t index = 0; index < self->nlinks; index++)
            s_link_destroy (&self->links [index]);
        for (size_t index = 0; index < self->nendpoints; index++)
            s_endpoint_destroy (&self->endpoints [index]);
        free (self->links);
        free (self->endpoints);
        free (self->items);
        if (self->loadavg >= 0)
            close (self->loadavg);
        free (self);
        *self_p = NULL;
    }
}

//  Drop the NULL slots left by closed links, keeping order.
static void
s_compact_links (self_t *self)
{
    size_t kept = 0;
    for (size_t index = 0; index < self->nlinks; index++)
        if (self->links [index])
            self->links [kept++] = self->links [index];
    self->nlinks = kept;
}

//  Add a peer to the links. Takes ownership of peer.
//  True if a live connection already has this routing id (for the user's
//  ROUTER: see shmipc__peer_set_id_check).
static bool
s_id_taken (void *arg, const uint8_t *id, size_t size)
{
    self_t *self = (self_t *) arg;
    for (size_t index = 0; index < self->nlinks; index++)
        if (self->links [index] && shmipc__peer_has_id (self->links [index]->peer, id, size))
            return true;
    return false;
}

static int
s_link_add (self_t *self, shmipc__peer_t *peer, s_endpoint_t *endpoint)
{
    s_link_t *link = (s_link_t *) zmalloc (sizeof *link);
    if (!link || s_grow ((void ***) &self->links, self->nlinks, &self->link_slots)) {
        free (link);
        shmipc__peer_destroy (&peer);
        return -1;
    }
    link->peer = peer;
    link->endpoint = endpoint;
    if (endpoint->info.type == ZMQ_ROUTER)
        shmipc__peer_set_id_check (peer, s_id_taken, self);
    link->hot = true;           //  Give it a first turn straight away
    self->links [self->nlinks++] = link;
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

//  Count a finished peer's traffic and destroy it, leaving its slot NULL
//  (s_compact_links tidies up).
static void
s_link_close (self_t *self, size_t slot)
{
    s_link_t *link = self->links [slot];
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
    s_link_destroy (&self->links [slot]);
    //  A subscriber's bridge served this connection; the next one makes its
    //  own, so that the user's socket sends its subscriptions again
    if (remade && endpoint->bridge && !shmipc__bridge_persists (endpoint->info.type))
        zsock_destroy (&endpoint->bridge);
}

//  Remove every link that belongs to endpoint.
static void
s_close_links_of (self_t *self, s_endpoint_t *endpoint)
{
    for (size_t index = 0; index < self->nlinks; index++)
        if (self->links [index] && self->links [index]->endpoint == endpoint) {
            self->links [index]->endpoint = NULL;   //  No reconnect: it goes
            s_link_close (self, index);
        }
    s_compact_links (self);
}

//  Add endpoint to ours. Returns 0, or -1 (and destroys it).
static int
s_endpoint_add (self_t *self, s_endpoint_t *endpoint)
{
    if (s_grow ((void ***) &self->endpoints, self->nendpoints, &self->endpoint_slots)) {
        s_endpoint_destroy (&endpoint);
        errno = ENOMEM;
        return -1;
    }
    self->endpoints [self->nendpoints++] = endpoint;
    return 0;
}

static s_endpoint_t *
s_endpoint_find (self_t *self, const char *endpoint, bool bind)
{
    for (size_t index = 0; index < self->nendpoints; index++)
        if (self->endpoints [index]->bind == bind
        &&  streq (self->endpoints [index]->endpoint, endpoint))
            return self->endpoints [index];
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
    shmipc__peer_t *peer = NULL;
    if (sock >= 0) {
        peer = shmipc__peer_new (sock, SHMIPC_CLIENT, &endpoint->info,
                                 endpoint->bridge, endpoint->endpoint);
        if (!peer)
            close (sock);
    }
    if (!peer) {
        shmipc__log ("%s: connect failed: %s", endpoint->endpoint, strerror (errno));
        if (endpoint->ivl >= 0)
            endpoint->reconnect_at = zclock_mono () + endpoint->backoff;
        return;
    }
    endpoint->backoff = endpoint->ivl > 0 ? endpoint->ivl : 100;
    endpoint->peer = peer;
    self->totals.connected++;
    s_link_add (self, peer, endpoint);
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
    char *numbers [7];
    for (int index = 0; index < 7; index++)
        numbers [index] = zmsg_popstr (msg);
    char *uids = zmsg_popstr (msg);
    s_endpoint_t *self = NULL;
    struct sockaddr_un addr;
    socklen_t addr_len;
    if (!name || !inproc || !routing_id || !numbers [6] || !uids
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
    self->reconnect_at = -1;
    strcpy (self->info.inproc, inproc);
    self->info.routing_id_size = zframe_size (routing_id);
    if (self->info.routing_id_size)
        memcpy (self->info.routing_id, zframe_data (routing_id), self->info.routing_id_size);
    self->info.type = atoi (numbers [0]);
    self->info.sndhwm = atoi (numbers [1]);
    self->info.rcvhwm = atoi (numbers [2]);
    self->ivl = atoi (numbers [3]);
    self->ivl_max = atoi (numbers [4]);
    self->info.capacity = (size_t) strtoull (numbers [5], NULL, 10);
    self->info.maxmsgsize = (size_t) strtoull (numbers [6], NULL, 10);
    self->backoff = self->ivl > 0 ? self->ivl : 100;
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
    for (int index = 0; index < 7; index++)
        free (numbers [index]);
    free (uids);
    return self;
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
    return s_endpoint_add (self, endpoint);
}

static int
s_command_connect (self_t *self, zmsg_t *msg)
{
    s_endpoint_t *endpoint = s_endpoint_from (msg, false);
    if (!endpoint)
        return -1;
    bool subscriber = endpoint->info.type == ZMQ_SUB || endpoint->info.type == ZMQ_XSUB;
    if (shmipc__bridge_persists (endpoint->info.type) || subscriber) {
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
    s_close_links_of (self, endpoint);
    for (size_t index = 0; index < self->nendpoints; index++)
        if (self->endpoints [index] == endpoint) {
            s_endpoint_destroy (&self->endpoints [index]);
            self->endpoints [index] = self->endpoints [--self->nendpoints];
            break;
        }
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
    for (size_t index = 0; index < self->nlinks; index++) {
        s_link_t *link = self->links [index];
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
    for (size_t index = 0; index < self->nendpoints; index++) {
        s_endpoint_t *endpoint = self->endpoints [index];
        shmipc_listener_destroy (&endpoint->listener);
        if (!s_bridge_lasts (endpoint))
            endpoint->reconnect_at = -1;
    }
    //  Not greeted yet, without a bridge: they would make one when they are
    for (size_t index = 0; index < self->nlinks; index++) {
        s_link_t *link = self->links [index];
        if (shmipc__peer_deadline (link->peer) >= 0 && !s_bridge_lasts (link->endpoint))
            s_link_close (self, index);
    }
    s_compact_links (self);
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

//  Make room for count poll items.
static int
s_reserve_items (self_t *self, size_t count)
{
    if (count <= self->item_slots)
        return 0;
    size_t slots = self->item_slots ? self->item_slots * 2 : 16;
    while (slots < count)
        slots *= 2;
    zmq_pollitem_t *items = (zmq_pollitem_t *) realloc (self->items, slots * sizeof *items);
    if (!items)
        return -1;
    self->items = items;
    self->item_slots = slots;
    return 0;
}

//  Build the poll set; return its size and the timeout to use.
static int
s_build_items (self_t *self, long *timeout)
{
    size_t need = 1 + self->nendpoints + 2 * self->nlinks;
    if (s_reserve_items (self, need))
        return -1;
    int count = 0;
    self->items [count++] = (zmq_pollitem_t) {
        .socket = zsock_resolve (self->pipe), .events = ZMQ_POLLIN };
    int64_t now = zclock_mono ();
    int64_t wake = -1;
    bool hot = false;
    for (size_t index = 0; index < self->nendpoints; index++) {
        s_endpoint_t *endpoint = self->endpoints [index];
        if (endpoint->listener)
            self->items [count++] = (zmq_pollitem_t) {
                .fd = shmipc_listener_fd (endpoint->listener), .events = ZMQ_POLLIN };
        if (endpoint->reconnect_at >= 0
        &&  (wake < 0 || endpoint->reconnect_at < wake))
            wake = endpoint->reconnect_at;
    }
    for (size_t index = 0; index < self->nlinks; index++) {
        s_link_t *link = self->links [index];
        link->item = count;
        link->items = shmipc__peer_pollitems (link->peer, self->items + count);
        count += link->items;
        int64_t deadline = shmipc__peer_deadline (link->peer);
        if (deadline >= 0 && (wake < 0 || deadline < wake))
            wake = deadline;
        hot |= link->hot;
    }
    if (self->lingering && self->linger_until >= 0
    &&  (wake < 0 || self->linger_until < wake))
        wake = self->linger_until;
    if (hot)
        *timeout = 0;
    else
        *timeout = wake < 0 ? -1 : (wake > now ? (long) (wake - now) : 0);
    return count;
}

//  Accept every waiting connection on endpoint's listener.
static void
s_accept (self_t *self, s_endpoint_t *endpoint)
{
    while (true) {
        int sock = shmipc_listener_accept (endpoint->listener);
        if (sock < 0) {
            if (errno == EACCES) {
                self->totals.errors++;      //  Refused by uid, logged
                continue;
            }
            return;                         //  EAGAIN, or nothing to do
        }
        shmipc__peer_t *peer = shmipc__peer_new (sock, SHMIPC_SERVER, &endpoint->info,
                                                 NULL, endpoint->endpoint);
        if (!peer) {
            close (sock);
            self->totals.errors++;
            continue;
        }
        self->totals.accepted++;
        s_link_add (self, peer, endpoint);
    }
}

//  True if nothing waits to go into a ring (for LINGER): no peer holds a
//  message, and no connecting endpoint's bridge holds one for a connection
//  that is not up yet (LINGER waits for it, as libzmq's linger does).
static bool
s_drained (self_t *self)
{
    for (size_t index = 0; index < self->nlinks; index++)
        if (!shmipc__peer_idle (self->links [index]->peer))
            return false;
    for (size_t index = 0; index < self->nendpoints; index++) {
        s_endpoint_t *endpoint = self->endpoints [index];
        if (endpoint->bridge && !endpoint->peer
        &&  (zsock_events (endpoint->bridge) & ZMQ_POLLIN))
            return false;
    }
    return true;
}

//  Note whether messages moved since last time.
static void
s_note_traffic (self_t *self)
{
    uint64_t in = self->totals.gone.msgs_in, out = self->totals.gone.msgs_out;
    for (size_t index = 0; index < self->nlinks; index++)
        shmipc__peer_traffic (self->links [index]->peer, &in, &out);
    if (in != self->traffic_in) {
        self->traffic_in = in;
        self->in_at = zclock_usecs ();
    }
    if (out != self->traffic_out) {
        self->traffic_out = out;
        self->out_at = zclock_usecs ();
    }
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

//  Traffic just stopped: look at the peers for a while before sleeping,
//  until one has work or a command comes. Looking tells the remote sides
//  not to send WAKEs, so afterwards every peer that is not about to run
//  takes a turn, which ends by arming its channel again. A turn can change
//  what a peer must be polled for (it may now hold a message for a full
//  bridge): the caller rebuilds its poll set afterwards.
static void
s_spin (self_t *self)
{
    int64_t until = zclock_usecs () + self->spin_us;
    bool found = false;
    while (!found && zclock_usecs () < until) {
        for (size_t index = 0; index < self->nlinks; index++)
            if (shmipc__peer_spin (self->links [index]->peer)) {
                self->links [index]->hot = true;
                found = true;
            }
        found |= (zsock_events (self->pipe) & ZMQ_POLLIN) != 0;
        if (!found)
            sched_yield ();
    }
    for (size_t index = 0; index < self->nlinks; index++) {
        if (self->links [index]->hot)
            continue;           //  Runs next turn, and arms if it goes idle
        int rc = shmipc__peer_process (self->links [index]->peer, NULL, S_BATCH);
        if (rc < 0)
            s_link_close (self, index);
        else
            self->links [index]->hot = rc > 0;
    }
    s_compact_links (self);
}

static void
s_self_run (self_t *self)
{
    while (!self->terminated) {
        long timeout;
        int count = s_build_items (self, &timeout);
        if (count < 0) {
            zclock_sleep (10);      //  Out of memory: try again shortly
            continue;
        }
        //  Spin in a conversation only (messages both ways lately): a
        //  one-way stream is better served by sleeping, which leaves the
        //  cores to the threads that produce and consume it
        int64_t usecs = zclock_usecs ();
        if (timeout != 0 && self->nlinks && self->spin_us
        &&  usecs - self->in_at < S_SPIN_WINDOW_US
        &&  usecs - self->out_at < S_SPIN_WINDOW_US) {
            self->in_at = self->out_at = 0;     //  One spin per lull
            if (s_core_free (self)) {
                s_spin (self);
                continue;
            }
        }
        if (zmq_poll (self->items, count, timeout) == -1) {
            if (zmq_errno () == EINTR)
                continue;
            break;                  //  Context terminated
        }
        //  Links accepted or connected this turn have no poll items yet:
        //  only the ones that existed when the poll set was built are looked at
        size_t polled = self->nlinks;
        int item = 1;
        int64_t now = zclock_mono ();
        size_t nendpoints = self->nendpoints;
        for (size_t index = 0; index < nendpoints; index++) {
            s_endpoint_t *endpoint = self->endpoints [index];
            if (endpoint->listener) {
                if (self->items [item].revents & ZMQ_POLLIN)
                    s_accept (self, endpoint);
                item++;
            }
            else
            if (!endpoint->peer && endpoint->reconnect_at >= 0
            &&  now >= endpoint->reconnect_at)
                s_endpoint_connect (self, endpoint);
        }
        for (size_t index = 0; index < polled; index++) {
            s_link_t *link = self->links [index];
            bool fired = false;
            for (int at = 0; at < link->items; at++)
                fired |= self->items [link->item + at].revents != 0;
            int64_t deadline = shmipc__peer_deadline (link->peer);
            if (fired || link->hot || (deadline >= 0 && now >= deadline)) {
                int rc = shmipc__peer_process (link->peer,
                    link->items ? self->items + link->item : NULL, S_BATCH);
                if (rc < 0)
                    s_link_close (self, index);
                else
                    link->hot = rc > 0;
            }
        }
        s_compact_links (self);
        s_note_traffic (self);
        if (self->items [0].revents & ZMQ_POLLIN)
            s_self_handle_pipe (self);

        if (self->lingering
        &&  (s_drained (self)
             || (self->linger_until >= 0 && zclock_mono () >= self->linger_until))) {
            self->lingering = false;
            self->linger_until = -1;
            zsock_signal (self->pipe, 0);
        }
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
