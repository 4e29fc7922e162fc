/*  =========================================================================
    fuzz_channel - libFuzzer harness for a whole channel against a hostile
    peer: the fuzzer plays the peer of a real channel ("us") and does, in
    any order, whatever a peer process can do: write its ring (records,
    flags, lengths, chunks, stray bytes), publish its write index and its
    read index into our ring (in order, backwards, past the end, unaligned),
    set its sleep flags, send socket records (WAKE, ACK, CTRL, HELLO, raw
    bytes, empty records, descriptors), hang up; interleaved with our own
    non-blocking sends, receives, control messages, events and flushes.
    It also plays an honest writer and reader, so that the states behind
    them (full rings, streaming both ways, sleeps and wake-ups) are reached.
    Holds both ways: the peer writes PAD records (filler, which we skip),
    keeps records of our ring in its hold table (honestly, or a table that
    lies), and we hold frames of its ring (shmipc_channel_hold), released
    in any order, some only after both channels are gone.
    Loans: the peer sends a POOL record (its loan pool, or a bad one: no
    descriptor, two, not a memfd, unsealed, another kind, too small, a
    second POOL) and writes LOAN records (ranges of its pool it filled with
    the pattern, or ranges outside it, bad sizes, bad flags, continuing a
    chunked frame, before any POOL); all on input bits the older corpus
    never sets, so its files replay as they did.
    Wake pipes: the peer channel's own PIPE record (sent at its handshake)
    is taken back off our socket unless the configuration lets it through,
    so that by default the peer wakes us and is woken with WAKE records as
    before. The fuzzer keeps the pipe our PIPE record carries (and may
    wake us through it, write into it without end, or close it), and
    sends PIPE records of its own: a genuine pipe (our wake-ups then land
    in it), one full that nobody reads, or bad ones (no descriptor, twice,
    a memfd, a socket, /dev/null, a FIFO, an eventfd, a bad value or size,
    two descriptors). Again on bits the older corpus never sets.

    Owns nothing. Each input starts from a fresh pair of channels over a
    socketpair, in one process; the peer channel only does the handshake,
    then the fuzzer drives its memory and its socket by hand (through the
    internal struct, channel.h). Every call is non-blocking (SHMIPC_DONTWAIT,
    MSG_DONTWAIT) and every loop is bounded by the input.

    Input: three configuration bytes (see s_fuzz_new), then one operation
    per byte (byte % S_OPS, see the S_OP_ list), each followed by its
    argument bytes. Past the end of the input every argument reads as 0.
    FUZZ_CHANNEL_TRACE=1 prints each step and where both sides stand.

    Beyond ASan/UBSan, what is checked while the peer behaves (and stops
    being checked, per direction, from its first lie):
    - messages the peer wrote are delivered whole, in order, byte for byte
      (a pattern that depends on the offset in the frame), and a receive
      never says EAGAIN or ECONNRESET while one is published in full;
    - the records we write are well-formed, never past the read index the
      peer published, and reassemble into the messages we sent; PAD
      records only once the peer's table listed something, and the
      payload of every record the peer holds stays as we wrote it;
    - PAD records the peer writes are invisible in what we deliver; a
      frame we hold stays readable until released, after destroy too;
    - control messages arrive whole and in order both ways, ACKs count
      only what we read, the window holds;
    - at most one WAKE per sleep the peer announced, and one for every
      sleep we saw when we published or released;
    - events () arms what it does not report, and gives back ring space
      before it reports nothing to read; an error, once there, stays; the
      counters count each message sent and each handed over, once;
    - a LOAN of a good pool delivers the pool's bytes; any breach of the
      loan rules breaks us with EPROTO (EMSGSIZE if the message was too big
      before it): once a bad LOAN is published, a receive that reaches it
      fails, and nothing after it is delivered; a bad POOL does it at the
      next read of the socket (checked at the end of such an input);
    - we send one PIPE record, first, with one descriptor: the write end
      of an anonymous pipe; our wake-ups through pipes and WAKE records
      together stay within one per sleep; a bad PIPE, or a second, breaks
      us with EPROTO at the next read of the socket, and only a PIPE
      record ever breaks us for a PIPE's reason; our wake descriptor is -1
      until the handshake, then the same until destroy, and never hangs
      up; every descriptor an input opened is closed when it ends.
    =========================================================================
*/

#include "channel.h"
#include "shmipc_fdpass.h"
#include "shmipc_loans.h"
#include "channel_lend.h"
#include "wire.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  An invariant that must hold whatever the input: checked in every build
//  (assert would vanish under NDEBUG)
#define S_CHECK(condition) do { \
    if (!(condition)) { \
        fprintf (stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
        abort (); \
    } \
} while (0)

#define S_LOAD64(ptr)   atomic_load_explicit ((_Atomic uint64_t *) (ptr), memory_order_acquire)
#define S_STORE64(ptr, value) \
    atomic_store_explicit ((_Atomic uint64_t *) (ptr), (value), memory_order_release)
#define S_LOAD32(ptr)   atomic_load_explicit ((_Atomic uint32_t *) (ptr), memory_order_relaxed)
#define S_STORE32(ptr, value) \
    atomic_store_explicit ((_Atomic uint32_t *) (ptr), (value), memory_order_relaxed)

//  Every payload byte, ours and the honest peer's, is s_pattern [offset in
//  its frame % S_PATTERN], so a byte lost, doubled or moved shows
#define S_PATTERN       65536
static uint8_t s_pattern [S_PATTERN];
static int s_devnull = -1;              //  A descriptor to send where none belongs
static int s_fifo = -1;                 //  A FIFO (unlinked: no file left
                                        //  behind), or -1 if none could be made
static bool s_trace;                    //  FUZZ_CHANNEL_TRACE=1: print each step

#define S_QUEUE         64              //  Messages tracked in flight
#define S_FRAMES        4               //  Frames per sendv
#define S_VECTORED      8               //  Messages per recv_vectored
#define S_DRAIN         512             //  Socket records per drain
#define S_OURS          80              //  Our holds kept (more than fit)
#define S_LIVE          16              //  Loans tracked until delivered
#define S_POISON        SIZE_MAX        //  frames of an expected breach

//  The shape of a message (or, with frames 1, of a control message).
typedef struct {
    size_t frames;
    uint64_t bytes;
} s_shape_t;

//  Messages written and not yet seen arriving. Overflowing it, or a lie
//  that makes arrivals unpredictable, ends the checking (valid false).
typedef struct {
    s_shape_t item [S_QUEUE];
    size_t head;
    size_t count;
    bool valid;
} s_queue_t;

//  Where a stream of records stands: the message so far, and the offset
//  into its last frame when that frame continues (CHUNK).
typedef struct {
    size_t frames;
    uint64_t bytes;
    uint64_t offset;
    bool open;                          //  The last record was a CHUNK
} s_track_t;

//  A record of our ring the peer holds (lists in its hold table).
typedef struct {
    uint64_t at;                        //  Its header's index
    uint32_t size;                      //  Payload bytes
    uint64_t offset;                    //  Their offset in our frame
    unsigned slot;                      //  Its slot in the peer's table
} s_peer_hold_t;

//  A range of the peer's pool a LOAN record lends, until delivered.
typedef struct {
    uint64_t offset;
    uint64_t bytes;
    uint64_t seq;                       //  The message it is part of
} s_loan_t;

//  What the peer's POOL records told us.
enum { S_POOL_NONE, S_POOL_GOOD, S_POOL_BAD, S_POOL_UNKNOWN };

typedef struct {
    shmipc_channel_t *us;               //  The channel under test
    shmipc_channel_t *peer;             //  The other end; the fuzzer's puppet
    int sock;                           //  The peer's socket (peer owns it)
    int error;                          //  Our first error, which must stay
    shmipc_msg_t *msg;                  //  Reused by recv_into

    //  The peer's memory, once its handshake is done (peer_set)
    bool peer_set;
    uint8_t *ring;                      //  Its ring: the fuzzer writes it
    size_t cap;                         //  Its ring's bytes
    shmipc__control_t *ctl;             //  Its control block
    const uint8_t *our_ring;            //  Our ring as the peer maps it
    size_t our_cap;                     //  Our ring's bytes
    const shmipc__control_t *our_ctl;   //  Our control block, likewise

    //  The peer as writer of its ring
    uint64_t w;                         //  Next byte it writes
    uint64_t head;                      //  Last write index it published
    s_track_t wtrack;                   //  Message being written
    s_queue_t expect;                   //  Messages written, not delivered
    bool pure;                          //  No lie yet: deliveries checked
    bool out_active;                    //  An honest message in progress
    size_t out_nframes;                 //  Its frames
    size_t out_size [S_FRAMES];         //  and their sizes
    size_t out_frame;                   //  Its frame being written
    size_t out_offset;                  //  Bytes of that frame written
    uint32_t woke_rx;                   //  Our rx_sleep epoch last woken
    uint32_t woke_tx;                   //  Our tx_sleep epoch last woken

    //  The peer as reader of our ring
    uint64_t r;                         //  Next byte it reads
    uint64_t tail;                      //  Last read index it published
    s_track_t rtrack;                   //  Message being read
    s_queue_t sent;                     //  Messages we sent, not yet read
    bool honest;                        //  No lie yet: our ring checked
    s_peer_hold_t hold [SHMIPC_HOLDS_MAX];  //  Records of ours it holds
    size_t nholds;                      //  How many (in its table)
    uint64_t held_bytes;                //  Their ring bytes
    bool table_used;                    //  Its table listed something once:
                                        //  our PAD records may come
    bool lied;                          //  Its table lied once
    bool last_set;                      //  A record read in this READ:
    uint64_t last_at;                   //  its header index,
    uint32_t last_size;                 //  size
    uint64_t last_offset;               //  and offset in its frame

    //  Sleep flags and WAKEs
    uint32_t grants;                    //  Times a flag became a new odd value
    uint32_t wakes;                     //  WAKEs the peer received

    //  Control messages
    s_queue_t ctrl_out;                 //  Ours, not yet read by the peer
    s_queue_t ctrl_in;                  //  The peer's, not yet read by us
    uint32_t ctrl_out_read;             //  Ours, read by the peer
    uint32_t ctrl_in_sent;              //  The peer's, sent
    uint32_t ctrl_in_read;              //  The peer's, read by us
    uint32_t ack_seen;                  //  Last ACK the peer received
    bool shut;                          //  The peer hung up (SHUT_WR)
    bool decoy;                         //  A HELLO with another segment went
                                        //  first: we may map that one instead

    //  Our side
    size_t stream_nframes;              //  Message we stream, to repeat it:
    size_t stream_size [S_FRAMES];      //  its frames' sizes
    bool held;                          //  recv_view gave a message, not done
    shmipc_hold_t *ours [S_OURS];       //  Frames we hold (oldest first),
    const uint8_t *ours_data [S_OURS];  //  where they lie
    size_t ours_size [S_OURS];          //  and their sizes
    size_t nours;
    s_shape_t held_shape;               //  The last message handed over
    uint64_t msgs_sent;                 //  Sends that succeeded
    uint64_t msgs_received;             //  Messages handed over and done with

    //  The peer's loan pool
    bool loans;                         //  A POOL or LOAN was tried: s_finish
    int pool_state;                     //  S_POOL_*, from the first POOL
    uint32_t pools_sent;                //  POOL records we will read
    shmipc_segment_t *pool;             //  The good one (the peer writes it)
    uint64_t pool_area;                 //  Its data area's bytes
    uint64_t pool_next;                 //  Where the next fresh loan goes
    s_loan_t live [S_LIVE];             //  Loans not yet delivered
    size_t nlive;
    uint64_t expect_popped;             //  Messages taken from expect
    bool loan_before_pool;              //  A LOAN went with no POOL sent
    bool ring_poison;                   //  A bad LOAN is in the peer's ring
    bool sock_poison;                   //  A bad POOL or PIPE is on the socket
    bool poison_ready;                  //  Either came while we were ready
                                        //  and whole: EPROTO must follow
    bool loan_raw;                      //  A LOAN flag or POOL type came
                                        //  from raw input bytes
    bool empty_raw;                     //  An empty record went: read after
                                        //  a hang-up it is the end of stream

    //  Wake pipes (PIPE records)
    bool pipe_wakes;                    //  Config: the peer wakes us through
                                        //  our pipe once it has it
    int our_pipe;                       //  Our pipe, from our PIPE record:
                                        //  the peer wakes us there (-1: none)
    uint32_t our_pipes;                 //  PIPE records we sent
    bool records_seen;                  //  A record of ours was read
    int wake_in;                        //  Read end of the pipe the fuzzer
                                        //  sent us: our wake-ups land there
                                        //  (-1: none)
    bool pipe_sent;                     //  A PIPE went to us from the peer's
                                        //  side: one more is one too many
    bool pipe_bad;                      //  A bad PIPE or a second went
    bool pipe_raw;                      //  A raw record said PIPE
    bool wake_fd_known;                 //  Our wake descriptor is settled:
    int wake_fd;                        //  this one, until destroy
} s_fuzz_t;

