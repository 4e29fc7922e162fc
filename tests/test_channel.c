/*  test_channel - the channel in one process, over tu_channel_pair and raw
    socketpairs: framing, wrap-around, streaming, back-pressure, timeouts,
    deferred publishing, control messages, polling and wake-up economy,
    and frames held in place after recv_done (shmipc_channel_hold).
    Peers in other processes: test_channel_xproc.c; hostile peers:
    test_channel_hostile.c.
*/
#include "testutil.h"
#include "shmipc_channel.h"
#include "shmipc_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

//  --------------------------------------------------------------------------
//  Helpers

//  Return true if the channel's descriptors (the socket and, once the
//  handshake has made it, the wake pipe) say something within timeout_ms.
static bool
s_readable (shmipc_channel_t *channel, int timeout_ms)
{
    int rc = tu_channel_wait (channel, timeout_ms, NULL);
    assert_true (rc >= 0);
    return rc > 0;
}

//  Make a pair whose descriptors are quiet. The handshake leaves each side
//  the peer's PIPE record on its socket (sent after the HELLOs), so each
//  is readable once: events takes the record, and from then on the peer
//  wakes that side through its wake pipe.
static void
s_pair_settled (size_t capacity_a, size_t capacity_b,
                shmipc_channel_t **a, shmipc_channel_t **b)
{
    tu_channel_pair (capacity_a, capacity_b, a, b);
    assert_true (s_readable (*a, 0));
    assert_true (s_readable (*b, 0));
    assert_int_equal (shmipc_channel_events (*a), SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_events (*b), SHMIPC_POLLOUT);
    assert_false (s_readable (*a, 0));
    assert_false (s_readable (*b, 0));
}

//  Return a new buffer of size bytes (at least one) patterned from seed.
static uint8_t *
s_pattern (size_t size, uint64_t seed)
{
    uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
    assert_non_null (buffer);
    tu_fill (buffer, size, seed);
    return buffer;
}

//  Assert that msg has nframes frames of sizes [], frame i patterned from
//  seed + i.
static void
s_assert_frames (shmipc_msg_t *msg, size_t nframes, const size_t *sizes, uint64_t seed)
{
    assert_int_equal (shmipc_msg_frames (msg), nframes);
    for (size_t index = 0; index < nframes; index++) {
        assert_int_equal (shmipc_msg_size (msg, index), sizes [index]);
        if (sizes [index])
            assert_true (tu_check (shmipc_msg_data (msg, index), sizes [index],
                                   seed + index));
        else
            assert_null (shmipc_msg_data (msg, index));
    }
}

//  Fill frames [] from buffer, frame i of sizes [i] patterned from seed + i.
//  The frames lie one after another in buffer (at least the sum of sizes).
static void
s_make_frames (struct iovec *frames, uint8_t *buffer, size_t nframes,
               const size_t *sizes, uint64_t seed)
{
    size_t at = 0;
    for (size_t index = 0; index < nframes; index++) {
        frames [index].iov_base = buffer + at;
        frames [index].iov_len = sizes [index];
        tu_fill (buffer + at, sizes [index], seed + index);
        at += sizes [index];
    }
}

//  Assert that a receive of either kind fails with code, without waiting.
static void
s_assert_recv_fails (shmipc_channel_t *channel, int code)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, code);
    shmipc_msg_destroy (&msg);
    assert_null (shmipc_channel_recv (channel, SHMIPC_DONTWAIT));
    assert_int_equal (errno, code);
}

//  Send one-frame message size bytes patterned from seed, without waiting.
static void
s_send_pattern (shmipc_channel_t *channel, size_t size, uint64_t seed)
{
    uint8_t *buffer = s_pattern (size, seed);
    assert_int_equal (shmipc_channel_send (channel, buffer, size, SHMIPC_DONTWAIT), 0);
    free (buffer);
}

//  Receive one message without waiting and check it is one frame of size
//  bytes patterned from seed.
static void
s_recv_pattern (shmipc_channel_t *channel, shmipc_msg_t *msg, size_t size, uint64_t seed)
{
    assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), 0);
    s_assert_frames (msg, 1, &size, seed);
}

//  --------------------------------------------------------------------------
//  Construction and handshake

static void
test_channel_pair_reports_names_capacities_and_readiness (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (100, 5000, &a, &b);
    assert_true (shmipc_channel_ready (a));
    assert_true (shmipc_channel_ready (b));
    assert_int_equal (shmipc_channel_capacity (a), 128);
    assert_int_equal (shmipc_channel_peer_capacity (a), 8192);
    assert_int_equal (shmipc_channel_capacity (b), 8192);
    assert_int_equal (shmipc_channel_peer_capacity (b), 128);
    assert_string_equal (shmipc_channel_peer_name (a), "b");
    assert_string_equal (shmipc_channel_peer_name (b), "a");
    assert_int_equal (shmipc_channel_deadline (a), -1);
    assert_int_equal (shmipc_channel_error (a), 0);
    assert_string_equal (shmipc_channel_reason (a), "");
    assert_true (shmipc_channel_fd (a) >= 0);
    //  Blocking: waiting calls sleep in the receive itself; the others pass
    //  MSG_DONTWAIT (shmipc_channel_new's contract)
    assert_false (fcntl (shmipc_channel_fd (a), F_GETFL) & O_NONBLOCK);
    assert_true (fcntl (shmipc_channel_fd (a), F_GETFD) & FD_CLOEXEC);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    assert_null (a);
    shmipc_channel_destroy (&a);
    tu_assert_baseline (baseline);
}

