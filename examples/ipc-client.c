/*  =========================================================================
    ipc-client - load and check an echo server on a shm:// endpoint: sends
    COUNT messages of varied shapes, a bounded window of them in flight,
    and checks every echo byte for byte

    Owns: its channel and two buffers of one message each. Every message is
    derived from its sequence number alone, so an echo is checked by
    rebuilding what was sent; nothing is kept per message in flight.

        ipc-client [-c BYTES] ENDPOINT [COUNT]
    =========================================================================
*/

#include "shmipc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_NAME          "ipc-client"
#define S_CAPACITY      (1UL << 20)     //  Default ring bytes (-c)
#define S_CAPACITY_MAX  (128UL << 20)   //  Keeps 1.5x ring messages under the
                                        //  server's default maximum (256M)
#define S_COUNT         100000          //  Default messages
#define S_WINDOW        64              //  Most messages in flight
#define S_FRAMES_MAX    5               //  Most frames in one message
#define S_KIB_MAX       (64 * 1024)     //  Largest "some KiB" message
#define S_STALL_MS      30000           //  Give up after this long without news

//  The shape of message seq: its frames' sizes.
typedef struct {
    size_t nframes;                     //  1, or 2..S_FRAMES_MAX
    size_t size [S_FRAMES_MAX];         //  Frame sizes; frame 0 of a
                                        //  multi-frame message is the seq
    size_t total;                       //  Their sum
} s_shape_t;

typedef struct {
    shmipc_channel_t *channel;          //  Owned
    shmipc_msg_t *msg;                  //  Echo being checked; owned
    size_t capacity;                    //  Our ring (sizes follow it)
    uint64_t count;                     //  Messages to send
    uint64_t sent;                      //  Messages the channel took
    uint64_t received;                  //  Echoes checked
    uint64_t bytes;                     //  Payload bytes sent
    uint8_t *buffer;                    //  The message being sent; owned
    struct iovec frames [S_FRAMES_MAX]; //  Its frames, into buffer
    s_shape_t shape;                    //  Its shape
    bool pending;                       //  buffer holds message sent; if
                                        //  bigger than the ring, maybe
                                        //  part-sent: repeat the call
} s_client_t;

//  Print an error line and return -1, for tail calls.
static int
s_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

static int
s_fail (const char *format, ...)
{
    char line [256];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fprintf (stderr, "%s: %s\n", S_NAME, line);
    return -1;
}

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  Parse a byte count with an optional K, M or G suffix (powers of 1024).
static int
s_parse_size (const char *text, size_t *size)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else
    if (*end == 'M' || *end == 'm')
        shift = 20;
    else
    if (*end == 'G' || *end == 'g')
        shift = 30;
    if (shift)
        end++;
    if (*end || value == 0 || value > (SIZE_MAX >> shift))
        return -1;
    *size = (size_t) value << shift;
    return 0;
}

//  --------------------------------------------------------------------------
//  Messages: shapes and contents, all derived from the sequence number

//  splitmix64's finaliser: a cheap, well-mixed hash.
static uint64_t
s_mix (uint64_t value)
{
    value += 0x9e3779b97f4a7c15ULL;
    value = (value ^ (value >> 30)) * 0xbf58476d1ce4e5b9ULL;
    value = (value ^ (value >> 27)) * 0x94d049bb133111ebULL;
    return value ^ (value >> 31);
}

//  Largest message for a ring of capacity bytes.
static size_t
s_size_max (size_t capacity)
{
    size_t oversize = capacity + capacity / 2;
    return 8 + (oversize > S_KIB_MAX ? oversize : S_KIB_MAX);
}

//  Mostly small messages, some KiB, one in a thousand larger than the ring
//  (it streams); one in ten multi-frame, some frames empty.
static void
s_shape (uint64_t seq, size_t capacity, s_shape_t *shape)
{
    uint64_t hash = s_mix (seq);
    uint64_t other = s_mix (hash);
    unsigned pick = (unsigned) (hash % 1000);
    size_t size;
    if (pick < 1)
        size = capacity + 1 + (size_t) (other % (capacity / 2));
    else
    if (pick < 50)
        size = 1024 + (size_t) (other % (S_KIB_MAX - 1024));
    else
        size = (size_t) (other % 257);
    memset (shape, 0, sizeof *shape);
    if ((hash >> 32) % 10 == 0) {
        shape->nframes = 2 + (size_t) ((hash >> 40) % (S_FRAMES_MAX - 1));
        shape->size [0] = 8;
        size_t rest = size;
        for (size_t index = 1; index + 1 < shape->nframes; index++) {
            shape->size [index] = (size_t) (s_mix (other + index) % (rest + 1));
            rest -= shape->size [index];
        }
        shape->size [shape->nframes - 1] = rest;
        shape->total = size + 8;
    }
    else {
        shape->nframes = 1;
        shape->size [0] = size;
        shape->total = size;
    }
}

//  The pattern of frame index of message seq: a stream of 64-bit words.
static uint64_t
s_seed (uint64_t seq, size_t index)
{
    return s_mix (seq * S_FRAMES_MAX + index);
}

