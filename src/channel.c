/*  =========================================================================
    channel - two rings and a socket make a bidirectional message channel

    Owns: the socket, our segment, the mapping of the peer's segment, the
    two rings over them, the message being reassembled and the queue of
    control messages not yet read (at most SHMIPC_CTRL_WINDOW).

    Segment layout (ours; the peer's is the same, and untrusted):
        0       segment header (segment.c)
        64      control block: four cache lines, see s_control_t
        4096    ring data: the ring we write, capacity bytes

    Wake-up protocol (Dekker style, seq_cst fences on both sides):
        sleeper: flag := odd epoch; fence; re-check ring; poll socket
        waker:   publish index; fence; if peer flag odd and not yet woken
                 for that epoch: send one WAKE record
    So a WAKE crosses the socket at most once per sleep, never per message.
    =========================================================================
*/

#include "shmipc_channel.h"
#include "shmipc_fdpass.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"
#include "util.h"
#include "wire.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_KIND              0x4e414843u     //  "CHAN": a channel segment
#define S_CONTROL_OFFSET    64
#define S_HANDSHAKE_MS      5000

//  The words each side publishes, in its own segment, one cache line each
//  so that the two writers never share a line.
typedef struct {
    _Alignas (64) uint64_t head;        //  Write index of our ring
    _Alignas (64) uint64_t tail;        //  Read index into the peer's ring
    _Alignas (64) uint32_t rx_sleep;    //  Odd while we wait for data
    _Alignas (64) uint32_t tx_sleep;    //  Odd while we wait for space
} s_control_t;

_Static_assert (S_CONTROL_OFFSET + sizeof (s_control_t) <= SHMIPC_SEGMENT_HEADER,
                "control block must fit in the header page");

typedef enum {
    S_HANDSHAKE,                //  Waiting for the peer's HELLO
    S_READY,                    //  Working (the peer may be gone: see peer_gone)
    S_BROKEN                    //  Closed by an error; see error and reason
} s_state_t;

//  A control message received and not yet read.
typedef struct {
    uint8_t *data;              //  Payload (malloc'd)
    size_t size;                //  Its size
} s_ctrl_t;

//  Progress through a message too big for the ring (see sendv).
typedef struct {
    bool active;                //  A message is part-way through
    size_t nframes;             //  Its frame count, to recognise the retry
    uint64_t total;             //  Its content size, likewise
    size_t frame;               //  Frame being written
    size_t offset;              //  Bytes of that frame already written
} s_stream_t;

struct _shmipc_channel_t {
    int sock;                               //  Connected SEQPACKET socket; owned
    int role;                               //  SHMIPC_CLIENT or SHMIPC_SERVER
    s_state_t state;                        //  See s_state_t
    bool peer_gone;                         //  End of stream seen on the socket
    int error;                              //  errno that broke the channel
    const char *reason;                     //  Why, in words (static string)
    char name [SHMIPC_NAME_MAX + 1];        //  Our name
    char peer_name [SHMIPC_NAME_MAX + 1];   //  The peer's, from its HELLO
    int64_t created;                        //  When, in monotonic ms
    int64_t deadline;                       //  Handshake deadline (ms)
    size_t capacity;                        //  Our ring's bytes
    size_t peer_capacity;                   //  The peer's ring's bytes
    size_t max_peer_capacity;               //  Largest peer ring we accept
    size_t maxmsgsize;                      //  Largest message accepted (0: any)
    int sndtimeo;                           //  ms, -1 for ever
    int rcvtimeo;                           //  ms, -1 for ever
    int spin_us;                            //  Spin before sleeping, us

    shmipc_segment_t *own;                  //  Our segment (read-write); owned
    shmipc_segment_t *peer;                 //  The peer's (read-only); owned
    s_control_t *own_ctl;                   //  Control block in our segment
    const s_control_t *peer_ctl;            //  Control block in the peer's
    shmipc_ring_t *tx;                      //  The ring we write; owned
    shmipc_ring_t *rx;                      //  The ring we read; owned

    uint32_t rx_epoch;                      //  Our rx_sleep value
    uint32_t tx_epoch;                      //  Our tx_sleep value
    uint32_t woke_rx;                       //  Peer rx_sleep epoch last woken
    uint32_t woke_tx;                       //  Peer tx_sleep epoch last woken