//  --------------------------------------------------------------------------
//  Input

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t at;
} s_input_t;

static uint8_t
s_u8 (s_input_t *in)
{
    return in->at < in->size ? in->data [in->at++] : 0;
}

static uint32_t
s_u32 (s_input_t *in)
{
    uint32_t value = 0;
    for (int index = 0; index < 4; index++)
        value |= (uint32_t) s_u8 (in) << (8 * index);
    return value;
}

static uint64_t
s_u64 (s_input_t *in)
{
    uint64_t low = s_u32 (in);
    return low | (uint64_t) s_u32 (in) << 32;
}

//  0 to 127 bytes, or a multiple of 97 up to 12,319 (several rings' worth)
static size_t
s_frame_size (s_input_t *in)
{
    uint8_t byte = s_u8 (in);
    return byte < 128 ? byte : (size_t) (byte - 128) * 97;
}

//  --------------------------------------------------------------------------
//  Patterns, queues, tracks

static void
s_pattern_put (uint8_t *dest, uint64_t offset, size_t size)
{
    while (size) {
        size_t at = (size_t) (offset % S_PATTERN);
        size_t piece = S_PATTERN - at < size ? S_PATTERN - at : size;
        memcpy (dest, s_pattern + at, piece);
        dest += piece;
        offset += piece;
        size -= piece;
    }
}

static bool
s_pattern_is (const uint8_t *data, uint64_t offset, size_t size)
{
    while (size) {
        size_t at = (size_t) (offset % S_PATTERN);
        size_t piece = S_PATTERN - at < size ? S_PATTERN - at : size;
        if (memcmp (data, s_pattern + at, piece))
            return false;
        data += piece;
        offset += piece;
        size -= piece;
    }
    return true;
}

static void
s_push (s_queue_t *queue, size_t frames, uint64_t bytes)
{
    if (queue->count == S_QUEUE)
        queue->valid = false;
    if (!queue->valid)
        return;
    queue->item [(queue->head + queue->count++) % S_QUEUE] =
        (s_shape_t) { .frames = frames, .bytes = bytes };
}

//  Take the oldest entry; it must be there while the queue is valid.
//  Returns false when the queue no longer tells.
static bool
s_pop (s_queue_t *queue, s_shape_t *shape)
{
    if (!queue->valid)
        return false;
    S_CHECK (queue->count > 0);
    *shape = queue->item [queue->head];
    queue->head = (queue->head + 1) % S_QUEUE;
    queue->count--;
    return true;
}

//  Account for a well-formed record of size bytes with flags; returns true
//  when it ends a message (whose shape is then in *shape).
static bool
s_track (s_track_t *track, uint32_t size, uint32_t flags, s_shape_t *shape)
{
    track->bytes += size;
    if (flags & SHMIPC_RECORD_CHUNK) {
        track->offset += size;
        track->open = true;
        return false;
    }
    track->frames++;
    track->offset = 0;
    track->open = false;
    if (flags & SHMIPC_RECORD_MORE)
        return false;
    *shape = (s_shape_t) { .frames = track->frames, .bytes = track->bytes };
    *track = (s_track_t) { 0 };
    return true;
}

//  Flags of a record that carries a frame (or part of one).
static bool
s_flags_valid (uint32_t flags)
{
    return (flags & ~(uint32_t) (SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK)) == 0
        && flags != (SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK);
}

//  A PAD record is filler, skipped by the reader: PAD alone (with any
//  other bit it is a lie, refused).
static bool
s_flags_pad (uint32_t flags)
{
    return flags == SHMIPC_RECORD_PAD;
}

//  --------------------------------------------------------------------------
//  The pair

static void
s_init (void)
{
    if (s_devnull >= 0)
        return;
    for (size_t index = 0; index < S_PATTERN; index++)
        s_pattern [index] = (uint8_t) (index * 7 + (index >> 8) * 13 + 1);
    s_trace = getenv ("FUZZ_CHANNEL_TRACE") != NULL;
    s_devnull = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    S_CHECK (s_devnull >= 0);
    //  Opened both ways, so that the open does not wait for a writer
    char dir [] = "/tmp/fuzz-channel-XXXXXX";
    if (mkdtemp (dir)) {
        char path [sizeof dir + 8];
        snprintf (path, sizeof path, "%s/fifo", dir);
        if (mkfifo (path, 0600) == 0) {
            s_fifo = open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            unlink (path);
        }
        rmdir (dir);
    }
}

//  Return true if fd is an anonymous pipe (its /proc link says so).
static bool
s_is_pipe (int fd)
{
    char path [40];
    char target [64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t size = readlink (path, target, sizeof target - 1);
    return size > 6 && memcmp (target, "pipe:[", 6) == 0;
}

//  Return how many descriptors this process has open.
static int
s_count_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    S_CHECK (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += entry->d_name [0] != '.';
    closedir (dir);
    return count;
}

//  Read and count what waits in a pipe (none if fd is -1).
static uint32_t
s_read_pipe (int fd)
{
    uint32_t total = 0;
    uint8_t buffer [4096];
    ssize_t rc;
    while (fd >= 0 && (rc = read (fd, buffer, sizeof buffer)) > 0)
        total += (uint32_t) rc;
    return total;
}

//  Write count bytes into a pipe without waiting, as far as it takes them
//  (to the last byte: a write of up to a page is all or nothing).
static void
s_write_pipe (int fd, size_t count)
{
    uint8_t buffer [4096] = { 0 };
    size_t most = sizeof buffer;
    while (count) {
        size_t piece = count < most ? count : most;
        ssize_t rc = write (fd, buffer, piece);
        if (rc > 0)
            count -= (size_t) rc;
        else
        if (rc < 0 && errno == EAGAIN && most > 1)
            most /= 2;
        else
            break;
    }
}

static void s_pipe_went (s_fuzz_t *self, bool bad);

//  Once the peer's handshake is done, find its memory. Returns false
//  until then (or for ever, if it failed).
static bool
s_peer_ready (s_fuzz_t *self)
{
    if (self->peer_set)
        return true;
    if (shmipc_channel_handshake (self->peer, 0))
        return false;
    shmipc_channel_t *peer = self->peer;
    self->ring = (uint8_t *) shmipc_segment_data (peer->own) + SHMIPC_SEGMENT_HEADER;
    self->cap = peer->tx.capacity;
    self->ctl = peer->waiter.own_ctl;
    self->our_ring = (const uint8_t *) shmipc_segment_data (peer->peer) + SHMIPC_SEGMENT_HEADER;
    self->our_cap = peer->rx.capacity;
    self->our_ctl = peer->waiter.peer_ctl;
    self->peer_set = true;
    //  Its handshake sent us its PIPE, if it could make a pipe
    if (shmipc_channel_wake_fd (peer) >= 0)
        s_pipe_went (self, false);
    return true;
}

//  The peer's PIPE is waiting on our socket, unread, the only record
//  there: take it back (checked as we check ours), so that the peer is one
//  that sends none.
static void
s_withdraw_pipe (s_fuzz_t *self, int sock)
{
    uint8_t buffer [SHMIPC__WIRE_MAX];
    int fd = -1;
    size_t nfds = 0;
    ssize_t rc = shmipc_fdpass_recv (sock, buffer, sizeof buffer, &fd, 1, &nfds,
                                     SHMIPC_DONTWAIT);
    if (rc < 0) {
        //  It could not make or send one
        S_CHECK (errno == EAGAIN && !self->pipe_sent);
        return;
    }
    shmipc__wire_t record;
    const char *reason;
    S_CHECK (shmipc__wire_decode (buffer, (size_t) rc, &record, &reason) == 0
          && record.type == SHMIPC__WIRE_PIPE && nfds == 1 && s_is_pipe (fd));
    close (fd);
    self->pipe_sent = false;
}

//  Configuration: byte 0 bit 0 our role, bits 1-3 and 4-6 our and the
//  peer's ring (64 << n, n % 5), bit 7 a lazy handshake (our calls do it,
//  and the fuzzer's records may come before the peer's HELLO); byte 1 our
//  maxmsgsize (n * 128, 0: none); byte 2: bit 0 (lazy only) a handshake
//  deadline already past, bit 1 (lazy only) no peer ring over 64 bytes
//  accepted, bit 2 the smallest socket send buffers (a few records fill
//  them: WAKEs dropped, ACKs left pending), bit 3 a peer ring of 4096
//  bytes (the smallest whose frames we may hold), bit 4 the peer's own
//  PIPE reaches us (always when lazy: it comes among the fuzzer's
//  records, and cannot be taken back), bit 5 the peer wakes us through
//  our pipe once s_drain has taken it, not with WAKE records.
static void
s_fuzz_new (s_fuzz_t *self, uint8_t config, uint8_t options, uint8_t lazy)
{
    memset (self, 0, sizeof *self);
    self->our_pipe = self->wake_in = -1;
    self->pipe_wakes = (lazy & 32) != 0;
    self->pure = self->honest = true;
    self->expect.valid = self->sent.valid = true;
    self->ctrl_out.valid = self->ctrl_in.valid = true;
    int pair [2];
    S_CHECK (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair) == 0);
    if (lazy & 4) {
        int smallest = 1;       //  The kernel makes it its minimum
        S_CHECK (setsockopt (pair [0], SOL_SOCKET, SO_SNDBUF, &smallest, sizeof smallest) == 0);
        S_CHECK (setsockopt (pair [1], SOL_SOCKET, SO_SNDBUF, &smallest, sizeof smallest) == 0);
    }
    int role = config & 1 ? SHMIPC_SERVER : SHMIPC_CLIENT;
    size_t capacity = (size_t) SHMIPC_RING_MIN << ((config >> 1 & 7) % 5);
    size_t peer_capacity = (size_t) SHMIPC_RING_MIN << ((config >> 4 & 7) % 5);
    if (lazy & 8)
        peer_capacity = 4096;
    self->us = shmipc_channel_new (pair [0], "us", capacity, role);
    S_CHECK (self->us);
    self->peer = shmipc_channel_new (pair [1], "peer", peer_capacity,
                                     role == SHMIPC_SERVER ? SHMIPC_CLIENT : SHMIPC_SERVER);
    S_CHECK (self->peer);
    self->sock = pair [1];
    self->msg = shmipc_msg_new ();
    S_CHECK (self->msg);
    if (options)
        shmipc_channel_set_maxmsgsize (self->us, (size_t) options * 128);
    if (config & 0x80) {
        if (lazy & 1)
            shmipc_channel_set_handshake_timeout (self->us, 0);
        if (lazy & 2)
            shmipc_channel_set_max_peer_capacity (self->us, SHMIPC_RING_MIN);
        return;
    }
    //  Either side may go first: step both until both are done
    bool us_ready = false;
    for (int round = 0; round < 16 && !(us_ready && self->peer_set); round++) {
        if (!us_ready) {
            us_ready = shmipc_channel_handshake (self->us, 0) == 0;
            S_CHECK (us_ready || errno == EAGAIN);
        }
        if (!s_peer_ready (self))
            S_CHECK (errno == EAGAIN);
    }
    S_CHECK (us_ready && self->peer_set);
    if (!(lazy & 16))
        s_withdraw_pipe (self, pair [0]);
}

