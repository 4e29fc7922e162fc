/*  =========================================================================
    channel - two rings and a socket make a bidirectional message channel.
    This file ties the parts together (channel.h): construction, the
    public calls, events and options; the handshake and our segment are
    in channel_handshake.c

    Owns: our segment and the mapping of the peer's; through its parts the
    socket (channel_link), the two rings (channel_tx, channel_rx) and the
    control messages not yet read. Does not hold the wake-up protocol
    (channel_waiter.c) or the records after the handshake (channel_link.c).

    Segment layout (ours; the peer's is the same, and untrusted):
        0       segment header (segment.c)
        64      control block: four cache lines, see shmipc__control_t
        4096    ring data: the ring we write, capacity bytes
    =========================================================================
*/

#include "channel.h"
#include "shmipc_fdpass.h"
#include "shmipc_loans.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HANDSHAKE_MS      5000

_Static_assert (SHMIPC__CONTROL_OFFSET + sizeof (shmipc__control_t) <= SHMIPC_SEGMENT_HEADER,
                "control block must fit in the header page");

//  The transmit side gives back read space before it waits: the receive
//  side's job, handed down to it as a callback.
static void
s_release_rx (void *arg)
{
    shmipc__channel_rx_release ((shmipc__channel_rx_t *) arg);
}

//  --------------------------------------------------------------------------
//  Construction

