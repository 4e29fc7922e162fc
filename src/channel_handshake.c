/*  =========================================================================
    channel_handshake - the channel's handshake: our segment, the HELLOs
    (with a segment's descriptor each way), and checking the peer's

    Owns nothing of its own: it fills in the channel (channel.h) it is
    given. Trusts nothing in the peer's HELLO or segment: the record is
    decoded and checked (wire.c), the segment attached and checked
    (segment.c), the ring indices checked (ring.c).
    =========================================================================
*/

#include "channel.h"
#include "shmipc_fdpass.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

//  Create our segment, fully populated (segment.c), so that the peer's
//  attach finds no hole. Returns 0 or -1 with errno.
int
shmipc__channel_own_new (shmipc_channel_t *self)
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
int
shmipc__channel_send_hello (shmipc_channel_t *self, int sock)
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
    if (self->role == SHMIPC_SERVER && shmipc__channel_own_new (self))
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
    if (self->role == SHMIPC_SERVER && shmipc__channel_send_hello (self, link->sock)) {
        if (errno == EPIPE || errno == ECONNRESET)
            return shmipc__channel_link_break (link, ECONNRESET,
                                               "peer closed during the handshake");
        return shmipc__channel_link_break (link, errno, "cannot send our HELLO");
    }
    //  Both HELLOs have gone: the segments' descriptors are spent, and a
    //  connection keeps three (the socket and the two wake pipes)
    shmipc_segment_close_fd (self->own);
    shmipc_segment_close_fd (self->peer);
    //  After our HELLO: the peer wakes us through our pipe from when it
    //  reads this on (WAKE records until then, and for ever if it fails)
    shmipc__channel_link_offer_pipe (link);
    link->state = SHMIPC__READY;
    self->deadline = -1;
    return 0;
}

//  Read the peer's HELLO if it is there. Returns 0 when ready, -1/EAGAIN
//  if not yet, -1 with another errno if the channel broke.
int
shmipc__channel_handshake_step (shmipc_channel_t *self)
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
        if (shmipc__channel_handshake_step (self) == 0)
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