    shmipc_msg_t *partial;                  //  Message being reassembled
    bool frame_open;                        //  Its last frame continues
    bool complete;                          //  It is whole, ready to hand over
    s_stream_t stream;                      //  Outgoing oversize message

    s_ctrl_t ctrl [SHMIPC_CTRL_WINDOW];     //  Received control messages
    size_t ctrl_head;                       //  Oldest in ctrl []
    size_t ctrl_count;                      //  How many in ctrl []
    uint32_t ctrl_sent;                     //  Control messages we sent
    uint32_t ctrl_acked;                    //  Of those, read by the peer
    uint32_t ctrl_consumed;                 //  Control messages we read
    bool ack_pending;                       //  An ACK could not be sent yet

    shmipc_channel_stats_t stats;           //  Counters
};

static int s_drain (shmipc_channel_t *self);
static void s_release (shmipc_channel_t *self);

#define S_ATOMIC32(ptr) ((_Atomic uint32_t *) (ptr))

//  --------------------------------------------------------------------------
//  Errors

//  Close the channel for good with code and reason; the peer sees end of
//  stream. Returns -1 with errno = code, for tail calls.
static int
s_break (shmipc_channel_t *self, int code, const char *reason)
{
    if (self->state != S_BROKEN) {
        self->state = S_BROKEN;
        self->error = code;
        self->reason = reason;
        shutdown (self->sock, SHUT_RDWR);
        shmipc__log ("channel '%s' (peer '%s'): closed: %s",
                     self->name, self->peer_name, reason);
    }
    errno = self->error;
    return -1;
}

