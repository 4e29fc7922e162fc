/*  =========================================================================
    channel - two rings and a socket make a bidirectional message channel.
    This file ties the parts together (channel.h): construction, the
    segments, the handshake, the public calls, events and options

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

//  Create our segment, fully populated (segment.c), so that the peer's
//  attach finds no hole. Returns 0 or -1 with errno.
static int
s_own_new (shmipc_channel_t *self)
{
    self->own = shmipc_segment_new (self->link.name,
                                    shmipc__segment_bytes (self->tx.capacity),
                                    SHMIPC__CHANNEL_KIND);
    if (!self->own)
        return -1;
    uint8_t *base = (uint8_t *) shmipc_segment_data (self->own);
    self->waiter.own_ctl = (shmipc__control_t *) (base + SHMIPC__CONTROL_OFFSET);
    return 0;
}

//  Send our HELLO with our segment's descriptor, without waiting. It fits
//  any socket buffer: it is the first record we send. Returns 0, or -1 with
//  errno (EPIPE or ECONNRESET: the peer is gone; ENOBUFS instead of EAGAIN,
//  which would mean "not yet").
static int
s_send_hello (shmipc_channel_t *self, int sock)
{
    uint8_t hello [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX];
    size_t size = shmipc__wire_hello (hello, self->role, self->tx.capacity,
                                      shmipc_segment_size (self->own),
                                      self->link.name, strlen (self->link.name));
    int fd = shmipc_segment_fd (self->own);
    ssize_t sent = shmipc_fdpass_send (sock, hello, size, &fd, 1, SHMIPC_DONTWAIT);
    if (sent == (ssize_t) size)
        return 0;
    if (sent >= 0 || errno == EAGAIN)
        errno = ENOBUFS;
    return -1;
}

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
    if (role == SHMIPC_CLIENT && (s_own_new (self) || s_send_hello (self, sock)))
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

//  --------------------------------------------------------------------------
//  Handshake

//  Check the peer's HELLO and attach its segment. Takes ownership of fd.
static int
s_accept_hello (shmipc_channel_t *self, const uint8_t *buffer, size_t size, int fd)
{
    //  Trusts: nothing in the record or the descriptor. Checks: record
    //  syntax, opposite role, capacity within bounds, segment size exactly
    //  what the capacity implies, and (in segment.c) seals and header.
    shmipc__channel_link_t *link = &self->link;
    shmipc__wire_t hello;
    const char *reason;
    if (shmipc__wire_decode (buffer, size, &hello, &reason)
    ||  hello.type != SHMIPC__WIRE_HELLO) {
        if (fd >= 0)
            close (fd);
        return shmipc__channel_link_break (link, EPROTO, *reason ? reason : "expected HELLO");
    }
    if (fd < 0)
        return shmipc__channel_link_break (link, EPROTO, "HELLO without a segment descriptor");
    if (hello.role == self->role) {
        close (fd);
        return shmipc__channel_link_break (link, EPROTO, "both sides have the same role");
    }
    if (hello.capacity < SHMIPC_RING_MIN || hello.capacity > self->max_peer_capacity
    ||  (hello.capacity & (hello.capacity - 1))
    ||  hello.segment_size != shmipc__segment_bytes (hello.capacity)) {
        close (fd);
        return shmipc__channel_link_break (link, EPROTO, "peer capacity out of range");
    }
    //  A segment with holes would have our reads allocate its pages, at
    //  our cost (ENODATA from attach): a real peer populates its own
    self->peer = shmipc_segment_attach (fd, hello.segment_size,
                                        hello.segment_size, SHMIPC__CHANNEL_KIND);
    if (!self->peer)
        return shmipc__channel_link_break (link, EPROTO, errno == ENODATA
                                           ? "peer segment not populated"
                                           : "peer segment refused");
    memcpy (link->peer_name, hello.name, hello.name_size);
    link->peer_name [hello.name_size] = 0;
    self->rx.capacity = hello.capacity;

    //  The server's segment exists only from here on: the client has shown
    //  a valid, populated segment of its own first
    if (self->role == SHMIPC_SERVER && s_own_new (self))
        return shmipc__channel_link_break (link, errno == EAGAIN ? ENOMEM : errno,
                                           "cannot create our segment");
    const uint8_t *peer_base = (const uint8_t *) shmipc_segment_data (self->peer);
    const shmipc__control_t *peer_ctl =
        (const shmipc__control_t *) (peer_base + SHMIPC__CONTROL_OFFSET);
    shmipc__control_t *own_ctl = self->waiter.own_ctl;
    self->waiter.peer_ctl = peer_ctl;
    uint8_t *own_base = (uint8_t *) shmipc_segment_data (self->own);
    self->tx.ring = shmipc_ring_new_writer (own_base + SHMIPC_SEGMENT_HEADER,
                                            self->tx.capacity, &own_ctl->head,
                                            &peer_ctl->tail);
    self->rx.ring = shmipc_ring_new_reader (peer_base + SHMIPC_SEGMENT_HEADER,
                                            self->rx.capacity, &peer_ctl->head,
                                            &own_ctl->tail);
    if (!self->tx.ring || !self->rx.ring) {
        //  EINVAL: the peer's indices are not those of an empty ring
        if (errno == EINVAL)
            return shmipc__channel_link_break (link, EPROTO, "peer ring indices not at start");
        return shmipc__channel_link_break (link, ENOMEM, "out of memory");
    }
    //  Records the peer holds in our ring (we step over them), and the
    //  table where we list those we hold in its ring
    shmipc_ring_set_holds (self->tx.ring, &peer_ctl->holds);
    self->rx.holds = shmipc__holds_new (&own_ctl->holds, self->rx.capacity);
    if (!self->rx.holds)
        return shmipc__channel_link_break (link, ENOMEM, "out of memory");
    //  A ring that fills its segment's data area is mirrored with it: every
    //  record then lies in one piece, read in place (nothing that wraps is
    //  copied twice)
    if (shmipc_segment_mirrored (self->own)
    &&  shmipc_segment_size (self->own) - SHMIPC_SEGMENT_HEADER == self->tx.capacity)
        shmipc_ring_set_mirrored (self->tx.ring);
    if (shmipc_segment_mirrored (self->peer)
    &&  shmipc_segment_size (self->peer) - SHMIPC_SEGMENT_HEADER == self->rx.capacity)
        shmipc_ring_set_mirrored (self->rx.ring);
    //  The server answers only a HELLO it accepted
    if (self->role == SHMIPC_SERVER && s_send_hello (self, link->sock)) {
        if (errno == EPIPE || errno == ECONNRESET)
            return shmipc__channel_link_break (link, ECONNRESET,
                                               "peer closed during the handshake");
        return shmipc__channel_link_break (link, errno, "cannot send our HELLO");
    }
    link->state = SHMIPC__READY;
    self->deadline = -1;
    return 0;
}

//  Read the peer's HELLO if it is there. Returns 0 when ready, -1/EAGAIN
//  if not yet, -1 with another errno if the channel broke.
static int
s_handshake_step (shmipc_channel_t *self)
{
    shmipc__channel_link_t *link = &self->link;
    if (link->state == SHMIPC__READY)
        return 0;
    if (link->state == SHMIPC__BROKEN) {
        errno = link->error;
        return -1;
    }
    uint8_t buffer [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX + 1];
    int fd = -1;
    size_t nfds = 0;
    ssize_t rc = shmipc_fdpass_recv (link->sock, buffer, sizeof buffer,
                                     &fd, 1, &nfds, SHMIPC_DONTWAIT);
    if (rc > 0)
        return s_accept_hello (self, buffer, (size_t) rc, nfds ? fd : -1);
    if (rc == 0 && shmipc__channel_link_empty_record (link))
        return shmipc__channel_link_break (link, EPROTO, "empty record on the socket");
    if (rc == 0)
        return shmipc__channel_link_break (link, ECONNRESET, "peer closed during the handshake");
    if (errno == EAGAIN) {
        if (shmipc__now_ms () >= self->deadline)
            return shmipc__channel_link_break (link, ETIMEDOUT, "handshake timed out");
        return -1;
    }
    if (errno == EPROTO || errno == EMSGSIZE)
        return shmipc__channel_link_break (link, EPROTO, "bad HELLO record or descriptors");
    return shmipc__channel_link_break (link, errno == ECONNRESET ? ECONNRESET : errno,
                                       "socket error during the handshake");
}

int
shmipc_channel_handshake (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    int64_t until = shmipc__deadline (timeout_ms);
    while (true) {
        if (s_handshake_step (self) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        int wait = shmipc__remaining_ms (self->deadline);
        int limit = shmipc__remaining_ms (until);
        if (limit == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (limit > 0 && limit < wait)
            wait = limit;
        if (shmipc__poll_fd (self->link.sock, POLLIN, wait) < 0)
            return -1;
    }
}

void
shmipc_channel_set_handshake_timeout (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    if (self->link.state == SHMIPC__HANDSHAKE)
        self->deadline = self->created + (timeout_ms < 0 ? 0 : timeout_ms);
}

int64_t
shmipc_channel_deadline (shmipc_channel_t *self)
{
    assert (self);
    return self->link.state == SHMIPC__HANDSHAKE ? self->deadline : -1;
}

bool
shmipc_channel_ready (shmipc_channel_t *self)
{
    assert (self);
    return self->link.state == SHMIPC__READY;
}

const char *
shmipc_channel_peer_name (shmipc_channel_t *self)
{
    assert (self);
    return self->rx.ring ? self->link.peer_name : NULL;
}

//  Complete the handshake within the deadline, or fail as the caller must
//  (EAGAIN for non-blocking calls).
static int
s_ensure_ready (shmipc_channel_t *self, int flags, int64_t deadline)
{
    if (self->link.state == SHMIPC__READY)
        return 0;
    if (flags & SHMIPC_DONTWAIT)
        return s_handshake_step (self);
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
    if (self->link.state == SHMIPC__HANDSHAKE && s_handshake_step (self))
        return -1;
    return shmipc__channel_link_send_ctrl (&self->link, data, size);
}

ssize_t
shmipc_channel_recv_ctrl (shmipc_channel_t *self, void *buffer, size_t size)
{
    assert (self);
    assert (buffer || size == 0);
    if (self->link.state == SHMIPC__HANDSHAKE && s_handshake_step (self))
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
shmipc_channel_events (shmipc_channel_t *self)
{
    assert (self);
    if (self->link.state == SHMIPC__HANDSHAKE && s_handshake_step (self))
        return errno == EAGAIN ? 0 : SHMIPC_POLLERR;
    if (self->link.state == SHMIPC__BROKEN)
        return SHMIPC_POLLERR;
    //  Read the socket first, then look at the rings, arming as we go:
    //  nothing reads the socket after a flag is armed
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_RX);
    shmipc__channel_waiter_disarm (&self->waiter, SHMIPC__DIR_TX);
    if (shmipc__channel_link_drain (&self->link)
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
