/*  =========================================================================
    peer - one shm:// connection: channel, greeting, bridge, and the two
    pumps that move whole messages between them (peer_pumps.c); here its
    life, the greeting and the events it waits for

    Owns its channel, its bridge (unless lent), and at most one message
    held in each direction while the far side is full (peer_internal.h).
    Everything read from the channel is untrusted; the channel checks the
    ring, this file checks the greeting.
    =========================================================================
*/

#include "peer_internal.h"
#include "greeting.h"
#include "util.h"

#include <errno.h>
#include <sys/epoll.h>

//  Most idle bytes a peer's pool keeps.
#define S_POOL_BYTES        (8UL << 20)


//  Finish the peer with reason. Returns -1 for tail calls.
int
shmipc__peer_die (shmipc__peer_t *self, const char *reason)
{
    if (self->state != SHMIPC__PEER_DEAD) {
        self->state = SHMIPC__PEER_DEAD;
        self->reason = reason;
        shmipc__log ("%s: peer '%s' closed: %s", self->endpoint,
                     shmipc_channel_peer_name (self->channel)
                         ? shmipc_channel_peer_name (self->channel) : "?",
                     reason);
    }
    return -1;
}

//  Finish the peer with the channel's own reason, or a default.
int
shmipc__peer_die_channel (shmipc__peer_t *self, const char *otherwise)
{
    const char *reason = shmipc_channel_reason (self->channel);
    return shmipc__peer_die (self, *reason ? reason : otherwise);
}

//  Return the bridge's type, from libzmq.
static int
s_socket_type (void *handle)
{
    int type = -1;
    size_t size = sizeof type;
    zmq_getsockopt (handle, ZMQ_TYPE, &type, &size);
    return type;
}

//  Put the bridge's ZMQ_FD into the epoll set (once a bridge is ours to
//  serve). ZMQ_FD tells only that the socket's state may have changed:
//  process () ends with a ZMQ_EVENTS check, so it is never left readable.
static int
s_watch_bridge (shmipc__peer_t *self)
{
    if (!self->bridge || self->bridge_fd >= 0 || self->epfd < 0)
        return 0;
    int fd;
    size_t size = sizeof fd;
    if (zmq_getsockopt (self->bridge, ZMQ_FD, &fd, &size))
        return -1;
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = self->tag };
    if (epoll_ctl (self->epfd, EPOLL_CTL_ADD, fd, &event))
        return -1;
    self->bridge_fd = fd;
    return 0;
}

//  Register the channel's descriptor for events (0: keep it in the set but
//  ask for nothing, so that end of stream cannot keep waking us). The
//  channel has no wake pipe to watch: we ask for WAKE records (peer_new).
static void
s_watch_channel (shmipc__peer_t *self, uint32_t events)
{
    if (self->epfd < 0 || (self->channel_added && self->channel_watch == events))
        return;
    struct epoll_event event = { .events = events, .data.ptr = self->tag };
    int fd = shmipc_channel_fd (self->channel);
    if (epoll_ctl (self->epfd, self->channel_added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
                   fd, &event) == 0) {
        self->channel_added = true;
        self->channel_watch = events;
    }
}

//  Take our descriptors out of the epoll set.
static void
s_unwatch (shmipc__peer_t *self)
{
    if (self->epfd < 0)
        return;
    if (self->channel_added)
        epoll_ctl (self->epfd, EPOLL_CTL_DEL, shmipc_channel_fd (self->channel), NULL);
    if (self->bridge_fd >= 0)
        epoll_ctl (self->epfd, EPOLL_CTL_DEL, self->bridge_fd, NULL);
    self->channel_added = false;
    self->bridge_fd = -1;
}

