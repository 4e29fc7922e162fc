/*  =========================================================================
    shmipc-hostile - a hostile shm:// peer in its own process, for the
    reliability tests. It speaks the real protocol by hand, with the core's
    internal pieces (src/wire.h, shmipc_segment_new, shmipc_fdpass_send and
    the segment layout of docs/protocol.md), and breaks it in one chosen way

    Owns its socket and segments. Uses no ZeroMQ context: only the core.
    Prints one line per event on stdout ("ready", "refused OP ERRNO",
    "closed", ...); exits 0 when its attack ran, 1 when a step of its own
    failed, 2 on bad use, 3 when it cannot change its uid. Closing its
    stdin asks the modes that run on to finish.

        shmipc-hostile [server-]MODE VARIANT ENDPOINT [SEED]

    As server-MODE it listens on ENDPOINT instead and attacks each victim
    that connects, one after another, until its stdin closes; a handshake it
    completes answers the victim's HELLO, as a server's must. It greets as a
    DEALER, or as the socket type SHMIPC_HOSTILE_TYPE (a number) says.

    seals -             take our segment through a real handshake, try every
                        way to write or resize it, then echo once
    scribble -          write random bytes over its whole segment in a loop
    indices VARIANT     publish an impossible index or record: tail-at-start
                        head-beyond head-back head-unaligned record-size
                        record-flags chunk-more tail-beyond tail-back
                        tail-unaligned
    fd VARIANT          a bogus descriptor: pipe file unsealed tiny seals
                        write-seal none two flood after
    garbage VARIANT     bad records on the socket: hello-random hello-short
                        hello-long records ctrl-truncated short empty
                        oversize hello-again ack wake-value reserved unknown
    stall VARIANT       connect (and nothing else), hello (no more), greeting
                        (handshake, no greeting), noread (greets, sends and
                        never reads the victim's ring, until stdin closes)
    greeting VARIANT    a bad greeting: magic version type unknown-type
                        id-size reserved empty twice flood
    dupid ID            greets as a DEALER with routing id ID, sends 50
                        requests, counts the replies until stdin closes
    wakes COUNT         greets, sends COUNT WAKE records, then echoes once
    bigmsg MIB          greets, then streams one frame of MIB MiB that never
                        ends, until stdin closes
    uid UID             as uid UID: a well-behaved core client that echoes once
    uidserver UID       as uid UID: a well-behaved core server that echoes
                        whatever its clients send, until stdin closes
    =========================================================================
*/

#include "shmipc_channel.h"
#include "shmipc_endpoint.h"
#include "shmipc_fdpass.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"
#include "wire.h"
#include "util.h"
#include "testutil.h"
#include "greeting.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

//  The segment layout of a channel (docs/protocol.md, section 1).
#define S_KIND          0x4e414843u     //  "CHAN"
#define S_HEAD          64              //  Write index of the owner's ring
#define S_TAIL          128             //  Owner's read index into the peer's
#define S_RX_SLEEP      192             //  Odd while the owner waits for data
#define S_TX_SLEEP      256             //  Odd while the owner waits for room
#define S_RING          SHMIPC_SEGMENT_HEADER

#define streq(one, two) (strcmp ((one), (two)) == 0)

//  Our ring's capacity.
#define S_CAPACITY      65536

//  Bound on every wait: the victim should have acted long before.
#define S_PATIENCE_MS   60000

typedef struct {
    const char *endpoint;           //  The victim's
    int sock;                       //  Connected to the victim; owned
    shmipc_segment_t *own;          //  Our segment; owned
    uint8_t *base;                  //  Its mapping, read-write
    size_t capacity;                //  Our ring's bytes
    uint64_t head;                  //  Our write index
    shmipc_segment_t *victim;       //  The victim's segment, read-only; owned
    const uint8_t *victim_base;     //  Its mapping
    size_t victim_capacity;         //  The victim's ring's bytes
    uint64_t tail;                  //  Our read index into the victim's ring
    uint32_t woke_rx;               //  Victim rx_sleep epoch last woken
    uint32_t woke_tx;               //  Victim tx_sleep epoch last woken
    uint32_t epoch;                 //  Our sleep flags' last odd value
    bool closed;                    //  The victim hung up
    bool stopped;                   //  Our stdin closed
    uint64_t random;                //  xorshift state
    int role;                       //  SHMIPC_CLIENT, or SHMIPC_SERVER
    int type;                       //  The socket type we greet as
    shmipc_listener_t *listener;    //  Server: where victims connect
} s_hostile_t;

//  On failure of a step of our own: say where and why, exit 1.
#define S_CHECK(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "shmipc-hostile %d: %s:%d: check failed: %s (errno %d %s)\n", \
                 (int) getpid (), __FILE__, __LINE__, #cond, errno, strerror (errno)); \
        exit (1); \
    } \
} while (0)

//  Print one line on stdout, at once.
static uint64_t
s_random (s_hostile_t *self)
{
    return tu_random (&self->random);
}


static uint64_t
s_load (const uint8_t *base, size_t offset)
{
    return atomic_load_explicit ((_Atomic uint64_t *) (base + offset), memory_order_acquire);
}

static void
s_store (uint8_t *base, size_t offset, uint64_t value)
{
    atomic_store_explicit ((_Atomic uint64_t *) (base + offset), value, memory_order_release);
}

//  --------------------------------------------------------------------------
//  The socket