//  Let go of our oldest hold, reading its bytes first: still mapped.
static void
s_release_ours (s_fuzz_t *self)
{
    if (self->nours == 0)
        return;
    volatile uint8_t sum = 0;
    for (size_t index = 0; index < self->ours_size [0]; index++)
        sum ^= self->ours_data [0][index];
    (void) sum;
    shmipc_hold_release (self->ours [0]);
    self->nours--;
    memmove (self->ours, self->ours + 1, self->nours * sizeof self->ours [0]);
    memmove (self->ours_data, self->ours_data + 1, self->nours * sizeof self->ours_data [0]);
    memmove (self->ours_size, self->ours_size + 1, self->nours * sizeof self->ours_size [0]);
}

static void
s_fuzz_destroy (s_fuzz_t *self)
{
    //  Half our holds go before the channels, the rest after
    size_t before = self->nours / 2;
    while (self->nours > before)
        s_release_ours (self);
    shmipc_channel_destroy (&self->us);
    shmipc_channel_destroy (&self->peer);
    shmipc_msg_destroy (&self->msg);
    while (self->nours)
        s_release_ours (self);
    shmipc_segment_destroy (&self->pool);
    if (self->our_pipe >= 0)
        close (self->our_pipe);
    if (self->wake_in >= 0)
        close (self->wake_in);
}

//  --------------------------------------------------------------------------
//  The peer's socket

