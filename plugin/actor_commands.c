/*  =========================================================================
    actor_commands - the actor's command protocol on its pipe

    Owns nothing: commands act on the endpoints and links (actor_links.c).
    Each command is a string frame followed by its arguments, decoded with
    the very picture it was sent with.
    The protocol is documented, with its pictures, in include/shmipc.h
    beside shmipc_actor.
    =========================================================================
*/

#include "actor.h"

//  Receive the arguments of BIND and CONNECT (picture
//  SHMIPC__ATTACH_PICTURE, after the command frame) into a new endpoint.
static shmipc__endpoint_t *
s_endpoint_from (shmipc__actor_t *actor, bool bind)
{
    char *name = NULL, *address = NULL, *inproc = NULL;
    void *context = NULL;
    byte *routing_id = NULL, *uids = NULL;
    size_t routing_id_size = 0, uids_size = 0;
    int type = 0, sndhwm = 0, rcvhwm = 0, ivl = 0, ivl_max = 0, immediate = 0;
    uint64_t capacity = 0, maxmsgsize = 0, max_peer_capacity = 0;
    int zerocopy = 0;
    int rc = zsock_recv (actor->pipe, SHMIPC__ATTACH_PICTURE, &name, &address,
                         &inproc, &context, &routing_id, &routing_id_size, &type,
                         &sndhwm, &rcvhwm, &ivl, &ivl_max, &immediate, &capacity,
                         &maxmsgsize, &max_peer_capacity, &zerocopy, &uids, &uids_size);
    shmipc__endpoint_t *self = NULL;
    struct sockaddr_un addr;
    socklen_t addr_len;
    bool wildcard = address && bind && streq (address, "shm://*");
    if (rc || !name || !address || !inproc || !context
    ||  strlen (inproc) >= sizeof self->info.inproc
    ||  routing_id_size > sizeof self->info.routing_id
    ||  uids_size % sizeof (uid_t) || uids_size / sizeof (uid_t) > SHMIPC__UIDS_MAX
    ||  (!wildcard && shmipc__endpoint_parse (address, &addr, &addr_len))) {
        errno = EINVAL;
        goto done;
    }
    self = (shmipc__endpoint_t *) zmalloc (sizeof *self);
    if (!self)
        goto done;
    self->endpoint = name;
    name = NULL;
    self->address = address;
    address = NULL;
    self->info.context = context;
    self->bind = bind;
    self->watch = (shmipc__watch_t) { SHMIPC__WATCH_LISTENER, self };
    self->reconnect_at = -1;
    self->rest_until = -1;
    strcpy (self->info.inproc, inproc);
    self->info.routing_id_size = routing_id_size;
    if (routing_id_size)
        memcpy (self->info.routing_id, routing_id, routing_id_size);
    self->info.type = type;
    self->info.sndhwm = sndhwm;
    self->info.rcvhwm = rcvhwm;
    self->info.immediate = immediate != 0;
    self->info.capacity = (size_t) capacity;
    self->info.maxmsgsize = (size_t) maxmsgsize;
    self->info.max_peer_capacity = (size_t) max_peer_capacity;
    self->info.zerocopy = zerocopy != 0;
    self->ivl = ivl;
    self->ivl_max = ivl_max;
    self->backoff = self->ivl > 0 ? self->ivl : SHMIPC__RECONNECT_MS;
    for (size_t index = 0; index < uids_size / sizeof (uid_t); index++) {
        uid_t uid;
        memcpy (&uid, uids + index * sizeof (uid_t), sizeof uid);
        shmipc__uids_add (&self->uids, uid);
    }
    if (!shmipc__type_supported (self->info.type)) {
        shmipc__endpoint_destroy (&self);
        errno = ENOCOMPATPROTO;
    }
done:
    free (name);
    free (address);
    free (inproc);
    free (routing_id);
    free (uids);
    return self;
}

//  Close endpoint's links and remove it from ours.
static void
s_command_unlisten (shmipc__actor_t *self, shmipc__endpoint_t *endpoint)
{
    shmipc__close_links_of (self, endpoint);
    shmipc__ptrs_remove (&self->endpoints, endpoint);
    shmipc__endpoint_destroy (&endpoint);
}

