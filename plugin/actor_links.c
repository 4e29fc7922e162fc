/*  =========================================================================
    actor_links - the actor's endpoints and connections: listeners and
    their limits (pending handshakes, resting at the descriptor limit),
    accept, connect and reconnect back-off, the uid policy for servers we
    connect to, and the link table

    Owns: every endpoint and link of the actor (see actor.h). Calls no
    other actor file.
    =========================================================================
*/

#include "actor.h"

#include <sys/epoll.h>

void
shmipc__endpoint_destroy (shmipc__endpoint_t **self_p)
{
    if (*self_p) {
        shmipc__endpoint_t *self = *self_p;
        //  Closing the listener's descriptor takes it out of the epoll set
        shmipc_listener_destroy (&self->listener);
        shmipc__bridge_destroy (&self->bridge);
        free (self->endpoint);
        free (self->address);
        free (self);
        *self_p = NULL;
    }
}

//  Put the listener in the epoll set, or take it out, as its state wants:
//  not while it rests after running out of descriptors, nor while it has
//  SHMIPC__PENDING_MAX connections still greeting.
void
shmipc__listener_sync (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    if (!endpoint->listener)
        return;
    bool want = endpoint->rest_until < 0 && endpoint->pending < SHMIPC__PENDING_MAX;
    if (want == endpoint->listening)
        return;
    int fd = shmipc_listener_fd (endpoint->listener);
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = &endpoint->watch };
    if (epoll_ctl (self->epfd, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &event) == 0)
        endpoint->listening = want;
    if (endpoint->pending < SHMIPC__PENDING_MAX)
        endpoint->pending_logged = false;
}

//  The link has finished its handshake and greeting, or closed: it no
//  longer counts against its listener's pending limit.
void
shmipc__link_unpend (shmipc__actor_t *self, shmipc__link_t *link)
{
    if (!link->pending)
        return;
    link->pending = false;
    shmipc__ptrs_remove (&self->pending, link);
    if (link->endpoint && link->endpoint->pending) {
        link->endpoint->pending--;
        shmipc__listener_sync (self, link->endpoint);
    }
}

//  True if a live connection already has this routing id (for the user's
//  ROUTER: see shmipc__peer_set_id_check).
static bool
s_id_taken (void *arg, const uint8_t *id, size_t size)
{
    shmipc__actor_t *self = (shmipc__actor_t *) arg;
    for (size_t index = 0; index < self->links.count; index++) {
        shmipc__link_t *link = SHMIPC__LINK (&self->links, index);
        if (link->peer && shmipc__peer_has_id (link->peer, id, size))
            return true;
    }
    return false;
}