shmipc_channel_t *
shmipc_channel_new (int sock, const char *name, size_t capacity, int role)
{
    assert (name);
    assert (role == SHMIPC_CLIENT || role == SHMIPC_SERVER);
    int type;
    socklen_t type_size = sizeof type;
    if (getsockopt (sock, SOL_SOCKET, SO_TYPE, &type, &type_size) == -1)
        return NULL;
    if (type != SOCK_SEQPACKET) {
        errno = EPROTOTYPE;
        return NULL;
    }
    size_t name_size = strlen (name);
    if (name_size > SHMIPC_NAME_MAX
    ||  capacity == 0 || capacity > SHMIPC_RING_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (!shmipc__printable (name, name_size)) {
        errno = EINVAL;
        return NULL;
    }
    shmipc_channel_t *self = (shmipc_channel_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->role = role;
    self->created = shmipc__now_ms ();
    self->deadline = self->created + S_HANDSHAKE_MS;
    capacity = shmipc__pow2 (capacity < SHMIPC_RING_MIN ? SHMIPC_RING_MIN : capacity);
    //  A peer may make us map (never fault in: see s_accept_hello) this
    //  much; a peer as big as we are is always welcome
    self->max_peer_capacity = capacity > SHMIPC_PEER_CAPACITY_DEFAULT
                            ? capacity : SHMIPC_PEER_CAPACITY_DEFAULT;
    shmipc__channel_link_init (&self->link, name);
    shmipc__channel_waiter_init (&self->waiter, &self->link);
    shmipc__channel_tx_init (&self->tx, &self->link, &self->waiter, capacity,
                             s_release_rx, &self->rx);
    if (shmipc__channel_rx_init (&self->rx, &self->link, &self->waiter))
        goto failed;
    //  The client speaks first. The server commits no memory and no
    //  descriptor to a peer that has said nothing: it answers the client's
    //  HELLO once that has been checked (s_accept_hello)
    if (role == SHMIPC_CLIENT && (shmipc__channel_own_new (self) || shmipc__channel_send_hello (self, sock)))
        goto failed;
    //  Only now is the socket ours. Blocking: a waiting call then sleeps and
    //  takes its WAKE in one recvmsg; every other call says MSG_DONTWAIT
    int flags = fcntl (sock, F_GETFL);
    if (flags == -1 || fcntl (sock, F_SETFL, flags & ~O_NONBLOCK) == -1
    ||  fcntl (sock, F_SETFD, FD_CLOEXEC) == -1)
        goto failed;
    self->link.sock = sock;
    return self;

failed:;
    int saved = errno;
    shmipc_channel_destroy (&self);
    errno = saved;
    return NULL;
}

void
shmipc_channel_destroy (shmipc_channel_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        shmipc_channel_t *self = *self_p;
        shmipc__channel_link_destroy (&self->link);
        shmipc__channel_tx_destroy (&self->tx);
        shmipc__channel_rx_destroy (&self->rx);
        //  Frames still held keep the segments mapped until released
        shmipc__holds_close (&self->rx.holds, &self->own, &self->peer, &self->rx.pool);
        free (self);
        *self_p = NULL;
    }
}

//  Complete the handshake within the deadline, or fail as the caller must
//  (EAGAIN for non-blocking calls).
static int
s_ensure_ready (shmipc_channel_t *self, int flags, int64_t deadline)
{
    if (self->link.state == SHMIPC__READY)
        return 0;
    if (flags & SHMIPC_DONTWAIT)
        return shmipc__channel_handshake_step (self);
    return shmipc_channel_handshake (self, shmipc__remaining_ms (deadline));
}

//  --------------------------------------------------------------------------
//  Sending (channel_tx.c)

int
shmipc_channel_sendv (shmipc_channel_t *self, const struct iovec *frames,
                      size_t nframes, int flags)
{
    assert (self);
    assert (frames || nframes == 0);
    if (nframes == 0) {
        errno = EINVAL;
        return -1;
    }
    if (nframes > SHMIPC_FRAMES_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (self->link.state != SHMIPC__READY
    &&  s_ensure_ready (self, flags, shmipc__deadline (self->tx.sndtimeo)))
        return -1;
    return shmipc__channel_tx_sendv (&self->tx, frames, nframes, flags);
}

int
shmipc_channel_send (shmipc_channel_t *self, const void *data, size_t size, int flags)
{
    assert (data || size == 0);
    struct iovec frame = { .iov_base = (void *) data, .iov_len = size };
    return shmipc_channel_sendv (self, &frame, 1, flags);
}

int
shmipc_channel_send_msg (shmipc_channel_t *self, shmipc_msg_t *msg, int flags)
{
    assert (msg);
    size_t nframes = shmipc_msg_frames (msg);
    if (nframes == 0 || nframes > SHMIPC_FRAMES_MAX) {
        errno = nframes ? EMSGSIZE : EINVAL;
        return -1;
    }
    struct iovec small [8];
    struct iovec *frames = nframes <= 8 ? small
                         : (struct iovec *) malloc (nframes * sizeof *frames);
    if (!frames)
        return -1;
    for (size_t index = 0; index < nframes; index++) {
        frames [index].iov_base = (void *) shmipc_msg_data (msg, index);
        frames [index].iov_len = shmipc_msg_size (msg, index);
    }
    int rc = shmipc_channel_sendv (self, frames, nframes, flags);
    if (frames != small) {
        int saved = errno;
        free (frames);
        errno = saved;
    }
    return rc;
}

int
shmipc_channel_flush (shmipc_channel_t *self)
{
    assert (self);
    if (shmipc__channel_link_check_send (&self->link))
        return -1;
    if (self->tx.ring)
        shmipc__channel_tx_publish (&self->tx);
    return 0;
}

//  --------------------------------------------------------------------------
//  Receiving (channel_rx.c)

//  Before a receive waits: complete the handshake, unless a message is
//  ready already. Returns 0 or -1 with errno.
static inline int
s_recv_ready (shmipc_channel_t *self, int flags)
{
    if (self->rx.ready != SHMIPC__NONE || self->link.state == SHMIPC__READY)
        return 0;
    return s_ensure_ready (self, flags, shmipc__deadline (self->rx.rcvtimeo));
}

int
shmipc_channel_recv_view (shmipc_channel_t *self, const shmipc_frame_t **frames,
                          size_t *nframes, int flags)
{
    assert (self);
    assert (frames && nframes);
    if (s_recv_ready (self, flags))
        return -1;
    return shmipc__channel_rx_recv_view (&self->rx, frames, nframes, flags);
}

void
shmipc_channel_recv_done (shmipc_channel_t *self)
{
    assert (self);
    shmipc__channel_rx_recv_done (&self->rx);
}

void
shmipc_channel_set_loans (shmipc_channel_t *self, shmipc_loans_t *loans)
{
    assert (self);
    shmipc__channel_lend_set (&self->tx.lend, loans);
}

shmipc_hold_t *
shmipc_channel_hold (shmipc_channel_t *self, size_t index)
{
    assert (self);
    return shmipc__channel_rx_hold (&self->rx, index);
}

int
shmipc_channel_recv_into (shmipc_channel_t *self, shmipc_msg_t *msg, int flags)
{
    assert (self);
    assert (msg);
    if (s_recv_ready (self, flags))
        return -1;
    return shmipc__channel_rx_recv_into (&self->rx, msg, flags);
}

shmipc_msg_t *
shmipc_channel_recv (shmipc_channel_t *self, int flags)
{
    assert (self);
    if (s_recv_ready (self, flags))
        return NULL;
    return shmipc__channel_rx_recv (&self->rx, flags);
}

ssize_t
shmipc_channel_recv_vectored (shmipc_channel_t *self, shmipc_msg_t **msgs,
                              size_t max, int flags)
{
    assert (self);
    assert (msgs);
    if (max == 0) {
        errno = EINVAL;
        return -1;
    }
    if (s_recv_ready (self, flags))
        return -1;
    return shmipc__channel_rx_recv_vectored (&self->rx, msgs, max, flags);
}

//  --------------------------------------------------------------------------
//  Control messages (channel_link.c)

int
shmipc_channel_send_ctrl (shmipc_channel_t *self, const void *data, size_t size)
{
    assert (self);
    assert (data || size == 0);
    if (size > SHMIPC_CTRL_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (shmipc__channel_link_check_send (&self->link))
        return -1;
    if (self->link.state == SHMIPC__HANDSHAKE && shmipc__channel_handshake_step (self))
        return -1;
    return shmipc__channel_link_send_ctrl (&self->link, data, size);
}

ssize_t
shmipc_channel_recv_ctrl (shmipc_channel_t *self, void *buffer, size_t size)
{
    assert (self);
    assert (buffer || size == 0);
    if (self->link.state == SHMIPC__HANDSHAKE && shmipc__channel_handshake_step (self))
        return -1;
    return shmipc__channel_link_recv_ctrl (&self->link, buffer, size);
}

//  --------------------------------------------------------------------------
//  Polling

int
shmipc_channel_fd (shmipc_channel_t *self)
{
    assert (self);
    return self->link.sock;
}

int
shmipc_channel_wake_fd (shmipc_channel_t *self)
{
    assert (self);
    return self->link.wake_own;
}

int
shmipc_channel_events (shmipc_channel_t *self)
{
    assert (self);
    if (self->link.state == SHMIPC__HANDSHAKE && shmipc__channel_handshake_step (self))
        return errno == EAGAIN ? 0 : SHMIPC_POLLERR;
    if (self->link.state == SHMIPC__BROKEN)
        return SHMIPC_POLLERR;
    //  Read the socket first, then look at the rings, arming as we go:
    //  nothing reads the socket after a flag is armed
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_RX);
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_TX);
    if (shmipc__channel_link_drain_all (&self->link)
    ||  shmipc__channel_rx_poll (&self->rx, true))
        return SHMIPC_POLLERR;
    int events = 0;
    if (self->rx.ready != SHMIPC__NONE)
        events |= SHMIPC_POLLIN;
    if (self->link.ctrl_count)
        events |= SHMIPC_POLLCTRL;
    if (self->link.peer_gone)
        return events | SHMIPC_POLLERR;
    //  Writable if what last failed now fits; otherwise ask the reader to
    //  wake us when it frees space
    int writable = shmipc__channel_tx_writable (&self->tx, true);
    if (writable < 0)
        return SHMIPC_POLLERR;
    if (writable)
        events |= SHMIPC_POLLOUT;
    return events;
}

int
shmipc_channel_peek_events (shmipc_channel_t *self)
{
    assert (self);
    if (self->link.state != SHMIPC__READY)
        return self->link.state == SHMIPC__BROKEN ? SHMIPC_POLLERR : 0;
    //  We are awake: no WAKE needed while we spin
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_RX);
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_TX);
    int events = 0;
    int readable = shmipc__channel_rx_readable (&self->rx);
    if (readable < 0)
        return SHMIPC_POLLERR;
    if (readable)
        events |= SHMIPC_POLLIN;
    int writable = shmipc__channel_tx_writable (&self->tx, false);
    if (writable < 0)
        return SHMIPC_POLLERR;
    if (writable)
        events |= SHMIPC_POLLOUT;
    return events;
}