static void
s_fill (uint8_t *dest, size_t size, uint64_t seed)
{
    uint64_t word = seed;
    for (size_t offset = 0; offset < size; offset += 8) {
        word = s_mix (word);
        memcpy (dest + offset, &word, size - offset < 8 ? size - offset : 8);
    }
}

//  Return the offset of the first byte that differs from the pattern, or
//  size if none does.
static size_t
s_compare (const uint8_t *data, size_t size, uint64_t seed)
{
    uint64_t word = seed;
    for (size_t offset = 0; offset < size; offset += 8) {
        word = s_mix (word);
        size_t piece = size - offset < 8 ? size - offset : 8;
        if (memcmp (data + offset, &word, piece))
            for (size_t index = 0; index < piece; index++)
                if (data [offset + index] != ((const uint8_t *) &word) [index])
                    return offset + index;
    }
    return size;
}

static void
s_put_seq (uint8_t *dest, uint64_t seq)
{
    for (int index = 0; index < 8; index++)
        dest [index] = (uint8_t) (seq >> (8 * index));
}

//  Build message seq into self->buffer and self->frames.
static void
s_build (s_client_t *self, uint64_t seq)
{
    s_shape (seq, self->capacity, &self->shape);
    uint8_t *cursor = self->buffer;
    for (size_t index = 0; index < self->shape.nframes; index++) {
        size_t size = self->shape.size [index];
        if (self->shape.nframes > 1 && index == 0)
            s_put_seq (cursor, seq);
        else
            s_fill (cursor, size, s_seed (seq, index));
        self->frames [index] = (struct iovec) { .iov_base = cursor, .iov_len = size };
        cursor += size;
    }
    self->pending = true;
}