static void
test_channel_new_rounds_tiny_capacity_up_to_ring_minimum (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (1, SHMIPC_RING_MIN + 1, &a, &b);
    assert_int_equal (shmipc_channel_capacity (a), SHMIPC_RING_MIN);
    assert_int_equal (shmipc_channel_capacity (b), 2 * SHMIPC_RING_MIN);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_new_refuses_stream_socket_with_eprototype (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, pair), 0);
    assert_null (shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EPROTOTYPE);
    //  The caller still owns the socket, untouched and blocking
    assert_int_equal (fcntl (pair [0], F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal (close (pair [0]), 0);
    assert_int_equal (close (pair [1]), 0);
    int pipe_fds [2];
    assert_int_equal (pipe (pipe_fds), 0);
    assert_null (shmipc_channel_new (pipe_fds [0], "a", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, ENOTSOCK);
    close (pipe_fds [0]);
    close (pipe_fds [1]);
    tu_assert_baseline (baseline);
}

static void
test_channel_new_refuses_bad_name_and_capacity_with_einval (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    char long_name [SHMIPC_NAME_MAX + 2];
    memset (long_name, 'x', sizeof long_name - 1);
    long_name [sizeof long_name - 1] = 0;
    assert_null (shmipc_channel_new (pair [0], long_name, 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    assert_null (shmipc_channel_new (pair [0], "bad\nname", 4096, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    assert_null (shmipc_channel_new (pair [0], "a", 0, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    assert_null (shmipc_channel_new (pair [0], "a", SHMIPC_RING_MAX + 1, SHMIPC_CLIENT));
    assert_int_equal (errno, EINVAL);
    //  Nothing was sent on any of those
    char byte;
    assert_int_equal (recv (pair [1], &byte, 1, MSG_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  The longest name is fine and travels whole
    long_name [SHMIPC_NAME_MAX] = 0;
    shmipc_channel_t *a = shmipc_channel_new (pair [0], long_name, 64, SHMIPC_CLIENT);
    assert_non_null (a);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 64, SHMIPC_SERVER);
    assert_non_null (b);
    assert_int_equal (shmipc_channel_handshake (b, 1000), 0);
    assert_string_equal (shmipc_channel_peer_name (b), long_name);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_handshake_times_out_with_etimedout_when_peer_is_silent (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    assert_false (shmipc_channel_ready (a));
    assert_null (shmipc_channel_peer_name (a));
    assert_true (shmipc_channel_deadline (a) > 0);
    //  Not yet: a zero wait checks once
    assert_int_equal (shmipc_channel_handshake (a, 0), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_events (a), 0);
    assert_int_equal (shmipc_channel_send (a, "x", 1, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_set_handshake_timeout (a, 50);
    assert_int_equal (shmipc_channel_handshake (a, -1), -1);
    assert_int_equal (errno, ETIMEDOUT);
    assert_int_equal (shmipc_channel_error (a), ETIMEDOUT);
    assert_string_not_equal (shmipc_channel_reason (a), "");
    assert_false (shmipc_channel_ready (a));
    //  The channel stays closed with that error
    s_assert_recv_fails (a, ETIMEDOUT);
    assert_int_equal (shmipc_channel_send (a, "x", 1, 0), -1);
    assert_int_equal (errno, ETIMEDOUT);
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLERR);
    shmipc_channel_destroy (&a);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_channel_blocking_recv_during_handshake_reports_etimedout (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    shmipc_channel_set_handshake_timeout (a, 30);
    assert_null (shmipc_channel_recv (a, 0));
    assert_int_equal (errno, ETIMEDOUT);
    shmipc_channel_destroy (&a);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_channel_handshake_fails_with_econnreset_when_peer_closes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    close (pair [1]);
    assert_int_equal (shmipc_channel_handshake (a, 1000), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_error (a), ECONNRESET);
    shmipc_channel_destroy (&a);
    tu_assert_baseline (baseline);
}

static void
test_channel_handshake_completes_through_any_first_call (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_SERVER);
    assert_non_null (a);
    assert_non_null (b);
    //  b, the server, answers a's HELLO in a receive that finds nothing
    //  yet; then a completes by sending, and b receives
    assert_false (shmipc_channel_ready (b));
    assert_null (shmipc_channel_recv (b, SHMIPC_DONTWAIT));
    assert_int_equal (errno, EAGAIN);
    assert_true (shmipc_channel_ready (b));
    assert_int_equal (shmipc_channel_send (a, "hi", 2, 0), 0);
    assert_true (shmipc_channel_ready (a));
    shmipc_msg_t *msg = shmipc_channel_recv (b, 0);
    assert_non_null (msg);
    assert_memory_equal (shmipc_msg_data (msg, 0), "hi", 2);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Framing, wrap-around and streaming

static void
test_channel_delivers_empty_one_byte_and_multiframe_messages (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_send (a, NULL, 0, 0), 0);
    assert_int_equal (shmipc_channel_send (a, "x", 1, 0), 0);
    size_t sizes [] = { 0, 1, 0, 300, 7 };
    uint8_t buffer [400];
    struct iovec frames [5];
    s_make_frames (frames, buffer, 5, sizes, 40);
    assert_int_equal (shmipc_channel_sendv (a, frames, 5, 0), 0);
    assert_int_equal (shmipc_channel_sendv (a, frames, 0, 0), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_channel_sendv (a, frames, SHMIPC_FRAMES_MAX + 1, 0), -1);
    assert_int_equal (errno, EMSGSIZE);
    //  A message object goes out as it is and stays the caller's
    shmipc_msg_t *out = shmipc_msg_new ();
    assert_int_equal (shmipc_msg_addmem (out, "ab", 2), 0);
    assert_int_equal (shmipc_msg_addmem (out, "cde", 3), 0);
    assert_int_equal (shmipc_channel_send_msg (a, out, 0), 0);
    assert_int_equal (shmipc_msg_frames (out), 2);
    shmipc_msg_destroy (&out);
    out = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_send_msg (a, out, 0), -1);
    assert_int_equal (errno, EINVAL);
    shmipc_msg_destroy (&out);

    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), 1);
    assert_memory_equal (shmipc_msg_data (msg, 0), "x", 1);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    s_assert_frames (msg, 5, sizes, 40);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    assert_int_equal (shmipc_msg_frames (msg), 2);
    assert_memory_equal (shmipc_msg_data (msg, 0), "ab", 2);
    assert_memory_equal (shmipc_msg_data (msg, 1), "cde", 3);
    s_assert_recv_fails (b, EAGAIN);

    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, 4);
    assert_int_equal (stats.bytes_sent, 0 + 1 + 308 + 5);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.msgs_received, 4);
    assert_int_equal (stats.bytes_received, 0 + 1 + 308 + 5);
    assert_int_equal (stats.msgs_sent, 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  The writer's index, as the test tracks it: every message that fits
//  advances it by its records' sizes.
typedef struct {
    shmipc_channel_t *writer;
    shmipc_channel_t *reader;
    size_t capacity;
    uint64_t cursor;
    shmipc_msg_t *msg;
    uint8_t buffer [1024];
} s_wrap_t;

//  Pass one message through, whole, and check it.
static void
s_wrap_pass (s_wrap_t *wrap, size_t nframes, const size_t *sizes, uint64_t seed)
{
    struct iovec frames [4];
    s_make_frames (frames, wrap->buffer, nframes, sizes, seed);
    assert_int_equal (shmipc_channel_sendv (wrap->writer, frames, nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_channel_recv_into (wrap->reader, wrap->msg, SHMIPC_DONTWAIT), 0);
    s_assert_frames (wrap->msg, nframes, sizes, seed);
    //  The reader looks again and finds nothing: that returns the space
    //  (a reader that stops after a message may keep up to a quarter of
    //  the ring until its next call)
    assert_int_equal (shmipc_channel_recv_into (wrap->reader, wrap->msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    for (size_t index = 0; index < nframes; index++)
        wrap->cursor += shmipc_ring_record_size (sizes [index]);
}

//  Move the writer's index to offset (mod capacity) with one padding message.
static void
s_wrap_seek (s_wrap_t *wrap, size_t offset)
{
    size_t delta = (offset - wrap->cursor) & (wrap->capacity - 1);
    if (delta) {
        size_t size = delta - SHMIPC_RECORD_HEADER;
        s_wrap_pass (wrap, 1, &size, 7);
    }
    assert_int_equal (wrap->cursor % wrap->capacity, offset);
}

//  At every record offset of the writer's ring, pass a message of every
//  size that fits, and multi-frame messages of every first-frame size.
static void
s_wrap_every_offset (shmipc_channel_t *writer, shmipc_channel_t *reader,
                     size_t capacity, uint64_t *cursor)
{
    assert_int_equal (shmipc_channel_capacity (writer), capacity);
    s_wrap_t *wrap = (s_wrap_t *) calloc (1, sizeof *wrap);
    assert_non_null (wrap);
    wrap->writer = writer;
    wrap->reader = reader;
    wrap->capacity = capacity;
    wrap->cursor = *cursor;
    wrap->msg = shmipc_msg_new ();
    uint64_t seed = 1000;
    for (size_t offset = 0; offset < capacity; offset += 8) {
        for (size_t size = 0; shmipc_ring_record_size (size) <= capacity; size++) {
            s_wrap_seek (wrap, offset);
            s_wrap_pass (wrap, 1, &size, seed++);
        }
        for (size_t first = 0; shmipc_ring_record_size (first) + 8 <= capacity; first++) {
            size_t left = capacity - shmipc_ring_record_size (first) - SHMIPC_RECORD_HEADER;
            size_t two [][2] = { { first, 0 }, { first, left }, { first, 1 } };
            for (size_t index = 0; index < (left ? 3 : 2); index++) {
                s_wrap_seek (wrap, offset);
                s_wrap_pass (wrap, 2, two [index], seed += 4);
            }
            if (left >= SHMIPC_RECORD_HEADER) {
                size_t three [3] = { first, 0, left - SHMIPC_RECORD_HEADER };
                s_wrap_seek (wrap, offset);
                s_wrap_pass (wrap, 3, three, seed += 4);
            }
        }
    }
    s_assert_recv_fails (reader, EAGAIN);
    *cursor = wrap->cursor;
    shmipc_msg_destroy (&wrap->msg);
    free (wrap);
}

static void
test_channel_wraps_at_every_offset_of_64_and_256_byte_rings (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (64, 256, &a, &b);
    uint64_t cursor_a = 0, cursor_b = 0;
    s_wrap_every_offset (a, b, 64, &cursor_a);
    s_wrap_every_offset (b, a, 256, &cursor_b);
    //  And once more after the indices have gone round many times
    s_wrap_every_offset (a, b, 64, &cursor_a);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  Stream an oversize message from a to b, each waiting nothing: the
//  writer goes as far as the ring allows, the reader drains what was
//  published, and the message must not be delivered until it is whole.
static void
s_stream_through (shmipc_channel_t *a, shmipc_channel_t *b, size_t nframes,
                  const size_t *sizes, uint64_t seed)
{
    size_t total = 0;
    for (size_t index = 0; index < nframes; index++)
        total += sizes [index];
    uint8_t *buffer = (uint8_t *) malloc (total + 1);
    assert_non_null (buffer);
    struct iovec frames [32];
    assert_true (nframes <= 32);
    s_make_frames (frames, buffer, nframes, sizes, seed);
    shmipc_msg_t *msg = shmipc_msg_new ();
    long steps = 0;
    while (shmipc_channel_sendv (a, frames, nframes, SHMIPC_DONTWAIT) == -1) {
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_true (++steps < 10000000);
    }
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
    s_assert_frames (msg, nframes, sizes, seed);
    s_assert_recv_fails (b, EAGAIN);
    shmipc_msg_destroy (&msg);
    free (buffer);
}

static void
test_channel_streams_oversize_messages_from_every_offset (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t capacities [] = { 64, 256 };
    for (size_t round = 0; round < 2; round++) {
        size_t cap = capacities [round];
        size_t singles [] = { cap - 7, cap - 1, cap, cap + 1, 2 * cap + 5, 7 * cap + 3 };
        size_t multi [][4] = {
            { 3, cap, 0, cap + 9 },         //  (frame count first)
            { 3, 3, 2 * cap, 1 },
            { 2, cap - 8, cap - 8 },        //  Each fits alone, not both
            { 3, 0, 0, 3 * cap },
        };
        for (size_t offset = 0; offset < cap; offset += 8) {
            size_t ncases = 6 + 4 + 1;
            for (size_t index = 0; index < ncases; index++) {
                shmipc_channel_t *a, *b;
                tu_channel_pair (cap, cap, &a, &b);
                if (offset) {
                    s_send_pattern (a, offset - SHMIPC_RECORD_HEADER, 1);
                    shmipc_msg_t *msg = shmipc_msg_new ();
                    s_recv_pattern (b, msg, offset - SHMIPC_RECORD_HEADER, 1);
                    shmipc_msg_destroy (&msg);
                }
                uint64_t seed = 100 * offset + 10 * index;
                if (index < 6)
                    s_stream_through (a, b, 1, &singles [index], seed);
                else
                if (index < 10)
                    s_stream_through (a, b, multi [index - 6][0],
                                      &multi [index - 6][1], seed);
                else {
                    //  Many small frames that only together overflow
                    size_t sizes [20];
                    for (size_t frame = 0; frame < 20; frame++)
                        sizes [frame] = frame % 11;
                    s_stream_through (a, b, 20, sizes, seed);
                }
                //  The channel carries on normally afterwards
                s_send_pattern (a, 5, 77);
                shmipc_msg_t *msg = shmipc_msg_new ();
                s_recv_pattern (b, msg, 5, 77);
                shmipc_msg_destroy (&msg);
                shmipc_channel_destroy (&a);
                shmipc_channel_destroy (&b);
            }
        }
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_oversize_send_resumes_only_with_the_same_message (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    size_t size = 5 * 4096 + 123;
    uint8_t *big = s_pattern (size, 9);
    assert_int_equal (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  Another message, another shape: refused while the first is part-way
    assert_int_equal (shmipc_channel_send (a, "x", 1, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EINVAL);
    struct iovec two [2] = { { big, 100 }, { big + 100, size - 100 } };
    assert_int_equal (shmipc_channel_sendv (a, two, 2, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_channel_send (a, big, size - 1, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EINVAL);
    //  The same message again: no room yet, so EAGAIN and no harm done
    assert_int_equal (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_msg_t *msg = shmipc_msg_new ();
    int rounds = 0;
    while (true) {
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        rounds++;
        if (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT) == 0)
            break;
        assert_int_equal (errno, EAGAIN);
        assert_true (rounds < 1000);
    }
    assert_true (rounds > 1);
    s_recv_pattern (b, msg, size, 9);
    //  Whole again: any message goes
    assert_int_equal (shmipc_channel_send (a, "x", 1, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
    assert_memory_equal (shmipc_msg_data (msg, 0), "x", 1);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, 2);
    assert_int_equal (stats.bytes_sent, size + 1);
    shmipc_msg_destroy (&msg);
    free (big);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_maxmsgsize_refuses_bigger_message_and_closes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    //  The limit counts 32 bytes per frame: 1000 bytes in three frames
    //  cost 1096, in one frame 1032
    shmipc_channel_set_maxmsgsize (b, 1096);
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  Exactly the limit, in one frame or several, is fine
    s_send_pattern (a, 1000, 1);
    s_recv_pattern (b, msg, 1000, 1);
    size_t sizes [3] = { 500, 0, 500 };
    uint8_t buffer [1001];
    struct iovec frames [3];
    s_make_frames (frames, buffer, 3, sizes, 2);
    assert_int_equal (shmipc_channel_sendv (a, frames, 3, 0), 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    s_assert_frames (msg, 3, sizes, 2);
    //  One byte more, spread over frames, closes the channel
    sizes [1] = 1;
    s_make_frames (frames, buffer, 3, sizes, 3);
    assert_int_equal (shmipc_channel_sendv (a, frames, 3, 0), 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (shmipc_channel_error (b), EMSGSIZE);
    assert_string_not_equal (shmipc_channel_reason (b), "");
    s_assert_recv_fails (b, EMSGSIZE);
    assert_int_equal (shmipc_channel_send (b, "x", 1, 0), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLERR);
    //  The writer sees the reader gone
    assert_true (shmipc_channel_events (a) & SHMIPC_POLLERR);
    s_assert_recv_fails (a, ECONNRESET);
    assert_int_equal (shmipc_channel_send (a, "x", 1, 0), -1);
    assert_int_equal (errno, EPIPE);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);

    //  A streamed message is refused before it is whole
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_channel_set_maxmsgsize (b, 10000);
    size_t size = 20000;
    uint8_t *big = s_pattern (size, 4);
    while (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT) == -1
       &&  errno == EAGAIN) {
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        if (errno == EMSGSIZE)
            break;
        assert_int_equal (errno, EAGAIN);
    }
    assert_int_equal (shmipc_channel_error (b), EMSGSIZE);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.msgs_received, 0);
    free (big);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Back-pressure and timeouts

static void
test_channel_dontwait_send_fails_with_eagain_when_full_and_writes_nothing (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    size_t size = 100;
    size_t fit = 4096 / shmipc_ring_record_size (size);
    size_t sent = 0;
    for (; sent < 1000; sent++) {
        uint8_t buffer [100];
        tu_fill (buffer, size, sent);
        if (shmipc_channel_send (a, buffer, size, SHMIPC_DONTWAIT))
            break;
    }
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (sent, fit);
    //  A multi-frame message that needs more than the space left is not
    //  started either: no frame of it reaches the reader
    size_t left = 4096 - fit * shmipc_ring_record_size (size);
    uint8_t buffer [64];
    struct iovec two [2] = { { buffer, 0 }, { buffer, left } };
    assert_int_equal (shmipc_channel_sendv (a, two, 2, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, fit);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (size_t index = 0; index < fit; index++)
        s_recv_pattern (b, msg, size, index);
    s_assert_recv_fails (b, EAGAIN);
    //  Now it fits
    assert_int_equal (shmipc_channel_sendv (a, two, 2, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_msg_frames (msg), 2);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_fd_becomes_readable_when_a_quarter_frees_after_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    s_pair_settled (4096, 4096, &a, &b);
    uint8_t buffer [500];
    memset (buffer, 1, sizeof buffer);
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    assert_false (s_readable (a, 0));
    assert_int_equal (shmipc_channel_events (a) & SHMIPC_POLLOUT, 0);
    assert_false (s_readable (a, 0));
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  The sleeping writer asked for a quarter of the ring (its tx_need):
    //  one message read is not enough to wake it, two are
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
    assert_false (s_readable (a, 0));
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
    assert_true (s_readable (a, 0));
    assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT), 0);
    //  Full again
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    while (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    assert_true (s_readable (a, 0));
    assert_true (shmipc_channel_events (a) & SHMIPC_POLLOUT);
    assert_false (s_readable (a, 0));
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_refused_sends_queue_nothing_outside_the_ring (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    uint8_t buffer [1000];
    memset (buffer, 2, sizeof buffer);
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_stats_t before;
    shmipc_channel_stats (a, &before);
    struct mallinfo2 heap_before = mallinfo2 ();
    long tries = tu_scaled (100000, 100);
    for (long index = 0; index < tries; index++) {
        assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
    }
    struct mallinfo2 heap_after = mallinfo2 ();
    assert_int_equal (heap_after.uordblks, heap_before.uordblks);
    shmipc_channel_stats_t after;
    shmipc_channel_stats (a, &after);
    assert_int_equal (after.msgs_sent, before.msgs_sent);
    assert_int_equal (after.bytes_sent, before.bytes_sent);
    //  The reader gets exactly what fitted, nothing of the refused sends
    shmipc_msg_t *msg = shmipc_msg_new ();
    uint64_t received = 0;
    while (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT) == 0)
        received++;
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (received, before.msgs_sent);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_send_and_recv_timeouts_fail_with_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_channel_set_rcvtimeo (b, 20);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, EAGAIN);
    assert_null (shmipc_channel_recv (b, 0));
    assert_int_equal (errno, EAGAIN);
    shmipc_msg_t *msgs [4];
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 4, 0), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_set_rcvtimeo (b, 0);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, EAGAIN);
    //  Still working: a message sent now arrives
    assert_int_equal (shmipc_channel_send (a, "m", 1, 0), 0);
    shmipc_channel_set_rcvtimeo (b, -1);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    shmipc_channel_set_rcvtimeo (b, 20);

    uint8_t buffer [1000] = { 0 };
    int sent = 0;
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        sent++;
    shmipc_channel_set_sndtimeo (a, 20);
    assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, 0), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_error (a), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, 1 + sent);
    int count = 0;
    while (shmipc_channel_recv_into (b, msg, 0) == 0)
        count++;
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (count, sent);
    //  An oversize message times out part-way and resumes later
    size_t size = 3 * 4096;
    uint8_t *big = s_pattern (size, 5);
    assert_int_equal (shmipc_channel_send (a, big, size, 0), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_set_sndtimeo (a, -1);
    while (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT) == -1) {
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
        assert_int_equal (errno, EAGAIN);
    }
    s_recv_pattern (b, msg, size, 5);
    free (big);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_reader_waiting_to_send_releases_what_it_has_read (void **state)
{
    //  a's message needs space b has already read but not yet returned;
    //  when b itself must wait (its own ring to a is full), it must return
    //  that space, or two processes that each send before they read stall
    //  for ever although every message sent so far was received.
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    s_send_pattern (a, 1000, 1);
    s_recv_pattern (b, msg, 1000, 1);
    uint8_t *big = s_pattern (3100, 2);
    assert_int_equal (shmipc_channel_send (a, big, 3100, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    uint8_t buffer [500] = { 0 };
    while (shmipc_channel_send (b, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    assert_true (s_readable (a, 0));
    assert_int_equal (shmipc_channel_send (a, big, 3100, SHMIPC_DONTWAIT), 0);
    s_recv_pattern (b, msg, 3100, 2);
    free (big);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Batching and vectored receive

static void
test_channel_deferred_messages_stay_invisible_until_flush (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  b sleeps (its receive failed), so the batch costs one wake-up
    s_assert_recv_fails (b, EAGAIN);
    for (uint64_t index = 0; index < 5; index++) {
        uint8_t buffer [50];
        tu_fill (buffer, sizeof buffer, index);
        assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DEFER), 0);
    }
    assert_false (s_readable (b, 0));
    s_assert_recv_fails (b, EAGAIN);
    assert_int_equal (shmipc_channel_events (b) & SHMIPC_POLLIN, 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, 5);
    assert_int_equal (stats.wakeups_sent, 0);
    assert_int_equal (shmipc_channel_flush (a), 0);
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.wakeups_sent, 1);
    assert_true (s_readable (b, 0));
    for (uint64_t index = 0; index < 5; index++)
        s_recv_pattern (b, msg, 50, index);
    s_assert_recv_fails (b, EAGAIN);
    //  Flushing with nothing deferred is harmless
    assert_int_equal (shmipc_channel_flush (a), 0);
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.wakeups_sent, 1);
    //  A deferred batch bigger than the ring publishes when it must
    uint8_t buffer [1000] = { 0 };
    int sent = 0;
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DEFER | SHMIPC_DONTWAIT) == 0)
        sent++;
    assert_int_equal (errno, EAGAIN);
    int received = 0;
    while (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT) == 0)
        received++;
    assert_int_equal (received, sent);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_flush_fails_with_epipe_once_peer_is_gone (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    assert_int_equal (shmipc_channel_send (a, "x", 1, SHMIPC_DEFER), 0);
    shmipc_channel_destroy (&b);
    assert_true (shmipc_channel_events (a) & SHMIPC_POLLERR);
    assert_int_equal (shmipc_channel_flush (a), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_send (a, "x", 1, SHMIPC_DEFER), -1);
    assert_int_equal (errno, EPIPE);
    shmipc_channel_destroy (&a);
    tu_assert_baseline (baseline);
}

static void
test_channel_recv_vectored_returns_all_pending_up_to_max (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    for (uint64_t index = 0; index < 10; index++)
        s_send_pattern (a, index * 10, index);
    shmipc_msg_t *msgs [100];
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 0, 0), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 4, SHMIPC_DONTWAIT), 4);
    for (uint64_t index = 0; index < 4; index++) {
        size_t size = index * 10;
        s_assert_frames (msgs [index], 1, &size, index);
        shmipc_msg_destroy (&msgs [index]);
    }
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 100, 0), 6);
    for (uint64_t index = 4; index < 10; index++) {
        size_t size = index * 10;
        s_assert_frames (msgs [index - 4], 1, &size, index);
        shmipc_msg_destroy (&msgs [index - 4]);
    }
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 100, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  After the peer closes: what it sent, then ECONNRESET
    s_send_pattern (a, 3, 3);
    shmipc_channel_destroy (&a);
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 100, 0), 1);
    shmipc_msg_destroy (&msgs [0]);
    assert_int_equal (shmipc_channel_recv_vectored (b, msgs, 100, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Closing

static void
test_channel_graceful_close_delivers_everything_then_econnreset (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    for (uint64_t index = 0; index < 5; index++)
        s_send_pattern (a, index * 100, index);
    size_t sizes [3] = { 10, 0, 20 };
    uint8_t buffer [30];
    struct iovec frames [3];
    s_make_frames (frames, buffer, 3, sizes, 50);
    assert_int_equal (shmipc_channel_sendv (a, frames, 3, 0), 0);
    assert_int_equal (shmipc_channel_send_ctrl (a, "bye", 3), 0);
    shmipc_channel_destroy (&a);

    assert_int_equal (shmipc_channel_events (b),
                      SHMIPC_POLLIN | SHMIPC_POLLCTRL | SHMIPC_POLLERR);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (uint64_t index = 0; index < 5; index++)
        s_recv_pattern (b, msg, index * 100, index);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
    s_assert_frames (msg, 3, sizes, 50);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    s_assert_recv_fails (b, ECONNRESET);
    char text [8];
    assert_int_equal (shmipc_channel_recv_ctrl (b, text, sizeof text), 3);
    assert_memory_equal (text, "bye", 3);
    assert_int_equal (shmipc_channel_recv_ctrl (b, text, sizeof text), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_send (b, "x", 1, 0), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_send_ctrl (b, "x", 1), -1);
    assert_int_equal (errno, EPIPE);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLERR);
    //  Gone is not broken: the channel had no error of its own
    assert_int_equal (shmipc_channel_error (b), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Control messages

static void
test_channel_ctrl_messages_round_trip_beside_data (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    char buffer [SHMIPC_CTRL_MAX];
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, sizeof buffer), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_send_ctrl (a, "one", 3), 0);
    assert_int_equal (shmipc_channel_send (a, "data", 4, 0), 0);
    assert_int_equal (shmipc_channel_send_ctrl (a, NULL, 0), 0);
    uint8_t *largest = s_pattern (SHMIPC_CTRL_MAX, 6);
    assert_int_equal (shmipc_channel_send_ctrl (a, largest, SHMIPC_CTRL_MAX), 0);
    assert_int_equal (shmipc_channel_events (b),
                      SHMIPC_POLLIN | SHMIPC_POLLCTRL | SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, sizeof buffer), 3);
    assert_memory_equal (buffer, "one", 3);
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, sizeof buffer), 0);
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, sizeof buffer), SHMIPC_CTRL_MAX);
    assert_true (tu_check (buffer, SHMIPC_CTRL_MAX, 6));
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, sizeof buffer), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_msg_t *msg = shmipc_channel_recv (b, 0);
    assert_non_null (msg);
    assert_memory_equal (shmipc_msg_data (msg, 0), "data", 4);
    shmipc_msg_destroy (&msg);
    //  And the other way
    assert_int_equal (shmipc_channel_send_ctrl (b, "two", 3), 0);
    assert_int_equal (shmipc_channel_recv_ctrl (a, buffer, sizeof buffer), 3);
    assert_memory_equal (buffer, "two", 3);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.ctrl_sent, 3);
    assert_int_equal (stats.ctrl_received, 1);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.ctrl_sent, 1);
    assert_int_equal (stats.ctrl_received, 3);
    free (largest);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_ctrl_window_limits_unread_messages (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    uint32_t next = 0;
    for (int index = 0; index < SHMIPC_CTRL_WINDOW; index++, next++)
        assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), 0);
    assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), -1);
    assert_int_equal (errno, EAGAIN);
    //  Reading one lets exactly one more go
    uint32_t value;
    assert_int_equal (shmipc_channel_recv_ctrl (b, &value, sizeof value), sizeof value);
    assert_int_equal (value, 0);
    assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), 0);
    next++;
    assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), -1);
    assert_int_equal (errno, EAGAIN);
    for (uint32_t expect = 1; expect < next; expect++) {
        assert_int_equal (shmipc_channel_recv_ctrl (b, &value, sizeof value), sizeof value);
        assert_int_equal (value, expect);
    }
    assert_int_equal (shmipc_channel_recv_ctrl (b, &value, sizeof value), -1);
    assert_int_equal (errno, EAGAIN);
    //  All read: the whole window is open again
    for (int index = 0; index < SHMIPC_CTRL_WINDOW; index++)
        assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), 0);
    assert_int_equal (shmipc_channel_send_ctrl (a, &next, sizeof next), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_ctrl_refuses_oversize_and_keeps_message_for_bigger_buffer (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    uint8_t *big = s_pattern (SHMIPC_CTRL_MAX + 1, 1);
    assert_int_equal (shmipc_channel_send_ctrl (a, big, SHMIPC_CTRL_MAX + 1), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (shmipc_channel_send_ctrl (a, "hello", 5), 0);
    char buffer [8];
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, 4), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, 0), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_true (shmipc_channel_events (b) & SHMIPC_POLLCTRL);
    assert_int_equal (shmipc_channel_recv_ctrl (b, buffer, 5), 5);
    assert_memory_equal (buffer, "hello", 5);
    assert_int_equal (shmipc_channel_error (a), 0);
    assert_int_equal (shmipc_channel_error (b), 0);
    free (big);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Polling and wake-ups

static void
test_channel_fd_becomes_readable_when_message_arrives_after_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    s_pair_settled (4096, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (uint64_t round = 0; round < 3; round++) {
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_false (s_readable (b, 0));
        s_send_pattern (a, 10, round);
        assert_true (s_readable (b, 0));
        s_recv_pattern (b, msg, 10, round);
    }
    //  A control message also makes it readable
    s_assert_recv_fails (b, EAGAIN);
    assert_int_equal (shmipc_channel_send_ctrl (a, "c", 1), 0);
    assert_true (s_readable (b, 0));
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLCTRL | SHMIPC_POLLOUT);
    //  And so does the peer going away
    assert_false (s_readable (b, 0));
    shmipc_channel_destroy (&a);
    assert_true (s_readable (b, 0));
    assert_true (shmipc_channel_events (b) & SHMIPC_POLLERR);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_fd_is_not_readable_after_events_reported_everything (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    assert_false (s_readable (b, 0));
    for (uint64_t round = 0; round < 5; round++) {
        for (uint64_t index = 0; index < round + 1; index++)
            s_send_pattern (a, 20, index);
        assert_true (s_readable (b, 0));
        for (uint64_t index = 0; index < round + 1; index++) {
            assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLIN | SHMIPC_POLLOUT);
            s_recv_pattern (b, msg, 20, index);
        }
        assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
        assert_false (s_readable (b, 0));
        assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
        assert_false (s_readable (b, 0));
    }
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_events_reports_pollout_when_blocked_stream_can_go_on (void **state)
{
    //  An oversize message stopped part-way with EAGAIN: events () must
    //  arm the descriptor for space and say POLLOUT once there is some,
    //  or a poll loop that resumes on POLLOUT waits for ever.
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    size_t size = 10 * 4096;
    uint8_t *big = s_pattern (size, 8);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    int rounds = 0;
    while (true) {
        assert_int_equal (shmipc_channel_events (a) & SHMIPC_POLLOUT, 0);
        assert_false (s_readable (a, 0));
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_true (s_readable (a, 0));
        assert_true (shmipc_channel_events (a) & SHMIPC_POLLOUT);
        if (shmipc_channel_send (a, big, size, SHMIPC_DONTWAIT) == 0)
            break;
        assert_int_equal (errno, EAGAIN);
        assert_true (++rounds < 1000);
    }
    s_recv_pattern (b, msg, size, 8);
    free (big);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_sends_no_wakeup_to_a_reader_that_keeps_up (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (65536, 4096, &a, &b);
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  Pipelined bursts, each read whole by a reader that never found the
    //  ring empty: it never slept, so nothing crosses the socket
    long bursts = tu_scaled (2000, 20);
    for (long burst = 0; burst < bursts; burst++) {
        for (uint64_t index = 0; index < 50; index++)
            s_send_pattern (a, 16 + index, index);
        for (uint64_t index = 0; index < 50; index++)
            s_recv_pattern (b, msg, 16 + index, index);
    }
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.msgs_sent, bursts * 50);
    assert_int_equal (stats.wakeups_sent, 0);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.wakeups_received, 0);
    assert_int_equal (stats.wakeups_sent, 0);
    //  A sleeping reader costs one WAKE per sleep, not one per message
    for (long round = 1; round <= 10; round++) {
        s_assert_recv_fails (b, EAGAIN);
        for (uint64_t index = 0; index < 100; index++)
            s_send_pattern (a, 8, index);
        shmipc_channel_stats (a, &stats);
        assert_int_equal (stats.wakeups_sent, round);
        for (uint64_t index = 0; index < 100; index++)
            s_recv_pattern (b, msg, 8, index);
        shmipc_channel_stats (b, &stats);
        assert_int_equal (stats.wakeups_received, round);
    }
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_spin_option_still_receives_and_times_out (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_channel_set_spin (b, 2000);
    shmipc_channel_set_spin (a, 2000);
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  Without waiting, spinning does not apply
    s_assert_recv_fails (b, EAGAIN);
    //  A bounded spin, then sleep, then the timeout
    shmipc_channel_set_rcvtimeo (b, 30);
    assert_int_equal (shmipc_channel_recv_into (b, msg, 0), -1);
    assert_int_equal (errno, EAGAIN);
    for (uint64_t index = 0; index < 100; index++) {
        s_send_pattern (a, index, index);
        assert_int_equal (shmipc_channel_recv_into (b, msg, 0), 0);
        size_t size = index;
        s_assert_frames (msg, 1, &size, index);
    }
    //  A spinning writer with a full ring times out too
    uint8_t buffer [1000] = { 0 };
    while (shmipc_channel_send (a, buffer, sizeof buffer, SHMIPC_DONTWAIT) == 0)
        ;
    shmipc_channel_set_sndtimeo (a, 30);
    assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, 0), -1);
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_set_spin (b, -5);
    while (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT) == 0)
        ;
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_send (a, buffer, sizeof buffer, 0), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Holds: frames kept in place after recv_done (zero-copy receive)