//  --------------------------------------------------------------------------
//  Options and accessors

void
shmipc_channel_set_sndtimeo (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    self->tx.sndtimeo = timeout_ms < 0 ? -1 : timeout_ms;
}

void
shmipc_channel_set_rcvtimeo (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    self->rx.rcvtimeo = timeout_ms < 0 ? -1 : timeout_ms;
}

void
shmipc_channel_set_events_driven (shmipc_channel_t *self, bool on)
{
    assert (self);
    self->waiter.events_driven = on;
}

void
shmipc_channel_set_wake_pipe (shmipc_channel_t *self, bool on)
{
    assert (self);
    self->link.no_pipe = !on;
}

void
shmipc_channel_set_spin (shmipc_channel_t *self, int spin_us)
{
    assert (self);
    self->waiter.spin_us = spin_us < 0 ? 0 : spin_us;
}

void
shmipc_channel_set_maxmsgsize (shmipc_channel_t *self, size_t size)
{
    assert (self);
    self->rx.maxmsgsize = size;
}

void
shmipc_channel_set_max_peer_capacity (shmipc_channel_t *self, size_t size)
{
    assert (self);
    self->max_peer_capacity = size < SHMIPC_RING_MAX ? size : SHMIPC_RING_MAX;
}

int
shmipc_channel_error (shmipc_channel_t *self)
{
    assert (self);
    return self->link.state == SHMIPC__BROKEN ? self->link.error : 0;
}

const char *
shmipc_channel_reason (shmipc_channel_t *self)
{
    assert (self);
    return self->link.reason;
}

size_t
shmipc_channel_capacity (shmipc_channel_t *self)
{
    assert (self);
    return self->tx.capacity;
}

size_t
shmipc_channel_peer_capacity (shmipc_channel_t *self)
{
    assert (self);
    return self->rx.capacity;
}

void
shmipc_channel_stats (shmipc_channel_t *self, shmipc_channel_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = (shmipc_channel_stats_t) {
        .msgs_sent = self->tx.stat_msgs_sent,
        .bytes_sent = self->tx.stat_bytes_sent,
        .msgs_received = self->rx.stat_msgs_received,
        .bytes_received = self->rx.stat_bytes_received,
        .wakeups_sent = self->link.stat_wakeups_sent,
        .wakeups_received = self->link.stat_wakeups_received,
        .ctrl_sent = self->link.stat_ctrl_sent,
        .ctrl_received = self->link.stat_ctrl_received };
}