//  Start a connection over sock (taken) for endpoint. Returns 0, or -1 (the
//  socket is closed).
static int
s_link_new (shmipc__actor_t *self, int sock, int role, shmipc__endpoint_t *endpoint, void *bridge)
{
    shmipc__link_t *link = (shmipc__link_t *) zmalloc (sizeof *link);
    if (!link || shmipc__ptrs_push (&self->links, link)) {
        free (link);
        close (sock);
        return -1;
    }
    link->watch = (shmipc__watch_t) { SHMIPC__WATCH_LINK, link };
    link->endpoint = endpoint;
    link->slot = self->links.count - 1;
    link->peer = shmipc__peer_new (sock, role, &endpoint->info, bridge,
                                   endpoint->endpoint, self->epfd, &link->watch);
    if (!link->peer || shmipc__ptrs_push (&self->pending, link)) {
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
    if (self->loans)
        shmipc__peer_set_loans (link->peer, self->loans);
    if (!endpoint->bind)
        endpoint->peer = link->peer;
    shmipc__actor_queue (self, link, &self->run);      //  A first turn straight away
    return 0;
}

//  True if endpoint lends its connections a bridge that outlives them
//  (a connecting endpoint of a type whose bridge persists).
bool
shmipc__bridge_lasts (shmipc__endpoint_t *endpoint)
{
    return endpoint && !endpoint->bind && endpoint->bridge
        && shmipc__bridge_persists (endpoint->info.type);
}

//  Count a finished peer's traffic, destroy it, and move the link to the
//  closed ones (freed at the end of the turn: events and queues of this
//  turn may still name it).
void
shmipc__link_close (shmipc__actor_t *self, shmipc__link_t *link)
{
    if (link->closed)
        return;
    shmipc__peer_stats_t stats;
    shmipc__peer_stats (link->peer, &stats);
    shmipc__peer_stats_add (&self->totals.gone, &stats);
    self->totals.closed++;
    const char *reason = shmipc__peer_reason (link->peer);
    if (*reason && strcmp (reason, "peer closed the connection") != 0)
        self->totals.errors++;
    shmipc__link_unpend (self, link);
    shmipc__endpoint_t *endpoint = link->endpoint;
    bool remade = endpoint && !endpoint->bind && endpoint->peer == link->peer;
    if (remade) {
        //  Connections we made are remade, as ZeroMQ reconnects
        endpoint->peer = NULL;
        if (endpoint->ivl >= 0 && (!self->stopped || shmipc__bridge_lasts (endpoint))) {
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
    shmipc__link_t *last = SHMIPC__LINK (&self->links, self->links.count - 1);
    self->links.items [link->slot] = last;
    last->slot = link->slot;
    self->links.count--;
    link->closed = true;
    link->endpoint = NULL;
    link->next_closed = self->closed;
    self->closed = link;
}

//  Remove every link that belongs to endpoint.
void
shmipc__close_links_of (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    for (size_t index = self->links.count; index-- > 0; ) {
        shmipc__link_t *link = SHMIPC__LINK (&self->links, index);
        if (link->endpoint == endpoint) {
            //  No reconnect, and no pending count kept: the endpoint goes
            if (endpoint->peer == link->peer)
                endpoint->peer = NULL;
            link->endpoint = NULL;
            shmipc__link_close (self, link);
        }
    }
}

//  Add endpoint to ours. Returns 0, or -1 (and destroys it).
int
shmipc__endpoint_add (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    if (shmipc__ptrs_push (&self->endpoints, endpoint)) {
        shmipc__endpoint_destroy (&endpoint);
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

shmipc__endpoint_t *
shmipc__endpoint_find (shmipc__actor_t *self, const char *endpoint, bool bind)
{
    for (size_t index = 0; index < self->endpoints.count; index++)
        if (SHMIPC__ENDPOINT (self, index)->bind == bind
        &&  streq (SHMIPC__ENDPOINT (self, index)->endpoint, endpoint))
            return SHMIPC__ENDPOINT (self, index);
    return NULL;
}


//  Try to connect now; on failure, schedule the next try.
void
shmipc__endpoint_connect (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    endpoint->reconnect_at = -1;
    int sock = shmipc_endpoint_connect (endpoint->address,
                                        SHMIPC_DONTWAIT | SHMIPC_ANY_UID);
    uid_t uid = (uid_t) -1;
    if (sock >= 0
    &&  (shmipc_endpoint_peer_uid (sock, &uid) || !shmipc__uids_allow (&endpoint->uids, uid))) {
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
    endpoint->backoff = endpoint->ivl > 0 ? endpoint->ivl : SHMIPC__RECONNECT_MS;
    self->totals.connected++;
}


//  Accept the waiting connections on endpoint's listener, up to its limit
//  of pending ones.
void
shmipc__endpoint_accept (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    while (endpoint->listener && endpoint->pending < SHMIPC__PENDING_MAX) {
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
                                 strerror (errno), SHMIPC__ACCEPT_REST_MS);
                endpoint->rest_logged = true;
                endpoint->rest_until = zclock_mono () + SHMIPC__ACCEPT_REST_MS;
                shmipc__listener_sync (self, endpoint);
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
    if (endpoint->listener && endpoint->pending >= SHMIPC__PENDING_MAX && !endpoint->pending_logged) {
        shmipc__log ("%s: %d connections still greeting: not accepting more until "
                     "they finish", endpoint->endpoint, SHMIPC__PENDING_MAX);
        endpoint->pending_logged = true;
    }
    shmipc__listener_sync (self, endpoint);
}

//  True if nothing waits to go into a ring (for LINGER): no peer holds a
//  message, and no connecting endpoint's bridge holds one for a connection
//  that is not up yet (LINGER waits for it, as libzmq's linger does).
bool
shmipc__actor_drained (shmipc__actor_t *self)
{
    for (size_t index = 0; index < self->links.count; index++)
        if (!shmipc__peer_idle (SHMIPC__LINK (&self->links, index)->peer))
            return false;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        shmipc__endpoint_t *endpoint = SHMIPC__ENDPOINT (self, index);
        if (endpoint->bridge && !endpoint->peer
        &&  (shmipc__bridge_events (endpoint->bridge) & ZMQ_POLLIN))
            return false;
    }
    return true;
}