//  A frame the test keeps: its hold, where it lies, its size and seed.
typedef struct {
    shmipc_hold_t *hold;            //  NULL once released
    const uint8_t *data;
    size_t size;
    uint64_t seed;
} s_kept_t;

//  Receive the next message as a view (it must be there): one frame of
//  size bytes patterned from seed; hold it into *kept if kept is not NULL,
//  then recv_done.
static void
s_view_and_hold (shmipc_channel_t *channel, size_t size, uint64_t seed, s_kept_t *kept)
{
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (channel, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (nframes, 1);
    assert_int_equal (frames [0].size, size);
    assert_true (tu_check (frames [0].data, size, seed));
    if (kept) {
        kept->hold = shmipc_channel_hold (channel, 0);
        assert_non_null (kept->hold);
        kept->data = (const uint8_t *) frames [0].data;
        kept->size = size;
        kept->seed = seed;
    }
    shmipc_channel_recv_done (channel);
}

//  Assert that every frame still kept holds what was sent.
static void
s_assert_kept (const s_kept_t *kept, size_t count)
{
    for (size_t index = 0; index < count; index++)
        if (kept [index].hold)
            assert_true (tu_check (kept [index].data, kept [index].size, kept [index].seed));
}

static void
s_release_kept (s_kept_t *kept)
{
    assert_non_null (kept->hold);
    assert_true (tu_check (kept->data, kept->size, kept->seed));
    shmipc_hold_release (kept->hold);
    kept->hold = NULL;
}

//  Move at least bytes from a to b in one-frame messages of assorted sizes
//  (some bigger than the ring: streamed), each sent without waiting and
//  checked as it arrives, *seed numbering them; the kept frames are
//  checked all along. A stall (no progress for many rounds) fails.
static void
s_traffic (shmipc_channel_t *a, shmipc_channel_t *b, uint64_t bytes, uint64_t *seed,
           const s_kept_t *kept, size_t nkept)
{
    static const size_t sizes [] = { 100, 1500, 3000, 40, 7000, 900, 0, 20000, 333 };
    uint8_t *buffer = (uint8_t *) malloc (20000);
    assert_non_null (buffer);
    shmipc_msg_t *msg = shmipc_msg_new ();
    uint64_t moved = 0;
    long idle = 0;
    while (moved < bytes) {
        size_t size = sizes [*seed % (sizeof sizes / sizeof sizes [0])];
        tu_fill (buffer, size, *seed);
        if (shmipc_channel_send (a, buffer, size, SHMIPC_DONTWAIT) == 0) {
            s_recv_pattern (b, msg, size, *seed);
            ++*seed;
            moved += size;
            idle = 0;
            s_assert_kept (kept, nkept);
        }
        else {
            //  Full, or part-way through a streamed one: the reader takes
            //  what there is (nothing whole) and gives the space back
            assert_int_equal (errno, EAGAIN);
            assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
            assert_int_equal (errno, EAGAIN);
            assert_true (++idle < 1000);
        }
    }
    shmipc_msg_destroy (&msg);
    free (buffer);
}

static void
test_channel_held_frames_stay_intact_while_the_ring_laps (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    size_t cap = 16384;
    tu_channel_pair (cap, 4096, &a, &b);
    //  Five large frames, held: most of the half of the ring one may hold
    s_kept_t kept [5];
    uint8_t *buffer = s_pattern (1500, 0);
    for (size_t index = 0; index < 5; index++) {
        tu_fill (buffer, 1500, 1000 + index);
        assert_int_equal (shmipc_channel_send (a, buffer, 1500, SHMIPC_DONTWAIT), 0);
        s_view_and_hold (b, 1500, 1000 + index, &kept [index]);
    }
    //  Traffic of many times the ring flows on around them
    uint64_t seed = 0;
    s_traffic (a, b, 20 * cap, &seed, kept, 5);
    //  Let them go in another order than they came, traffic in between
    size_t order [] = { 3, 0, 4, 1, 2 };
    for (size_t index = 0; index < 5; index++) {
        s_release_kept (&kept [order [index]]);
        s_traffic (a, b, 3 * cap, &seed, kept, 5);
    }
    //  Their space is the writer's again: a message as big as the ring
    //  goes whole
    free (buffer);
    buffer = s_pattern (cap - SHMIPC_RECORD_HEADER, 77);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_send (a, buffer, cap - SHMIPC_RECORD_HEADER,
                                           SHMIPC_DONTWAIT), 0);
    s_recv_pattern (b, msg, cap - SHMIPC_RECORD_HEADER, 77);
    shmipc_msg_destroy (&msg);
    free (buffer);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  The wake pipe (wire version 3): each side is woken through a pipe of
//  its own, the second descriptor a poll loop watches

//  Return true if fd is an anonymous pipe.
static bool
s_is_pipe (int fd)
{
    char path [64], link [64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t size = readlink (path, link, sizeof link - 1);
    if (size <= 0)
        return false;
    link [size] = 0;
    return strncmp (link, "pipe:[", 6) == 0;
}

static void
test_channel_wake_fd_is_a_pipe_made_by_the_handshake_and_never_hangs_up (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_SERVER);
    assert_non_null (b);
    //  None before the handshake: a poll loop watches the socket alone
    assert_int_equal (shmipc_channel_wake_fd (a), -1);
    assert_int_equal (shmipc_channel_wake_fd (b), -1);
    //  Each side makes its own once it has sent its HELLO
    assert_int_equal (shmipc_channel_handshake (b, 1000), 0);
    assert_true (shmipc_channel_wake_fd (b) >= 0);
    assert_int_equal (shmipc_channel_wake_fd (a), -1);
    assert_int_equal (shmipc_channel_handshake (a, 1000), 0);
    int wake [2] = { shmipc_channel_wake_fd (a), shmipc_channel_wake_fd (b) };
    assert_true (wake [0] >= 0);
    assert_int_not_equal (wake [0], wake [1]);
    for (int side = 0; side < 2; side++) {
        assert_int_not_equal (wake [side], shmipc_channel_fd (a));
        assert_int_not_equal (wake [side], shmipc_channel_fd (b));
        assert_true (s_is_pipe (wake [side]));
        //  Never blocks a caller that reads it, and no child inherits it
        assert_true (fcntl (wake [side], F_GETFL) & O_NONBLOCK);
        assert_true (fcntl (wake [side], F_GETFD) & FD_CLOEXEC);
    }
    //  It stays the same while messages and wake-ups flow
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (uint64_t round = 0; round < 3; round++) {
        s_assert_recv_fails (b, EAGAIN);
        s_send_pattern (a, 10, round);
        assert_true (s_readable (b, 0));
        s_recv_pattern (b, msg, 10, round);
        assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
    }
    assert_int_equal (shmipc_channel_wake_fd (a), wake [0]);
    assert_int_equal (shmipc_channel_wake_fd (b), wake [1]);
    //  The peer going away shows on the socket: the pipe never hangs up
    //  (b reads and writes it through a description of its own), so a
    //  poll loop does not spin on it once the peer is gone
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    assert_false (s_readable (b, 0));
    shmipc_channel_destroy (&a);
    int woke = 0;
    assert_int_equal (tu_channel_wait (b, 1000, &woke), 1);
    assert_int_equal (woke, 1);
    struct pollfd item = { .fd = wake [1], .events = POLLIN };
    assert_int_equal (poll (&item, 1, 0), 0);
    assert_true (shmipc_channel_events (b) & SHMIPC_POLLERR);
    assert_int_equal (shmipc_channel_wake_fd (b), wake [1]);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  A poll loop in a thread of its own: events, then one wait on both
//  descriptors, then events again.
typedef struct {
    shmipc_channel_t *channel;
    atomic_int armed;               //  1 once the first events has run
    int events_before;              //  What it said before the wait
    int rc;                         //  tu_channel_wait's result
    int woke;                       //  Which descriptors ended the wait
    int events_after;               //  What events said after it
} s_poller_t;

static void *
s_poll_once (void *arg)
{
    s_poller_t *poller = (s_poller_t *) arg;
    poller->events_before = shmipc_channel_events (poller->channel);
    atomic_store (&poller->armed, 1);
    poller->rc = tu_channel_wait (poller->channel, 10000, &poller->woke);
    poller->events_after = shmipc_channel_events (poller->channel);
    return NULL;
}

//  A receiver in a thread of its own: count one-frame messages of 30
//  bytes patterned from seed, seed + 1..., each a blocking receive.
typedef struct {
    shmipc_channel_t *channel;
    uint64_t seed;
    long count;
    long received;                  //  How many came, and were right
    int error;                      //  errno of the receive that failed, or 0
} s_receiver_t;

static void *
s_receive_blocking (void *arg)
{
    s_receiver_t *receiver = (s_receiver_t *) arg;
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; msg && index < receiver->count; index++) {
        if (shmipc_channel_recv_into (receiver->channel, msg, 0)) {
            receiver->error = errno;
            break;
        }
        if (shmipc_msg_frames (msg) != 1 || shmipc_msg_size (msg, 0) != 30
        ||  !tu_check (shmipc_msg_data (msg, 0), 30, receiver->seed + (uint64_t) index)) {
            receiver->error = EBADMSG;
            break;
        }
        receiver->received++;
    }
    shmipc_msg_destroy (&msg);
    return NULL;
}

//  A side that asks for WAKE records gets no wake pipe, and is woken on its
//  socket; its peer, which offered a pipe, is still woken through it.
static void
test_channel_without_wake_pipe_is_woken_by_records_and_wakes_through_the_peer_pipe (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_SERVER);
    assert_non_null (a);
    assert_non_null (b);
    shmipc_channel_set_wake_pipe (b, false);
    assert_int_equal (shmipc_channel_handshake (b, 1000), 0);
    assert_int_equal (shmipc_channel_handshake (a, 1000), 0);
    assert_int_equal (shmipc_channel_wake_fd (b), -1);
    assert_true (shmipc_channel_wake_fd (a) >= 0);
    //  b takes a's PIPE record; a gets none
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
    shmipc_msg_t *msg = shmipc_msg_new ();
    //  a wakes b with a WAKE record, on the socket
    s_send_pattern (a, 10, 1);
    int woke = 0;
    assert_int_equal (tu_channel_wait (b, 1000, &woke), 1);
    assert_int_equal (woke, 1);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (b, msg, 10, 1);
    //  b wakes a through a's pipe
    s_send_pattern (b, 10, 2);
    woke = 0;
    assert_int_equal (tu_channel_wait (a, 1000, &woke), 1);
    assert_int_equal (woke, 2);
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (a, msg, 10, 2);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.wakeups_sent, 1);
    assert_int_equal (stats.wakeups_received, 1);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

