/*  =========================================================================
    peer - one shm:// connection: channel, greeting, bridge, and the two
    pumps that move whole messages between them

    Owns its channel, its bridge (unless lent), and at most one message
    held in each direction while the far side is full. Everything read from
    the channel is untrusted; the channel checks the ring, this file checks
    the greeting.
    =========================================================================
*/

#include "peer.h"
#include "greeting.h"
#include "pool.h"
#include "util.h"

#include <errno.h>
#include <sys/epoll.h>

//  Frames at least this big go into pooled buffers, reused message after
//  message instead of fresh (page-faulting) memory.
#define S_POOL_MIN          65536

//  Most idle bytes a peer's pool keeps.
#define S_POOL_BYTES        (8UL << 20)

//  With zero-copy receive, frames at least this big are lent in place:
//  below it a copy costs less than the hold and ZeroMQ's free callback.
#define S_ZEROCOPY_MIN      65536

typedef enum {
    S_HANDSHAKE,                //  Channel handshake under way
    S_GREETING,                 //  Waiting for the peer's greeting
    S_ACTIVE,                   //  Moving messages
    S_DEAD                      //  Finished; see reason
} s_state_t;

//  ThreadSanitizer cannot see libzmq (not instrumented) hand a message's
//  memory from the user's thread to ours and back, so it reports every
//  frame we copy as a race with the user's thread. Our copies into and out
//  of those frames are hidden from it; everything else stays checked.
#if defined (__has_feature)
#   if __has_feature (thread_sanitizer)
#       define S_TSAN
#   endif
#endif
#if defined (__SANITIZE_THREAD__) && !defined (S_TSAN)
#   define S_TSAN
#endif
#ifdef S_TSAN
//  The Annotate* calls, not __tsan_ignore_thread_*: a program that does not
//  link libshmipc (one under the launcher) exports only these from the
//  TSan runtime linked into it
void AnnotateIgnoreReadsBegin (const char *file, int line);
void AnnotateIgnoreReadsEnd (const char *file, int line);
void AnnotateIgnoreWritesBegin (const char *file, int line);
void AnnotateIgnoreWritesEnd (const char *file, int line);
#   define S_HANDOFF_BEGIN()    (AnnotateIgnoreReadsBegin (__FILE__, __LINE__), \
                                 AnnotateIgnoreWritesBegin (__FILE__, __LINE__))
#   define S_HANDOFF_END()      (AnnotateIgnoreWritesEnd (__FILE__, __LINE__), \
                                 AnnotateIgnoreReadsEnd (__FILE__, __LINE__))
#else
#   define S_HANDOFF_BEGIN()
#   define S_HANDOFF_END()
#endif

struct _shmipc__peer_t {
    shmipc_channel_t *channel;      //  The shm channel; owned
    void *bridge;                   //  Stands in for the remote socket (a
                                    //  raw libzmq socket)
    int bridge_type;                //  Its type (ZMQ_*)
    bool lent;                      //  The bridge belongs to the endpoint
    int epfd;                       //  The actor's epoll set (not owned)
    void *tag;                      //  Our entries' data.ptr in it
    uint32_t channel_watch;         //  Events the channel's descriptor is
                                    //  registered for (0: not registered)
    bool channel_added;             //  The descriptor is in the set
    int bridge_fd;                  //  The bridge's ZMQ_FD in the set, or -1
    shmipc__sockinfo_t info;        //  The user socket, as bind/connect saw it
    char *endpoint;                 //  Endpoint, for logs; owned
    s_state_t state;                //  See s_state_t
    const char *reason;             //  Why it finished (static string)
    int64_t deadline;               //  Greeting deadline (ms)

    zmq_msg_t *out;                 //  Held bridge -> channel frames
    struct iovec *out_iov;          //  The same frames as iovecs
    size_t out_count;               //  Frames held (0: none)
    size_t out_slots;               //  Room in out [] and out_iov []

    shmipc__pool_t *pool;           //  Buffers for large frames; released
                                    //  with us, freed with its last buffer
    zmq_msg_t *in_frames;           //  Held channel -> bridge frames
    size_t in_count;                //  Frames held (0: none)
    size_t in_next;                 //  Next frame to send
    size_t in_slots;                //  Room in in_frames []