//  Check that msg is the echo of message seq.
static int
s_check (s_client_t *self, uint64_t seq)
{
    s_shape_t shape;
    s_shape (seq, self->capacity, &shape);
    size_t nframes = shmipc_msg_frames (self->msg);
    if (nframes != shape.nframes)
        return s_fail ("message %" PRIu64 ": %zu frames, expected %zu",
                       seq, nframes, shape.nframes);
    for (size_t index = 0; index < nframes; index++) {
        const uint8_t *data = (const uint8_t *) shmipc_msg_data (self->msg, index);
        size_t size = shmipc_msg_size (self->msg, index);
        if (size != shape.size [index])
            return s_fail ("message %" PRIu64 ": frame %zu has %zu bytes, expected %zu",
                           seq, index, size, shape.size [index]);
        if (nframes > 1 && index == 0) {
            uint8_t expected [8];
            s_put_seq (expected, seq);
            if (memcmp (data, expected, 8))
                return s_fail ("message %" PRIu64 ": wrong sequence number in frame 0"
                               " (out of order or lost)", seq);
            continue;
        }
        size_t at = s_compare (data, size, s_seed (seq, index));
        if (at < size)
            return s_fail ("message %" PRIu64 ": frame %zu differs at byte %zu of %zu",
                           seq, index, at, size);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Traffic

//  Send while the window allows and the ring takes them. Returns the count
//  sent, or -1 on an error.
static int
s_send_some (s_client_t *self)
{
    int count = 0;
    while (self->sent < self->count && self->sent - self->received < S_WINDOW) {
        if (!self->pending)
            s_build (self, self->sent);
        if (shmipc_channel_sendv (self->channel, self->frames, self->shape.nframes,
                                  SHMIPC_DONTWAIT | SHMIPC_DEFER)) {
            if (errno != EAGAIN)
                return s_fail ("send failed: %s %s", strerror (errno),
                               shmipc_channel_reason (self->channel));
            break;
        }
        self->pending = false;
        self->bytes += self->shape.total;
        self->sent++;
        count++;
    }
    if (shmipc_channel_flush (self->channel))
        return s_fail ("flush failed: %s %s", strerror (errno),
                       shmipc_channel_reason (self->channel));
    return count;
}

//  Receive and check every echo waiting. Returns the count, or -1.
static int
s_receive_some (s_client_t *self)
{
    int count = 0;
    while (self->received < self->sent) {
        if (shmipc_channel_recv_into (self->channel, self->msg, SHMIPC_DONTWAIT)) {
            if (errno == EAGAIN)
                break;
            if (errno == ECONNRESET)
                return s_fail ("the server closed the connection after %" PRIu64
                               " of %" PRIu64 " echoes", self->received, self->count);
            return s_fail ("receive failed: %s %s", strerror (errno),
                           shmipc_channel_reason (self->channel));
        }
        if (s_check (self, self->received))
            return -1;
        self->received++;
        count++;
    }
    return count;
}

//  Nothing moved: arm the wake-ups and sleep until a descriptor says
//  something changed. Returns 0 (go on) or -1.
static int
s_wait (s_client_t *self)
{
    //  events reads the socket, then arms the wake-ups for messages and (if
    //  it reports no POLLOUT) for space, checking each after arming it.
    //  Nothing may read the socket after that, or it could swallow the
    //  wake-up we are about to sleep on: so no recv here, and a send only
    //  on POLLOUT (with no wake-up for space armed, it reads nothing).
    int events = shmipc_channel_events (self->channel);
    if (events & SHMIPC_POLLIN)
        return 0;
    if (events & SHMIPC_POLLERR)
        return s_fail ("the server closed the connection after %" PRIu64 " of %"
                       PRIu64 " echoes%s%s", self->received, self->count,
                       *shmipc_channel_reason (self->channel) ? ": " : "",
                       shmipc_channel_reason (self->channel));
    if (events & SHMIPC_POLLOUT) {
        int sent = s_send_some (self);
        if (sent != 0)
            return sent < 0 ? -1 : 0;
    }
    //  Both descriptors: the server wakes us through the pipe, and says
    //  anything else (control messages, going away) on the socket. Asked
    //  for here, after events, rather than kept: the pipe exists only from
    //  the handshake on (-1 before, which poll skips)
    struct pollfd items [2] = {
        { .fd = shmipc_channel_fd (self->channel), .events = POLLIN },
        { .fd = shmipc_channel_wake_fd (self->channel), .events = POLLIN }
    };
    int rc = poll (items, 2, S_STALL_MS);
    if (rc == 0)
        return s_fail ("no news from the server for %d s (%" PRIu64 " sent, %"
                       PRIu64 " echoed)", S_STALL_MS / 1000, self->sent, self->received);
    if (rc < 0 && errno != EINTR)
        return s_fail ("poll: %s", strerror (errno));
    return 0;
}

static int
s_run (s_client_t *self)
{
    while (self->received < self->count) {
        int sent = s_send_some (self);
        int received = sent < 0 ? -1 : s_receive_some (self);
        if (received < 0)
            return -1;
        if (sent == 0 && received == 0 && s_wait (self))
            return -1;
    }
    return 0;
}

static void
s_usage (void)
{
    fprintf (stderr,
        "usage: %s [-c BYTES] ENDPOINT [COUNT]\n"
        "  Send COUNT messages (default %d) to an echo server, %d in flight at\n"
        "  most, check every echo, print the throughput. Exit 0 if all matched.\n"
        "  ENDPOINT   shm:///absolute/path or shm://@abstract-name\n"
        "  -c BYTES   ring capacity (default 1M, at most 128M; K, M, G suffixes)\n",
        S_NAME, S_COUNT, S_WINDOW);
}

int
main (int argc, char *argv [])
{
    size_t capacity = S_CAPACITY;
    int option;
    while ((option = getopt (argc, argv, "c:h")) != -1) {
        if (option == 'c' && s_parse_size (optarg, &capacity) == 0
        &&  capacity <= S_CAPACITY_MAX)
            continue;
        s_usage ();
        return 2;
    }
    if (optind != argc - 1 && optind != argc - 2) {
        s_usage ();
        return 2;
    }
    const char *endpoint = argv [optind];
    uint64_t count = S_COUNT;
    if (optind == argc - 2) {
        char *end;
        errno = 0;
        count = strtoull (argv [optind + 1], &end, 10);
        if (errno || *end || !*argv [optind + 1] || *argv [optind + 1] == '-') {
            s_usage ();
            return 2;
        }
    }

    int sock = shmipc_endpoint_connect (endpoint, 0);
    if (sock == -1) {
        s_fail ("cannot connect to %s: %s", endpoint, strerror (errno));
        return 1;
    }
    s_client_t self = { .count = count };
    self.channel = shmipc_channel_new (sock, S_NAME, capacity, SHMIPC_CLIENT);
    if (!self.channel) {
        s_fail ("cannot create a channel: %s", strerror (errno));
        close (sock);
        return 1;
    }
    int rc = -1;
    self.capacity = shmipc_channel_capacity (self.channel);
    shmipc_channel_set_maxmsgsize (self.channel, s_size_max (self.capacity));
    self.msg = shmipc_msg_new ();
    self.buffer = (uint8_t *) malloc (s_size_max (self.capacity));
    if (!self.msg || !self.buffer)
        s_fail ("out of memory");
    else
    if (shmipc_channel_handshake (self.channel, -1))
        s_fail ("handshake with %s failed: %s (%s)", endpoint, strerror (errno),
                shmipc_channel_reason (self.channel));
    else {
        double start = s_now ();
        rc = s_run (&self);
        double seconds = s_now () - start;
        if (seconds <= 0)
            seconds = 1e-9;
        if (rc == 0)
            printf ("%s: %" PRIu64 " messages, %" PRIu64 " bytes, %.3f s, %.0f msgs/s,"
                    " %.1f MB/s\n", S_NAME, self.received, self.bytes, seconds,
                    (double) self.received / seconds, (double) self.bytes / seconds / 1e6);
    }
    shmipc_channel_destroy (&self.channel);
    shmipc_msg_destroy (&self.msg);
    free (self.buffer);
    return rc ? 1 : 0;
}