//  Out of descriptors when the peer's PIPE record comes: the record's own
//  descriptor fits, our description of the pipe does not. The channel goes
//  on, and wakes its peer with WAKE records instead.
static void
test_channel_out_of_descriptors_for_the_peer_pipe_wakes_with_records (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    //  Room for exactly one more descriptor: the lowest free number + 1
    int lowest = dup (0);
    assert_true (lowest >= 0);
    close (lowest);
    struct rlimit saved, tight;
    assert_int_equal (getrlimit (RLIMIT_NOFILE, &saved), 0);
    tight = saved;
    tight.rlim_cur = (rlim_t) lowest + 1;
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &tight), 0);
    int events = shmipc_channel_events (a);
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &saved), 0);
    assert_int_equal (events, SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_error (a), 0);
    //  b sleeps (its events armed it); a wakes it on the socket
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    s_send_pattern (a, 10, 1);
    int woke = 0;
    assert_int_equal (tu_channel_wait (b, 1000, &woke), 1);
    assert_int_equal (woke, 1);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (b, msg, 10, 1);
    //  And b still wakes a through a's pipe
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
    s_send_pattern (b, 10, 2);
    woke = 0;
    assert_int_equal (tu_channel_wait (a, 1000, &woke), 1);
    assert_int_equal (woke, 2);
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (a, msg, 10, 2);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_wake_fd_exists_after_handshake_and_wakes_a_poller (void **state)
{
    //  Threads' stacks and arenas cached first: not counted as ours
    assert_int_equal (tu_warm_threads (1), 0);
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    assert_true (shmipc_channel_wake_fd (a) >= 0);
    assert_true (shmipc_channel_wake_fd (b) >= 0);
    shmipc_msg_t *msg = shmipc_msg_new ();
    shmipc_channel_stats_t stats;
    //  b takes a's PIPE record; a has not read b's yet, so it still wakes
    //  b with a WAKE record on the socket
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    assert_false (s_readable (b, 0));
    s_send_pattern (a, 10, 1);
    int woke = 0;
    assert_int_equal (tu_channel_wait (b, 0, &woke), 1);
    assert_int_equal (woke, 1);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (b, msg, 10, 1);
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.wakeups_sent, 1);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.wakeups_received, 1);
    //  a takes b's PIPE record: from now on it wakes b through b's pipe
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
    s_poller_t poller = { .channel = b };
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_poll_once, &poller), 0);
    for (int waited = 0; !atomic_load (&poller.armed) && waited < 10000; waited++)
        usleep (1000);
    assert_true (atomic_load (&poller.armed));
    usleep (20000);             //  Most likely asleep in poll by now
    s_send_pattern (a, 20, 2);
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (poller.events_before, SHMIPC_POLLOUT);
    //  Woken by the pipe alone: nothing crossed the socket
    assert_int_equal (poller.rc, 1);
    assert_int_equal (poller.woke, 2);
    assert_int_equal (poller.events_after, SHMIPC_POLLIN | SHMIPC_POLLOUT);
    s_recv_pattern (b, msg, 20, 2);
    shmipc_channel_stats (a, &stats);
    assert_int_equal (stats.wakeups_sent, 2);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.wakeups_received, 2);
    //  events read the byte: both descriptors are quiet again
    assert_false (s_readable (b, 0));

    //  Blocking receives that sleep in another thread are woken too, each
    //  long before its timeout
    shmipc_channel_set_rcvtimeo (b, 10000);
    s_receiver_t receiver = { .channel = b, .seed = 100, .count = 20 };
    assert_int_equal (pthread_create (&thread, NULL, s_receive_blocking, &receiver), 0);
    for (long index = 0; index < receiver.count; index++) {
        usleep (5000);
        s_send_pattern (a, 30, receiver.seed + (uint64_t) index);
    }
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (receiver.error, 0);
    assert_int_equal (receiver.received, receiver.count);
    shmipc_channel_stats (a, &stats);
    uint64_t sent = stats.wakeups_sent;
    assert_true (sent > 2 && sent <= 2 + (uint64_t) receiver.count);
    //  Every byte a wrote, b reads: at the latest in events, which reads
    //  what a late wake-up left for a receive that did not sleep
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    shmipc_channel_stats (b, &stats);
    assert_int_equal (stats.wakeups_received, sent);
    assert_false (s_readable (b, 0));
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_ready_channel_holds_three_descriptors (void **state)
{
    //  Socket, our wake pipe, our description of the peer's: the segments'
    //  memfds are closed once both HELLOs have carried them, and only
    //  their mappings stay
    tu_baseline_t baseline = tu_baseline ();
    int fds = tu_fd_count ();
    int pipes = tu_fds_linked_to ("pipe:[");
    int memfds = tu_fds_linked_to ("/memfd:");
    int maps = tu_maps_with (TU_SEGMENT_MAPPING);
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_SERVER);
    assert_non_null (b);
    //  The client's segment waits for the server's answer
    assert_int_equal (tu_fd_count (), fds + 3);
    assert_int_equal (tu_fds_linked_to ("/memfd:"), memfds + 1);
    //  The server has what it needs: its wake pipe, no memfd
    assert_int_equal (shmipc_channel_handshake (b, 1000), 0);
    assert_int_equal (tu_fd_count (), fds + 4);
    assert_int_equal (tu_fds_linked_to ("/memfd:"), memfds + 1);
    assert_int_equal (tu_fds_linked_to ("pipe:["), pipes + 1);
    //  So has the client
    assert_int_equal (shmipc_channel_handshake (a, 1000), 0);
    assert_int_equal (tu_fd_count (), fds + 4);
    assert_int_equal (tu_fds_linked_to ("/memfd:"), memfds);
    assert_int_equal (tu_fds_linked_to ("pipe:["), pipes + 2);
    //  Each takes the peer's PIPE record and opens the pipe anew: three each
    assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_events (b), SHMIPC_POLLOUT);
    assert_int_equal (tu_fd_count (), fds + 2 * 3);
    assert_int_equal (tu_fds_linked_to ("/memfd:"), memfds);
    assert_int_equal (tu_fds_linked_to ("pipe:["), pipes + 4);
    //  The segments are still mapped, and carry messages both ways
    assert_true (tu_maps_with (TU_SEGMENT_MAPPING) >= maps + 2);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (uint64_t round = 0; round < 3; round++) {
        s_send_pattern (a, 100, round);
        s_recv_pattern (b, msg, 100, round);
        s_send_pattern (b, 3000, round);
        s_recv_pattern (a, msg, 3000, round);
    }
    assert_int_equal (tu_fd_count (), fds + 2 * 3);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    assert_int_equal (tu_fd_count (), fds);
    assert_int_equal (tu_maps_with (TU_SEGMENT_MAPPING), maps);
    tu_assert_baseline (baseline);
}