    shmipc__peer_stats_t stats;     //  Counters
    uint8_t peer_id [SHMIPC__ROUTING_ID_MAX];   //  The remote's routing id,
                                                //  once greeted
    size_t peer_id_size;            //  0 if none (or not greeted yet)
    shmipc__id_taken_fn *id_taken;  //  Duplicate routing id check, or NULL
    void *id_taken_arg;             //  Its argument (the actor)
};

//  Finish the peer with reason. Returns -1 for tail calls.
static int
s_die (shmipc__peer_t *self, const char *reason)
{
    if (self->state != S_DEAD) {
        self->state = S_DEAD;
        self->reason = reason;
        shmipc__log ("%s: peer '%s' closed: %s", self->endpoint,
                     shmipc_channel_peer_name (self->channel)
                         ? shmipc_channel_peer_name (self->channel) : "?",
                     reason);
    }
    return -1;
}

//  Finish the peer with the channel's own reason, or a default.
static int
s_die_channel (shmipc__peer_t *self, const char *otherwise)
{
    const char *reason = shmipc_channel_reason (self->channel);
    return s_die (self, *reason ? reason : otherwise);
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
//  ask for nothing, so that end of stream cannot keep waking us).
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
static void
s_close_frames (zmq_msg_t *frames, size_t from, size_t count)
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
        s_close_frames (self->out, 0, self->out_count);
        s_close_frames (self->in_frames, self->in_next, self->in_count);
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
    if (self->state == S_HANDSHAKE)
        return shmipc_channel_deadline (self->channel);
    return self->state == S_GREETING ? self->deadline : -1;
}

//  Return true if the bridge can be read: a PUSH bridge (next to a user
//  PULL) only sends, and reading it fails with ENOTSUP.
static bool
s_bridge_reads (shmipc__peer_t *self)
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
    if (!self->out_count && s_bridge_reads (self))
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
        return s_die_channel (self, "could not send the greeting");
    self->state = S_GREETING;
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
                return s_die (self, "greeting timed out");
            return -1;
        }
        return s_die_channel (self, "closed before the greeting");
    }
    shmipc__greeting_t greeting;
    if (shmipc__greeting_decode (buffer, (size_t) size, &greeting))
        return s_die (self, "malformed greeting");
    if (!shmipc__types_compatible (self->info.type, greeting.type))
        return s_die (self, "incompatible socket types");
    if (greeting.routing_id_size && self->id_taken
    &&  self->id_taken (self->id_taken_arg, greeting.routing_id, greeting.routing_id_size))
        return s_die (self, "duplicate routing id");
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
            return s_die (self, "could not create the bridge socket");
        }
        self->bridge_type = s_socket_type (self->bridge);
    }
    if (s_watch_bridge (self))
        return s_die (self, "could not watch the bridge socket");
    self->state = S_ACTIVE;
    self->deadline = -1;
    shmipc__log ("%s: peer '%s' (%s) connected", self->endpoint,
                 shmipc_channel_peer_name (self->channel), zsys_sockname (greeting.type));
    return 0;
}

//  Make room for count frames in an array of zmq_msg_t (and as many
//  iovecs). The frames may move: libzmq keeps small ones inside the
//  zmq_msg_t, so no pointer to their data may be kept across this call.
static int
s_reserve (zmq_msg_t **frames, struct iovec **iov, size_t *slots, size_t count)
{
    size_t iov_slots = *slots;
    if (iov && shmipc__grow ((void **) iov, &iov_slots, count, sizeof **iov))
        return -1;
    return shmipc__grow ((void **) frames, slots, count, sizeof **frames);
}

//  ZeroMQ frees a lent frame: its ring space may go back to the peer.
static void
s_hold_free (void *data, void *hint)
{
    (void) data;
    shmipc_hold_release ((shmipc_hold_t *) hint);
}

//  With zero-copy receive, make frame point at frame index of the message
//  in place. Returns 0, or -1 if it must be copied after all (too small,
//  not in the ring, or the holds are used up).
static int
s_lend (shmipc__peer_t *self, zmq_msg_t *frame, const shmipc_frame_t *frames,
        size_t index)
{
    if (!self->info.zerocopy || frames [index].size < S_ZEROCOPY_MIN)
        return -1;
    shmipc_hold_t *hold = shmipc_channel_hold (self->channel, index);
    if (!hold)
        return -1;
    //  Read-only memory: ZeroMQ never writes a message's data it did not
    //  allocate, and the user was told not to
    if (zmq_msg_init_data (frame, (void *) frames [index].data, frames [index].size,
                           s_hold_free, hold)) {
        shmipc_hold_release (hold);
        return -1;
    }
    self->stats.frames_lent++;
    return 0;
}