//  Send one record with any number of descriptors (up to the kernel's 253),
//  waiting for room. Returns 0, or -1 once the victim is gone.
static int
s_send_fds (s_hostile_t *self, const void *data, size_t size, const int *fds, size_t nfds)
{
    union {
        char buffer [CMSG_SPACE (sizeof (int) * 253)];
        struct cmsghdr align;
    } control;
    memset (&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *) data, .iov_len = size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = CMSG_SPACE (sizeof (int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN (sizeof (int) * nfds);
        memcpy (CMSG_DATA (cmsg), fds, sizeof (int) * nfds);
    }
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    while (true) {
        if (sendmsg (self->sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || shmipc__now_ms () > deadline) {
            self->closed = true;
            return -1;
        }
        struct pollfd item = { .fd = self->sock, .events = POLLOUT };
        poll (&item, 1, 100);
    }
}

static int
s_send (s_hostile_t *self, const void *data, size_t size)
{
    return s_send_fds (self, data, size, NULL, 0);
}

//  Send an 8-byte record (WAKE, ACK...) without waiting; a full socket
//  drops it, as the protocol allows.
static void
s_send_header (s_hostile_t *self, int type, uint32_t value)
{
    uint8_t record [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (record, type, value);
    send (self->sock, record, sizeof record, MSG_DONTWAIT | MSG_NOSIGNAL);
}

//  Receive one record and at most one descriptor (into *fd, else -1; any
//  more are closed), waiting up to timeout_ms. Returns its size, 0 when the
//  victim hung up, or -1 on timeout.
static ssize_t
s_recv (s_hostile_t *self, void *buffer, size_t size, int *fd, int timeout_ms)
{
    if (fd)
        *fd = -1;
    int64_t deadline = shmipc__now_ms () + timeout_ms;
    while (true) {
        union {
            char buffer [CMSG_SPACE (sizeof (int) * 8)];
            struct cmsghdr align;
        } control;
        struct iovec iov = { .iov_base = buffer, .iov_len = size };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = control.buffer,
                              .msg_controllen = sizeof control.buffer };
        ssize_t rc = recvmsg (self->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (rc >= 0) {
            for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg); cmsg;
                 cmsg = CMSG_NXTHDR (&msg, cmsg)) {
                size_t count = (cmsg->cmsg_len - CMSG_LEN (0)) / sizeof (int);
                for (size_t index = 0; index < count; index++) {
                    int received;
                    memcpy (&received, CMSG_DATA (cmsg) + index * sizeof (int), sizeof received);
                    if (fd && *fd < 0)
                        *fd = received;
                    else
                        close (received);
                }
            }
            if (rc == 0)
                self->closed = true;
            return rc;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            self->closed = true;
            return 0;
        }
        int left = (int) (deadline - shmipc__now_ms ());
        if (left <= 0)
            return -1;
        struct pollfd item = { .fd = self->sock, .events = POLLIN };
        poll (&item, 1, left);
    }
}

//  Wait up to ms for the socket or our stdin; read and drop the records
//  that came (WAKE, ACK). Sets closed when the victim hung up, stopped when
//  our stdin closed. Before waiting, our sleep flags take a new odd value,
//  so that the victim wakes us when it publishes or frees room.
static void
s_pause (s_hostile_t *self, int ms)
{
    if (self->base) {
        self->epoch += 2;
        atomic_store_explicit ((_Atomic uint32_t *) (self->base + S_RX_SLEEP),
                               self->epoch, memory_order_relaxed);
        atomic_store_explicit ((_Atomic uint32_t *) (self->base + S_TX_SLEEP),
                               self->epoch, memory_order_relaxed);
        atomic_thread_fence (memory_order_seq_cst);
    }
    struct pollfd items [2] = {
        { .fd = self->sock, .events = POLLIN | POLLRDHUP },
        { .fd = STDIN_FILENO, .events = POLLIN }
    };
    if (poll (items, self->stopped ? 1 : 2, ms) <= 0)
        return;
    if (items [0].revents) {
        uint8_t buffer [SHMIPC__WIRE_MAX];
        while (!self->closed && s_recv (self, buffer, sizeof buffer, NULL, 0) >= 0)
            ;
    }
    if (!self->stopped && items [1].revents) {
        char byte;
        if (read (STDIN_FILENO, &byte, 1) <= 0)
            self->stopped = true;
    }
}

//  Wait until the victim hangs up, reading nothing (poll sees the hang-up
//  with records still unread). Says "closed", or "open" after the bound.
static int
s_await_hangup (s_hostile_t *self)
{
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    while (shmipc__now_ms () < deadline) {
        struct pollfd item = { .fd = self->sock, .events = POLLRDHUP };
        if (poll (&item, 1, 100) > 0 && (item.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            tu_say ("closed");
            return 0;
        }
    }
    tu_say ("open");
    return 0;
}

//  Read and drop what the victim sends until it hangs up. Says "closed",
//  or "open" after the bound.
static int
s_await_close (s_hostile_t *self)
{
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    while (!self->closed && shmipc__now_ms () < deadline) {
        uint8_t buffer [SHMIPC__WIRE_MAX];
        s_recv (self, buffer, sizeof buffer, NULL, 100);
    }
    tu_say (self->closed ? "closed" : "open");
    return 0;
}

//  --------------------------------------------------------------------------
//  The handshake, by hand

static void
s_own_segment (s_hostile_t *self)
{
    self->capacity = S_CAPACITY;
    self->own = shmipc_segment_new ("hostile", shmipc__segment_bytes (self->capacity), S_KIND);
    S_CHECK (self->own);
    self->base = (uint8_t *) shmipc_segment_data (self->own);
    self->epoch = 1;
}

//  Connect to the victim or, as a server, take the next victim that
//  connects (the first time, listen and say "ready").
static void
s_connect (s_hostile_t *self)
{
    if (self->role == SHMIPC_CLIENT) {
        self->sock = shmipc_endpoint_connect (self->endpoint, SHMIPC_ANY_UID);
        S_CHECK (self->sock >= 0);
        return;
    }
    if (!self->listener) {
        self->listener = shmipc_listener_new (self->endpoint);
        S_CHECK (self->listener);
        tu_say ("ready");
    }
    while ((self->sock = shmipc_listener_accept (self->listener)) < 0) {
        S_CHECK (errno == EAGAIN);
        struct pollfd item = { .fd = shmipc_listener_fd (self->listener), .events = POLLIN };
        poll (&item, 1, -1);
    }
}

//  Send our HELLO (role client) with these descriptors.
static int
s_hello (s_hostile_t *self, const int *fds, size_t nfds)
{
    uint8_t hello [SHMIPC__HELLO_FIXED + 16];
    size_t size = shmipc__wire_hello (hello, self->role, self->capacity,
                                      shmipc__segment_bytes (self->capacity), "hostile", 7);
    return s_send_fds (self, hello, size, fds, nfds);
}

//  Take the victim's HELLO and attach its segment. Returns 0, or -1 if it
//  hung up.
static int
s_take_hello (s_hostile_t *self)
{
    uint8_t buffer [SHMIPC__WIRE_MAX];
    int fd;
    ssize_t size = s_recv (self, buffer, sizeof buffer, &fd, S_PATIENCE_MS);
    if (size <= 0)
        return -1;
    shmipc__wire_t hello;
    const char *reason;
    S_CHECK (shmipc__wire_decode (buffer, (size_t) size, &hello, &reason) == 0);
    S_CHECK (hello.type == SHMIPC__WIRE_HELLO && fd >= 0);
    self->victim = shmipc_segment_attach (fd, hello.segment_size, hello.segment_size, S_KIND);
    S_CHECK (self->victim);
    self->victim_base = (const uint8_t *) shmipc_segment_data (self->victim);
    self->victim_capacity = hello.capacity;
    return 0;
}

//  The whole handshake with our segment, in the protocol's order: a client
//  speaks first, a server answers the victim's HELLO. Returns 0, or -1 if
//  the victim hung up.
static int
s_handshake (s_hostile_t *self)
{
    int fd = shmipc_segment_fd (self->own);
    if (self->role == SHMIPC_SERVER)
        return s_take_hello (self) || s_hello (self, &fd, 1) ? -1 : 0;
    return s_hello (self, &fd, 1) || s_take_hello (self) ? -1 : 0;
}

//  Send a control message (a CTRL record).
static int
s_ctrl (s_hostile_t *self, const void *payload, size_t size)
{
    uint8_t record [SHMIPC__WIRE_MAX + 64];
    S_CHECK (size <= sizeof record - SHMIPC__RECORD_HEAD);
    shmipc__wire_header (record, SHMIPC__WIRE_CTRL, (uint32_t) size);
    memcpy (record + SHMIPC__RECORD_HEAD, payload, size);
    return s_send (self, record, SHMIPC__RECORD_HEAD + size);
}

static int
s_greet (s_hostile_t *self, int type, const char *routing_id)
{
    uint8_t greeting [SHMIPC__GREETING_MAX];
    size_t size = shmipc__greeting_encode (greeting, type, (const uint8_t *) routing_id,
                                           routing_id ? strlen (routing_id) : 0);
    return s_ctrl (self, greeting, size);
}

//  Take the victim's greeting (its first control message) and acknowledge
//  it. Returns 0, or -1 if it hung up.
static int
s_take_greeting (s_hostile_t *self)
{
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    while (shmipc__now_ms () < deadline) {
        uint8_t buffer [SHMIPC__WIRE_MAX];
        ssize_t size = s_recv (self, buffer, sizeof buffer, NULL, 1000);
        if (size == 0)
            return -1;
        shmipc__wire_t record;
        const char *reason;
        if (size > 0 && shmipc__wire_decode (buffer, (size_t) size, &record, &reason) == 0
        &&  record.type == SHMIPC__WIRE_CTRL) {
            s_send_header (self, SHMIPC__WIRE_ACK, 1);
            return 0;
        }
    }
    return -1;
}

//  The whole handshake and greeting, as a well-behaved peer of type (with
//  routing id, if not NULL). Returns 0, or -1 (says "closed") if the
//  victim hung up.
static int
s_setup (s_hostile_t *self, int type, const char *routing_id)
{
    s_own_segment (self);
    s_connect (self);
    if (s_handshake (self)
    ||  s_greet (self, type, routing_id) || s_take_greeting (self)) {
        tu_say ("closed");
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  The rings, by hand

//  Send a WAKE whether the victim asked or not: make it look at us now.
static void
s_kick (s_hostile_t *self)
{
    s_send_header (self, SHMIPC__WIRE_WAKE, 0);
}

//  Wake the victim if its flag (S_RX_SLEEP or S_TX_SLEEP) asks for it.
static void
s_wake (s_hostile_t *self, size_t flag)
{
    atomic_thread_fence (memory_order_seq_cst);
    uint32_t epoch = atomic_load_explicit ((_Atomic uint32_t *) (self->victim_base + flag),
                                           memory_order_relaxed);
    uint32_t *woke = flag == S_RX_SLEEP ? &self->woke_rx : &self->woke_tx;
    if ((epoch & 1) && epoch != *woke) {
        *woke = epoch;
        s_send_header (self, SHMIPC__WIRE_WAKE, 0);
    }
}

//  Write a record (header, then payload wrapping around) at our head.
static void
s_put (s_hostile_t *self, const void *data, uint32_t size, uint32_t flags)
{
    uint64_t mask = self->capacity - 1;
    uint64_t header = (uint64_t) size | ((uint64_t) flags << 32);
    memcpy (self->base + S_RING + (self->head & mask), &header, 8);
    const uint8_t *bytes = (const uint8_t *) data;
    for (uint32_t index = 0; index < size; index++)
        self->base [S_RING + ((self->head + 8 + index) & mask)] = bytes ? bytes [index] : 0;
    self->head += shmipc_ring_record_size (size);
}

static void
s_publish (s_hostile_t *self)
{
    s_store (self->base, S_HEAD, self->head);
    s_wake (self, S_RX_SLEEP);
}

//  Wait until our ring has room for a record of size bytes. Returns 0, or
//  -1 if the victim hung up (or kept it full past the bound).
static int
s_wait_room (s_hostile_t *self, size_t size)
{
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    while (!self->closed && shmipc__now_ms () < deadline) {
        uint64_t tail = s_load (self->victim_base, S_TAIL);
        if (self->capacity - (self->head - tail) >= shmipc_ring_record_size (size))
            return 0;
        s_pause (self, 20);
    }
    return -1;
}

//  Send one single-frame message through our ring.
static int
s_send_message (s_hostile_t *self, const void *data, uint32_t size)
{
    if (s_wait_room (self, size))
        return -1;
    s_put (self, data, size, 0);
    s_publish (self);
    return 0;
}

//  Take the next whole message from the victim's ring, if there is one:
//  its last frame (up to size bytes) into buffer, its length into *length.
//  Returns 1 if one was taken, else 0. Releases what it took.
static int
s_take_message (s_hostile_t *self, uint8_t *buffer, size_t size, size_t *length)
{
    uint64_t head = s_load (self->victim_base, S_HEAD);
    uint64_t mask = self->victim_capacity - 1;
    const uint8_t *ring = self->victim_base + S_RING;
    uint64_t cursor = self->tail;
    while (cursor + 8 <= head) {
        uint64_t header;
        memcpy (&header, ring + (cursor & mask), 8);
        uint32_t frame = (uint32_t) header;
        uint32_t flags = (uint32_t) (header >> 32);
        size_t need = shmipc_ring_record_size (frame);
        if (cursor + need > head)
            break;
        if (!(flags & SHMIPC_RECORD_CHUNK)) {
            size_t copy = frame < size ? frame : size;
            for (size_t index = 0; index < copy; index++)
                buffer [index] = ring [(cursor + 8 + index) & mask];
            *length = copy;
        }
        cursor += need;
        if (!(flags & (SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK))) {
            self->tail = cursor;
            s_store (self->base, S_TAIL, self->tail);
            s_wake (self, S_TX_SLEEP);
            return 1;
        }
    }
    return 0;
}

//  Send a request and wait for its echo. Says "echo ok" or "echo failed".
static int
s_echo (s_hostile_t *self)
{
    char request [32];
    int size = snprintf (request, sizeof request, "echo-%d", (int) getpid ());
    if (s_send_message (self, request, (uint32_t) size) == 0) {
        int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
        while (!self->closed && shmipc__now_ms () < deadline) {
            uint8_t reply [64];
            size_t length = 0;
            if (s_take_message (self, reply, sizeof reply, &length)) {
                bool same = length == (size_t) size && memcmp (reply, request, length) == 0;
                tu_say (same ? "echo ok" : "echo wrong");
                return same ? 0 : -1;
            }
            s_pause (self, 20);
        }
    }
    tu_say ("echo failed");
    return -1;
}

//  --------------------------------------------------------------------------
//  seals: the victim's segment, received through a real handshake, cannot
//  be written, resized or have its pages removed, whatever we do with the
//  descriptor; nor can our own, which the victim maps

//  Say "refused NAME ERRNO" if rc is -1, else "ALLOWED NAME".
static void
s_try (const char *name, int rc)
{
    if (rc == -1)
        tu_say ("refused %s %d", name, errno);
    else
        tu_say ("ALLOWED %s", name);
}

static int
s_mode_seals (s_hostile_t *self, const char *variant)
{
    if (s_setup (self, self->type, NULL))
        return 0;
    int fd = shmipc_segment_fd (self->victim);
    size_t size = shmipc_segment_size (self->victim);
    char byte = 'x';

    void *shared = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    s_try ("mmap-shared-writable", shared == MAP_FAILED ? -1 : 0);
    void *readonly = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    S_CHECK (readonly != MAP_FAILED);
    s_try ("mprotect-writable", mprotect (readonly, size, PROT_READ | PROT_WRITE));
    s_try ("madvise-remove", madvise (readonly, size, MADV_REMOVE));
    s_try ("write", (int) write (fd, &byte, 1) == 1 ? 0 : -1);
    s_try ("pwrite", (int) pwrite (fd, &byte, 1, S_HEAD) == 1 ? 0 : -1);
    s_try ("ftruncate-shrink", ftruncate (fd, 0));
    s_try ("ftruncate-grow", ftruncate (fd, (off_t) size * 2));
    s_try ("fallocate-punch-hole", fallocate (fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                              0, (off_t) size));
    s_try ("fallocate-grow", fallocate (fd, 0, (off_t) size, 4096));
    s_try ("add-seals", fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE));
    //  Through /proc, as a new open file: the seals belong to the inode
    char path [64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    int reopened = open (path, O_RDWR | O_CLOEXEC);
    if (reopened >= 0) {
        void *again = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, reopened, 0);
        s_try ("reopen-mmap-shared-writable", again == MAP_FAILED ? -1 : 0);
        s_try ("reopen-write", (int) write (reopened, &byte, 1) == 1 ? 0 : -1);
        s_try ("reopen-ftruncate", ftruncate (reopened, 0));
        close (reopened);
    }
    else
        s_try ("reopen-read-write", -1);
    //  A private writable mapping is allowed, and stays private
    uint8_t *private = (uint8_t *) mmap (NULL, size, PROT_READ | PROT_WRITE,
                                         MAP_PRIVATE, fd, 0);
    S_CHECK (private != MAP_FAILED);
    memset (private + S_HEAD, 0xa5, 8);
    s_try ("private-copy-reaches-owner",
           memcmp ((const uint8_t *) readonly + S_HEAD, private + S_HEAD, 8) == 0 ? 0 : -1);
    munmap (private, size);
    munmap (readonly, size);
    //  Our own segment, which the victim maps: sealed against us as well
    int own = shmipc_segment_fd (self->own);
    size_t own_size = shmipc_segment_size (self->own);
    s_try ("own-ftruncate-shrink", ftruncate (own, 0));
    s_try ("own-fallocate-punch-hole", fallocate (own, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                                  0, (off_t) own_size));
    s_try ("own-madvise-remove", madvise (self->base + S_RING, own_size - S_RING, MADV_REMOVE));
    //  And the victim still serves us
    s_echo (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  scribble: random bytes over our whole segment, header and indices too,
//  with a WAKE now and then so that the victim looks

static int
s_mode_scribble (s_hostile_t *self, const char *variant)
{
    if (s_setup (self, self->type, NULL))
        return 0;
    size_t size = shmipc_segment_size (self->own);
    int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
    for (long round = 0; !self->closed && shmipc__now_ms () < deadline; round++) {
        for (size_t at = 0; at + 8 <= size; at += 8) {
            uint64_t value = s_random (self);
            memcpy (self->base + at, &value, 8);
        }
        if (round % 4 == 0)
            s_kick (self);
        uint8_t buffer [SHMIPC__WIRE_MAX];
        s_recv (self, buffer, sizeof buffer, NULL, 1);
    }
    tu_say (self->closed ? "closed" : "open");
    return 0;
}

//  --------------------------------------------------------------------------
//  indices: impossible indices and record headers

static int
s_mode_indices (s_hostile_t *self, const char *variant)
{
    if (streq (variant, "tail-at-start")) {
        //  We claim to have read what the victim has not yet written
        s_own_segment (self);
        s_store (self->base, S_TAIL, 4096);
        s_connect (self);
        int fd = shmipc_segment_fd (self->own);
        s_hello (self, &fd, 1);
        return s_await_close (self);
    }
    if (s_setup (self, self->type, NULL))
        return 0;
    if (streq (variant, "head-beyond"))
        //  More published than the ring holds
        s_store (self->base, S_HEAD, self->capacity + 8);
    else
    if (streq (variant, "head-back")) {
        //  One message, consumed; then the index goes back
        s_send_message (self, "x", 1);
        int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
        while (s_load (self->victim_base, S_TAIL) < self->head && shmipc__now_ms () < deadline)
            s_pause (self, 5);
        s_store (self->base, S_HEAD, self->head - 8);
    }
    else
    if (streq (variant, "head-unaligned"))
        s_store (self->base, S_HEAD, 4);
    else
    if (streq (variant, "record-size")) {
        //  A header that claims more than was published
        s_put (self, "12345678", 8, 0);
        uint64_t header = 1000;
        memcpy (self->base + S_RING, &header, 8);
        s_store (self->base, S_HEAD, self->head);
    }
    else
    if (streq (variant, "record-flags") || streq (variant, "chunk-more")) {
        s_put (self, "12345678", 8, streq (variant, "chunk-more")
                                    ? SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK : 0x80);
        s_store (self->base, S_HEAD, self->head);
    }
    else
    if (streq (variant, "tail-beyond"))
        //  We claim to have read what the victim never wrote
        s_store (self->base, S_TAIL, 1ULL << 40);
    else
    if (streq (variant, "tail-back") || streq (variant, "tail-unaligned")) {
        //  Two echoes: the victim has loaded our read index after the first
        if (s_echo (self) || s_echo (self))
            return 0;
        s_store (self->base, S_TAIL, streq (variant, "tail-back") ? 0 : self->tail - 4);
    }
    else {
        fprintf (stderr, "shmipc-hostile: unknown indices variant '%s'\n", variant);
        return 2;
    }
    s_kick (self);
    return s_await_close (self);
}

//  --------------------------------------------------------------------------
//  fd: bogus descriptors with the HELLO (or, "after", with a record later)

//  A memfd of size bytes holding our segment's header, with seals.
static int
s_memfd (s_hostile_t *self, size_t size, int seals)
{
    int fd = memfd_create ("shmipc:bogus", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    S_CHECK (fd >= 0);
    S_CHECK (ftruncate (fd, (off_t) size) == 0);
    size_t header = size < 64 ? size : 64;
    S_CHECK (pwrite (fd, self->base, header, 0) == (ssize_t) header);
    if (seals)
        S_CHECK (fcntl (fd, F_ADD_SEALS, seals) == 0);
    return fd;
}

static int
s_mode_fd (s_hostile_t *self, const char *variant)
{
    int fds [253];
    size_t nfds = 0;
    if (streq (variant, "after")) {
        if (s_setup (self, self->type, NULL))
            return 0;
        //  A WAKE with a descriptor riding on it
        uint8_t wake [SHMIPC__RECORD_HEAD];
        shmipc__wire_header (wake, SHMIPC__WIRE_WAKE, 0);
        fds [0] = s_memfd (self, 4096, 0);
        s_send_fds (self, wake, sizeof wake, fds, 1);
        close (fds [0]);
        return s_await_close (self);
    }
    s_own_segment (self);
    size_t size = shmipc_segment_size (self->own);
    int pipe_fds [2] = { -1, -1 };
    if (streq (variant, "pipe")) {
        S_CHECK (pipe2 (pipe_fds, O_CLOEXEC) == 0);
        fds [nfds++] = pipe_fds [0];
    }
    else
    if (streq (variant, "file")) {
        fds [nfds] = open ("/proc/self/exe", O_RDONLY | O_CLOEXEC);
        S_CHECK (fds [nfds] >= 0);
        nfds++;
    }
    else
    if (streq (variant, "unsealed"))
        fds [nfds++] = s_memfd (self, size, 0);
    else
    if (streq (variant, "tiny"))
        fds [nfds++] = s_memfd (self, 4096, SHMIPC_SEGMENT_SEALS);
    else
    if (streq (variant, "seals"))
        fds [nfds++] = s_memfd (self, size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    else
    if (streq (variant, "write-seal"))
        fds [nfds++] = s_memfd (self, size, SHMIPC_SEGMENT_SEALS | F_SEAL_WRITE);
    else
    if (streq (variant, "two")) {
        S_CHECK (pipe2 (pipe_fds, O_CLOEXEC) == 0);
        fds [nfds++] = shmipc_segment_fd (self->own);
        fds [nfds++] = pipe_fds [0];
    }
    else
    if (streq (variant, "flood")) {
        int null = open ("/dev/null", O_RDONLY | O_CLOEXEC);
        S_CHECK (null >= 0);
        for (nfds = 0; nfds < 250; nfds++)
            fds [nfds] = null;
    }
    else
    if (!streq (variant, "none")) {
        fprintf (stderr, "shmipc-hostile: unknown fd variant '%s'\n", variant);
        return 2;
    }
    s_connect (self);
    s_hello (self, fds, nfds);
    return s_await_close (self);
}

//  --------------------------------------------------------------------------
//  garbage: records that are not records

static int
s_mode_garbage (s_hostile_t *self, const char *variant)
{
    uint8_t record [8192];
    memset (record, 0, sizeof record);
    if (strncmp (variant, "hello-", 6) == 0 && !streq (variant, "hello-again")) {
        //  Instead of a HELLO
        s_own_segment (self);
        size_t size = 0;
        if (streq (variant, "hello-random")) {
            size = 1 + s_random (self) % 300;
            for (size_t index = 0; index < size; index++)
                record [index] = (uint8_t) s_random (self);
        }
        else
        if (streq (variant, "hello-short"))
            size = shmipc__wire_hello (record, self->role, self->capacity,
                                       shmipc_segment_size (self->own), "hostile", 7) - 17;
        else
        if (streq (variant, "hello-long")) {
            shmipc__wire_hello (record, self->role, self->capacity,
                                shmipc_segment_size (self->own), "hostile", 7);
            size = 4000;
        }
        else {
            fprintf (stderr, "shmipc-hostile: unknown garbage variant '%s'\n", variant);
            return 2;
        }
        s_connect (self);
        int fd = shmipc_segment_fd (self->own);
        s_send_fds (self, record, size, &fd, 1);
        return s_await_close (self);
    }
    if (s_setup (self, self->type, NULL))
        return 0;
    if (streq (variant, "records")) {
        //  Random records until the victim hangs up
        int64_t deadline = shmipc__now_ms () + S_PATIENCE_MS;
        while (!self->closed && shmipc__now_ms () < deadline) {
            size_t size = 1 + s_random (self) % 5000;
            for (size_t index = 0; index < size; index++)
                record [index] = (uint8_t) s_random (self);
            if (s_send (self, record, size) == 0)
                s_pause (self, 0);
        }
        tu_say (self->closed ? "closed" : "open");
        return 0;
    }
    size_t size = SHMIPC__RECORD_HEAD;
    if (streq (variant, "hello-again")) {
        //  A second HELLO, once the handshake is done
        s_hello (self, NULL, 0);
        return s_await_close (self);
    }
    if (streq (variant, "ctrl-truncated")) {
        shmipc__wire_header (record, SHMIPC__WIRE_CTRL, 100);
        size += 10;
    }
    else
    if (streq (variant, "short"))
        size = 3, record [0] = SHMIPC__WIRE_WAKE;
    else
    if (streq (variant, "empty"))
        size = 0;
    else
    if (streq (variant, "oversize")) {
        shmipc__wire_header (record, SHMIPC__WIRE_CTRL, 4992);
        size = 5000;
    }
    else
    if (streq (variant, "ack"))
        shmipc__wire_header (record, SHMIPC__WIRE_ACK, 1000);
    else
    if (streq (variant, "wake-value"))
        shmipc__wire_header (record, SHMIPC__WIRE_WAKE, 7);
    else
    if (streq (variant, "reserved")) {
        shmipc__wire_header (record, SHMIPC__WIRE_WAKE, 0);
        record [2] = 1;
    }
    else
    if (streq (variant, "unknown"))
        shmipc__wire_header (record, 9, 0);
    else {
        fprintf (stderr, "shmipc-hostile: unknown garbage variant '%s'\n", variant);
        return 2;
    }
    if (size == 0)
        send (self->sock, record, 0, MSG_NOSIGNAL);
    else
        s_send (self, record, size);
    return s_await_close (self);
}

//  --------------------------------------------------------------------------
//  stall: stop at some point and see what the victim does

static int
s_mode_stall (s_hostile_t *self, const char *variant)
{
    if (streq (variant, "connect")) {
        s_connect (self);
        tu_say ("ready");
        return s_await_hangup (self);
    }
    if (streq (variant, "hello")) {
        //  Our HELLO, and then nothing: never read the victim's
        s_own_segment (self);
        s_connect (self);
        int fd = shmipc_segment_fd (self->own);
        s_hello (self, &fd, 1);
        tu_say ("ready");
        return s_await_hangup (self);
    }
    if (streq (variant, "greeting")) {
        //  The handshake, and no greeting
        s_own_segment (self);
        s_connect (self);
        if (s_handshake (self)) {
            tu_say ("closed");
            return 0;
        }
        tu_say ("ready");
        return s_await_hangup (self);
    }
    if (!streq (variant, "noread")) {
        fprintf (stderr, "shmipc-hostile: unknown stall variant '%s'\n", variant);
        return 2;
    }
    //  Requests for ever; the victim's replies pile up in its ring, which
    //  we never release
    if (s_setup (self, self->type, NULL))
        return 0;
    tu_say ("ready");
    uint8_t request [1024];
    memset (request, 'r', sizeof request);
    long sent = 0;
    while (!self->closed && !self->stopped) {
        if (s_send_message (self, request, sizeof request))
            break;
        if (++sent % 4096 == 0)
            tu_say ("sent %ld", sent);
    }
    tu_say (self->closed ? "closed" : "stopped");
    return 0;
}

//  --------------------------------------------------------------------------
//  greeting: bad greetings after a good handshake

static int
s_mode_greeting (s_hostile_t *self, const char *variant)
{
    s_own_segment (self);
    s_connect (self);
    if (s_handshake (self)) {
        tu_say ("closed");
        return 0;
    }
    uint8_t greeting [SHMIPC__GREETING_MAX];
    size_t size = shmipc__greeting_encode (greeting, self->type, (const uint8_t *) "id", 2);
    if (streq (variant, "magic"))
        greeting [0] = 'X';
    else
    if (streq (variant, "version"))
        greeting [4] = 9;
    else
    if (streq (variant, "type"))
        greeting [5] = ZMQ_PUB;             //  A ROUTER does not talk to a PUB
    else
    if (streq (variant, "unknown-type"))
        greeting [5] = 42;
    else
    if (streq (variant, "id-size"))
        greeting [7] = 200;                 //  Says 200, carries 2
    else
    if (streq (variant, "reserved"))
        greeting [6] = 1;
    else
    if (streq (variant, "empty"))
        size = 0;
    else
    if (streq (variant, "twice") || streq (variant, "flood")) {
        //  A good greeting, then more control messages
        int count = streq (variant, "twice") ? 2 : 20;
        for (int index = 0; index < count; index++)
            s_ctrl (self, greeting, size);
        return s_await_close (self);
    }
    else {
        fprintf (stderr, "shmipc-hostile: unknown greeting variant '%s'\n", variant);
        return 2;
    }
    s_ctrl (self, greeting, size);
    return s_await_close (self);
}

//  --------------------------------------------------------------------------
//  dupid: a routing id that a well-behaved client already has

static int
s_mode_dupid (s_hostile_t *self, const char *routing_id)
{
    if (s_setup (self, self->type, routing_id))
        return 0;
    char request [64];
    int size = snprintf (request, sizeof request, "hostile-%d", (int) getpid ());
    for (int count = 0; count < 50; count++)
        if (s_send_message (self, request, (uint32_t) size))
            break;
    tu_say ("sent 50");
    long replies = 0;
    while (!self->closed && !self->stopped) {
        uint8_t reply [64];
        size_t length;
        while (s_take_message (self, reply, sizeof reply, &length))
            replies++;
        s_pause (self, 20);
    }
    tu_say ("replies %ld", replies);
    return 0;
}

//  --------------------------------------------------------------------------
//  wakes: a flood of WAKE records, which are legal

static int
s_mode_wakes (s_hostile_t *self, const char *count)
{
    if (s_setup (self, self->type, NULL))
        return 0;
    uint8_t wake [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (wake, SHMIPC__WIRE_WAKE, 0);
    long total = atol (count);
    for (long index = 0; index < total && !self->closed; index++)
        s_send (self, wake, sizeof wake);
    tu_say ("woke %ld", total);
    s_echo (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  bigmsg: one frame that streams on and never ends

static int
s_mode_bigmsg (s_hostile_t *self, const char *mib)
{
    if (s_setup (self, self->type, NULL))
        return 0;
    uint64_t total = (uint64_t) atol (mib) << 20;
    uint64_t sent = 0;
    uint8_t chunk [S_CAPACITY / 4 - 8];
    memset (chunk, 'b', sizeof chunk);
    while (sent < total && !self->closed && !self->stopped) {
        if (s_wait_room (self, sizeof chunk))
            break;
        s_put (self, chunk, sizeof chunk, SHMIPC_RECORD_CHUNK);
        s_publish (self);
        sent += sizeof chunk;
    }
    tu_say ("streamed %" PRIu64, sent >> 20);
    while (!self->closed && !self->stopped)
        s_pause (self, 100);
    tu_say (self->closed ? "closed" : "stopped");
    return 0;
}

//  --------------------------------------------------------------------------
//  uid and uidserver: well-behaved core peers running as another uid

static int
s_become (const char *uid_text)
{
    uid_t uid = (uid_t) atol (uid_text);
    if (setgroups (0, NULL) || setgid ((gid_t) uid) || setuid (uid) || getuid () != uid) {
        tu_say ("cannot become uid %u: %s", (unsigned) uid, strerror (errno));
        return -1;
    }
    //  A change of credentials clears this; set it again
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    return 0;
}

//  Receive a control message on a core channel, waiting up to timeout_ms.
static ssize_t
s_channel_recv_ctrl (shmipc_channel_t *channel, void *buffer, size_t size, int timeout_ms)
{
    int64_t deadline = shmipc__now_ms () + timeout_ms;
    while (true) {
        ssize_t rc = shmipc_channel_recv_ctrl (channel, buffer, size);
        if (rc >= 0 || errno != EAGAIN)
            return rc;
        int events = shmipc_channel_events (channel);
        if (events & SHMIPC_POLLERR) {
            errno = ECONNRESET;
            return -1;
        }
        if (events & SHMIPC_POLLCTRL)
            continue;
        int left = (int) (deadline - shmipc__now_ms ());
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        //  Both descriptors: a control message comes on the socket, but
        //  the peer wakes us (for what events armed) through the pipe
        struct pollfd items [2] = {
            { .fd = shmipc_channel_fd (channel), .events = POLLIN },
            { .fd = shmipc_channel_wake_fd (channel), .events = POLLIN }
        };
        poll (items, 2, left);
    }
}

//  Exchange greetings on a fresh channel: ours of type, then the peer's
//  (or the other way round). Returns 0 or -1.
static int
s_channel_greet (shmipc_channel_t *channel, int type, bool first)
{
    uint8_t greeting [SHMIPC__GREETING_MAX];
    size_t size = shmipc__greeting_encode (greeting, type, NULL, 0);
    uint8_t theirs [SHMIPC_CTRL_MAX];
    if (first && shmipc_channel_send_ctrl (channel, greeting, size))
        return -1;
    if (s_channel_recv_ctrl (channel, theirs, sizeof theirs, S_PATIENCE_MS) < 0)
        return -1;
    if (!first && shmipc_channel_send_ctrl (channel, greeting, size))
        return -1;
    return 0;
}

static int
s_mode_uid (s_hostile_t *self, const char *uid)
{
    if (s_become (uid))
        return 3;
    int sock = shmipc_endpoint_connect (self->endpoint, SHMIPC_ANY_UID);
    if (sock < 0) {
        tu_say ("connect refused %d", errno);
        return 0;
    }
    shmipc_channel_t *channel = shmipc_channel_new (sock, "uid-client", S_CAPACITY,
                                                    SHMIPC_CLIENT);
    if (!channel) {
        close (sock);
        tu_say ("closed %s", strerror (errno));
        return 0;
    }
    shmipc_channel_set_rcvtimeo (channel, S_PATIENCE_MS);
    shmipc_channel_set_sndtimeo (channel, S_PATIENCE_MS);
    const char *request = "uid-ping";
    shmipc_msg_t *reply = shmipc_msg_new ();
    S_CHECK (reply);
    if (shmipc_channel_handshake (channel, S_PATIENCE_MS)
    ||  s_channel_greet (channel, ZMQ_DEALER, true)
    ||  shmipc_channel_send (channel, request, strlen (request), 0)
    ||  shmipc_channel_recv_into (channel, reply, 0))
        tu_say ("closed %s", strerror (errno));
    else
    if (shmipc_msg_frames (reply) == 1 && shmipc_msg_size (reply, 0) == strlen (request)
    &&  memcmp (shmipc_msg_data (reply, 0), request, strlen (request)) == 0)
        tu_say ("echo ok");
    else
        tu_say ("echo wrong");
    shmipc_msg_destroy (&reply);
    shmipc_channel_destroy (&channel);
    return 0;
}

static int
s_mode_uidserver (s_hostile_t *self, const char *uid)
{
    if (s_become (uid))
        return 3;
    shmipc_listener_t *listener = shmipc_listener_new (self->endpoint);
    S_CHECK (listener);
    shmipc_listener_allow_any_uid (listener);
    tu_say ("ready");
    shmipc_msg_t *msg = shmipc_msg_new ();
    S_CHECK (msg);
    while (!self->stopped) {
        struct pollfd items [2] = {
            { .fd = shmipc_listener_fd (listener), .events = POLLIN },
            { .fd = STDIN_FILENO, .events = POLLIN }
        };
        if (poll (items, 2, -1) <= 0)
            continue;
        if (items [1].revents)
            break;
        int sock = shmipc_listener_accept (listener);
        if (sock < 0)
            continue;
        shmipc_channel_t *channel = shmipc_channel_new (sock, "uid-server", S_CAPACITY,
                                                        SHMIPC_SERVER);
        if (!channel) {
            close (sock);
            tu_say ("closed %s", strerror (errno));
            continue;
        }
        shmipc_channel_set_rcvtimeo (channel, S_PATIENCE_MS);
        shmipc_channel_set_sndtimeo (channel, S_PATIENCE_MS);
        long served = 0;
        if (shmipc_channel_handshake (channel, S_PATIENCE_MS)
        ||  s_channel_greet (channel, ZMQ_ROUTER, false))
            tu_say ("closed %s", strerror (errno));
        else {
            while (shmipc_channel_recv_into (channel, msg, 0) == 0
            &&     shmipc_channel_send_msg (channel, msg, 0) == 0)
                served++;
            tu_say ("served %ld", served);
        }
        shmipc_channel_destroy (&channel);
    }
    shmipc_msg_destroy (&msg);
    shmipc_listener_destroy (&listener);
    return 0;
}

//  --------------------------------------------------------------------------

typedef struct {
    const char *name;
    int (*run) (s_hostile_t *self, const char *variant);
} s_mode_t;

static const s_mode_t s_modes [] = {
    { "seals", s_mode_seals },
    { "scribble", s_mode_scribble },
    { "indices", s_mode_indices },
    { "fd", s_mode_fd },
    { "garbage", s_mode_garbage },
    { "stall", s_mode_stall },
    { "greeting", s_mode_greeting },
    { "dupid", s_mode_dupid },
    { "wakes", s_mode_wakes },
    { "bigmsg", s_mode_bigmsg },
    { "uid", s_mode_uid },
    { "uidserver", s_mode_uidserver },
};

int
main (int argc, char *argv [])
{
    //  Never outlive the test that started us
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    if (getppid () == 1)
        return 2;
    signal (SIGPIPE, SIG_IGN);
    if (argc < 4 || argc > 5) {
        fprintf (stderr, "usage: shmipc-hostile [server-]MODE VARIANT ENDPOINT [SEED]\n");
        return 2;
    }
    s_hostile_t self = { .endpoint = argv [3], .sock = -1, .role = SHMIPC_CLIENT,
                         .type = ZMQ_DEALER,
                         .random = argc == 5 ? strtoull (argv [4], NULL, 10) : 0 };
    self.random = self.random * 0x9E3779B97F4A7C15ULL + (uint64_t) getpid ();
    if (self.random == 0)
        self.random = 1;
    const char *mode = argv [1];
    if (strncmp (mode, "server-", 7) == 0) {
        self.role = SHMIPC_SERVER;
        mode += 7;
    }
    if (getenv ("SHMIPC_HOSTILE_TYPE"))
        self.type = atoi (getenv ("SHMIPC_HOSTILE_TYPE"));
    for (size_t index = 0; index < sizeof s_modes / sizeof s_modes [0]; index++)
        if (streq (s_modes [index].name, mode)) {
            int rc;
            do {
                //  A server attacks each victim that connects, until told to stop
                rc = s_modes [index].run (&self, argv [2]);
                shmipc_segment_destroy (&self.victim);
                shmipc_segment_destroy (&self.own);
                if (self.sock >= 0)
                    close (self.sock);
                self = (s_hostile_t) { .endpoint = self.endpoint, .sock = -1,
                                       .role = self.role, .type = self.type,
                                       .random = self.random, .listener = self.listener,
                                       .stopped = self.stopped };
                if (self.role == SHMIPC_SERVER && !self.stopped) {
                    struct pollfd items [2] = {
                        { .fd = shmipc_listener_fd (self.listener), .events = POLLIN },
                        { .fd = STDIN_FILENO, .events = POLLIN }
                    };
                    if (poll (items, 2, -1) > 0 && items [1].revents)
                        self.stopped = true;
                }
            } while (rc == 0 && self.role == SHMIPC_SERVER && !self.stopped);
            shmipc_listener_destroy (&self.listener);
            return rc;
        }
    fprintf (stderr, "shmipc-hostile: unknown mode '%s'\n", mode);
    return 2;
}