//  The sender's side of the threaded test: count messages, blocking, each
//  send bounded by the send timeout.
typedef struct {
    shmipc_channel_t *channel;
    uint64_t count;
    uint64_t sent;                  //  How many went
    int error;                      //  errno of the send that failed, or 0
} s_sender_t;

static size_t
s_threaded_size (uint64_t index)
{
    static const size_t sizes [] = { 2000, 64, 5000, 300, 2000, 70000, 10 };
    return sizes [index % (sizeof sizes / sizeof sizes [0])];
}

static void *
s_sender (void *arg)
{
    s_sender_t *sender = (s_sender_t *) arg;
    uint8_t *buffer = (uint8_t *) malloc (70000);
    for (uint64_t index = 0; buffer && index < sender->count; index++) {
        size_t size = s_threaded_size (index);
        tu_fill (buffer, size, index);
        if (shmipc_channel_send (sender->channel, buffer, size, 0)) {
            sender->error = errno;
            break;
        }
        sender->sent++;
    }
    free (buffer);
    return NULL;
}

//  An event loop that calls events before every sleep: its non-blocking
//  receives leave the wake-up (a WAKE record on the socket, or a byte in
//  the wake pipe) for events to take, and the loop still gets every
//  message and sleeps only when there is none.
static void
test_channel_events_driven_receives_leave_the_socket_to_events (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Twice: before the writer has taken b's PIPE record (WAKE records),
    //  and after (bytes in b's wake pipe)
    for (int piped = 0; piped < 2; piped++) {
        shmipc_channel_t *a, *b;
        tu_channel_pair (4096, 4096, &a, &b);
        if (piped)
            assert_int_equal (shmipc_channel_events (a), SHMIPC_POLLOUT);
        int woken_on = piped ? 2 : 1;
        shmipc_channel_set_events_driven (b, true);
        shmipc_msg_t *msg = shmipc_msg_new ();
        assert_non_null (msg);
        //  Nothing there: the receive arms b's flag, events () says so
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (shmipc_channel_events (b) & SHMIPC_POLLIN, 0);
        assert_false (s_readable (b, 0));
        for (uint64_t round = 0; round < 50; round++) {
            //  The writer sees b armed: its message comes with a wake-up
            assert_int_equal (shmipc_channel_send (a, "hello", 5, 0), 0);
            int woke = 0;
            assert_int_equal (tu_channel_wait (b, 1000, &woke), 1);
            assert_int_equal (woke, woken_on);
            assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
            assert_int_equal (shmipc_msg_size (msg, 0), 5);
            //  The next receive finds nothing, and leaves the wake-up
            //  where it is
            assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
            assert_int_equal (errno, EAGAIN);
            assert_int_equal (tu_channel_wait (b, 0, &woke), 1);
            assert_int_equal (woke, woken_on);
            //  events () takes it, and only then are the descriptors quiet
            assert_int_equal (shmipc_channel_events (b) & SHMIPC_POLLIN, 0);
            assert_false (s_readable (b, 0));
        }
        shmipc_channel_stats_t stats;
        shmipc_channel_stats (b, &stats);
        assert_int_equal (stats.wakeups_received, 50);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&a);
        shmipc_channel_destroy (&b);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_writer_never_stalls_on_frames_held_by_its_reader (void **state)
{
    //  Threads' stacks and arenas cached first: not counted as ours
    assert_int_equal (tu_warm_threads (2), 0);
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    size_t cap = 16384;
    tu_channel_pair (cap, 4096, &a, &b);
    //  A stall fails a call after the timeout instead of hanging the test
    shmipc_channel_set_sndtimeo (a, 5000);
    shmipc_channel_set_rcvtimeo (b, 5000);
    s_sender_t sender = { .channel = a, .count = (uint64_t) tu_scaled (2000, 200) };
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_sender, &sender), 0);
    //  Hold every 2000-byte frame that lies in the ring, up to four at
    //  once, letting one go (not the oldest) when a fifth comes
    s_kept_t kept [4] = { { 0 } };
    uint64_t random = 12345, holds = 0, copies = 0;
    for (uint64_t index = 0; index < sender.count; index++) {
        const shmipc_frame_t *frames;
        size_t nframes;
        assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, 0), 0);
        size_t size = s_threaded_size (index);
        assert_int_equal (nframes, 1);
        assert_int_equal (frames [0].size, size);
        assert_true (tu_check (frames [0].data, size, index));
        if (size == 2000) {
            size_t slot = 0;
            while (slot < 4 && kept [slot].hold)
                slot++;
            if (slot == 4) {
                slot = (size_t) (tu_random (&random) % 4);
                s_release_kept (&kept [slot]);
            }
            kept [slot].hold = shmipc_channel_hold (b, 0);
            if (kept [slot].hold) {
                kept [slot] = (s_kept_t) { .hold = kept [slot].hold,
                    .data = (const uint8_t *) frames [0].data, .size = size, .seed = index };
                holds++;
            }
            else {
                //  Wrapped round the end of a ring without a mirror: a copy
                assert_int_equal (errno, EAGAIN);
                copies++;
            }
        }
        shmipc_channel_recv_done (b);
        s_assert_kept (kept, 4);
    }
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (sender.error, 0);
    assert_int_equal (sender.sent, sender.count);
    assert_true (holds > copies);
    for (size_t slot = 0; slot < 4; slot++)
        if (kept [slot].hold)
            s_release_kept (&kept [slot]);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_hold_fails_with_enobufs_past_the_share_or_64_frames (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    //  Half of a 4096-byte ring (and a header per slot): two records of
    //  1008 bytes, not three
    tu_channel_pair (4096, 4096, &a, &b);
    s_kept_t kept [3];
    for (uint64_t index = 0; index < 2; index++) {
        s_send_pattern (a, 1000, index);
        s_view_and_hold (b, 1000, index, &kept [index]);
    }
    s_send_pattern (a, 1000, 2);
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, ENOBUFS);
    //  One let go: now it fits
    s_release_kept (&kept [0]);
    kept [2] = (s_kept_t) { .hold = shmipc_channel_hold (b, 0),
                            .data = (const uint8_t *) frames [0].data, .size = 1000, .seed = 2 };
    assert_non_null (kept [2].hold);
    shmipc_channel_recv_done (b);
    s_release_kept (&kept [1]);
    s_release_kept (&kept [2]);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);

    //  64 frames, however small; the 65th is refused, the message itself
    //  is fine (read it and let it go)
    tu_channel_pair (65536, 4096, &a, &b);
    s_kept_t many [SHMIPC_HOLDS_MAX];
    for (uint64_t index = 0; index < SHMIPC_HOLDS_MAX; index++) {
        s_send_pattern (a, 8, index);
        s_view_and_hold (b, 8, index, &many [index]);
    }
    s_send_pattern (a, 8, 99);
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, ENOBUFS);
    assert_true (tu_check (frames [0].data, 8, 99));
    shmipc_channel_recv_done (b);
    s_assert_kept (many, SHMIPC_HOLDS_MAX);
    //  Let them go, every other one first
    for (size_t index = 0; index < SHMIPC_HOLDS_MAX; index += 2)
        s_release_kept (&many [index]);
    for (size_t index = 1; index < SHMIPC_HOLDS_MAX; index += 2)
        s_release_kept (&many [index]);
    shmipc_hold_release (NULL);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);

    //  Nothing from a ring under 4 KiB
    tu_channel_pair (2048, 4096, &a, &b);
    s_send_pattern (a, 8, 1);
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, ENOBUFS);
    shmipc_channel_recv_done (b);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_hold_refuses_copies_empty_frames_and_no_frame (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    //  No message viewed: no frame to hold
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, EINVAL);
    //  Past the last frame, or an empty frame (nothing in the ring to keep)
    size_t sizes [] = { 10, 0 };
    uint8_t buffer [10];
    struct iovec frames_out [2];
    s_make_frames (frames_out, buffer, 2, sizes, 5);
    assert_int_equal (shmipc_channel_sendv (a, frames_out, 2, SHMIPC_DONTWAIT), 0);
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (nframes, 2);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 2));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 1));
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_recv_done (b);
    //  Done: nothing viewed any more
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, EINVAL);
    //  A message bigger than the ring arrives as a private copy
    size_t big = 3 * 4096;
    uint8_t *data = s_pattern (big, 6);
    shmipc_msg_t *msg = shmipc_msg_new ();
    while (shmipc_channel_send (a, data, big, SHMIPC_DONTWAIT)) {
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
    }
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (frames [0].size, big);
    errno = 0;
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_recv_done (b);
    shmipc_msg_destroy (&msg);
    free (data);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void *
