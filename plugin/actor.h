/*  =========================================================================
    actor.h - the shmipc actor's private state, shared by its three files

    actor.c             the loop: epoll, turns, the spin, timers, start/end
    actor_commands.c    the command protocol on the pipe (typed both ways)
    actor_links.c       endpoints and connections: listeners, accept and
                        its limits, connect and back-off, uid policy

    Dependencies run one way: actor.c -> actor_commands.c -> actor_links.c
    (and actor.c -> actor_links.c). Owns nothing by itself: see
    shmipc__actor_t for who owns what.

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

    =========================================================================
*/

#ifndef SHMIPC_ACTOR_H_INCLUDED
#define SHMIPC_ACTOR_H_INCLUDED

#include "shmipc.h"
#include "peer.h"
#include "greeting.h"
#include "endpoint.h"
#include "util.h"
#include "shmipc_loans.h"

//  The protocol's pictures are in shmipc.h (SHMIPC_ACTOR_*_PICTURE).
#define SHMIPC__ATTACH_PICTURE  SHMIPC_ACTOR_ATTACH_PICTURE
#define SHMIPC__STATS_PICTURE   SHMIPC_ACTOR_STATS_PICTURE
#define SHMIPC__ATTACH_REPLY    SHMIPC_ACTOR_ATTACH_REPLY

//  Accepted connections per listener still in their handshake or greeting.
#define SHMIPC__PENDING_MAX       128

//  How long a listener rests after accept ran out of descriptors (ms).
#define SHMIPC__ACCEPT_REST_MS    100

//  First reconnect interval when ZMQ_RECONNECT_IVL is 0 (ms).
#define SHMIPC__RECONNECT_MS      100

//  What an entry of the epoll set stands for.
typedef enum {
    SHMIPC__WATCH_PIPE,                   //  The command pipe's ZMQ_FD
    SHMIPC__WATCH_LISTENER,               //  A listener (object: shmipc__endpoint_t)
    SHMIPC__WATCH_LINK                    //  A peer's descriptors (shmipc__link_t)
} shmipc__watch_kind_t;

//  The data.ptr of an epoll entry.
typedef struct {
    shmipc__watch_kind_t kind;            //  See shmipc__watch_kind_t
    void *object;                   //  The endpoint or link, or NULL
} shmipc__watch_t;

//  One shm:// endpoint we bind or connect.
typedef struct {
    shmipc__watch_t watch;                //  Its listener's epoll entry
    char *endpoint;                 //  Its name: as given (for shm://*, the
                                    //  path made); owned
    char *address;                  //  Where: a relative path made absolute
                                    //  at the user's call; owned
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
    shmipc__uids_t uids;            //  Peers' uids allowed besides ours and
                                    //  root's
} shmipc__endpoint_t;

//  One connection with the endpoint it came from.
typedef struct _shmipc__link_t {
    shmipc__watch_t watch;                //  Its peer's epoll entries
    shmipc__peer_t *peer;           //  Owned (NULL once closed)
    shmipc__endpoint_t *endpoint;         //  Not owned
    size_t slot;                    //  Its index in links []
    bool pending;                   //  In its handshake or greeting:
                                    //  counted in endpoint->pending
    bool closed;                    //  Closed; freed at the end of the turn
    uint64_t queued;                //  The turn it was last queued for
    int64_t moved_at;               //  When it last moved messages (us)
    struct _shmipc__link_t *next_closed;  //  Next in self->closed
} shmipc__link_t;

//  A growable array of pointers.
typedef struct {
    void **items;                   //  The pointers; owned (not what they
                                    //  point to)
    size_t count;                   //  How many
    size_t slots;                   //  Room in items []
} shmipc__ptrs_t;

//  Counters of peers that have gone, added to the live ones in STATS.
typedef struct {
    uint64_t accepted;              //  Connections accepted
    uint64_t connected;             //  Connections made
    uint64_t closed;                //  Connections closed
    uint64_t errors;                //  Of those, closed by an error
    shmipc__peer_stats_t gone;      //  Traffic of closed connections
} shmipc__totals_t;