shmipc__peer_t *
shmipc__peer_new (int sock, int role, const shmipc__sockinfo_t *info,
                  void *bridge, const char *endpoint, int epfd, void *tag)
{
    shmipc__peer_t *self = (shmipc__peer_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->epfd = -1;
    self->bridge_fd = -1;
    self->info = *info;
    self->reason = "";
    self->endpoint = strdup (endpoint);
    self->pool = shmipc__pool_new (S_POOL_BYTES);
    if (!self->endpoint || !self->pool)
        goto failed;
    char name [SHMIPC_NAME_MAX + 1];
    snprintf (name, sizeof name, "%s-%d", zsys_sockname (info->type), (int) getpid ());
    self->channel = shmipc_channel_new (sock, name, info->capacity, role);
    if (!self->channel)
        goto failed;
    //  process () calls the channel's events before every sleep
    shmipc_channel_set_events_driven (self->channel, true);
    //  WAKE records, not a wake pipe: with the actor's spin, the pipe made
    //  the 64 B round trip a third slower and the wake-ups per round trip
    //  half as many again (docs/performance.md, "Wake pipes"). So the
    //  channel's descriptor is the only one to watch
    shmipc_channel_set_wake_pipe (self->channel, false);
    if (info->maxmsgsize)
        shmipc_channel_set_maxmsgsize (self->channel, info->maxmsgsize);
    if (info->max_peer_capacity)
        shmipc_channel_set_max_peer_capacity (self->channel, info->max_peer_capacity);
    self->deadline = shmipc_channel_deadline (self->channel);
    if (bridge) {
        self->bridge = bridge;
        self->bridge_type = s_socket_type (bridge);
        self->lent = true;
    }
    self->epfd = epfd;
    self->tag = tag;
    s_watch_channel (self, EPOLLIN);
    if (epfd >= 0 && !self->channel_added)
        goto failed;
    return self;

failed:;
    int saved = errno;
    self->lent = false;
    shmipc__peer_destroy (&self);
    errno = saved;
    return NULL;
}

//  Close the held frames in [from, count).
void
shmipc__peer_close_frames (zmq_msg_t *frames, size_t from, size_t count)
{
    for (size_t index = from; index < count; index++)
        zmq_msg_close (&frames [index]);
}

void
shmipc__peer_destroy (shmipc__peer_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        shmipc__peer_t *self = *self_p;
        shmipc__peer_close_frames (self->out, 0, self->out_count);
        shmipc__peer_close_frames (self->in_frames, self->in_next, self->in_count);
        free (self->out);
        free (self->out_iov);
        free (self->in_frames);
        shmipc__pool_release (&self->pool);
        if (self->channel)
            s_unwatch (self);
        shmipc_channel_destroy (&self->channel);
        if (!self->lent)
            shmipc__bridge_destroy (&self->bridge);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

int64_t
shmipc__peer_deadline (shmipc__peer_t *self)
{
    assert (self);
    if (self->state == SHMIPC__PEER_HANDSHAKE)
        return shmipc_channel_deadline (self->channel);
    return self->state == SHMIPC__PEER_GREETING ? self->deadline : -1;
}

//  Return true if the bridge can be read: a PUSH bridge (next to a user
//  PULL) only sends, and reading it fails with ENOTSUP.
bool
shmipc__peer_bridge_reads (shmipc__peer_t *self)
{
    return self->bridge_type != ZMQ_PUSH;
}

//  The bridge events we wait for: room for the held message, or input
//  when there is room in the ring for it.
static int
s_bridge_wanted (shmipc__peer_t *self)
{
    int events = 0;
    if (self->in_count)
        events |= ZMQ_POLLOUT;
    if (!self->out_count && shmipc__peer_bridge_reads (self))
        events |= ZMQ_POLLIN;
    return events;
}

//  Send our greeting once the channel is ready.
static int
s_greet (shmipc__peer_t *self)
{
    uint8_t greeting [SHMIPC__GREETING_MAX];
    size_t size = shmipc__greeting_encode (greeting, self->info.type,
                                           self->info.routing_id,
                                           self->info.routing_id_size);
    if (shmipc_channel_send_ctrl (self->channel, greeting, size))
        return shmipc__peer_die_channel (self, "could not send the greeting");
    self->state = SHMIPC__PEER_GREETING;
    //  The greeting shares the handshake's deadline, renewed once
    self->deadline = zclock_mono () + SHMIPC__GREETING_MS;
    return 0;
}

//  Check the peer's greeting and set up the bridge. Returns 0 when active,
//  -1/EAGAIN while waiting, -1 when refused.
static int
s_accept_greeting (shmipc__peer_t *self)
{
    //  Trusts: nothing in the greeting; decode checks its form, then the
    //  socket types must be compatible as ZMTP requires.
    uint8_t buffer [SHMIPC_CTRL_MAX];
    ssize_t size = shmipc_channel_recv_ctrl (self->channel, buffer, sizeof buffer);
    if (size < 0) {
        if (errno == EAGAIN) {
            if (zclock_mono () >= self->deadline)
                return shmipc__peer_die (self, "greeting timed out");
            return -1;
        }
        return shmipc__peer_die_channel (self, "closed before the greeting");
    }
    shmipc__greeting_t greeting;
    if (shmipc__greeting_decode (buffer, (size_t) size, &greeting))
        return shmipc__peer_die (self, "malformed greeting");
    if (!shmipc__types_compatible (self->info.type, greeting.type))
        return shmipc__peer_die (self, "incompatible socket types");
    if (greeting.routing_id_size && self->id_taken
    &&  self->id_taken (self->id_taken_arg, greeting.routing_id, greeting.routing_id_size))
        return shmipc__peer_die (self, "duplicate routing id");
    memcpy (self->peer_id, greeting.routing_id, greeting.routing_id_size);
    self->peer_id_size = greeting.routing_id_size;
    if (!self->bridge) {
        self->bridge = shmipc__bridge_new (&self->info, greeting.routing_id,
                                           greeting.routing_id_size);
        if (!self->bridge) {
            //  At the socket or descriptor limit: refuse this one, serve
            //  the others
            shmipc__log ("%s: no bridge socket for peer '%s': %s", self->endpoint,
                         shmipc_channel_peer_name (self->channel), zmq_strerror (errno));
            return shmipc__peer_die (self, "could not create the bridge socket");
        }
        self->bridge_type = s_socket_type (self->bridge);
    }
    if (s_watch_bridge (self))
        return shmipc__peer_die (self, "could not watch the bridge socket");
    self->state = SHMIPC__PEER_ACTIVE;
    self->deadline = -1;
    shmipc__log ("%s: peer '%s' (%s) connected", self->endpoint,
                 shmipc_channel_peer_name (self->channel), zsys_sockname (greeting.type));
    return 0;
}

int
shmipc__peer_process (shmipc__peer_t *self, int batch)
{
    assert (self);
    if (self->state == SHMIPC__PEER_DEAD)
        return -1;
    if (self->state == SHMIPC__PEER_HANDSHAKE) {
        if (shmipc_channel_handshake (self->channel, 0)) {
            if (errno == EAGAIN)
                return 0;
            return shmipc__peer_die_channel (self, "handshake failed");
        }
        if (s_greet (self))
            return -1;
    }
    if (self->state == SHMIPC__PEER_GREETING && s_accept_greeting (self))
        return self->state == SHMIPC__PEER_DEAD ? -1 : 0;

    int in = shmipc__peer_pump_in (self, batch);
    if (in < 0)
        return -1;
    int out = shmipc__peer_pump_out (self, batch);
    if (out < 0)
        return -1;
    if (in || out)
        return 1;               //  More to do: no sleep, so no events yet
    //  About to wait: as with ZMQ_EVENTS, the channel's events are the last
    //  call before the poll, so no wake-up is swallowed between them. Only
    //  the greeting may come as a control message.
    int events = shmipc_channel_events (self->channel);
    if (events & SHMIPC_POLLCTRL)
        return shmipc__peer_die (self, "unexpected control message");
    if ((events & SHMIPC_POLLERR) && shmipc_channel_error (self->channel))
        return shmipc__peer_die_channel (self, "channel broken");
    //  Something is ready after all (or the peer went: read what it left)
    if (((events & SHMIPC_POLLIN) && self->in_count == 0)
    ||  ((events & SHMIPC_POLLOUT) && self->out_count)
    ||  (events & SHMIPC_POLLERR))
        return 1;
    //  The channel's descriptor brings WAKEs, control records and end of
    //  stream. While a message waits for the bridge we must not read the
    //  channel, so we stop watching it (unless we also wait for ring
    //  space): after end of stream it would stay readable and spin us.
    s_watch_channel (self, self->state != SHMIPC__PEER_ACTIVE || self->in_count == 0
                           || self->out_count ? EPOLLIN : 0);
    //  And the bridge's events last of all, for the same reason as the
    //  channel's: after them, any change signals its ZMQ_FD
    if (self->state == SHMIPC__PEER_ACTIVE && self->bridge
    &&  (shmipc__bridge_events (self->bridge) & s_bridge_wanted (self)))
        return 1;
    return 0;
}

bool
shmipc__peer_spin (shmipc__peer_t *self)
{
    assert (self);
    if (self->state != SHMIPC__PEER_ACTIVE)
        return false;
    int events = shmipc_channel_peek_events (self->channel);
    if (events & SHMIPC_POLLERR)
        return true;            //  Let process () find out
    if (self->in_count == 0 && (events & SHMIPC_POLLIN))
        return true;
    if (self->out_count && (events & SHMIPC_POLLOUT))
        return true;
    //  The bridge: ZMQ_EVENTS also runs its pending commands
    int bridge = shmipc__bridge_events (self->bridge);
    if (self->in_count && (bridge & ZMQ_POLLOUT))
        return true;
    return !self->out_count && shmipc__peer_bridge_reads (self) && (bridge & ZMQ_POLLIN);
}

bool
shmipc__peer_idle (shmipc__peer_t *self)
{
    assert (self);
    //  A connection still in its handshake may hold a lent bridge with
    //  messages for it
    if (self->state == SHMIPC__PEER_DEAD || !self->bridge)
        return true;
    return self->out_count == 0 && !(shmipc__bridge_events (self->bridge) & ZMQ_POLLIN);
}

const char *
shmipc__peer_reason (shmipc__peer_t *self)
{
    assert (self);
    return self->reason;
}

const char *
shmipc__peer_endpoint (shmipc__peer_t *self)
{
    assert (self);
    return self->endpoint;
}

bool
shmipc__peer_active (shmipc__peer_t *self)
{
    assert (self);
    return self->state == SHMIPC__PEER_ACTIVE;
}

void
shmipc__peer_traffic (shmipc__peer_t *self, uint64_t *in, uint64_t *out)
{
    assert (self);
    *in += self->stats.msgs_in;
    *out += self->stats.msgs_out;
}

void
shmipc__peer_stats (shmipc__peer_t *self, shmipc__peer_stats_t *stats)
{
    assert (self && stats);
    *stats = self->stats;
    shmipc_channel_stats_t channel;
    shmipc_channel_stats (self->channel, &channel);
    stats->wakeups = channel.wakeups_sent + channel.wakeups_received;
}

void
shmipc__peer_set_id_check (shmipc__peer_t *self, shmipc__id_taken_fn *taken, void *arg)
{
    assert (self);
    self->id_taken = taken;
    self->id_taken_arg = arg;
}

void
shmipc__peer_set_loans (shmipc__peer_t *self, shmipc_loans_t *loans)
{
    assert (self);
    shmipc_channel_set_loans (self->channel, loans);
}

bool
shmipc__peer_has_id (shmipc__peer_t *self, const uint8_t *id, size_t size)
{
    assert (self);
    return self->state == SHMIPC__PEER_ACTIVE && size && size == self->peer_id_size
        && memcmp (id, self->peer_id, size) == 0;
}