s_release_in_thread (void *arg)
{
    s_release_kept ((s_kept_t *) arg);
    return NULL;
}

static void
test_channel_held_frames_outlive_the_channel_until_the_last_release (void **state)
{
    //  Threads' stacks and arenas cached first: not counted as ours
    assert_int_equal (tu_warm_threads (2), 0);
    tu_baseline_t baseline = tu_baseline ();
    int memfd_maps = tu_maps_with ("/memfd:shmipc");
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    s_kept_t kept [3];
    for (uint64_t index = 0; index < 3; index++) {
        s_send_pattern (a, 600, 50 + index);
        s_view_and_hold (b, 600, 50 + index, &kept [index]);
    }
    //  Both ends gone: the frames are still there, mapped
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    s_assert_kept (kept, 3);
    assert_true (tu_maps_with ("/memfd:shmipc") > memfd_maps);
    //  Let go from another thread, then from this one: still mapped until
    //  the last
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_release_in_thread, &kept [1]), 0);
    assert_int_equal (pthread_join (thread, NULL), 0);
    s_release_kept (&kept [0]);
    s_assert_kept (kept, 3);
    assert_true (tu_maps_with ("/memfd:shmipc") > memfd_maps);
    s_release_kept (&kept [2]);
    //  The last one unmapped and closed everything
    assert_int_equal (tu_maps_with ("/memfd:shmipc"), memfd_maps);
    tu_assert_baseline (baseline);
}