//  Turn the message the channel holds in place into zmq frames: small ones
//  copied into ZeroMQ's own, large ones into pooled buffers, or lent in
//  place with zero-copy receive. The copy is the security boundary: the
//  user's socket never sees the peer's memory unless it trusts the peer.
static int
s_prepare_in (shmipc__peer_t *self, const shmipc_frame_t *frames, size_t count)
{
    if (s_reserve (&self->in_frames, NULL, &self->in_slots, count))
        return -1;
    size_t bytes = 0;
    for (size_t index = 0; index < count; index++) {
        zmq_msg_t *frame = &self->in_frames [index];
        size_t size = frames [index].size;
        bytes += size;
        if (s_lend (self, frame, frames, index) == 0)
            continue;
        S_HANDOFF_BEGIN ();
        int rc = size >= S_POOL_MIN ? shmipc__pool_frame (self->pool, frame, size)
                                    : zmq_msg_init_size (frame, size);
        if (rc == 0 && size)
            memcpy (zmq_msg_data (frame), frames [index].data, size);
        S_HANDOFF_END ();
        if (rc) {
            s_close_frames (self->in_frames, 0, index);
            return -1;
        }
    }
    self->in_count = count;
    self->in_next = 0;
    self->stats.msgs_in++;
    self->stats.bytes_in += bytes;
    return 0;
}

//  Send the held frames to the bridge. Returns 0 when all went, -1/EAGAIN
//  if the bridge is full (before the first frame: nothing half-sent), -1
//  on other errors.
static int
s_send_in (shmipc__peer_t *self)
{
    while (self->in_next < self->in_count) {
        size_t index = self->in_next;
        int flags = ZMQ_DONTWAIT | (index + 1 < self->in_count ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send (&self->in_frames [index], self->bridge, flags) == -1) {
            //  Only the first frame can meet a full pipe: once it went, the
            //  rest of the message always goes
            errno = zmq_errno () == EAGAIN && index > 0 ? EPROTO : zmq_errno ();
            return -1;
        }
        self->in_next++;
    }
    self->in_count = self->in_next = 0;
    return 0;
}

//  Channel -> bridge. Returns 1 if the batch ran out, 0 to wait, -1 dead.
static int
s_pump_in (shmipc__peer_t *self, int batch)
{
    for (int count = 0; count < batch; count++) {
        if (self->in_count == 0) {
            const shmipc_frame_t *frames;
            size_t nframes;
            if (shmipc_channel_recv_view (self->channel, &frames, &nframes,
                                          SHMIPC_DONTWAIT)) {
                if (errno == EAGAIN)
                    return 0;
                if (errno == ECONNRESET)
                    return s_die (self, "peer closed the connection");
                return s_die_channel (self, "receive failed");
            }
            int rc = s_prepare_in (self, frames, nframes);
            shmipc_channel_recv_done (self->channel);
            if (rc)
                return s_die (self, "out of memory");
        }
        if (s_send_in (self)) {
            if (errno == EAGAIN)
                return 0;
            return s_die (self, "bridge send failed");
        }
    }
    return 1;
}

//  Read one whole message from the bridge into self->out. Returns 0, or
//  -1/EAGAIN if there is none, -1 on other errors.
static int
s_read_out (shmipc__peer_t *self)
{
    size_t count = 0;
    while (true) {
        if (s_reserve (&self->out, &self->out_iov, &self->out_slots, count + 1))
            return -1;
        zmq_msg_t *frame = &self->out [count];
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->bridge, ZMQ_DONTWAIT) == -1) {
            int saved = zmq_errno ();
            zmq_msg_close (frame);
            s_close_frames (self->out, 0, count);
            //  Later frames of a message are always there with the first
            errno = count ? EPROTO : saved;
            return -1;
        }
        count++;
        if (!zmq_msg_more (frame))
            break;
    }
    //  Only now: libzmq keeps small frames inside the zmq_msg_t itself, so
    //  their data moves whenever the array grows (s_reserve)
    for (size_t index = 0; index < count; index++) {
        self->out_iov [index].iov_base = zmq_msg_data (&self->out [index]);
        self->out_iov [index].iov_len = zmq_msg_size (&self->out [index]);
    }
    self->out_count = count;
    return 0;
}

