/*  =========================================================================
    channel - two rings and a socket make a bidirectional message channel:
    construction, handshake, socket records, sleeping and waking, control
    messages, events and options (transmit and receive have files of their
    own: channel_tx.c, channel_rx.c)

    Owns: the socket, our segment, the mapping of the peer's segment, the
    two rings over them, and the control messages not yet read (at most
    SHMIPC_CTRL_WINDOW). See channel.h for the state.

    Segment layout (ours; the peer's is the same, and untrusted):
        0       segment header (segment.c)
        64      control block: four cache lines, see shmipc__control_t
        4096    ring data: the ring we write, capacity bytes

    Wake-up protocol (Dekker style, seq_cst fences on both sides):
        sleeper: flag := odd epoch; fence; re-check ring; sleep on socket
        waker:   publish index; fence; if peer flag odd and not yet woken
                 for that epoch: send one WAKE record
    So a WAKE crosses the socket at most once per sleep, never per message.
    Only two places read the socket while data flows: the start of an
    operation that finds its flag armed, and shmipc_channel_events. After
    arming, nothing reads it but the sleep itself, so no WAKE is swallowed
    between the last look at the ring and the sleep.
    =========================================================================
*/

#include "channel.h"
#include "shmipc_fdpass.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_HANDSHAKE_MS      5000

_Static_assert (SHMIPC__CONTROL_OFFSET + sizeof (shmipc__control_t) <= SHMIPC_SEGMENT_HEADER,
                "control block must fit in the header page");

#define S_ATOMIC32(ptr) ((_Atomic uint32_t *) (ptr))

//  recvmsg returned 0: end of stream, or an empty record (which our peer
//  never sends: a violation). Returns true for the latter. The kernel sets
//  the hang-up before a reader can see end of stream, so no hang-up means
//  the 0 was a record, whether or not anything follows it.
static bool
s_empty_record (shmipc_channel_t *self)
{
    int revents = shmipc__poll_fd (self->sock, POLLIN | POLLRDHUP, 0);
    return revents >= 0 && !(revents & (POLLRDHUP | POLLHUP));
}

//  --------------------------------------------------------------------------
//  Errors

int
shmipc__channel_break (shmipc_channel_t *self, int code, const char *reason)
{
    if (self->state != SHMIPC__BROKEN) {
        self->state = SHMIPC__BROKEN;
        self->error = code;
        self->reason = reason;
        shutdown (self->sock, SHUT_RDWR);
        shmipc__log ("channel '%s' (peer '%s'): closed: %s",
                     self->name, self->peer_name, reason);
    }
    errno = self->error;
    return -1;
}