static void
test_channel_holds_some_frames_of_a_multiframe_message (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    size_t cap = 8192;
    tu_channel_pair (cap, 4096, &a, &b);
    size_t sizes [] = { 700, 0, 1200, 30, 900 };
    uint8_t buffer [700 + 1200 + 30 + 900];
    struct iovec frames_out [5];
    s_make_frames (frames_out, buffer, 5, sizes, 300);
    assert_int_equal (shmipc_channel_sendv (a, frames_out, 5, SHMIPC_DONTWAIT), 0);
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (nframes, 5);
    //  Frames 0, 2 and 4 kept; 1 (empty) cannot be; 3 is read and let be
    s_kept_t kept [3];
    size_t which [] = { 4, 0, 2 };
    for (size_t index = 0; index < 3; index++) {
        size_t frame = which [index];
        kept [index] = (s_kept_t) { .hold = shmipc_channel_hold (b, frame),
                                    .data = (const uint8_t *) frames [frame].data,
                                    .size = sizes [frame], .seed = 300 + frame };
        assert_non_null (kept [index].hold);
    }
    assert_null (shmipc_channel_hold (b, 1));
    assert_int_equal (errno, EAGAIN);
    assert_true (tu_check (frames [3].data, 30, 303));
    shmipc_channel_recv_done (b);
    //  The ring laps around them; then they go one by one, out of order
    uint64_t seed = 0;
    s_traffic (a, b, 10 * cap, &seed, kept, 3);
    s_release_kept (&kept [2]);
    s_traffic (a, b, 5 * cap, &seed, kept, 3);
    s_release_kept (&kept [0]);
    s_traffic (a, b, 5 * cap, &seed, kept, 3);
    s_release_kept (&kept [1]);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_streams_a_message_that_has_no_place_between_held_frames (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (8192, 4096, &a, &b);
    //  Four records of 2008 bytes from the start; the second and fourth
    //  held: the free runs are 2008 bytes, and 2168 round the end
    s_kept_t kept [2];
    for (uint64_t index = 0; index < 4; index++) {
        s_send_pattern (a, 2000, 10 + index);
        s_view_and_hold (b, 2000, 10 + index, index % 2 ? &kept [index / 2] : NULL);
    }
    //  A message the ring could take whole, but no free run can: it goes
    //  in chunks between the held frames, and arrives whole
    uint8_t *data = s_pattern (2500, 20);
    shmipc_msg_t *msg = shmipc_msg_new ();
    int rounds = 0;
    while (shmipc_channel_send (a, data, 2500, SHMIPC_DONTWAIT)) {
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_true (++rounds < 100);
    }
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (b, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (nframes, 1);
    assert_int_equal (frames [0].size, 2500);
    assert_true (tu_check (frames [0].data, 2500, 20));
    //  Reassembled from chunks: a copy, not in the ring
    assert_null (shmipc_channel_hold (b, 0));
    assert_int_equal (errno, EAGAIN);
    shmipc_channel_recv_done (b);
    s_assert_kept (kept, 2);
    //  Once they are let go, such a message goes whole again, in place
    s_release_kept (&kept [0]);
    s_release_kept (&kept [1]);
    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (shmipc_channel_send (a, data, 2500, SHMIPC_DONTWAIT), 0);
    s_view_and_hold (b, 2500, 20, &kept [0]);
    s_release_kept (&kept [0]);
    shmipc_msg_destroy (&msg);
    free (data);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_channel_pair_reports_names_capacities_and_readiness),
        cmocka_unit_test (test_channel_new_rounds_tiny_capacity_up_to_ring_minimum),
        cmocka_unit_test (test_channel_new_refuses_stream_socket_with_eprototype),
        cmocka_unit_test (test_channel_new_refuses_bad_name_and_capacity_with_einval),
        cmocka_unit_test (test_channel_handshake_times_out_with_etimedout_when_peer_is_silent),
        cmocka_unit_test (test_channel_blocking_recv_during_handshake_reports_etimedout),
        cmocka_unit_test (test_channel_handshake_fails_with_econnreset_when_peer_closes),
        cmocka_unit_test (test_channel_handshake_completes_through_any_first_call),
        cmocka_unit_test (test_channel_delivers_empty_one_byte_and_multiframe_messages),
        cmocka_unit_test (test_channel_wraps_at_every_offset_of_64_and_256_byte_rings),
        cmocka_unit_test (test_channel_streams_oversize_messages_from_every_offset),
        cmocka_unit_test (test_channel_oversize_send_resumes_only_with_the_same_message),
        cmocka_unit_test (test_channel_maxmsgsize_refuses_bigger_message_and_closes),
        cmocka_unit_test (test_channel_dontwait_send_fails_with_eagain_when_full_and_writes_nothing),
        cmocka_unit_test (test_channel_fd_becomes_readable_when_a_quarter_frees_after_eagain),
        cmocka_unit_test (test_channel_refused_sends_queue_nothing_outside_the_ring),
        cmocka_unit_test (test_channel_send_and_recv_timeouts_fail_with_eagain),
        cmocka_unit_test (test_channel_reader_waiting_to_send_releases_what_it_has_read),
        cmocka_unit_test (test_channel_deferred_messages_stay_invisible_until_flush),
        cmocka_unit_test (test_channel_flush_fails_with_epipe_once_peer_is_gone),
        cmocka_unit_test (test_channel_recv_vectored_returns_all_pending_up_to_max),
        cmocka_unit_test (test_channel_graceful_close_delivers_everything_then_econnreset),
        cmocka_unit_test (test_channel_ctrl_messages_round_trip_beside_data),
        cmocka_unit_test (test_channel_ctrl_window_limits_unread_messages),
        cmocka_unit_test (test_channel_ctrl_refuses_oversize_and_keeps_message_for_bigger_buffer),
        cmocka_unit_test (test_channel_fd_becomes_readable_when_message_arrives_after_eagain),
        cmocka_unit_test (test_channel_fd_is_not_readable_after_events_reported_everything),
        cmocka_unit_test (test_channel_events_reports_pollout_when_blocked_stream_can_go_on),
        cmocka_unit_test (test_channel_wake_fd_is_a_pipe_made_by_the_handshake_and_never_hangs_up),
        cmocka_unit_test (test_channel_wake_fd_exists_after_handshake_and_wakes_a_poller),
        cmocka_unit_test (test_channel_out_of_descriptors_for_the_peer_pipe_wakes_with_records),
        cmocka_unit_test (test_channel_without_wake_pipe_is_woken_by_records_and_wakes_through_the_peer_pipe),
        cmocka_unit_test (test_channel_ready_channel_holds_three_descriptors),
        cmocka_unit_test (test_channel_sends_no_wakeup_to_a_reader_that_keeps_up),
        cmocka_unit_test (test_channel_spin_option_still_receives_and_times_out),
        cmocka_unit_test (test_channel_held_frames_stay_intact_while_the_ring_laps),
        cmocka_unit_test (test_channel_events_driven_receives_leave_the_socket_to_events),
        cmocka_unit_test (test_channel_writer_never_stalls_on_frames_held_by_its_reader),
        cmocka_unit_test (test_channel_hold_fails_with_enobufs_past_the_share_or_64_frames),
        cmocka_unit_test (test_channel_hold_refuses_copies_empty_frames_and_no_frame),
        cmocka_unit_test (test_channel_held_frames_outlive_the_channel_until_the_last_release),
        cmocka_unit_test (test_channel_holds_some_frames_of_a_multiframe_message),
        cmocka_unit_test (test_channel_streams_a_message_that_has_no_place_between_held_frames),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