//  BIND. Returns the endpoint's name, or NULL with errno.
static const char *
s_command_bind (shmipc__actor_t *self)
{
    shmipc__endpoint_t *endpoint = s_endpoint_from (self, true);
    if (!endpoint)
        return NULL;
    if (shmipc__endpoint_find (self, endpoint->endpoint, true)) {
        shmipc__endpoint_destroy (&endpoint);
        errno = EADDRINUSE;
        return NULL;
    }
    endpoint->listener = shmipc_listener_new (endpoint->address);
    if (!endpoint->listener) {
        int saved = errno;
        shmipc__endpoint_destroy (&endpoint);
        errno = saved;
        return NULL;
    }
    //  shm://* is named by the path its listener made
    if (streq (endpoint->address, "shm://*")) {
        char *made = strdup (shmipc_listener_endpoint (endpoint->listener));
        if (!made) {
            shmipc__endpoint_destroy (&endpoint);
            errno = ENOMEM;
            return NULL;
        }
        free (endpoint->endpoint);
        endpoint->endpoint = made;
    }
    for (size_t index = 0; index < endpoint->uids.count; index++)
        shmipc_listener_allow_uid (endpoint->listener, endpoint->uids.items [index]);
    if (shmipc__endpoint_add (self, endpoint))
        return NULL;
    shmipc__listener_sync (self, endpoint);
    if (!endpoint->listening) {
        s_command_unlisten (self, endpoint);
        errno = ENOMEM;
        return NULL;
    }
    return endpoint->endpoint;
}

//  CONNECT. Returns the endpoint's name, or NULL with errno.
static const char *
s_command_connect (shmipc__actor_t *self)
{
    shmipc__endpoint_t *endpoint = s_endpoint_from (self, false);
    if (!endpoint)
        return NULL;
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
            shmipc__endpoint_destroy (&endpoint);
            errno = saved;
            return NULL;
        }
    }
    if (shmipc__endpoint_add (self, endpoint))
        return NULL;
    shmipc__endpoint_connect (self, endpoint);
    return endpoint->endpoint;
}

//  UNBIND or DISCONNECT endpoint. As libzmq's zmq_unbind and
//  zmq_disconnect, either undoes either kind; the kind asked for first.
static int
s_command_remove (shmipc__actor_t *self, bool bind)
{
    char *name = NULL;
    if (zsock_recv (self->pipe, "s", &name))
        name = NULL;
    shmipc__endpoint_t *endpoint = name ? shmipc__endpoint_find (self, name, bind) : NULL;
    if (!endpoint && name)
        endpoint = shmipc__endpoint_find (self, name, !bind);
    free (name);
    if (!endpoint) {
        errno = ENOENT;
        return -1;
    }
    s_command_unlisten (self, endpoint);
    return 0;
}

static void
s_command_stats (shmipc__actor_t *self)
{
    shmipc__totals_t *totals = &self->totals;
    shmipc__peer_stats_t sum = totals->gone;
    zmsg_t *peers = zmsg_new ();
    uint64_t live = 0;
    for (size_t index = 0; index < self->links.count; index++) {
        shmipc__link_t *link = SHMIPC__LINK (&self->links, index);
        shmipc__peer_stats_t stats;
        shmipc__peer_stats (link->peer, &stats);
        shmipc__peer_stats_add (&sum, &stats);
        if (!shmipc__peer_active (link->peer))
            continue;
        live++;
        zmsg_addstrf (peers, "endpoint=%s msgs_out=%" PRIu64 " bytes_out=%" PRIu64
                      " msgs_in=%" PRIu64 " bytes_in=%" PRIu64 " wakeups=%" PRIu64
                      " frames_lent=%" PRIu64,
                      shmipc__peer_endpoint (link->peer), stats.msgs_out,
                      stats.bytes_out, stats.msgs_in, stats.bytes_in, stats.wakeups,
                      stats.frames_lent);
    }
    //  The totals as the picture SHMIPC__STATS_PICTURE says, then a text
    //  frame per connection (zsock_recv with the picture drops those)
    uint64_t numbers [] = { live, totals->accepted, totals->connected, totals->closed,
                            totals->errors, sum.msgs_out, sum.bytes_out, sum.msgs_in,
                            sum.bytes_in, sum.wakeups, sum.frames_lent };
    _Static_assert (sizeof numbers / sizeof numbers [0]
                    == sizeof SHMIPC__STATS_PICTURE - 2, "one number per '8'");
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "STATS");
    for (size_t index = 0; index < sizeof numbers / sizeof numbers [0]; index++)
        zmsg_addstrf (reply, "%" PRIu64, numbers [index]);     //  As '8' is sent
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
s_command_stop (shmipc__actor_t *self)
{
    self->stopped = true;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        shmipc__endpoint_t *endpoint = SHMIPC__ENDPOINT (self, index);
        shmipc_listener_destroy (&endpoint->listener);
        endpoint->listening = false;
        if (!shmipc__bridge_lasts (endpoint))
            endpoint->reconnect_at = -1;
    }
    //  Not greeted yet, without a bridge: they would make one when they are
    for (size_t index = self->pending.count; index-- > 0; ) {
        shmipc__link_t *link = SHMIPC__LINK (&self->pending, index);
        if (!shmipc__bridge_lasts (link->endpoint))
            shmipc__link_close (self, link);
    }
}