//  Return -1 with the errno that fits the channel's state, or 0 if it is
//  usable for sending.
static int
s_check_send (shmipc_channel_t *self)
{
    if (self->state == S_BROKEN) {
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
    for (size_t index = 0; index < name_size; index++)
        if ((unsigned char) name [index] < 0x20 || name [index] == 0x7f) {
            errno = EINVAL;
            return NULL;
        }
    shmipc_channel_t *self = (shmipc_channel_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = -1;
    self->role = role;
    self->state = S_HANDSHAKE;
    self->reason = "";
    memcpy (self->name, name, name_size + 1);
    self->created = shmipc__now_ms ();
    self->deadline = self->created + S_HANDSHAKE_MS;
    self->capacity = shmipc__pow2 (capacity < SHMIPC_RING_MIN ? SHMIPC_RING_MIN : capacity);
    self->max_peer_capacity = SHMIPC_RING_MAX;
    self->sndtimeo = -1;
    self->rcvtimeo = -1;
    self->partial = shmipc_msg_new ();
    if (!self->partial)
        goto failed;

    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    size_t segment_size = SHMIPC_SEGMENT_HEADER + (self->capacity + page - 1) / page * page;
    self->own = shmipc_segment_new (name, segment_size, S_KIND);
    if (!self->own)
        goto failed;
    uint8_t *base = (uint8_t *) shmipc_segment_data (self->own);
    self->own_ctl = (s_control_t *) (base + S_CONTROL_OFFSET);

    //  Our half of the handshake goes now; it fits any socket buffer
    uint8_t hello [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX];
    size_t size = shmipc__wire_hello (hello, role, self->capacity,
                                      shmipc_segment_size (self->own),
                                      name, name_size);
    int fd = shmipc_segment_fd (self->own);
    if (shmipc_fdpass_send (sock, hello, size, &fd, 1, SHMIPC_DONTWAIT) != (ssize_t) size)
        goto failed;
    //  Only now is the socket ours
    int flags = fcntl (sock, F_GETFL);
    if (flags == -1 || fcntl (sock, F_SETFL, flags | O_NONBLOCK) == -1
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
        return s_break (self, EPROTO, *reason ? reason : "expected HELLO");
    }
    if (fd < 0)
        return s_break (self, EPROTO, "HELLO without a segment descriptor");
    if (hello.role == self->role) {
        close (fd);
        return s_break (self, EPROTO, "both sides have the same role");
    }
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    if (hello.capacity < SHMIPC_RING_MIN || hello.capacity > self->max_peer_capacity
    ||  (hello.capacity & (hello.capacity - 1))
    ||  hello.segment_size != SHMIPC_SEGMENT_HEADER
                              + (hello.capacity + page - 1) / page * page) {
        close (fd);
        return s_break (self, EPROTO, "peer capacity out of range");
    }
    self->peer = shmipc_segment_attach (fd, hello.segment_size,
                                        hello.segment_size, S_KIND);
    if (!self->peer)
        return s_break (self, EPROTO, "peer segment refused");
    memcpy (self->peer_name, hello.name, hello.name_size);
    self->peer_name [hello.name_size] = 0;
    self->peer_capacity = hello.capacity;

    const uint8_t *peer_base = (const uint8_t *) shmipc_segment_data (self->peer);
    self->peer_ctl = (const s_control_t *) (peer_base + S_CONTROL_OFFSET);
    uint8_t *own_base = (uint8_t *) shmipc_segment_data (self->own);
    self->tx = shmipc_ring_new_writer (own_base + SHMIPC_SEGMENT_HEADER,
                                       self->capacity, &self->own_ctl->head,
                                       &self->peer_ctl->tail);
    self->rx = shmipc_ring_new_reader (peer_base + SHMIPC_SEGMENT_HEADER,
                                       self->peer_capacity, &self->peer_ctl->head,
                                       &self->own_ctl->tail);
    if (!self->tx || !self->rx)
        return s_break (self, ENOMEM, "out of memory");
    self->state = S_READY;
    self->deadline = -1;
    return 0;
}

//  Read the peer's HELLO if it is there. Returns 0 when ready, -1/EAGAIN
//  if not yet, -1 with another errno if the channel broke.
static int
s_handshake_step (shmipc_channel_t *self)
{
    if (self->state == S_READY)
        return 0;
    if (self->state == S_BROKEN) {
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
    if (rc == 0)
        return s_break (self, ECONNRESET, "peer closed during the handshake");
    if (errno == EAGAIN) {
        if (shmipc__now_ms () >= self->deadline)
            return s_break (self, ETIMEDOUT, "handshake timed out");
        return -1;
    }
    if (errno == EPROTO || errno == EMSGSIZE)
        return s_break (self, EPROTO, "bad HELLO record or descriptors");
    return s_break (self, errno == ECONNRESET ? ECONNRESET : errno,
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
    if (self->state == S_HANDSHAKE)
        self->deadline = self->created + (timeout_ms < 0 ? 0 : timeout_ms);
}

int64_t
shmipc_channel_deadline (shmipc_channel_t *self)
{
    assert (self);
    return self->state == S_HANDSHAKE ? self->deadline : -1;
}

bool
shmipc_channel_ready (shmipc_channel_t *self)
{
    assert (self);
    return self->state == S_READY;
}

const char *
shmipc_channel_peer_name (shmipc_channel_t *self)
{
    assert (self);
    return self->rx ? self->peer_name : NULL;
}

//  Complete the handshake within the deadline, or fail as the caller must
//  (EAGAIN for non-blocking calls).
static int
s_ensure_ready (shmipc_channel_t *self, int flags, int64_t deadline)
{
    if (self->state == S_READY)
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

//  Send a WAKE. A full socket means the peer has unread records, so it
//  will wake anyway: dropping the WAKE then loses nothing.
static void
s_send_wake (shmipc_channel_t *self)
{
    if (s_send_record (self, SHMIPC__WIRE_WAKE, 0, NULL, 0) == 0)
        self->stats.wakeups_sent++;
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
        return s_break (self, EPROTO, reason);
    switch (record.type) {
        case SHMIPC__WIRE_WAKE:
            self->stats.wakeups_received++;
            return 0;
        case SHMIPC__WIRE_ACK:
            //  The count only grows, and never past what we sent
            if ((uint32_t) (record.value - self->ctrl_acked)
              > (uint32_t) (self->ctrl_sent - self->ctrl_acked))
                return s_break (self, EPROTO, "ACK for control messages never sent");
            self->ctrl_acked = record.value;
            return 0;
        case SHMIPC__WIRE_CTRL: {
            if (self->ctrl_count == SHMIPC_CTRL_WINDOW)
                return s_break (self, EPROTO, "control window exceeded");
            s_ctrl_t *slot = &self->ctrl [(self->ctrl_head + self->ctrl_count)
                                          % SHMIPC_CTRL_WINDOW];
            slot->data = (uint8_t *) malloc (record.value ? record.value : 1);
            if (!slot->data)
                return s_break (self, ENOMEM, "out of memory");
            if (record.value)
                memcpy (slot->data, record.payload, record.value);
            slot->size = record.value;
            self->ctrl_count++;
            self->stats.ctrl_received++;
            return 0;
        }
        default:
            return s_break (self, EPROTO, "HELLO after the handshake");
    }
}

//  Read every record waiting on the socket. Returns 0, or -1 if the channel
//  broke. End of stream marks the peer gone (not an error: the ring may
//  still hold its last messages).
static int
s_drain (shmipc_channel_t *self)
{
    if (self->state == S_BROKEN) {
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
        if (rc > 0) {
            if (s_handle_record (self, buffer, (size_t) rc))
                return -1;
        }
        else
        if (rc == 0)
            self->peer_gone = true;
        else
        if (errno == EAGAIN)
            break;
        else
        if (errno == EINTR)
            continue;
        else
        if (errno == EPROTO || errno == EMSGSIZE)
            return s_break (self, EPROTO, "descriptors or oversize record on the socket");
        else
            self->peer_gone = true;     //  ECONNRESET and friends
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Sleeping and waking

//  Wake the peer if it sleeps waiting for data (after we published).
static void
s_wake_reader (shmipc_channel_t *self)
{
    atomic_thread_fence (memory_order_seq_cst);
    //  Trusts: nothing; the flag only decides whether we send a WAKE
    uint32_t epoch = atomic_load_explicit (S_ATOMIC32 (&self->peer_ctl->rx_sleep),
                                           memory_order_relaxed);
    if ((epoch & 1) && epoch != self->woke_rx) {
        self->woke_rx = epoch;
        s_send_wake (self);
    }
}

//  Wake the peer if it sleeps waiting for space (after we released).
static void
s_wake_writer (shmipc_channel_t *self)
{
    atomic_thread_fence (memory_order_seq_cst);
    uint32_t epoch = atomic_load_explicit (S_ATOMIC32 (&self->peer_ctl->tx_sleep),
                                           memory_order_relaxed);
    if ((epoch & 1) && epoch != self->woke_tx) {
        self->woke_tx = epoch;
        s_send_wake (self);
    }
}

//  Set our sleep flag (rx or tx) to a new odd epoch, or back to even.
static void
s_set_sleep (uint32_t *flag, uint32_t *epoch, bool asleep)
{
    if (((*epoch & 1) != 0) == asleep)
        return;
    (*epoch)++;
    atomic_store_explicit (S_ATOMIC32 (flag), *epoch, memory_order_relaxed);
    if (asleep)
        atomic_thread_fence (memory_order_seq_cst);
}

//  Leave the armed state: clear our flag, then read what the socket holds
//  (WAKEs for the sleep we leave, control records, end of stream). Only
//  here is the socket drained on the data path: draining while armed could
//  swallow the WAKE that should end the coming sleep.
static int
s_wake_up (shmipc_channel_t *self, bool rx)
{
    if (rx)
        s_set_sleep (&self->own_ctl->rx_sleep, &self->rx_epoch, false);
    else
        s_set_sleep (&self->own_ctl->tx_sleep, &self->tx_epoch, false);
    return s_drain (self);
}

#define S_RX_ARMED(self) (((self)->rx_epoch & 1) != 0)
#define S_TX_ARMED(self) (((self)->tx_epoch & 1) != 0)

//  Return the bytes a message of these frames takes in the ring.
static uint64_t
s_record_bytes (const struct iovec *frames, size_t nframes)
{
    uint64_t total = 0;
    for (size_t index = 0; index < nframes; index++)
        total += shmipc_ring_record_size (frames [index].iov_len);
    return total;
}

//  Wait until the socket has something or deadline passes. Our sleep flag
//  must already be set. Returns 0, or -1/EAGAIN at the deadline.
static int
s_sleep (shmipc_channel_t *self, int64_t deadline)
{
    int revents = shmipc__poll_fd (self->sock, POLLIN, shmipc__remaining_ms (deadline));
    if (revents < 0)
        return -1;
    if (revents == 0) {
        errno = EAGAIN;
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Transmit

//  Publish what we wrote and wake the reader if it sleeps.
static void
s_publish (shmipc_channel_t *self)
{
    if (shmipc_ring_pending (self->tx)) {
        shmipc_ring_publish (self->tx);
        s_wake_reader (self);
    }
}

//  Return free space in our ring, or -1 if the peer broke the protocol.
static int64_t
s_space (shmipc_channel_t *self)
{
    int64_t space = shmipc_ring_space (self->tx);
    if (space < 0)
        return s_break (self, EPROTO, "peer read index out of range");
    return space;
}

//  Wait for at least need bytes of space, or fail: EAGAIN (non-blocking or
//  timed out), EPIPE (peer gone), EPROTO.
static int
s_wait_space (shmipc_channel_t *self, uint64_t need, int flags, int64_t deadline)
{
    if (S_TX_ARMED (self) && s_wake_up (self, false))
        return -1;
    int64_t spin_until = self->spin_us > 0 && !(flags & SHMIPC_DONTWAIT)
                       ? shmipc__now_us () + self->spin_us : 0;
    while (true) {
        int64_t space = s_space (self);
        if (space < 0)
            return -1;
        if ((uint64_t) space >= need)
            return S_TX_ARMED (self) ? s_wake_up (self, false) : 0;
        if (s_check_send (self))
            return -1;
        //  We must wait. Whatever the reader should see must be visible
        //  first (a deferred batch too, but only now), and the space we
        //  have read from the peer's ring must go back: the peer may be
        //  waiting for it while we wait for the peer
        s_publish (self);
        s_release (self);
        if (!S_TX_ARMED (self)) {
            if (spin_until && shmipc__now_us () < spin_until)
                continue;
            //  Say we sleep, then look once more: the reader checks our flag
            //  after it releases, so one of us sees the other
            s_set_sleep (&self->own_ctl->tx_sleep, &self->tx_epoch, true);
            continue;
        }
        if (flags & SHMIPC_DONTWAIT) {
            errno = EAGAIN;
            return -1;
        }
        if (s_sleep (self, deadline) || s_wake_up (self, false))
            return -1;
    }
}

//  Write an oversize message in chunks, as space allows, resuming from
//  self->stream. Publishes each chunk so the reader can drain as we go.
static int
s_stream (shmipc_channel_t *self, const struct iovec *frames, size_t nframes,
          int flags, int64_t deadline)
{
    s_stream_t *stream = &self->stream;
    size_t quarter = self->capacity / 4;
    while (stream->frame < nframes) {
        const uint8_t *data = (const uint8_t *) frames [stream->frame].iov_base;
        size_t remaining = frames [stream->frame].iov_len - stream->offset;
        //  Wait for a worthwhile chunk, not a sliver
        uint64_t want = shmipc_ring_record_size (remaining);
        if (want > quarter)
            want = quarter;
        if (s_wait_space (self, want, flags, deadline))
            return -1;
        int64_t space = s_space (self);
        if (space < 0)
            return -1;
        size_t room = (size_t) space - SHMIPC_RECORD_HEADER;
        size_t chunk = remaining < room ? remaining : room;
        if (chunk > UINT32_MAX - 7)
            chunk = UINT32_MAX - 7;
        uint32_t record_flags = 0;
        if (chunk < remaining)
            record_flags = SHMIPC_RECORD_CHUNK;
        else
        if (stream->frame + 1 < nframes)
            record_flags = SHMIPC_RECORD_MORE;
        shmipc_ring_put (self->tx, data + stream->offset, chunk, record_flags);
        stream->offset += chunk;
        if (stream->offset == frames [stream->frame].iov_len) {
            stream->frame++;
            stream->offset = 0;
        }
        s_publish (self);
    }
    stream->active = false;
    return 0;
}

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
    int64_t deadline = shmipc__deadline (self->sndtimeo);
    if (s_ensure_ready (self, flags, deadline) || s_check_send (self))
        return -1;
    uint64_t content = 0;
    for (size_t index = 0; index < nframes; index++)
        content += frames [index].iov_len;

    s_stream_t *stream = &self->stream;
    if (stream->active) {
        if (stream->nframes != nframes || stream->total != content) {
            errno = EINVAL;     //  The retry must be the same message
            return -1;
        }
    }
    else {
        uint64_t need = s_record_bytes (frames, nframes);
        bool oversize = need > self->capacity;
        for (size_t index = 0; index < nframes && !oversize; index++)
            oversize = frames [index].iov_len > UINT32_MAX - 7;
        if (!oversize) {
            //  Fits: wait for room for all of it, then write it in one go
            if (s_wait_space (self, need, flags, deadline))
                return -1;
            for (size_t index = 0; index < nframes; index++)
                shmipc_ring_put (self->tx, frames [index].iov_base,
                                 frames [index].iov_len,
                                 index + 1 < nframes ? SHMIPC_RECORD_MORE : 0);
            self->stats.msgs_sent++;
            self->stats.bytes_sent += content;
            if (!(flags & SHMIPC_DEFER))
                s_publish (self);
            return 0;
        }
        *stream = (s_stream_t) { .active = true, .nframes = nframes, .total = content };
    }
    if (s_stream (self, frames, nframes, flags, deadline))
        return -1;
    self->stats.msgs_sent++;
    self->stats.bytes_sent += content;
    return 0;
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
    if (s_check_send (self))
        return -1;
    if (self->tx)
        s_publish (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Receive

//  Return consumed space to the writer and wake it if it waits.
static void
s_release (shmipc_channel_t *self)
{
    if (shmipc_ring_release (self->rx))
        s_wake_writer (self);
}

//  Read records into self->partial until it is whole or the ring is empty.
//  Returns 0 with self->complete set or not, or -1 if the channel broke.
static int
s_assemble (shmipc_channel_t *self)
{
    //  Trusts: nothing; the ring checks indices and headers, and here the
    //  frame structure and sizes are checked against our limits.
    size_t quarter = self->peer_capacity / 4;
    while (!self->complete) {
        shmipc_record_t record;
        if (shmipc_ring_peek (self->rx, &record)) {
            if (errno == EAGAIN)
                return 0;
            return s_break (self, EPROTO, "peer ring index or record header out of range");
        }
        if ((record.flags & SHMIPC_RECORD_CHUNK) && (record.flags & SHMIPC_RECORD_MORE))
            return s_break (self, EPROTO, "record flags CHUNK and MORE together");
        size_t content = shmipc_msg_content_size (self->partial);
        if (self->maxmsgsize && record.size > self->maxmsgsize - content)
            return s_break (self, EMSGSIZE, "message larger than the maximum size");
        void *dest = self->frame_open
                   ? shmipc_msg_grow_frame (self->partial, record.size)
                   : shmipc_msg_add_frame (self->partial, record.size);
        if (!dest) {
            if (errno == E2BIG)
                return s_break (self, EMSGSIZE, "too many frames in one message");
            return s_break (self, ENOMEM, "out of memory");
        }
        shmipc_ring_copy (&record, dest);
        shmipc_ring_consume (self->rx);
        self->frame_open = (record.flags & SHMIPC_RECORD_CHUNK) != 0;
        if (!self->frame_open && !(record.flags & SHMIPC_RECORD_MORE))
            self->complete = true;
        //  Keep a streaming writer going rather than let it stall on us;
        //  and release at once if it says it waits (a hint: s_release
        //  itself does the fenced check)
        if (shmipc_ring_unreleased (self->rx) >= quarter
        ||  (atomic_load_explicit (S_ATOMIC32 (&self->peer_ctl->tx_sleep),
                                   memory_order_relaxed) & 1))
            s_release (self);
    }
    return 0;
}

//  Try to have a whole message ready, arming our sleep flag if there is
//  none so that the descriptor signals the next one. Returns 0 (check
//  self->complete) or -1 if the channel broke.
static int
s_poll_message (shmipc_channel_t *self, bool arm)
{
    while (true) {
        if (s_assemble (self))
            return -1;
        if (self->complete)
            return S_RX_ARMED (self) ? s_wake_up (self, true) : 0;
        //  Empty: give back the space before anyone sleeps on it
        s_release (self);
        if (!arm || S_RX_ARMED (self))
            return 0;
        s_set_sleep (&self->own_ctl->rx_sleep, &self->rx_epoch, true);
        //  And look once more, now that the writer will see our flag
    }
}

//  Hand the whole message over to msg; msg's old buffers are kept for the
//  next reassembly, so a warm receive loop allocates nothing.
static void
s_deliver (shmipc_channel_t *self, shmipc_msg_t *msg)
{
    shmipc__msg_swap (self->partial, msg);
    shmipc_msg_reset (self->partial);
    self->complete = false;
    self->stats.msgs_received++;
    self->stats.bytes_received += shmipc_msg_content_size (msg);
}

//  Make a whole message ready, waiting if flags allow. Returns 0 with
//  self->complete set, or -1 with errno.
static int
s_wait_message (shmipc_channel_t *self, int flags)
{
    int64_t deadline = shmipc__deadline (self->rcvtimeo);
    if (s_ensure_ready (self, flags, deadline))
        return -1;
    if (S_RX_ARMED (self) && s_wake_up (self, true))
        return -1;
    int64_t spin_until = self->spin_us > 0 && !(flags & SHMIPC_DONTWAIT)
                       ? shmipc__now_us () + self->spin_us : 0;
    while (true) {
        if (self->state == S_BROKEN) {
            errno = self->error;
            return -1;
        }
        bool spinning = spin_until && shmipc__now_us () < spin_until;
        if (s_poll_message (self, !spinning))
            return -1;
        if (self->complete)
            return 0;
        if (spinning)
            continue;
        if (self->peer_gone) {
            //  Armed and re-checked after end of stream: nothing more comes
            errno = ECONNRESET;
            return -1;
        }
        if (flags & SHMIPC_DONTWAIT) {
            errno = EAGAIN;
            return -1;
        }
        if (s_sleep (self, deadline) || s_wake_up (self, true))
            return -1;
    }
}

int
shmipc_channel_recv_into (shmipc_channel_t *self, shmipc_msg_t *msg, int flags)
{
    assert (self);
    assert (msg);
    if (s_wait_message (self, flags))
        return -1;
    s_deliver (self, msg);
    return 0;
}

shmipc_msg_t *
shmipc_channel_recv (shmipc_channel_t *self, int flags)
{
    assert (self);
    if (s_wait_message (self, flags))
        return NULL;
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg)
        return NULL;
    s_deliver (self, msg);
    return msg;
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
    size_t count = 0;
    while (count < max) {
        if (s_wait_message (self, count ? SHMIPC_DONTWAIT : flags)) {
            if (count)
                break;          //  The first error waits for the next call
            return -1;
        }
        msgs [count] = shmipc_msg_new ();
        if (!msgs [count])
            break;
        s_deliver (self, msgs [count++]);
    }
    if (count == 0)
        return -1;              //  errno set by shmipc_msg_new
    s_release (self);
    return (ssize_t) count;
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
    if (s_check_send (self))
        return -1;
    if (self->state == S_HANDSHAKE && s_handshake_step (self))
        return -1;
    if (s_drain (self) || s_check_send (self))
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
    if (self->state == S_HANDSHAKE && s_handshake_step (self))
        return -1;
    if (self->ctrl_count == 0 && s_drain (self))
        return -1;
    if (self->ctrl_count == 0) {
        errno = self->peer_gone ? ECONNRESET : EAGAIN;
        return -1;
    }
    s_ctrl_t *slot = &self->ctrl [self->ctrl_head];
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
    if (self->state == S_HANDSHAKE && s_handshake_step (self))
        return errno == EAGAIN ? 0 : SHMIPC_POLLERR;
    if (self->state == S_BROKEN)
        return SHMIPC_POLLERR;
    //  Leave any armed state and read the socket, then look afresh
    s_set_sleep (&self->own_ctl->tx_sleep, &self->tx_epoch, false);
    if (s_wake_up (self, true) || s_poll_message (self, true))
        return SHMIPC_POLLERR;
    int events = 0;
    if (self->complete)
        events |= SHMIPC_POLLIN;
    if (self->ctrl_count)
        events |= SHMIPC_POLLCTRL;
    if (self->peer_gone)
        return events | SHMIPC_POLLERR;
    //  Writable if the ring is at least a quarter free (enough for a
    //  message part-way to go on, too); otherwise ask the reader to wake
    //  us when it frees space
    uint64_t want = self->capacity / 4;
    while (true) {
        int64_t space = s_space (self);
        if (space < 0)
            return SHMIPC_POLLERR;
        if ((uint64_t) space >= want) {
            if (S_TX_ARMED (self) && s_wake_up (self, false))
                return SHMIPC_POLLERR;
            events |= SHMIPC_POLLOUT;
            break;
        }
        if (S_TX_ARMED (self))
            break;
        s_set_sleep (&self->own_ctl->tx_sleep, &self->tx_epoch, true);
    }
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
    self->max_peer_capacity = size;
}

int
shmipc_channel_error (shmipc_channel_t *self)
{
    assert (self);
    return self->state == S_BROKEN ? self->error : 0;
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