static void
s_send_record (s_fuzz_t *self, const void *data, size_t size)
{
    (void) send (self->sock, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void
s_send_header (s_fuzz_t *self, int type, uint32_t value)
{
    uint8_t head [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (head, type, value);
    s_send_record (self, head, sizeof head);
}

//  Read what we sent the peer and check it: we are the trusted side. Our
//  wake-ups come as WAKE records, or as bytes in the pipe the peer gave
//  us (the fuzzer's, or the peer channel's own if it reached us).
static void
s_drain (s_fuzz_t *self)
{
    //  One wake-up per sleep, at most, whichever way it came
    self->wakes += s_read_pipe (self->wake_in);
    self->wakes += s_read_pipe (shmipc_channel_wake_fd (self->peer));
    S_CHECK (self->wakes <= self->grants);
    uint8_t buffer [SHMIPC__WIRE_MAX + 1];
    for (int count = 0; count < S_DRAIN; count++) {
        int fds [2] = { -1, -1 };
        size_t nfds = 0;
        ssize_t rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer, fds, 2, &nfds,
                                         SHMIPC_DONTWAIT);
        //  Never an oversize record, never more than one descriptor
        S_CHECK (rc >= 0 || (errno != EMSGSIZE && errno != EPROTO));
        if (rc <= 0)
            break;              //  Nothing, or we hung up
        S_CHECK (rc <= SHMIPC__WIRE_MAX);
        shmipc__wire_t record;
        const char *reason;
        S_CHECK (shmipc__wire_decode (buffer, (size_t) rc, &record, &reason) == 0);
        //  A descriptor only with our PIPE, which comes first if at all
        S_CHECK (nfds == (record.type == SHMIPC__WIRE_PIPE ? 1u : 0u));
        S_CHECK (record.type != SHMIPC__WIRE_PIPE || !self->records_seen);
        self->records_seen = true;
        switch (record.type) {
            case SHMIPC__WIRE_PIPE:
                //  Once, and the write end of an anonymous pipe: the peer
                //  keeps it to wake us, never blocking on it
                S_CHECK (++self->our_pipes == 1);
                S_CHECK (s_is_pipe (fds [0]));
                S_CHECK ((fcntl (fds [0], F_GETFL) & O_ACCMODE) == O_WRONLY);
                S_CHECK (fcntl (fds [0], F_SETFL, O_WRONLY | O_NONBLOCK) == 0);
                self->our_pipe = fds [0];
                break;
            case SHMIPC__WIRE_WAKE:
                //  One WAKE per sleep, at most
                S_CHECK (++self->wakes <= self->grants);
                break;
            case SHMIPC__WIRE_ACK:
                //  Counts only what we read, never goes back
                S_CHECK ((uint32_t) (record.value - self->ack_seen)
                      <= (uint32_t) (self->ctrl_in_read - self->ack_seen));
                self->ack_seen = record.value;
                break;
            case SHMIPC__WIRE_CTRL: {
                self->ctrl_out_read++;
                s_shape_t shape;
                if (s_pop (&self->ctrl_out, &shape))
                    S_CHECK (shape.bytes == record.value
                          && s_pattern_is (record.payload, 0, record.value));
                break;
            }
            default:
                S_CHECK (!"a HELLO after the handshake");
        }
    }
}

//  As an honest waker: after publishing (rx) or releasing (tx), wake us if
//  we sleep, once per sleep: a WAKE record, or a byte into our pipe (a
//  full pipe drops it, as our own waker does).
static void
s_wake_us (s_fuzz_t *self, bool rx)
{
    atomic_thread_fence (memory_order_seq_cst);
    uint32_t epoch = S_LOAD32 (rx ? &self->our_ctl->rx_sleep : &self->our_ctl->tx_sleep);
    uint32_t *woken = rx ? &self->woke_rx : &self->woke_tx;
    if ((epoch & 1) && epoch != *woken) {
        *woken = epoch;
        if (self->pipe_wakes && self->our_pipe >= 0)
            s_write_pipe (self->our_pipe, 1);
        else
            s_send_header (self, SHMIPC__WIRE_WAKE, 0);
    }
}

//  --------------------------------------------------------------------------
//  The peer as writer of its ring

//  Writing [at, at + size) overwrites what we may not have read yet unless
//  it lies within our read index plus the ring: then delivery is no longer
//  predictable.
static void
s_writing (s_fuzz_t *self, uint64_t at, uint64_t size)
{
    uint64_t released = S_LOAD64 (&self->our_ctl->tail);
    if (at + size > released + self->cap || at + size < at)
        self->pure = false;
}

//  Write a record's header at our write index; return how many payload
//  bytes to write after it. A payload longer than the ring would
//  overwrite its own header: the reader refuses such a record anyway, so
//  only what fits is written.
static uint64_t
s_put_header (s_fuzz_t *self, uint32_t size, uint32_t flags)
{
    s_writing (self, self->w, shmipc_ring_record_size (size));
    uint64_t header = (uint64_t) size | (uint64_t) flags << 32;
    atomic_store_explicit ((_Atomic uint64_t *) (self->ring + (self->w & (self->cap - 1))),
                           header, memory_order_relaxed);
    return size <= self->cap - SHMIPC_RECORD_HEADER ? size : self->cap - SHMIPC_RECORD_HEADER;
}

static void
s_put_record (s_fuzz_t *self, uint32_t size, uint32_t flags)
{
    uint64_t mask = self->cap - 1;
    uint64_t need = shmipc_ring_record_size (size);
    uint64_t body = s_put_header (self, size, flags);
    uint64_t start = (self->w + SHMIPC_RECORD_HEADER) & mask;
    uint64_t first = self->cap - start < body ? self->cap - start : body;
    s_pattern_put (self->ring + start, self->wtrack.offset, (size_t) first);
    s_pattern_put (self->ring, self->wtrack.offset + first, (size_t) (body - first));
    self->w += need;
    //  A PAD is skipped: the message being written goes on after it
    s_shape_t shape;
    if (s_flags_valid (flags) && need <= self->cap
    &&  s_track (&self->wtrack, size, flags, &shape))
        s_push (&self->expect, shape.frames, shape.bytes);
}

static void
s_publish_head (s_fuzz_t *self, uint64_t head)
{
    if (head > self->w)
        self->pure = false;     //  Past what was written: stale bytes
    self->head = head;
    S_STORE64 (&self->ctl->head, head);
}

//  As an honest writer: write the message in progress as far as our read
//  index allows, whole if it fits the ring, else in chunks of at most what
//  is free (waiting for a quarter of the ring, as our writer does). With
//  pad, a PAD record of pad - 1 payload bytes first (as a writer stepping
//  over what we hold would), if it fits too.
static void
s_put_message (s_fuzz_t *self, bool wake, size_t pad)
{
    uint64_t need = 0;
    for (size_t index = 0; index < self->out_nframes; index++)
        need += shmipc_ring_record_size (self->out_size [index]);
    uint64_t released = S_LOAD64 (&self->our_ctl->tail);
    int64_t space = (int64_t) (released + self->cap - self->w);
    uint64_t filler = pad ? shmipc_ring_record_size (pad - 1) : 0;
    if (need <= self->cap && self->out_frame == 0 && self->out_offset == 0) {
        if (space < (int64_t) (need + filler)) {
            if (space < (int64_t) need)
                return;
            filler = 0;
        }
        if (filler)
            s_put_record (self, (uint32_t) (pad - 1), SHMIPC_RECORD_PAD);
        for (size_t index = 0; index < self->out_nframes; index++)
            s_put_record (self, (uint32_t) self->out_size [index],
                          index + 1 < self->out_nframes ? SHMIPC_RECORD_MORE : 0);
        self->out_active = false;
    }
    else
    while (self->out_frame < self->out_nframes) {
        size_t remaining = self->out_size [self->out_frame] - self->out_offset;
        uint64_t want = shmipc_ring_record_size (remaining);
        if (want > self->cap / 4)
            want = self->cap / 4;
        if (space < (int64_t) want)
            break;
        if (filler && space >= (int64_t) (want + filler)) {
            s_put_record (self, (uint32_t) (pad - 1), SHMIPC_RECORD_PAD);
            space -= (int64_t) filler;
        }
        filler = 0;
        size_t room = (size_t) space - SHMIPC_RECORD_HEADER;
        size_t chunk = remaining < room ? remaining : room;
        uint32_t flags = chunk < remaining ? SHMIPC_RECORD_CHUNK
                       : self->out_frame + 1 < self->out_nframes ? SHMIPC_RECORD_MORE : 0;
        s_put_record (self, (uint32_t) chunk, flags);
        space -= (int64_t) shmipc_ring_record_size (chunk);
        self->out_offset += chunk;
        if (self->out_offset == self->out_size [self->out_frame]) {
            self->out_frame++;
            self->out_offset = 0;
        }
        s_publish_head (self, self->w);
        if (wake)
            s_wake_us (self, true);
    }
    if (self->out_frame == self->out_nframes)
        self->out_active = false;
    s_publish_head (self, self->w);
    if (wake)
        s_wake_us (self, true);
}

//  --------------------------------------------------------------------------
//  The peer's loan pool

//  The peer broke a loan rule: from now on, an error of ours must be
//  EPROTO (or EMSGSIZE), if we were ready and whole (else something
//  before it may have broken us otherwise).
static void
s_poisoned (s_fuzz_t *self)
{
    if (self->error == 0 && shmipc_channel_error (self->us) == 0
    &&  shmipc_channel_ready (self->us))
        self->poison_ready = true;
}

//  Send a POOL record. how: bits 3-5 what goes with it (0 a good pool,
//  1 no descriptor, 2 /dev/null, 3 an unsealed memfd, 4 a segment of
//  another kind, 5 a good pool and /dev/null, 6 a good pool but the value
//  1, 7 a loan segment too small), bits 6-7 the pool's data area (1, 2, 4
//  or 16 units).
static void
s_send_pool (s_fuzz_t *self, uint8_t how)
{
    static const uint64_t units [4] = { 1, 2, 4, 16 };
    int kind = how >> 3 & 7;
    uint64_t area = units [how >> 6] * SHMIPC_LOANS_UNIT;
    self->loans = true;
    uint8_t record [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (record, SHMIPC__WIRE_POOL, kind == 6 ? 1 : 0);
    shmipc_segment_t *segment = NULL;
    int fds [2] = { -1, s_devnull };
    int memfd = -1;
    size_t nfds = 1;
    if (kind == 0 || kind == 5 || kind == 6 || kind == 4 || kind == 7) {
        uint32_t type = kind == 4 ? SHMIPC__CHANNEL_KIND : SHMIPC_LOANS_KIND;
        segment = shmipc_segment_new ("pool", SHMIPC_SEGMENT_HEADER + (kind == 7 ? 0 : area),
                                      type);
        if (!segment)
            return;             //  (too small to make, for kind 7)
        fds [0] = shmipc_segment_fd (segment);
        nfds = kind == 5 ? 2 : 1;
    }
    else
    if (kind == 1)
        nfds = 0;
    else
    if (kind == 2)
        fds [0] = s_devnull;
    else {
        memfd = memfd_create ("fuzz-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        S_CHECK (memfd >= 0);
        S_CHECK (ftruncate (memfd, (off_t) (SHMIPC_SEGMENT_HEADER + area)) == 0);
        fds [0] = memfd;
    }
    ssize_t sent = nfds
                 ? shmipc_fdpass_send (self->sock, record, sizeof record, fds, nfds,
                                       SHMIPC_DONTWAIT)
                 : send (self->sock, record, sizeof record, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (memfd >= 0)
        close (memfd);
    if (sent != (ssize_t) sizeof record) {
        shmipc_segment_destroy (&segment);
        return;
    }
    //  A LOAN we took for one before any POOL may find this one now
    if (self->loan_before_pool)
        self->pure = false;
    if (!shmipc_channel_ready (self->us) || self->decoy) {
        //  Our handshake may read it: what it does then is not ours to say
        self->pure = false;
        if (self->pool_state == S_POOL_NONE)
            self->pool_state = S_POOL_UNKNOWN;
        self->pools_sent++;
        shmipc_segment_destroy (&segment);
        return;
    }
    if (self->pools_sent++ || kind == 1 || kind == 5 || kind == 6) {
        //  Twice, without its descriptor, with two, or a bad record: the
        //  next read of our socket breaks us
        self->sock_poison = true;
        s_poisoned (self);
        shmipc_segment_destroy (&segment);
        return;
    }
    if (kind == 0) {
        self->pool_state = S_POOL_GOOD;
        self->pool = segment;
        self->pool_area = shmipc_segment_size (segment) - SHMIPC_SEGMENT_HEADER;
    }
    else {
        self->pool_state = S_POOL_BAD;     //  Refused at the first LOAN
        shmipc_segment_destroy (&segment);
    }
}

//  Fill [offset, offset + bytes) of the pool with the pattern, as a frame
//  lent from there must read. Rewriting a range a loan not yet delivered
//  (or held in a view) reads otherwise makes deliveries unpredictable.
static void
s_lend (s_fuzz_t *self, uint64_t offset, uint64_t bytes)
{
    uint64_t seq = self->expect_popped + self->expect.count;
    bool clash = false;
    size_t keep = 0;
    for (size_t index = 0; index < self->nlive; index++) {
        s_loan_t *loan = &self->live [index];
        bool alive = loan->seq >= self->expect_popped
                  || (self->held && loan->seq + 1 == self->expect_popped);
        if (!alive)
            continue;
        if (loan->offset != offset && loan->offset < offset + bytes
        &&  offset < loan->offset + loan->bytes)
            clash = true;
        self->live [keep++] = *loan;
    }
    self->nlive = keep;
    if (clash || self->nlive == S_LIVE)
        self->pure = false;
    else
        self->live [self->nlive++] = (s_loan_t) { .offset = offset, .bytes = bytes, .seq = seq };
    uint8_t *data = (uint8_t *) shmipc_segment_data (self->pool) + SHMIPC_SEGMENT_HEADER;
    s_pattern_put (data + offset, 0, (size_t) bytes);
}

//  Write a LOAN record at w: flags (LOAN among them), a payload of size
//  bytes (the 16 of a LOAN, then zeros) that lends bytes bytes. Argument
//  where: bits 0-2 the offset (0 after the last fresh loan, plus bits 3-7
//  bytes; 1 at the end of the area; 2 u16 from the input; 3 offset and
//  size u64 from the input; 4 one byte past the end; 5 the end itself; 6
//  an offset where offset + size wraps; 7 the whole area, plus bits 3-7
//  bytes).
static void
s_put_loan (s_fuzz_t *self, s_input_t *in, uint64_t bytes, uint32_t flags, uint32_t size)
{
    self->loans = true;
    uint8_t where = s_u8 (in);
    uint64_t area = self->pool_state == S_POOL_GOOD ? self->pool_area : 4 * SHMIPC_LOANS_UNIT;
    uint64_t offset;
    switch (where & 7) {
        case 0:
            if (self->pool_next > area || bytes > area - self->pool_next)
                self->pool_next = 0;
            offset = self->pool_next;
            self->pool_next += bytes + (where >> 3);
            break;
        case 1: offset = bytes <= area ? area - bytes : 0; break;
        case 2: offset = s_u8 (in) | (uint64_t) s_u8 (in) << 8; break;
        case 3:
            offset = s_u64 (in);
            bytes = s_u64 (in);
            break;
        case 4: offset = bytes <= area ? area - bytes + 1 : 0; break;
        case 5: offset = area; break;
        case 6: offset = UINT64_MAX - 7 - (where >> 3); bytes += 16; break;
        default:
            offset = 0;
            bytes = area + (where >> 3);
    }
    uint8_t payload [SHMIPC__LOAN_PAYLOAD];
    shmipc__put64 (payload, offset);
    shmipc__put64 (payload + 8, bytes);
    //  The record, with this payload where s_put_record writes its pattern
    uint64_t mask = self->cap - 1;
    uint64_t need = shmipc_ring_record_size (size);
    uint64_t body = s_put_header (self, size, flags);
    for (uint64_t index = 0; index < body; index++)
        self->ring [(self->w + SHMIPC_RECORD_HEADER + index) & mask] =
            index < sizeof payload ? payload [index] : 0;
    self->w += need;
    //  What the reader makes of it
    bool valid = (flags & ~(uint32_t) (SHMIPC_RECORD_MORE | SHMIPC_RECORD_LOAN)) == 0
              && size == SHMIPC__LOAN_PAYLOAD && !self->wtrack.open
              && offset <= area && bytes <= area - offset && bytes <= UINT32_MAX;
    if (self->pool_state == S_POOL_NONE)
        self->loan_before_pool = true;
    if (self->pool_state == S_POOL_UNKNOWN) {
        self->pure = false;
        return;
    }
    if (valid && self->pool_state == S_POOL_GOOD) {
        s_lend (self, offset, bytes);
        s_shape_t shape;
        if (s_track (&self->wtrack, (uint32_t) bytes, flags & SHMIPC_RECORD_MORE, &shape))
            s_push (&self->expect, shape.frames, shape.bytes);
        return;
    }
    //  A breach: the message it is in, and all after it, never arrive
    s_push (&self->expect, S_POISON, 0);
    self->wtrack = (s_track_t) { 0 };
    self->ring_poison = true;
    s_poisoned (self);
}

//  --------------------------------------------------------------------------
//  Wake pipes

//  A PIPE record went to us from the peer's side (the fuzzer's, or the
//  peer channel's own): bad, or one too many, it breaks us at the next
//  read of the socket, if we were ready and whole (before that, our
//  handshake may read it, and what it does then is not ours to say).
static void
s_pipe_went (s_fuzz_t *self, bool bad)
{
    bool twice = self->pipe_sent;
    self->pipe_sent = true;
    self->pipe_bad |= bad || twice;
    if ((bad || twice) && shmipc_channel_ready (self->us) && !self->decoy) {
        self->sock_poison = true;
        s_poisoned (self);
    }
}

//  Send us a PIPE record, or use the pipe our PIPE record gave the peer.
//  kind: 0 a genuine pipe's write end (our wake-ups then land in it, and
//  s_drain counts them), 1 its read end (as good: we only write), 2 a
//  genuine pipe filled to the brim, that nobody reads (our wake-ups are
//  dropped, never waited for), 3 no descriptor, 4 a memfd (a regular
//  file), 5 a socket, 6 /dev/null, 7 a FIFO, 8 an eventfd, 9 a genuine
//  pipe but the value 1, 10 a genuine pipe and /dev/null, 11 a genuine
//  pipe in a record one byte too long, 12 the pipe we sent the peer, back
//  to us (we then wake ourselves); 13 one stray byte into our pipe, 14
//  fill our pipe (a peer that writes without end), 15 close the peer's
//  end of our pipe (it wakes us with WAKE records from then on).
static void
s_pipe (s_fuzz_t *self, int kind)
{
    if (kind >= 12 && self->our_pipe < 0)
        return;
    if (kind == 13 || kind == 14) {
        s_write_pipe (self->our_pipe, kind == 13 ? 1 : 65536);
        return;
    }
    if (kind == 15) {
        close (self->our_pipe);
        self->our_pipe = -1;
        return;
    }
    uint8_t record [SHMIPC__RECORD_HEAD + 1] = { 0 };
    shmipc__wire_header (record, SHMIPC__WIRE_PIPE, kind == 9 ? 1 : 0);
    size_t size = kind == 11 ? sizeof record : SHMIPC__RECORD_HEAD;
    int ends [2] = { -1, -1 };
    int other [2] = { -1, -1 };         //  A socket pair, an eventfd, a memfd
    int fds [2] = { -1, s_devnull };
    size_t nfds = 1;
    if (kind <= 2 || (kind >= 9 && kind <= 11)) {
        S_CHECK (pipe2 (ends, O_CLOEXEC | O_NONBLOCK) == 0);
        fds [0] = ends [kind == 1 ? 0 : 1];
        if (kind == 2) {
            (void) fcntl (ends [1], F_SETPIPE_SZ, 4096);
            s_write_pipe (ends [1], 65536);
        }
    }
    switch (kind) {
        case 3: nfds = 0; break;
        case 4:
            other [0] = memfd_create ("fuzz-pipe", MFD_CLOEXEC);
            fds [0] = other [0];
            break;
        case 5:
            S_CHECK (socketpair (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, other) == 0);
            fds [0] = other [0];
            break;
        case 6: fds [0] = s_devnull; break;
        case 7: fds [0] = s_fifo >= 0 ? s_fifo : s_devnull; break;
        case 8:
            other [0] = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
            fds [0] = other [0];
            break;
        case 10: nfds = 2; break;
        case 12: fds [0] = self->our_pipe; break;
    }
    ssize_t sent = -1;
    if (nfds == 0)
        sent = send (self->sock, record, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    else
    if (fds [0] >= 0)
        sent = shmipc_fdpass_send (self->sock, record, size, fds, nfds, SHMIPC_DONTWAIT);
    if (sent == (ssize_t) size) {
        s_pipe_went (self, !(kind <= 2 || kind == 12));
        //  Where our wake-ups land, if we take it: the first one's read end
        if ((kind == 0 || kind == 1) && self->wake_in < 0) {
            self->wake_in = ends [0];
            ends [0] = -1;
        }
    }
    for (int index = 0; index < 2; index++) {
        if (ends [index] >= 0)
            close (ends [index]);
        if (other [index] >= 0)
            close (other [index]);
    }
}

//  --------------------------------------------------------------------------
//  The peer as reader of our ring

//  Read up to limit records we published. While the peer has not lied
//  about its read index, each must be well-formed, carry our pattern and
//  add up to the messages we sent; after a lie, skip what does not parse.
static void
s_read_ours (s_fuzz_t *self, size_t limit)
{
    uint64_t mask = self->our_cap - 1;
    uint64_t head = S_LOAD64 (&self->our_ctl->head);
    if (self->honest)
        //  Never past the read index we published, never backwards
        S_CHECK (head - self->tail <= self->our_cap && head - self->r <= self->our_cap);
    while (limit-- && self->r != head) {
        uint64_t available = head - self->r;
        uint64_t header = atomic_load_explicit (
            (_Atomic uint64_t *) (self->our_ring + (self->r & mask)), memory_order_relaxed);
        uint32_t size = (uint32_t) header;
        uint32_t flags = (uint32_t) (header >> 32);
        uint64_t need = shmipc_ring_record_size (size);
        bool pad = s_flags_pad (flags);
        bool sane = available >= SHMIPC_RECORD_HEADER && available <= self->our_cap
                 && (s_flags_valid (flags) || pad) && need <= available;
        if (!self->honest) {
            if (!sane) {
                self->r = head;
                break;
            }
            self->r += need;
            continue;
        }
        S_CHECK (sane);
        if (pad) {
            //  Filler over records the peer holds: only once it held some
            S_CHECK (self->table_used);
            self->r += need;
            continue;
        }
        self->last_set = size > 0;
        self->last_at = self->r;
        self->last_size = size;
        self->last_offset = self->rtrack.offset;
        uint64_t start = (self->r + SHMIPC_RECORD_HEADER) & mask;
        uint64_t first = self->our_cap - start < size ? self->our_cap - start : size;
        S_CHECK (s_pattern_is (self->our_ring + start, self->rtrack.offset, (size_t) first));
        S_CHECK (s_pattern_is (self->our_ring, self->rtrack.offset + first,
                               (size_t) (size - first)));
        self->r += need;
        s_shape_t shape, sent;
        if (s_track (&self->rtrack, size, flags, &shape) && s_pop (&self->sent, &sent))
            S_CHECK (shape.frames == sent.frames && shape.bytes == sent.bytes);
    }
}

//  The peer's hold table, in its control block: our writer reads it.
#define S_TABLE(self)   (&(self)->ctl->holds)

//  As an honest reader: hold the record last read (not yet released),
//  within 64 slots and half our ring (headers included: the writer keeps
//  room for a record whatever we hold).
static void
s_hold_last (s_fuzz_t *self)
{
    shmipc_holds_table_t *table = S_TABLE (self);
    uint64_t used = S_LOAD64 (&table->mask);
    uint64_t bytes = shmipc_ring_record_size (self->last_size);
    if (!self->last_set || !self->honest || ~used == 0 || self->nholds == SHMIPC_HOLDS_MAX
    ||  self->held_bytes + bytes > self->our_cap / 2)
        return;
    unsigned slot = (unsigned) __builtin_ctzll (~used);
    S_STORE64 (&table->slots [slot],
               SHMIPC_HOLD_SLOT (self->last_at & (self->our_cap - 1), bytes));
    S_STORE64 (&table->mask, used | (uint64_t) 1 << slot);
    self->hold [self->nholds++] = (s_peer_hold_t) {
        .at = self->last_at, .size = self->last_size, .offset = self->last_offset,
        .slot = slot };
    self->held_bytes += bytes;
    self->table_used = true;
    self->last_set = false;
}

//  Let the oldest hold go: our writer may reuse its bytes.
static void
s_unhold (s_fuzz_t *self)
{
    if (self->nholds == 0)
        return;
    shmipc_holds_table_t *table = S_TABLE (self);
    S_STORE64 (&table->mask, S_LOAD64 (&table->mask) & ~((uint64_t) 1 << self->hold [0].slot));
    self->held_bytes -= shmipc_ring_record_size (self->hold [0].size);
    self->nholds--;
    memmove (self->hold, self->hold + 1, self->nholds * sizeof self->hold [0]);
}

//  A table that lies: any slots in use, garbage or records anywhere.
//  What we held honestly is forgotten (the table no longer says so).
static void
s_lie_holds (s_fuzz_t *self, uint64_t seed, uint64_t used)
{
    shmipc_holds_table_t *table = S_TABLE (self);
    uint64_t state = seed | 1;
    for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        uint64_t value = state;
        if (value & 3)
            value = SHMIPC_HOLD_SLOT ((value >> 8) & (self->our_cap - 1) & ~(uint64_t) 7,
                                      8 * (2 + (value >> 24) % 64));
        S_STORE64 (&table->slots [slot], value);
    }
    S_STORE64 (&table->mask, used);
    self->nholds = 0;
    self->held_bytes = 0;
    self->table_used |= used != 0;
    self->lied |= used != 0;
}

//  Every record the peer holds still has the payload we wrote.
static void
s_check_holds (s_fuzz_t *self)
{
    uint64_t mask = self->our_cap - 1;
    for (size_t index = 0; index < self->nholds; index++) {
        uint64_t start = (self->hold [index].at + SHMIPC_RECORD_HEADER) & mask;
        uint64_t size = self->hold [index].size;
        uint64_t first = self->our_cap - start < size ? self->our_cap - start : size;
        S_CHECK (s_pattern_is (self->our_ring + start, self->hold [index].offset,
                               (size_t) first));
        S_CHECK (s_pattern_is (self->our_ring, self->hold [index].offset + first,
                               (size_t) (size - first)));
    }
}

static void
s_publish_tail (s_fuzz_t *self, uint64_t tail)
{
    //  Honest: between what it published last and what it has read
    if (tail - self->tail > self->r - self->tail)
        self->honest = false;
    self->tail = tail;
    S_STORE64 (&self->ctl->tail, tail);
}

//  --------------------------------------------------------------------------
//  Our side

static bool
s_errno_known (int code)
{
    return code == EAGAIN || code == EPIPE || code == EPROTO || code == EMSGSIZE
        || code == ECONNRESET || code == ETIMEDOUT || code == EINVAL
        || code == ENOBUFS;
}

//  A receive failed: with a whole message published by an honest peer, it
//  must not have said "nothing there" or "all delivered".
static void
s_recv_failed (s_fuzz_t *self)
{
    int code = errno;
    S_CHECK (s_errno_known (code));
    if ((code == EAGAIN || code == ECONNRESET) && self->pure && self->peer_set
    &&  shmipc_channel_error (self->us) == 0
    &&  self->head == self->w && self->expect.valid && self->expect.count > 0)
        S_CHECK (!"a published message was not delivered");
    //  The next thing published is a bad LOAN: it breaks us
    if (self->pure && self->peer_set && !self->held && self->head == self->w
    &&  self->expect.valid && self->expect.count > 0
    &&  self->expect.item [self->expect.head].frames == S_POISON)
        S_CHECK (shmipc_channel_error (self->us) != 0
              && code == shmipc_channel_error (self->us));
}

//  A message was delivered: it must be the next one the peer wrote (or the
//  one recv_view holds), byte for byte.
static void
s_delivered (s_fuzz_t *self, size_t frames, const void *const *data,
             const size_t *sizes, bool view)
{
    s_shape_t shape = { .frames = frames, .bytes = 0 };
    for (size_t index = 0; index < frames; index++) {
        shape.bytes += sizes [index];
        if (self->pure && self->expect.valid)
            S_CHECK (sizes [index] == 0 || s_pattern_is (data [index], 0, sizes [index]));
    }
    s_shape_t expected;
    if (self->held) {
        if (self->pure)
            S_CHECK (shape.frames == self->held_shape.frames
                  && shape.bytes == self->held_shape.bytes);
    }
    else
    if (self->pure && s_pop (&self->expect, &expected)) {
        self->expect_popped++;
        //  Nothing past a bad LOAN
        S_CHECK (expected.frames != S_POISON);
        S_CHECK (shape.frames == expected.frames && shape.bytes == expected.bytes);
    }
    if (!view)
        self->msgs_received++;
    self->held = view;
    self->held_shape = shape;
}

static void
s_delivered_msg (s_fuzz_t *self, shmipc_msg_t *msg)
{
    size_t frames = shmipc_msg_frames (msg);
    const void **data = (const void **) malloc ((frames + 1) * sizeof *data);
    size_t *sizes = (size_t *) malloc ((frames + 1) * sizeof *sizes);
    S_CHECK (data && sizes);
    for (size_t index = 0; index < frames; index++) {
        data [index] = shmipc_msg_data (msg, index);
        sizes [index] = shmipc_msg_size (msg, index);
    }
    s_delivered (self, frames, data, sizes, false);
    free (data);
    free (sizes);
}

//  Send frames of the given sizes (our pattern) and account for them.
static void
s_send (s_fuzz_t *self, const size_t *size, size_t nframes, int flags, bool as_msg)
{
    struct iovec frames [S_FRAMES];
    uint64_t total = 0;
    for (size_t index = 0; index < nframes; index++) {
        frames [index] = (struct iovec) { .iov_base = s_pattern, .iov_len = size [index] };
        total += size [index];
    }
    bool streaming = self->us->tx.stream.active;
    if (streaming && nframes == self->stream_nframes
    &&  memcmp (size, self->stream_size, nframes * sizeof *size)) {
        uint64_t streamed = 0;
        for (size_t index = 0; index < nframes; index++)
            streamed += self->stream_size [index];
        //  Same count and size, other frames: the channel would take it
        //  for the retry it documents must be the same message. A misuse,
        //  not a peer's attack
        if (streamed == total)
            return;
    }
    int rc;
    if (as_msg) {
        shmipc_msg_t *msg = shmipc_msg_new ();
        S_CHECK (msg);
        for (size_t index = 0; index < nframes; index++)
            S_CHECK (shmipc_msg_addmem (msg, s_pattern, size [index]) == 0);
        rc = shmipc_channel_send_msg (self->us, msg, flags);
        int saved = errno;
        shmipc_msg_destroy (&msg);
        errno = saved;
    }
    else
        rc = shmipc_channel_sendv (self->us, frames, nframes, flags);
    if (rc == 0) {
        s_push (&self->sent, nframes, total);
        self->msgs_sent++;
    }
    else {
        S_CHECK (s_errno_known (errno));
        //  EINVAL only for no frames, or another message than the one
        //  streaming
        S_CHECK (errno != EINVAL || nframes == 0 || streaming);
    }
    if (!streaming && self->us->tx.stream.active) {
        self->stream_nframes = nframes;
        memcpy (self->stream_size, size, nframes * sizeof *size);
    }
}

//  Frames for a message: 1 to S_FRAMES (0 too, if zero is allowed).
static size_t
s_frames (s_input_t *in, size_t *size, bool zero)
{
    uint8_t how = s_u8 (in);
    size_t nframes = zero ? how % (S_FRAMES + 1) : 1 + how % S_FRAMES;
    for (size_t index = 0; index < nframes; index++)
        size [index] = s_frame_size (in);
    return nframes;
}

//  --------------------------------------------------------------------------
//  The interpreter

enum {
    //  The peer writes its ring
    S_OP_RECORD,                //  how size [flags32] [size32] [where...]: one
                                //  record at w (a LOAN with how bit 4)
    S_OP_PUBLISH,               //  how: head = w (and wake us, honestly)
    S_OP_HEAD,                  //  how [value]: a head that lies
    S_OP_MESSAGE,               //  frames sizes...: an honest message, as room allows
    S_OP_MESSAGE_MORE,          //  how: go on with it
    S_OP_SCRIBBLE,              //  offset16 n bytes: stray bytes in its ring
    S_OP_REWIND,                //  n: w goes back n * 8 bytes
    //  The peer reads our ring
    S_OP_READ,                  //  how: read records, release, wake
    S_OP_TAIL,                  //  how [value]: a read index that lies
    S_OP_FLAG,                  //  how [value]: its rx_sleep or tx_sleep, or
                                //  (how bit 7) seed mask: its hold table lies
    //  The peer's socket
    S_OP_DRAIN,                 //  read what we sent
    S_OP_WAKE,                  //  a WAKE record
    S_OP_ACK,                   //  how [value]: an ACK
    S_OP_CTRL,                  //  how size: a CTRL record
    S_OP_RAW,                   //  n bytes: any record
    S_OP_FD,                    //  how: a record with one or two descriptors,
                                //  or (how bit 2) a POOL, or (bit 3) a PIPE
    S_OP_HELLO,                 //  how [capacity]: a HELLO
    S_OP_SHUT,                  //  hang up (SHUT_WR)
    //  Our calls
    S_OP_SEND,                  //  how size
    S_OP_SENDV,                 //  how frames sizes...
    S_OP_SEND_MSG,              //  n sizes...
    S_OP_RESEND,                //  the message streaming, again
    S_OP_RECV,
    S_OP_RECV_INTO,
    S_OP_RECV_VIEW,             //  how: bit 0 recv_done at once, bit 1 hold
                                //  frame bits 2-5, bit 6 let our oldest go
    S_OP_RECV_DONE,
    S_OP_RECV_VECTORED,         //  max
    S_OP_SEND_CTRL,             //  how size
    S_OP_RECV_CTRL,             //  how [size]
    S_OP_EVENTS,
    S_OP_PEEK_EVENTS,
    S_OP_FLUSH,
    S_OPS
};

static const char *s_op_name [S_OPS] = {
    "RECORD", "PUBLISH", "HEAD", "MESSAGE", "MESSAGE_MORE", "SCRIBBLE", "REWIND",
    "READ", "TAIL", "FLAG", "DRAIN", "WAKE", "ACK", "CTRL", "RAW", "FD", "HELLO",
    "SHUT", "SEND", "SENDV", "SEND_MSG", "RESEND", "RECV", "RECV_INTO", "RECV_VIEW",
    "RECV_DONE", "RECV_VECTORED", "SEND_CTRL", "RECV_CTRL", "EVENTS", "PEEK_EVENTS",
    "FLUSH"
};

//  One line per step, for reading a crash: the operation and its argument
//  bytes, then where both sides stand.
static void
s_print (s_fuzz_t *self, int op, const s_input_t *in, size_t from)
{
    fprintf (stderr, "%-13s", s_op_name [op]);
    for (size_t at = from; at < in->at && at < in->size; at++)
        fprintf (stderr, " %02x", in->data [at]);
    fprintf (stderr, "\n    peer w=%llu head=%llu r=%llu tail=%llu%s%s expect=%zu sent=%zu;"
             " us %s error=%d '%s'",
             (unsigned long long) self->w, (unsigned long long) self->head,
             (unsigned long long) self->r, (unsigned long long) self->tail,
             self->pure ? "" : " impure", self->honest ? "" : " dishonest",
             self->expect.count, self->sent.count,
             shmipc_channel_ready (self->us) ? "ready" : "not ready",
             shmipc_channel_error (self->us), shmipc_channel_reason (self->us));
    if (self->peer_set)
        fprintf (stderr, " head=%llu tail=%llu rx_sleep=%u tx_sleep=%u",
                 (unsigned long long) S_LOAD64 (&self->our_ctl->head),
                 (unsigned long long) S_LOAD64 (&self->our_ctl->tail),
                 S_LOAD32 (&self->our_ctl->rx_sleep), S_LOAD32 (&self->our_ctl->tx_sleep));
    if (self->loans)
        fprintf (stderr, "\n    pool %d sent=%u live=%zu%s%s%s%s", self->pool_state,
                 self->pools_sent, self->nlive, self->loan_before_pool ? " loan-before-pool" : "",
                 self->ring_poison ? " ring-poison" : "", self->sock_poison ? " sock-poison" : "",
                 self->poison_ready ? " poison-ready" : "");
    if (self->pipe_sent || self->our_pipe >= 0) {
        shmipc_channel_stats_t stats;
        shmipc_channel_stats (self->us, &stats);
        fprintf (stderr, "\n    pipes ours=%d in=%d%s%s wake_fd=%d wakes=%u grants=%u;"
                 " us woke %llu, woken %llu", self->our_pipe, self->wake_in,
                 self->pipe_sent ? " sent" : "", self->pipe_bad ? " bad" : "",
                 shmipc_channel_wake_fd (self->us), self->wakes, self->grants,
                 (unsigned long long) stats.wakeups_sent,
                 (unsigned long long) stats.wakeups_received);
    }
    fprintf (stderr, "\n");
}

//  The peer's half of an operation. Returns false if it needs the peer's
//  memory and the peer is not ready.
static bool
s_step_peer (s_fuzz_t *self, int op, s_input_t *in)
{
    bool ring_op = op <= S_OP_DRAIN;
    if (ring_op && !s_peer_ready (self))
        return false;
    switch (op) {
        case S_OP_RECORD: {
            //  how: bits 0-1 flags, bit 4 a LOAN of size bytes (then
            //  s_put_loan's argument), bit 5 PAD, bit 6 the size from the
            //  input, bit 7 the flags from the input
            uint8_t how = s_u8 (in);
            uint32_t size = (uint32_t) s_frame_size (in);
            uint32_t flags = how & 3;
            if (how & 0x20)
                flags |= SHMIPC_RECORD_PAD;     //  Filler (alone) or a lie
            if (how & 0x80)
                flags = s_u32 (in);
            if ((how & 0x90) == 0x80 && (flags & SHMIPC_RECORD_LOAN))
                self->loan_raw = true;
            if (how & 0x10) {
                flags |= SHMIPC_RECORD_LOAN;
                uint32_t payload = how & 0x40 ? s_u32 (in) : SHMIPC__LOAN_PAYLOAD;
                s_put_loan (self, in, size, flags, payload);
                break;
            }
            if (how & 0x40)
                size = s_u32 (in);
            s_put_record (self, size, flags);
            break;
        }
        case S_OP_PUBLISH: {
            uint8_t how = s_u8 (in);
            s_publish_head (self, self->w);
            if (!(how & 1))
                s_wake_us (self, true);
            break;
        }
        case S_OP_HEAD: {
            uint8_t how = s_u8 (in);
            uint64_t head;
            switch (how % 5) {
                case 0: head = self->head - 8 * (uint64_t) (1 + (how >> 3)); break;
                case 1: head = self->w + 8 * (uint64_t) (1 + (how >> 3)); break;
                case 2: head = self->w + self->cap + 8 * (uint64_t) (how >> 3); break;
                case 3: head = self->w - 4; break;
                default: head = s_u64 (in);
            }
            s_publish_head (self, head);
            break;
        }
        case S_OP_MESSAGE:
            if (!self->out_active) {
                self->out_nframes = s_frames (in, self->out_size, false);
                self->out_active = true;
                self->out_frame = 0;
                self->out_offset = 0;
            }
            s_put_message (self, true, 0);
            break;
        case S_OP_MESSAGE_MORE: {
            //  how: bit 0 no wake, bit 1 a PAD record first (of bits 2-7
            //  payload bytes)
            uint8_t how = s_u8 (in);
            if (self->out_active)
                s_put_message (self, !(how & 1), how & 2 ? 1 + (how >> 2) : 0);
            break;
        }
        case S_OP_SCRIBBLE: {
            uint64_t offset = (s_u8 (in) | (uint64_t) s_u8 (in) << 8) & (self->cap - 1);
            size_t count = s_u8 (in) % 17;
            uint64_t released = S_LOAD64 (&self->our_ctl->tail);
            for (size_t index = 0; index < count; index++) {
                uint64_t at = (offset + index) & (self->cap - 1);
                //  Within what we may still read: deliveries change
                if (((at - released) & (self->cap - 1)) < self->w - released)
                    self->pure = false;
                self->ring [at] = s_u8 (in);
            }
            break;
        }
        case S_OP_REWIND: {
            uint64_t back = 8 * (uint64_t) s_u8 (in);
            if (back) {
                self->w -= back;
                self->wtrack = (s_track_t) { 0 };
                self->pure = false;
            }
            break;
        }
        case S_OP_READ: {
            //  how: bits 0-3 records (0: all), bit 4 no release, bit 5 no
            //  wake, bit 6 hold the last record read, bit 7 let the oldest
            //  hold go first
            uint8_t how = s_u8 (in);
            if (how & 0x80)
                s_unhold (self);
            self->last_set = false;
            s_read_ours (self, how & 15 ? how & 15 : SIZE_MAX);
            if (how & 0x40)
                s_hold_last (self);
            if (!(how & 0x10)) {
                s_publish_tail (self, self->r);
                if (!(how & 0x20))
                    s_wake_us (self, false);
            }
            break;
        }
        case S_OP_TAIL: {
            uint8_t how = s_u8 (in);
            uint64_t tail;
            switch (how % 5) {
                case 0: tail = self->tail - 8 * (uint64_t) (1 + (how >> 3)); break;
                case 1: tail = self->r + 8 * (uint64_t) (1 + (how >> 3)); break;
                case 2: tail = self->tail + 4; break;
                case 3: tail = self->tail + 8 * (uint64_t) (how >> 3); break;
                default: tail = s_u64 (in);
            }
            s_publish_tail (self, tail);
            break;
        }
        case S_OP_FLAG: {
            uint8_t how = s_u8 (in);
            if (how & 0x80) {
                //  Not a flag: a hold table that lies
                uint64_t seed = s_u64 (in);
                s_lie_holds (self, seed, s_u64 (in));
                break;
            }
            uint32_t *flag = how & 1 ? &self->ctl->rx_sleep : &self->ctl->tx_sleep;
            uint32_t before = S_LOAD32 (flag);
            uint32_t epoch = how & 2 ? s_u32 (in) : before + 1;
            if ((epoch & 1) && epoch != before)
                self->grants++;
            S_STORE32 (flag, epoch);
            atomic_thread_fence (memory_order_seq_cst);
            break;
        }
        case S_OP_DRAIN:
            s_drain (self);
            break;
        case S_OP_WAKE:
            s_send_header (self, SHMIPC__WIRE_WAKE, 0);
            break;
        case S_OP_ACK: {
            uint8_t how = s_u8 (in);
            //  Honest: the control messages the peer read
            uint32_t value = self->ctrl_out_read;
            if (how & 1)
                value = s_u32 (in);
            s_send_header (self, SHMIPC__WIRE_ACK, value);
            break;
        }
        case S_OP_CTRL: {
            uint8_t how = s_u8 (in);
            size_t size = s_frame_size (in);
            if (size > SHMIPC_CTRL_MAX || (how & 2))
                size = SHMIPC_CTRL_MAX + (how & 4 ? 1 : 0);
            //  Honest: within the window
            if (!(how & 1) && (uint32_t) (self->ctrl_in_sent - self->ack_seen) >= SHMIPC_CTRL_WINDOW)
                break;
            uint8_t *record = (uint8_t *) malloc (SHMIPC__RECORD_HEAD + size);
            S_CHECK (record);
            shmipc__wire_header (record, SHMIPC__WIRE_CTRL, (uint32_t) size);
            s_pattern_put (record + SHMIPC__RECORD_HEAD, 0, size);
            if (send (self->sock, record, SHMIPC__RECORD_HEAD + size,
                      MSG_DONTWAIT | MSG_NOSIGNAL) >= 0) {
                self->ctrl_in_sent++;
                s_push (&self->ctrl_in, 1, size);
            }
            free (record);
            break;
        }
        case S_OP_RAW: {
            uint8_t count = s_u8 (in);
            uint8_t record [SHMIPC__WIRE_MAX + 16] = { 0 };
            //  255: one longer than any record (the kernel truncates it)
            size_t size = count == 255 ? sizeof record : count;
            for (size_t index = 0; index < size && count < 255; index++)
                record [index] = s_u8 (in);
            if (size && record [0] == SHMIPC__WIRE_CTRL)
                self->ctrl_in.valid = false;
            if (size && record [0] == SHMIPC__WIRE_POOL)
                self->loan_raw = true;
            if (size && record [0] == SHMIPC__WIRE_PIPE)
                self->pipe_raw = true;
            if (size == 0)
                self->empty_raw = true;
            s_send_record (self, record, size);
            break;
        }
        case S_OP_FD: {
            //  how: bit 0 an ACK (else a WAKE), bit 1 two descriptors; bit
            //  2 a POOL instead (s_send_pool); else bit 3 a PIPE, or our
            //  pipe used (s_pipe: bits 4-7)
            uint8_t how = s_u8 (in);
            if (how & 4) {
                s_send_pool (self, how);
                break;
            }
            if (how & 8) {
                s_pipe (self, how >> 4);
                break;
            }
            uint8_t record [SHMIPC__RECORD_HEAD];
            shmipc__wire_header (record, how & 1 ? SHMIPC__WIRE_ACK : SHMIPC__WIRE_WAKE, 0);
            int fds [2] = { s_devnull, s_devnull };
            (void) shmipc_fdpass_send (self->sock, record, sizeof record,
                                       fds, how & 2 ? 2 : 1, SHMIPC_DONTWAIT);
            break;
        }
        case S_OP_HELLO: {
            //  how: bit 0 role, bits 1-2 descriptor (none, /dev/null, an
            //  unsealed memfd, a real segment), bits 3-5 capacity (64 << n),
            //  bit 6 capacity from the input, bit 7 the segment's ring not
            //  at its start
            uint8_t how = s_u8 (in);
            uint64_t capacity = (uint64_t) SHMIPC_RING_MIN << (how >> 3 & 7);
            if (how & 0x40)
                capacity = s_u64 (in);
            uint64_t segment = SHMIPC_SEGMENT_HEADER + capacity;
            if (segment % 4096)
                segment += 4096 - segment % 4096;
            uint8_t record [SHMIPC__HELLO_FIXED + 4];
            size_t size = shmipc__wire_hello (record, how & 1, capacity, segment, "peer", 4);
            int kind = how >> 1 & 3;
            int fd = kind == 1 ? s_devnull : -1;
            shmipc_segment_t *decoy = NULL;
            //  Make a memfd only of a sensible size (the record says what
            //  it says)
            if (segment < SHMIPC_SEGMENT_HEADER || segment > (1 << 20))
                kind = kind >= 2 ? 0 : kind;
            if (kind == 2) {
                fd = memfd_create ("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
                if (fd >= 0 && ftruncate (fd, (off_t) segment))
                    S_CHECK (!"ftruncate");
            }
            if (kind == 3) {
                decoy = shmipc_segment_new ("decoy", segment, SHMIPC__CHANNEL_KIND);
                S_CHECK (decoy);
                fd = shmipc_segment_fd (decoy);
                shmipc__control_t *ctl = (shmipc__control_t *)
                    ((uint8_t *) shmipc_segment_data (decoy) + SHMIPC__CONTROL_OFFSET);
                if (how & 0x80)
                    ctl->head = ctl->tail = 8;
                //  If we take it, we read and write other memory than the
                //  peer's: what the fuzzer does there no longer tells
                self->decoy = true;
                self->pure = false;
            }
            if (fd >= 0)
                (void) shmipc_fdpass_send (self->sock, record, size, &fd, 1,
                                           SHMIPC_DONTWAIT);
            else
                s_send_record (self, record, size);
            if (kind == 2 && fd >= 0)
                close (fd);
            shmipc_segment_destroy (&decoy);
            break;
        }
        case S_OP_SHUT:
            if (!self->shut)
                shutdown (self->sock, SHUT_WR);
            self->shut = true;
            break;
    }
    return true;
}

//  Our half of an operation.
static void
s_step_us (s_fuzz_t *self, int op, s_input_t *in)
{
    shmipc_channel_t *us = self->us;
    size_t size [S_FRAMES];
    switch (op) {
        case S_OP_SEND: {
            uint8_t how = s_u8 (in);
            size [0] = s_frame_size (in);
            int flags = SHMIPC_DONTWAIT | (how & 1 ? SHMIPC_DEFER : 0);
            //  While a message streams, usually go on with it
            if (us->tx.stream.active && !(how & 2))
                s_send (self, self->stream_size, self->stream_nframes, flags, false);
            else
                s_send (self, size, 1, flags, false);
            break;
        }
        case S_OP_SENDV: {
            uint8_t how = s_u8 (in);
            size_t nframes = s_frames (in, size, true);
            s_send (self, size, nframes, SHMIPC_DONTWAIT | (how & 1 ? SHMIPC_DEFER : 0),
                    false);
            break;
        }
        case S_OP_SEND_MSG: {
            size_t nframes = s_frames (in, size, false);
            s_send (self, size, nframes, SHMIPC_DONTWAIT, true);
            break;
        }
        case S_OP_RESEND:
            if (self->stream_nframes)
                s_send (self, self->stream_size, self->stream_nframes, SHMIPC_DONTWAIT, false);
            break;
        case S_OP_RECV: {
            shmipc_msg_t *msg = shmipc_channel_recv (us, SHMIPC_DONTWAIT);
            if (msg)
                s_delivered_msg (self, msg);
            else
                s_recv_failed (self);
            shmipc_msg_destroy (&msg);
            break;
        }
        case S_OP_RECV_INTO:
            if (shmipc_channel_recv_into (us, self->msg, SHMIPC_DONTWAIT) == 0)
                s_delivered_msg (self, self->msg);
            else
                s_recv_failed (self);
            break;
        case S_OP_RECV_VIEW: {
            uint8_t how = s_u8 (in);
            const shmipc_frame_t *frames;
            size_t nframes;
            if (shmipc_channel_recv_view (us, &frames, &nframes, SHMIPC_DONTWAIT) == 0) {
                const void **data = (const void **) malloc ((nframes + 1) * sizeof *data);
                size_t *sizes = (size_t *) malloc ((nframes + 1) * sizeof *sizes);
                S_CHECK (data && sizes);
                for (size_t index = 0; index < nframes; index++) {
                    S_CHECK (frames [index].data || frames [index].size == 0);
                    data [index] = frames [index].data;
                    sizes [index] = frames [index].size;
                }
                s_delivered (self, nframes, data, sizes, true);
                free (data);
                free (sizes);
                if (how & 0x40)
                    s_release_ours (self);
                if ((how & 2) && self->nours < S_OURS) {
                    //  Keep a frame (or ask for one past the last)
                    size_t index = (size_t) (how >> 2 & 15) % (nframes + 1);
                    errno = 0;
                    shmipc_hold_t *hold = shmipc_channel_hold (us, index);
                    if (hold) {
                        S_CHECK (index < nframes && frames [index].size > 0);
                        self->ours [self->nours] = hold;
                        self->ours_data [self->nours] = (const uint8_t *) frames [index].data;
                        self->ours_size [self->nours++] = frames [index].size;
                    }
                    else
                        S_CHECK (index < nframes ? errno == ENOBUFS || errno == EAGAIN
                                                 : errno == EINVAL);
                }
                if (how & 1) {
                    shmipc_channel_recv_done (us);
                    self->held = false;
                    self->msgs_received++;
                }
            }
            else
                s_recv_failed (self);
            break;
        }
        case S_OP_RECV_DONE:
            shmipc_channel_recv_done (us);
            if (self->held)
                self->msgs_received++;
            self->held = false;
            break;
        case S_OP_RECV_VECTORED: {
            size_t max = 1 + s_u8 (in) % S_VECTORED;
            shmipc_msg_t *msgs [S_VECTORED];
            ssize_t count = shmipc_channel_recv_vectored (us, msgs, max, SHMIPC_DONTWAIT);
            if (count < 0)
                s_recv_failed (self);
            S_CHECK (count <= (ssize_t) max);
            for (ssize_t index = 0; index < count; index++) {
                s_delivered_msg (self, msgs [index]);
                shmipc_msg_destroy (&msgs [index]);
            }
            break;
        }
        case S_OP_SEND_CTRL: {
            uint8_t how = s_u8 (in);
            size_t bytes = s_frame_size (in);
            if (bytes > SHMIPC_CTRL_MAX || (how & 1))
                bytes = SHMIPC_CTRL_MAX + (how & 2 ? 1 : 0);
            if (shmipc_channel_send_ctrl (us, s_pattern, bytes) == 0)
                s_push (&self->ctrl_out, 1, bytes);
            else {
                S_CHECK (s_errno_known (errno));
                S_CHECK (errno != EMSGSIZE || bytes > SHMIPC_CTRL_MAX
                      || shmipc_channel_error (us) == EMSGSIZE);
            }
            break;
        }
        case S_OP_RECV_CTRL: {
            uint8_t how = s_u8 (in);
            size_t room = how & 1 ? SHMIPC_CTRL_MAX : s_u8 (in);
            uint8_t buffer [SHMIPC_CTRL_MAX];
            ssize_t rc = shmipc_channel_recv_ctrl (us, buffer, room);
            if (rc >= 0) {
                self->ctrl_in_read++;
                s_shape_t shape;
                if (s_pop (&self->ctrl_in, &shape))
                    S_CHECK ((uint64_t) rc == shape.bytes
                          && s_pattern_is (buffer, 0, (size_t) rc));
            }
            else
                S_CHECK (s_errno_known (errno));
            break;
        }
        case S_OP_EVENTS: {
            int events = shmipc_channel_events (us);
            if (!(events & SHMIPC_POLLERR) && self->peer_set && shmipc_channel_ready (us)) {
                //  What it does not report, it armed; and before saying
                //  there is nothing to read, it gave the space back
                if (!(events & SHMIPC_POLLIN)) {
                    S_CHECK (S_LOAD32 (&us->waiter.own_ctl->rx_sleep) & 1);
                    S_CHECK (shmipc_ring_unreleased (us->rx.ring) == 0);
                }
                if (!(events & SHMIPC_POLLOUT))
                    S_CHECK (S_LOAD32 (&us->waiter.own_ctl->tx_sleep) & 1);
            }
            break;
        }
        case S_OP_PEEK_EVENTS:
            (void) shmipc_channel_peek_events (us);
            break;
        case S_OP_FLUSH:
            if (shmipc_channel_flush (us))
                S_CHECK (s_errno_known (errno));
            break;
    }
}

//  What holds after every operation.
static void
s_check (s_fuzz_t *self, bool peer_set, uint64_t head_before, uint64_t tail_before)
{
    shmipc_channel_t *us = self->us;
    //  An error stays
    int error = shmipc_channel_error (us);
    if (self->error)
        S_CHECK (error == self->error);
    //  A breach of the loan rules breaks us with EPROTO; and only a
    //  breach does so for the loan rules' reasons
    if (error && !self->error && self->poison_ready)
        S_CHECK (error == EPROTO || error == EMSGSIZE);
    if (error && !self->error && self->pure && !self->loan_raw
    &&  !self->ring_poison && !self->sock_poison) {
        const char *reason = shmipc_channel_reason (us);
        S_CHECK (!strstr (reason, "LOAN") && !strstr (reason, "POOL")
              && !strstr (reason, "loan pool"));
    }
    //  A genuine PIPE, once, never breaks us
    if (error && !self->error && !self->pipe_bad && !self->pipe_raw)
        S_CHECK (!strstr (shmipc_channel_reason (us), "PIPE"));
    self->error = error;
    //  The control window, both ways
    S_CHECK (us->link.ctrl_count <= SHMIPC_CTRL_WINDOW);
    S_CHECK ((uint32_t) (us->link.ctrl_sent - us->link.ctrl_acked) <= SHMIPC_CTRL_WINDOW);
    //  Counters count what happened: every message sent, every message
    //  handed over (once)
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (us, &stats);
    S_CHECK (stats.msgs_sent == self->msgs_sent);
    S_CHECK (stats.msgs_received == self->msgs_received);
    //  Ready, and only then, no deadline and a peer name
    bool ready = shmipc_channel_ready (us);
    S_CHECK (!ready || shmipc_channel_deadline (us) == -1);
    S_CHECK (!ready || shmipc_channel_peer_name (us));
    //  Our wake descriptor: none before the handshake; from its end (or
    //  our breaking) on, the same one until destroy; it never hangs up
    int wake_fd = shmipc_channel_wake_fd (us);
    if (!ready && !error)
        S_CHECK (wake_fd == -1);
    if (self->wake_fd_known)
        S_CHECK (wake_fd == self->wake_fd);
    else
    if (ready || error) {
        self->wake_fd_known = true;
        self->wake_fd = wake_fd;
    }
    if (wake_fd >= 0) {
        struct pollfd item = { .fd = wake_fd, .events = POLLIN };
        S_CHECK (poll (&item, 1, 0) >= 0 && !(item.revents & (POLLHUP | POLLERR | POLLNVAL)));
    }
    if (!peer_set || self->decoy)
        return;
    //  What the peer holds, our writer stepped over; and it cut the peer
    //  off for leaving no room only if the table lied
    s_check_holds (self);
    if (error == EPROTO)
        S_CHECK (self->lied
              || strcmp (shmipc_channel_reason (us), "peer hold table leaves no room"));
    //  Whoever publishes or releases while the other side says it sleeps
    //  wakes it (the WAKE itself may be dropped on a full socket)
    uint32_t rx_sleep = S_LOAD32 (&self->ctl->rx_sleep);
    uint32_t tx_sleep = S_LOAD32 (&self->ctl->tx_sleep);
    if (S_LOAD64 (&self->our_ctl->head) != head_before && (rx_sleep & 1))
        S_CHECK (us->waiter.woke [SHMIPC__DIR_RX] == rx_sleep);
    if (S_LOAD64 (&self->our_ctl->tail) != tail_before && (tx_sleep & 1))
        S_CHECK (us->waiter.woke [SHMIPC__DIR_TX] == tx_sleep);
}

//  One operation, then what holds after it.
static void
s_run (s_fuzz_t *self, int op, s_input_t *in)
{
    size_t from = in->at;
    bool peer_set = self->peer_set;
    uint64_t head_before = self->peer_set ? S_LOAD64 (&self->our_ctl->head) : 0;
    uint64_t tail_before = self->peer_set ? S_LOAD64 (&self->our_ctl->tail) : 0;
    if (op <= S_OP_SHUT)
        s_step_peer (self, op, in);
    else
        s_step_us (self, op, in);
    if (s_trace)
        s_print (self, op, in, from);
    s_check (self, peer_set, head_before, tail_before);
}

//  After an input that lent or sent a pool, or a bad PIPE: publish what
//  the peer wrote, receive until a receive fails (a bad LOAN must break us
//  then: see s_recv_failed), and read the socket (a bad POOL or PIPE must
//  break us then, unless an empty record before it, read after the peer
//  hung up, looked like the end of the stream: records after that are
//  never read).
static void
s_finish (s_fuzz_t *self)
{
    s_input_t none = { .data = NULL, .size = 0, .at = 0 };
    if (self->peer_set && self->head != self->w)
        s_run (self, S_OP_PUBLISH, &none);
    for (int round = 0; round < 2 * S_QUEUE + 2 && shmipc_channel_error (self->us) == 0;
         round++) {
        uint64_t received = self->msgs_received;
        s_run (self, S_OP_RECV_INTO, &none);
        if (self->msgs_received == received)
            break;
    }
    if (self->sock_poison && self->poison_ready && !self->empty_raw) {
        s_run (self, S_OP_EVENTS, &none);
        S_CHECK (shmipc_channel_error (self->us) != 0);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_init ();
    if (size < 3)
        return 0;
    s_input_t in = { .data = data, .size = size, .at = 3 };
    int fds = s_count_fds ();
    s_fuzz_t fuzz;
    s_fuzz_new (&fuzz, data [0], data [1], data [2]);
    while (in.at < in.size)
        s_run (&fuzz, s_u8 (&in) % S_OPS, &in);
    if (fuzz.loans || fuzz.sock_poison)
        s_finish (&fuzz);
    s_fuzz_destroy (&fuzz);
    //  Whatever the peer sent and we took, or refused, is closed
    S_CHECK (s_count_fds () == fds);
    return 0;
}