typedef struct {
    zsock_t *pipe;                  //  Actor command pipe
    shmipc__watch_t pipe_watch;           //  Its epoll entry
    bool pipe_dirty;                //  Used since ZMQ_EVENTS last said it
                                    //  was empty: look before sleeping
    int epfd;                       //  The epoll set; owned
    bool terminated;                //  $TERM received
    shmipc__ptrs_t endpoints;            //  Our endpoints (shmipc__endpoint_t); owned
    shmipc__ptrs_t links;                //  Our connections (shmipc__link_t); owned
    shmipc__ptrs_t pending;              //  Links still greeting (not owned)
    shmipc__ptrs_t run;                  //  Links to process this turn
    shmipc__ptrs_t next;                 //  Links with work left for the next
    shmipc__ptrs_t recent;               //  Links that moved messages in the
                                    //  last turn (for the spin)
    shmipc__link_t *closed;               //  Links closed this turn, freed at
                                    //  its end; owned
    uint64_t turn;                  //  Turn counter (shmipc__link_t.queued)
    bool ran;                       //  This turn's links have run: what is
                                    //  queued now runs next turn
    shmipc__totals_t totals;              //  Counters
    int64_t linger_until;           //  LINGER deadline (-1: none pending;
                                    //  -2: no limit)
    bool lingering;                 //  A LINGER reply is owed
    bool stopped;                   //  STOP received: no new connections
    int spin_us;                    //  Spin bound (S_SPIN_US or the
                                    //  environment's), 0: no spin
    int loadavg;                    //  /proc/loadavg, open (-1: none)
    long cores;                     //  Cores online
    bool core_free;                 //  s_core_free's last answer
    int64_t core_free_at;           //  When it was read (us): it is read
                                    //  again only S_LOAD_US later
    int64_t in_at;                  //  When messages last came in (us)
    int64_t out_at;                 //  When messages last went out (us)
    shmipc_loans_t *loans;          //  The socket's loan pool, once it has
                                    //  one (LOANS); held
} shmipc__actor_t;

#define SHMIPC__ENDPOINT(self, index) ((shmipc__endpoint_t *) (self)->endpoints.items [index])
#define SHMIPC__LINK(array, index)    ((shmipc__link_t *) (array)->items [index])

//  --------------------------------------------------------------------------
//  Pointer arrays

//  Append item. Returns 0, or -1 (ENOMEM).
static inline int
shmipc__ptrs_push (shmipc__ptrs_t *self, void *item)
{
    if (shmipc__grow ((void **) &self->items, &self->slots, self->count + 1,
                      sizeof *self->items))
        return -1;
    self->items [self->count++] = item;
    return 0;
}

//  Remove item (order not kept). Returns true if it was there.
static inline bool
shmipc__ptrs_remove (shmipc__ptrs_t *self, void *item)
{
    for (size_t index = 0; index < self->count; index++)
        if (self->items [index] == item) {
            self->items [index] = self->items [--self->count];
            return true;
        }
    return false;
}

static inline void
shmipc__ptrs_free (shmipc__ptrs_t *self)
{
    free (self->items);
    *self = (shmipc__ptrs_t) { 0 };
}

//  Queue link to be processed this turn (once), or next turn (queue is
//  self->next, or this turn's links have run already).
static inline void
shmipc__actor_queue (shmipc__actor_t *self, shmipc__link_t *link, shmipc__ptrs_t *queue)
{
    if (self->ran)
        queue = &self->next;
    uint64_t turn = self->turn + (queue == &self->next);
    if (link->closed || link->queued == turn)
        return;
    if (shmipc__ptrs_push (queue, link) == 0)
        link->queued = turn;
}

//  --------------------------------------------------------------------------
//  actor_links.c: endpoints and connections

//  Destroy an endpoint (its listener, its lasting bridge). Nullifies.
void
    shmipc__endpoint_destroy (shmipc__endpoint_t **self_p);

//  Add endpoint to the actor's. Returns 0, or -1 (and destroys it).
int
    shmipc__endpoint_add (shmipc__actor_t *self, shmipc__endpoint_t *endpoint);

//  Return the endpoint bound (bind) or connected with this name, or NULL.
shmipc__endpoint_t *
    shmipc__endpoint_find (shmipc__actor_t *self, const char *endpoint, bool bind);

//  Put the listener in the epoll set, or take it out, as its state wants.
void
    shmipc__listener_sync (shmipc__actor_t *self, shmipc__endpoint_t *endpoint);

//  Accept the waiting connections on endpoint's listener, within limits.
void
    shmipc__endpoint_accept (shmipc__actor_t *self, shmipc__endpoint_t *endpoint);

//  Try to connect endpoint now; on failure, schedule the next try.
void
    shmipc__endpoint_connect (shmipc__actor_t *self, shmipc__endpoint_t *endpoint);

//  True if endpoint lends its connections a bridge that outlives them.
bool
    shmipc__bridge_lasts (shmipc__endpoint_t *endpoint);

//  The link finished its handshake and greeting (or closed): it no longer
//  counts against its listener's pending limit.
void
    shmipc__link_unpend (shmipc__actor_t *self, shmipc__link_t *link);

//  Count a finished link's traffic, destroy its peer, schedule a reconnect
//  where one is due, and move it to the closed ones (freed at the end of
//  the turn).
void
    shmipc__link_close (shmipc__actor_t *self, shmipc__link_t *link);

//  Close every link that belongs to endpoint (no reconnect).
void
    shmipc__close_links_of (shmipc__actor_t *self, shmipc__endpoint_t *endpoint);

//  True if nothing waits to go into a ring (for LINGER).
bool
    shmipc__actor_drained (shmipc__actor_t *self);

//  --------------------------------------------------------------------------
//  actor_commands.c: the command protocol

//  Receive one command from the pipe and answer it.
void
    shmipc__actor_handle_pipe (shmipc__actor_t *self);

#endif