//  Bridge -> channel. Returns 1 if the batch ran out, 0 to wait, -1 dead.
static int
s_pump_out (shmipc__peer_t *self, int batch)
{
    if (!s_bridge_reads (self))
        return 0;
    int rc = 1;
    for (int count = 0; count < batch; count++) {
        if (self->out_count == 0 && s_read_out (self)) {
            if (errno != EAGAIN)
                return s_die (self, "bridge receive failed");
            rc = 0;
            break;
        }
        S_HANDOFF_BEGIN ();
        int sent = shmipc_channel_sendv (self->channel, self->out_iov, self->out_count,
                                         SHMIPC_DONTWAIT | SHMIPC_DEFER);
        S_HANDOFF_END ();
        if (sent) {
            if (errno == EAGAIN) {
                rc = 0;
                break;
            }
            if (errno == EPIPE)
                return s_die (self, "peer closed the connection");
            return s_die_channel (self, "send failed");
        }
        for (size_t index = 0; index < self->out_count; index++)
            self->stats.bytes_out += self->out_iov [index].iov_len;
        self->stats.msgs_out++;
        s_close_frames (self->out, 0, self->out_count);
        self->out_count = 0;
    }
    //  One publish (and at most one WAKE) for the whole batch
    if (shmipc_channel_flush (self->channel))
        return s_die_channel (self, "flush failed");
    return rc;
}

int
shmipc__peer_process (shmipc__peer_t *self, int batch)
{
    assert (self);
    if (self->state == S_DEAD)
        return -1;
    if (self->state == S_HANDSHAKE) {
        if (shmipc_channel_handshake (self->channel, 0)) {
            if (errno == EAGAIN)
                return 0;
            return s_die_channel (self, "handshake failed");
        }
        if (s_greet (self))
            return -1;
    }
    if (self->state == S_GREETING && s_accept_greeting (self))
        return self->state == S_DEAD ? -1 : 0;

    int in = s_pump_in (self, batch);
    if (in < 0)
        return -1;
    int out = s_pump_out (self, batch);
    if (out < 0)
        return -1;
    if (in || out)
        return 1;               //  More to do: no sleep, so no events yet
    //  About to wait: as with ZMQ_EVENTS, the channel's events are the last
    //  call before the poll, so no wake-up is swallowed between them. Only
    //  the greeting may come as a control message.
    int events = shmipc_channel_events (self->channel);
    if (events & SHMIPC_POLLCTRL)
        return s_die (self, "unexpected control message");
    if ((events & SHMIPC_POLLERR) && shmipc_channel_error (self->channel))
        return s_die_channel (self, "channel broken");
    //  Something is ready after all (or the peer went: read what it left)
    if (((events & SHMIPC_POLLIN) && self->in_count == 0)
    ||  ((events & SHMIPC_POLLOUT) && self->out_count)
    ||  (events & SHMIPC_POLLERR))
        return 1;
    //  The channel's descriptor brings WAKEs, control records and end of
    //  stream. While a message waits for the bridge we must not read the
    //  channel, so we stop watching it (unless we also wait for ring
    //  space): after end of stream it would stay readable and spin us.
    s_watch_channel (self, self->state != S_ACTIVE || self->in_count == 0
                           || self->out_count ? EPOLLIN : 0);
    //  And the bridge's events last of all, for the same reason as the
    //  channel's: after them, any change signals its ZMQ_FD
    if (self->state == S_ACTIVE && self->bridge
    &&  (shmipc__bridge_events (self->bridge) & s_bridge_wanted (self)))
        return 1;
    return 0;
}

bool
shmipc__peer_spin (shmipc__peer_t *self)
{
    assert (self);
    if (self->state != S_ACTIVE)
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
    return !self->out_count && s_bridge_reads (self) && (bridge & ZMQ_POLLIN);
}

bool
shmipc__peer_idle (shmipc__peer_t *self)
{
    assert (self);
    //  A connection still in its handshake may hold a lent bridge with
    //  messages for it
    if (self->state == S_DEAD || !self->bridge)
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
    return self->state == S_ACTIVE;
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
    return self->state == S_ACTIVE && size && size == self->peer_id_size
        && memcmp (id, self->peer_id, size) == 0;
}