//  Receive and drop whatever is left of the message on the pipe (a
//  command that came with arguments it does not take).
static void
s_drain (shmipc__actor_t *self)
{
    while (zsock_rcvmore (self->pipe)) {
        zframe_t *frame = zframe_recv (self->pipe);
        if (!frame)
            break;
        zframe_destroy (&frame);
    }
}

//  LOANS pool: the user socket lends frames from pool (shared with us)
//  from now on; each connection's channel sends those as loans.
static int
s_command_loans (shmipc__actor_t *self)
{
    void *pool = NULL;
    if (zsock_recv (self->pipe, "p", &pool) || !pool) {
        errno = EINVAL;
        return -1;
    }
    SHMIPC__TAKEN_OVER (pool);
    if (self->loans)
        return 0;               //  One pool per socket
    self->loans = shmipc_loans_share ((shmipc_loans_t *) pool);
    for (size_t index = 0; index < self->links.count; index++) {
        shmipc__link_t *link = SHMIPC__LINK (&self->links, index);
        if (link->peer)
            shmipc__peer_set_loans (link->peer, self->loans);
    }
    return 0;
}

void
shmipc__actor_handle_pipe (shmipc__actor_t *self)
{
    //  The command frame alone: its arguments follow as the rest of the
    //  message, read with the picture they were sent with (as zbeacon does)
    char *command = zstr_recv (self->pipe);
    if (!command) {
        self->terminated = true;        //  Interrupted
        return;
    }
    bool more = zsock_rcvmore (self->pipe) != 0;
    int rc = 0;
    const char *attached = NULL;
    bool reply = true;          //  Commands that can fail answer a signal
    if (streq (command, "$TERM")) {
        self->terminated = true;
        reply = false;
    }
    else
    if ((streq (command, "BIND") || streq (command, "CONNECT")) && more) {
        attached = streq (command, "BIND") ? s_command_bind (self) : s_command_connect (self);
        int status = attached ? 0 : errno > 0 ? errno : EINVAL;
        s_drain (self);
        zsock_send (self->pipe, SHMIPC__ATTACH_REPLY, status, attached ? attached : "");
        reply = false;
    }
    else
    if (streq (command, "UNBIND") && more)
        rc = s_command_remove (self, true) ? errno : 0;
    else
    if (streq (command, "DISCONNECT") && more)
        rc = s_command_remove (self, false) ? errno : 0;
    else
    if (streq (command, "STATS")) {
        s_command_stats (self);
        reply = false;
    }
    else
    if (streq (command, "STOP"))
        s_command_stop (self);
    else
    if (streq (command, "LOANS") && more)
        rc = s_command_loans (self) ? errno : 0;
    else
    if (streq (command, "LINGER") && more) {
        int linger = 0;
        if (zsock_recv (self->pipe, "i", &linger))
            linger = 0;
        self->lingering = true;
        self->linger_until = linger < 0 ? -2 : zclock_mono () + linger;
        reply = false;          //  Answered when drained
    }
    else {
        zsys_error ("shmipc actor: invalid command '%s'", command);
        rc = EINVAL;
    }
    s_drain (self);
    if (reply)
        zsock_signal (self->pipe, (byte) (rc > 255 ? EPROTO : rc));
    free (command);
}