int
shmipc__channel_check_send (shmipc_channel_t *self)
{
    if (self->state == SHMIPC__BROKEN) {
        errno = self->error;
        return -1;
    }
    if (self->peer_gone) {
        errno = EPIPE;
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Construction

//  Create our segment, fully populated (segment.c), so that the peer's
//  attach finds no hole. Returns 0 or -1 with errno.
static int
s_own_new (shmipc_channel_t *self)
{
    self->own = shmipc_segment_new (self->name,
                                    shmipc__segment_bytes (self->capacity),
                                    SHMIPC__CHANNEL_KIND);
    if (!self->own)
        return -1;
    uint8_t *base = (uint8_t *) shmipc_segment_data (self->own);
    self->own_ctl = (shmipc__control_t *) (base + SHMIPC__CONTROL_OFFSET);
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
    size_t size = shmipc__wire_hello (hello, self->role, self->capacity,
                                      shmipc_segment_size (self->own),
                                      self->name, strlen (self->name));
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
    self->sock = -1;
    self->role = role;
    self->state = SHMIPC__HANDSHAKE;
    self->reason = "";
    memcpy (self->name, name, name_size + 1);
    self->created = shmipc__now_ms ();
    self->deadline = self->created + S_HANDSHAKE_MS;
    self->capacity = shmipc__pow2 (capacity < SHMIPC_RING_MIN ? SHMIPC_RING_MIN : capacity);
    //  A peer may make us map (never fault in: see s_accept_hello) this
    //  much; a peer as big as we are is always welcome
    self->max_peer_capacity = self->capacity > SHMIPC_PEER_CAPACITY_DEFAULT
                            ? self->capacity : SHMIPC_PEER_CAPACITY_DEFAULT;
    self->sndtimeo = -1;
    self->rcvtimeo = -1;
    self->partial = shmipc_msg_new ();
    if (!self->partial)
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
    self->sock = sock;
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
        if (self->sock >= 0)
            close (self->sock);
        shmipc_ring_destroy (&self->tx);
        shmipc_ring_destroy (&self->rx);
        shmipc_segment_destroy (&self->own);
        shmipc_segment_destroy (&self->peer);
        shmipc_msg_destroy (&self->partial);
        free (self->views);
        for (size_t index = 0; index < SHMIPC_CTRL_WINDOW; index++)
            free (self->ctrl [index].data);
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
    shmipc__wire_t hello;
    const char *reason;
    if (shmipc__wire_decode (buffer, size, &hello, &reason)
    ||  hello.type != SHMIPC__WIRE_HELLO) {
        if (fd >= 0)
            close (fd);
        return shmipc__channel_break (self, EPROTO, *reason ? reason : "expected HELLO");
    }
    if (fd < 0)
        return shmipc__channel_break (self, EPROTO, "HELLO without a segment descriptor");
    if (hello.role == self->role) {
        close (fd);
        return shmipc__channel_break (self, EPROTO, "both sides have the same role");
    }
    if (hello.capacity < SHMIPC_RING_MIN || hello.capacity > self->max_peer_capacity
    ||  (hello.capacity & (hello.capacity - 1))
    ||  hello.segment_size != shmipc__segment_bytes (hello.capacity)) {
        close (fd);
        return shmipc__channel_break (self, EPROTO, "peer capacity out of range");
    }
    //  A segment with holes would have our reads allocate its pages, at
    //  our cost (ENODATA from attach): a real peer populates its own
    self->peer = shmipc_segment_attach (fd, hello.segment_size,
                                        hello.segment_size, SHMIPC__CHANNEL_KIND);
    if (!self->peer)
        return shmipc__channel_break (self, EPROTO, errno == ENODATA
                                      ? "peer segment not populated"
                                      : "peer segment refused");
    memcpy (self->peer_name, hello.name, hello.name_size);
    self->peer_name [hello.name_size] = 0;
    self->peer_capacity = hello.capacity;

    //  The server's segment exists only from here on: the client has shown
    //  a valid, populated segment of its own first
    if (self->role == SHMIPC_SERVER && s_own_new (self))
        return shmipc__channel_break (self, errno == EAGAIN ? ENOMEM : errno,
                                      "cannot create our segment");
    const uint8_t *peer_base = (const uint8_t *) shmipc_segment_data (self->peer);
    self->peer_ctl = (const shmipc__control_t *) (peer_base + SHMIPC__CONTROL_OFFSET);
    uint8_t *own_base = (uint8_t *) shmipc_segment_data (self->own);
    self->tx = shmipc_ring_new_writer (own_base + SHMIPC_SEGMENT_HEADER,
                                       self->capacity, &self->own_ctl->head,
                                       &self->peer_ctl->tail);
    self->rx = shmipc_ring_new_reader (peer_base + SHMIPC_SEGMENT_HEADER,
                                       self->peer_capacity, &self->peer_ctl->head,
                                       &self->own_ctl->tail);
    if (!self->tx || !self->rx) {
        //  EINVAL: the peer's indices are not those of an empty ring
        if (errno == EINVAL)
            return shmipc__channel_break (self, EPROTO, "peer ring indices not at start");
        return shmipc__channel_break (self, ENOMEM, "out of memory");
    }
    //  The server answers only a HELLO it accepted
    if (self->role == SHMIPC_SERVER && s_send_hello (self, self->sock)) {
        if (errno == EPIPE || errno == ECONNRESET)
            return shmipc__channel_break (self, ECONNRESET, "peer closed during the handshake");
        return shmipc__channel_break (self, errno, "cannot send our HELLO");
    }
    self->state = SHMIPC__READY;
    self->deadline = -1;
    return 0;
}

//  Read the peer's HELLO if it is there. Returns 0 when ready, -1/EAGAIN
//  if not yet, -1 with another errno if the channel broke.
static int
s_handshake_step (shmipc_channel_t *self)
{
    if (self->state == SHMIPC__READY)
        return 0;
    if (self->state == SHMIPC__BROKEN) {
        errno = self->error;
        return -1;
    }
    uint8_t buffer [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX + 1];
    int fd = -1;
    size_t nfds = 0;
    ssize_t rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer,
                                     &fd, 1, &nfds, SHMIPC_DONTWAIT);
    if (rc > 0)
        return s_accept_hello (self, buffer, (size_t) rc, nfds ? fd : -1);
    if (rc == 0 && s_empty_record (self))
        return shmipc__channel_break (self, EPROTO, "empty record on the socket");
    if (rc == 0)
        return shmipc__channel_break (self, ECONNRESET, "peer closed during the handshake");
    if (errno == EAGAIN) {
        if (shmipc__now_ms () >= self->deadline)
            return shmipc__channel_break (self, ETIMEDOUT, "handshake timed out");
        return -1;
    }
    if (errno == EPROTO || errno == EMSGSIZE)
        return shmipc__channel_break (self, EPROTO, "bad HELLO record or descriptors");
    return shmipc__channel_break (self, errno == ECONNRESET ? ECONNRESET : errno,
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
        if (shmipc__poll_fd (self->sock, POLLIN, wait) < 0)
            return -1;
    }
}

void
shmipc_channel_set_handshake_timeout (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    if (self->state == SHMIPC__HANDSHAKE)
        self->deadline = self->created + (timeout_ms < 0 ? 0 : timeout_ms);
}

int64_t
shmipc_channel_deadline (shmipc_channel_t *self)
{
    assert (self);
    return self->state == SHMIPC__HANDSHAKE ? self->deadline : -1;
}

bool
shmipc_channel_ready (shmipc_channel_t *self)
{
    assert (self);
    return self->state == SHMIPC__READY;
}

const char *
shmipc_channel_peer_name (shmipc_channel_t *self)
{
    assert (self);
    return self->rx ? self->peer_name : NULL;
}

//  Complete the handshake within the deadline, or fail as the caller must
//  (EAGAIN for non-blocking calls).
int
shmipc__channel_ensure_ready (shmipc_channel_t *self, int flags, int64_t deadline)
{
    if (self->state == SHMIPC__READY)
        return 0;
    if (flags & SHMIPC_DONTWAIT)
        return s_handshake_step (self);
    return shmipc_channel_handshake (self, shmipc__remaining_ms (deadline));
}

//  --------------------------------------------------------------------------
//  Socket records

//  Send an 8-byte record (plus payload) without waiting. Returns 0, or -1
//  with errno EAGAIN (socket full) or EPIPE (peer gone, now noted).
static int
s_send_record (shmipc_channel_t *self, int type, uint32_t value,
               const void *payload, size_t size)
{
    uint8_t head [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (head, type, value);
    struct iovec iov [2] = {
        { .iov_base = head, .iov_len = sizeof head },
        { .iov_base = (void *) payload, .iov_len = size }
    };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    while (true) {
        if (sendmsg (self->sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK || errno == EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        self->peer_gone = true;
        errno = EPIPE;
        return -1;
    }
}

//  Try to send the ACK for control messages read. It carries the running
//  count, so a later ACK replaces one that could not go.
static void
s_send_ack (shmipc_channel_t *self)
{
    self->ack_pending = s_send_record (self, SHMIPC__WIRE_ACK,
                                       self->ctrl_consumed, NULL, 0) == -1
                        && errno == EAGAIN;
}

//  Handle one record from a ready peer.
static int
s_handle_record (shmipc_channel_t *self, const uint8_t *buffer, size_t size)
{
    shmipc__wire_t record;
    const char *reason;
    if (shmipc__wire_decode (buffer, size, &record, &reason))
        return shmipc__channel_break (self, EPROTO, reason);
    switch (record.type) {
        case SHMIPC__WIRE_WAKE:
            self->stats.wakeups_received++;
            return 0;
        case SHMIPC__WIRE_ACK:
            //  The count only grows, and never past what we sent
            if ((uint32_t) (record.value - self->ctrl_acked)
              > (uint32_t) (self->ctrl_sent - self->ctrl_acked))
                return shmipc__channel_break (self, EPROTO, "ACK for control messages never sent");
            self->ctrl_acked = record.value;
            return 0;
        case SHMIPC__WIRE_CTRL: {
            if (self->ctrl_count == SHMIPC_CTRL_WINDOW)
                return shmipc__channel_break (self, EPROTO, "control window exceeded");
            shmipc__ctrl_t *slot = &self->ctrl [(self->ctrl_head + self->ctrl_count)
                                          % SHMIPC_CTRL_WINDOW];
            slot->data = (uint8_t *) malloc (record.value ? record.value : 1);
            if (!slot->data)
                return shmipc__channel_break (self, ENOMEM, "out of memory");
            if (record.value)
                memcpy (slot->data, record.payload, record.value);
            slot->size = record.value;
            self->ctrl_count++;
            self->stats.ctrl_received++;
            return 0;
        }
        default:
            return shmipc__channel_break (self, EPROTO, "HELLO after the handshake");
    }
}

//  Take one record received from a ready peer: rc and errno are what
//  shmipc_fdpass_recv returned. Returns 0, or -1 if the channel broke.
static int
s_take (shmipc_channel_t *self, ssize_t rc, const uint8_t *buffer)
{
    if (rc > 0)
        return s_handle_record (self, buffer, (size_t) rc);
    if (rc == 0) {
        if (s_empty_record (self))
            return shmipc__channel_break (self, EPROTO, "empty record on the socket");
        self->peer_gone = true;
        return 0;
    }
    if (errno == EPROTO || errno == EMSGSIZE)
        return shmipc__channel_break (self, EPROTO,
                                      "descriptors or oversize record on the socket");
    self->peer_gone = true;             //  ECONNRESET and friends
    return 0;
}

//  Read every record waiting on the socket. Returns 0, or -1 if the channel
//  broke. End of stream marks the peer gone (not an error: the ring may
//  still hold its last messages).
int
shmipc__channel_drain (shmipc_channel_t *self)
{
    if (self->state == SHMIPC__BROKEN) {
        errno = self->error;
        return -1;
    }
    if (self->ack_pending)
        s_send_ack (self);
    uint8_t buffer [SHMIPC__WIRE_MAX];
    while (!self->peer_gone) {
        size_t nfds = 0;
        ssize_t rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer,
                                         NULL, 0, &nfds, SHMIPC_DONTWAIT);
        if (rc < 0 && errno == EAGAIN)
            break;
        if (rc < 0 && errno == EINTR)
            continue;
        if (s_take (self, rc, buffer))
            return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Sleeping and waking

void
shmipc__channel_wake_peer (shmipc_channel_t *self, bool reader)
{
    atomic_thread_fence (memory_order_seq_cst);
    //  Trusts: nothing; the flag only decides whether we send a WAKE
    const uint32_t *flag = reader ? &self->peer_ctl->rx_sleep : &self->peer_ctl->tx_sleep;
    uint32_t *woken = reader ? &self->woke_rx : &self->woke_tx;
    uint32_t epoch = atomic_load_explicit (S_ATOMIC32 (flag), memory_order_relaxed);
    if ((epoch & 1) && epoch != *woken) {
        *woken = epoch;
        //  A full socket means the peer has unread records, so it will
        //  wake anyway: dropping this WAKE then loses nothing
        if (s_send_record (self, SHMIPC__WIRE_WAKE, 0, NULL, 0) == 0)
            self->stats.wakeups_sent++;
    }
}

void
shmipc__channel_arm (shmipc_channel_t *self, bool rx)
{
    uint32_t *epoch = rx ? &self->rx_epoch : &self->tx_epoch;
    if (*epoch & 1)
        return;
    (*epoch)++;
    uint32_t *flag = rx ? &self->own_ctl->rx_sleep : &self->own_ctl->tx_sleep;
    atomic_store_explicit (S_ATOMIC32 (flag), *epoch, memory_order_relaxed);
    //  Our flag must be visible before we look at the ring again
    atomic_thread_fence (memory_order_seq_cst);
}

void
shmipc__channel_disarm (shmipc_channel_t *self, bool rx)
{
    uint32_t *epoch = rx ? &self->rx_epoch : &self->tx_epoch;
    if (!(*epoch & 1))
        return;
    (*epoch)++;
    uint32_t *flag = rx ? &self->own_ctl->rx_sleep : &self->own_ctl->tx_sleep;
    atomic_store_explicit (S_ATOMIC32 (flag), *epoch, memory_order_relaxed);
}

int
shmipc__channel_wake_up (shmipc_channel_t *self, bool rx)
{
    shmipc__channel_disarm (self, rx);
    return shmipc__channel_drain (self);
}

int
shmipc__channel_sleep (shmipc_channel_t *self, int64_t deadline)
{
    uint8_t buffer [SHMIPC__WIRE_MAX];
    size_t nfds = 0;
    ssize_t rc;
    if (deadline < 0) {
        //  No deadline: sleep in the receive itself, one system call
        rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer, NULL, 0, &nfds, 0);
        if (rc < 0 && errno == EINTR)
            return -1;
        return s_take (self, rc, buffer);
    }
    int revents = shmipc__poll_fd (self->sock, POLLIN, shmipc__remaining_ms (deadline));
    if (revents < 0)
        return -1;
    if (revents == 0) {
        errno = EAGAIN;
        return -1;
    }
    return shmipc__channel_drain (self);
}

void
shmipc__channel_spin_pause (void)
{
    sched_yield ();
}

//  --------------------------------------------------------------------------
//  Control messages

int
shmipc_channel_send_ctrl (shmipc_channel_t *self, const void *data, size_t size)
{
    assert (self);
    assert (data || size == 0);
    if (size > SHMIPC_CTRL_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (shmipc__channel_check_send (self))
        return -1;
    if (self->state == SHMIPC__HANDSHAKE && s_handshake_step (self))
        return -1;
    if (shmipc__channel_drain (self) || shmipc__channel_check_send (self))
        return -1;
    if ((uint32_t) (self->ctrl_sent - self->ctrl_acked) >= SHMIPC_CTRL_WINDOW) {
        errno = EAGAIN;
        return -1;
    }
    if (s_send_record (self, SHMIPC__WIRE_CTRL, (uint32_t) size, data, size))
        return -1;
    self->ctrl_sent++;
    self->stats.ctrl_sent++;
    return 0;
}

ssize_t
shmipc_channel_recv_ctrl (shmipc_channel_t *self, void *buffer, size_t size)
{
    assert (self);
    assert (buffer || size == 0);
    if (self->state == SHMIPC__HANDSHAKE && s_handshake_step (self))
        return -1;
    if (self->ctrl_count == 0 && shmipc__channel_drain (self))
        return -1;
    if (self->ctrl_count == 0) {
        errno = self->peer_gone ? ECONNRESET : EAGAIN;
        return -1;
    }
    shmipc__ctrl_t *slot = &self->ctrl [self->ctrl_head];
    if (slot->size > size) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t taken = slot->size;
    if (taken)
        memcpy (buffer, slot->data, taken);
    free (slot->data);
    slot->data = NULL;
    self->ctrl_head = (self->ctrl_head + 1) % SHMIPC_CTRL_WINDOW;
    self->ctrl_count--;
    self->ctrl_consumed++;
    s_send_ack (self);
    return (ssize_t) taken;
}

//  --------------------------------------------------------------------------
//  Polling

int
shmipc_channel_fd (shmipc_channel_t *self)
{
    assert (self);
    return self->sock;
}

int
shmipc_channel_events (shmipc_channel_t *self)
{
    assert (self);
    if (self->state == SHMIPC__HANDSHAKE && s_handshake_step (self))
        return errno == EAGAIN ? 0 : SHMIPC_POLLERR;
    if (self->state == SHMIPC__BROKEN)
        return SHMIPC_POLLERR;
    //  Read the socket first, then look at the rings, arming as we go:
    //  nothing reads the socket after a flag is armed
    shmipc__channel_disarm (self, true);
    shmipc__channel_disarm (self, false);
    if (shmipc__channel_drain (self) || shmipc__channel_poll_message (self, true))
        return SHMIPC_POLLERR;
    int events = 0;
    if (self->ready != SHMIPC__NONE)
        events |= SHMIPC_POLLIN;
    if (self->ctrl_count)
        events |= SHMIPC_POLLCTRL;
    if (self->peer_gone)
        return events | SHMIPC_POLLERR;
    //  Writable if what last failed now fits (a quarter of the ring if
    //  nothing failed); otherwise ask the reader to wake us when it frees
    //  space
    uint64_t want = self->tx_want ? self->tx_want : self->capacity / 4;
    while (true) {
        int64_t space = shmipc__channel_space (self);
        if (space < 0)
            return SHMIPC_POLLERR;
        if ((uint64_t) space >= want) {
            shmipc__channel_disarm (self, false);
            events |= SHMIPC_POLLOUT;
            break;
        }
        if (SHMIPC__TX_ARMED (self))
            break;
        shmipc__channel_arm (self, false);
    }
    return events;
}

int
shmipc_channel_peek_events (shmipc_channel_t *self)
{
    assert (self);
    if (self->state != SHMIPC__READY)
        return self->state == SHMIPC__BROKEN ? SHMIPC_POLLERR : 0;
    //  We are awake: no WAKE needed while we spin
    shmipc__channel_disarm (self, true);
    shmipc__channel_disarm (self, false);
    int events = 0;
    int64_t available = self->ready != SHMIPC__NONE ? 1 : shmipc_ring_available (self->rx);
    if (available < 0) {
        shmipc__channel_break (self, EPROTO, "peer ring index or record header out of range");
        return SHMIPC_POLLERR;
    }
    if (available > 0)
        events |= SHMIPC_POLLIN;
    int64_t space = shmipc__channel_space (self);
    if (space < 0)
        return SHMIPC_POLLERR;
    if ((uint64_t) space >= (self->tx_want ? self->tx_want : self->capacity / 4))
        events |= SHMIPC_POLLOUT;
    return events;
}

//  --------------------------------------------------------------------------
//  Options and accessors

void
shmipc_channel_set_sndtimeo (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    self->sndtimeo = timeout_ms < 0 ? -1 : timeout_ms;
}

void
shmipc_channel_set_rcvtimeo (shmipc_channel_t *self, int timeout_ms)
{
    assert (self);
    self->rcvtimeo = timeout_ms < 0 ? -1 : timeout_ms;
}

void
shmipc_channel_set_spin (shmipc_channel_t *self, int spin_us)
{
    assert (self);
    self->spin_us = spin_us < 0 ? 0 : spin_us;
}

void
shmipc_channel_set_maxmsgsize (shmipc_channel_t *self, size_t size)
{
    assert (self);
    self->maxmsgsize = size;
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
    return self->state == SHMIPC__BROKEN ? self->error : 0;
}

const char *
shmipc_channel_reason (shmipc_channel_t *self)
{
    assert (self);
    return self->reason;
}

size_t
shmipc_channel_capacity (shmipc_channel_t *self)
{
    assert (self);
    return self->capacity;
}

size_t
shmipc_channel_peer_capacity (shmipc_channel_t *self)
{
    assert (self);
    return self->peer_capacity;
}

void
shmipc_channel_stats (shmipc_channel_t *self, shmipc_channel_stats_t *stats)
{
    assert (self);
    assert (stats);
    *stats = self->stats;
}
