/*  test_loans - the loan pool (src/loans.c) and loans over a channel
    (src/channel_lend.c, LOAN records in channel_rx.c), in one process:
    blocks taken, referenced and given back; the pool kept while blocks are
    out; a frame in a taken block crossing as an offset and read in the
    peer's read-only mapping of the pool; its block kept until the reader
    has released (and does not hold) the LOAN record and the writer has
    looked at its ring again; destroy with loans out; several threads.
    The plugin's loans (shmipc_frame_new...): test_plugin_loans.c.
*/
#include "testutil.h"
#include "shmipc_channel.h"
#include "shmipc_loans.h"
#include "shmipc_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define S_UNIT          SHMIPC_LOANS_UNIT
#define S_PATIENCE_MS   10000       //  Fail instead of hanging
#define S_POOL_NAME     "/memfd:shmipc:loans"

//  --------------------------------------------------------------------------
//  Helpers

//  Monotonic time in ms.
static int64_t
s_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

//  True if [data, data + size) lies in mappings of a loan pool with these
//  permissions ("r--s": a reader's; "rw-s": the owner's).
static bool
s_in_pool (const void *data, size_t size, const char *perms)
{
    return tu_in_mapping (data, size, S_POOL_NAME, perms);
}

//  Mappings of loan pools in this process.
static int
s_pool_maps (void)
{
    return tu_maps_with (S_POOL_NAME);
}

//  A new pool of units units, named as the plugin names its own (so that
//  S_POOL_NAME finds it).
static shmipc_loans_t *
s_pool_new (size_t units)
{
    shmipc_loans_t *pool = shmipc_loans_new ("loans", units * S_UNIT);
    assert_non_null (pool);
    return pool;
}

//  True if the whole pool (units units) can be taken now; gives it back.
static bool
s_pool_all_free (shmipc_loans_t *pool, size_t units)
{
    void *all = shmipc_loans_take (pool, units * S_UNIT);
    if (!all)
        return false;
    shmipc_loans_unref (pool, all);
    return true;
}

//  Take a block of size bytes and fill it from seed.
static void *
s_take_filled (shmipc_loans_t *pool, size_t size, uint64_t seed)
{
    void *data = shmipc_loans_take (pool, size);
    assert_non_null (data);
    tu_fill (data, size, seed);
    return data;
}

//  Let the reader give back what it has read: a look that finds nothing
//  releases everything consumed (the reader sleeps on nothing it keeps).
static void
s_reader_idles (shmipc_channel_t *reader)
{
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (reader, &frames, &nframes,
                                                SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
}

//  The writer looks at its ring space (and so collects returned loans).
static void
s_writer_looks (shmipc_channel_t *writer)
{
    assert_false (shmipc_channel_events (writer) & SHMIPC_POLLERR);
}

//  --------------------------------------------------------------------------
//  The pool

static void
test_pool_new_refuses_zero_and_oversize_and_rounds_up_to_units (void **state)
{
    errno = 0;
    assert_null (shmipc_loans_new ("loans", 0));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_loans_new ("loans", SHMIPC_LOANS_MAX + 1));
    assert_int_equal (errno, EINVAL);

    //  One byte asked: one whole unit
    shmipc_loans_t *pool = shmipc_loans_new ("loans", 1);
    assert_non_null (pool);
    void *block = shmipc_loans_take (pool, S_UNIT);
    assert_non_null (block);
    errno = 0;
    assert_null (shmipc_loans_take (pool, 1));
    assert_int_equal (errno, ENOBUFS);
    shmipc_loans_unref (pool, block);
    shmipc_loans_release (&pool);
    assert_null (pool);
}

static void
test_pool_segment_is_a_sealed_memfd_a_peer_can_map_read_only (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    shmipc_loans_t *pool = s_pool_new (8);
    assert_true (s_pool_maps () > maps_before);
    shmipc_segment_t *segment = shmipc_loans_segment (pool);
    assert_non_null (segment);
    assert_true (shmipc_segment_writable (segment));
    int fd = shmipc_segment_fd (segment);
    assert_int_equal (fcntl (fd, F_GET_SEALS), SHMIPC_SEGMENT_SEALS);

    uint8_t *block = (uint8_t *) s_take_filled (pool, 3 * S_UNIT, 7);
    assert_true (s_in_pool (block, 3 * S_UNIT, "rw-s"));
    //  Where the block lies in the data area, as a peer finds it
    int64_t offset = shmipc_loans_offset (pool, block, 3 * S_UNIT);
    assert_true (offset >= 0);
    assert_ptr_equal ((uint8_t *) shmipc_segment_data (segment) + SHMIPC_SEGMENT_HEADER
                      + offset, block);

    //  A peer's view: what channel_rx's s_map_pool does with the POOL's fd
    shmipc_segment_t *view = shmipc_segment_attach (
        fcntl (fd, F_DUPFD_CLOEXEC, 3), SHMIPC_SEGMENT_HEADER + S_UNIT,
        SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_MAX, SHMIPC_LOANS_KIND);
    assert_non_null (view);
    assert_false (shmipc_segment_writable (view));
    const uint8_t *seen = (const uint8_t *) shmipc_segment_data (view)
                        + SHMIPC_SEGMENT_HEADER + offset;
    assert_true (tu_check (seen, 3 * S_UNIT, 7));
    assert_true (s_in_pool (seen, 3 * S_UNIT, "r--s"));
    //  Written by the owner, seen by the peer at once (the same pages)
    block [100] ^= 0xff;
    assert_int_equal (seen [100], block [100]);
    shmipc_segment_destroy (&view);

    shmipc_loans_unref (pool, block);
    shmipc_loans_release (&pool);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_pool_take_and_unref_reuse_blocks_first_fit (void **state)
{
    shmipc_loans_t *pool = s_pool_new (16);
    uint8_t *first = (uint8_t *) shmipc_loans_take (pool, 1);
    uint8_t *second = (uint8_t *) shmipc_loans_take (pool, S_UNIT);
    uint8_t *third = (uint8_t *) shmipc_loans_take (pool, S_UNIT + 1);
    uint8_t *fourth = (uint8_t *) shmipc_loans_take (pool, 100);
    assert_non_null (first);
    assert_non_null (second);
    assert_non_null (third);
    assert_non_null (fourth);
    //  Whole units, side by side: 1, 1, 2, 1
    assert_int_equal (((uintptr_t) first) % S_UNIT, 0);
    assert_ptr_equal (second, first + S_UNIT);
    assert_ptr_equal (third, first + 2 * S_UNIT);
    assert_ptr_equal (fourth, first + 4 * S_UNIT);
    //  Every byte of a block is the caller's
    memset (third, 0xab, 2 * S_UNIT);

    //  A block given back is the first to be taken again
    shmipc_loans_unref (pool, second);
    assert_ptr_equal (shmipc_loans_take (pool, 10), second);
    //  A two-unit block does not fit in one free unit: it goes past
    shmipc_loans_unref (pool, first);
    assert_ptr_equal (shmipc_loans_take (pool, 2 * S_UNIT), first + 5 * S_UNIT);
    //  ... but fits where two neighbours came back
    shmipc_loans_unref (pool, second);
    assert_ptr_equal (shmipc_loans_take (pool, 2 * S_UNIT), first);

    shmipc_loans_unref (pool, first);
    shmipc_loans_unref (pool, third);
    shmipc_loans_unref (pool, fourth);
    shmipc_loans_unref (pool, first + 5 * S_UNIT);
    assert_true (s_pool_all_free (pool, 16));
    shmipc_loans_release (&pool);
}

static void
test_pool_exhaustion_gives_null_with_enobufs_and_recovers_after_unref (void **state)
{
    shmipc_loans_t *pool = s_pool_new (16);
    void *blocks [16];
    for (int index = 0; index < 16; index++) {
        blocks [index] = shmipc_loans_take (pool, S_UNIT);
        assert_non_null (blocks [index]);
    }
    errno = 0;
    assert_null (shmipc_loans_take (pool, 1));
    assert_int_equal (errno, ENOBUFS);
    //  More than the pool: never
    errno = 0;
    assert_null (shmipc_loans_take (pool, 17 * S_UNIT));
    assert_int_equal (errno, ENOBUFS);

    //  Every other block back: eight units free, but no two side by side
    for (int index = 0; index < 16; index += 2)
        shmipc_loans_unref (pool, blocks [index]);
    errno = 0;
    assert_null (shmipc_loans_take (pool, 2 * S_UNIT));
    assert_int_equal (errno, ENOBUFS);
    void *one = shmipc_loans_take (pool, S_UNIT);
    assert_ptr_equal (one, blocks [0]);
    shmipc_loans_unref (pool, one);
    //  A neighbour back: a run of three
    shmipc_loans_unref (pool, blocks [5]);
    assert_ptr_equal (shmipc_loans_take (pool, 3 * S_UNIT), blocks [4]);
    shmipc_loans_unref (pool, blocks [4]);

    for (int index = 1; index < 16; index += 2)
        if (index != 5)
            shmipc_loans_unref (pool, blocks [index]);
    assert_true (s_pool_all_free (pool, 16));
    //  Any size, up to the whole pool, after all that
    void *all = shmipc_loans_take (pool, 16 * S_UNIT);
    assert_ptr_equal (all, blocks [0]);
    shmipc_loans_unref (pool, all);
    shmipc_loans_release (&pool);
}

static void
test_pool_ref_keeps_a_block_until_every_reference_is_dropped (void **state)
{
    shmipc_loans_t *pool = s_pool_new (4);
    uint8_t *block = (uint8_t *) shmipc_loans_take (pool, 4 * S_UNIT);
    assert_non_null (block);
    assert_int_equal (shmipc_loans_ref (pool, block), 0);
    assert_int_equal (shmipc_loans_ref (pool, block), 0);
    shmipc_loans_unref (pool, block);
    shmipc_loans_unref (pool, block);
    //  One reference left: still taken
    assert_null (shmipc_loans_take (pool, 1));
    assert_int_equal (shmipc_loans_offset (pool, block, 1), 0);
    shmipc_loans_unref (pool, block);
    assert_true (s_pool_all_free (pool, 4));

    //  Only the start of a taken block can be referenced
    block = (uint8_t *) shmipc_loans_take (pool, 2 * S_UNIT);
    assert_non_null (block);
    uint8_t local [16];
    const void *wrong [] = { block + 1, block + S_UNIT, block + 2 * S_UNIT,
                             block - 1, local, NULL };
    for (size_t index = 0; index < sizeof wrong / sizeof wrong [0]; index++) {
        errno = 0;
        assert_int_equal (shmipc_loans_ref (pool, wrong [index]), -1);
        assert_int_equal (errno, EINVAL);
    }
    shmipc_loans_unref (pool, block);
    //  A block given back cannot be referenced again
    errno = 0;
    assert_int_equal (shmipc_loans_ref (pool, block), -1);
    assert_int_equal (errno, EINVAL);
    shmipc_loans_release (&pool);
}

static void
test_pool_offset_answers_only_for_taken_blocks_and_sizes_within_them (void **state)
{
    shmipc_loans_t *pool = s_pool_new (8);
    uint8_t *first = (uint8_t *) shmipc_loans_take (pool, S_UNIT);
    uint8_t *second = (uint8_t *) shmipc_loans_take (pool, 3 * S_UNIT - 10);
    assert_non_null (first);
    assert_non_null (second);
    assert_int_equal (shmipc_loans_offset (pool, first, 1), 0);
    assert_int_equal (shmipc_loans_offset (pool, first, S_UNIT), 0);
    assert_int_equal (shmipc_loans_offset (pool, second, 1), S_UNIT);
    //  The whole block counts, not just what was asked for
    assert_int_equal (shmipc_loans_offset (pool, second, 3 * S_UNIT), S_UNIT);

    //  Past its block
    assert_int_equal (shmipc_loans_offset (pool, first, S_UNIT + 1), -1);
    assert_int_equal (shmipc_loans_offset (pool, second, 3 * S_UNIT + 1), -1);
    assert_int_equal (shmipc_loans_offset (pool, second, SIZE_MAX), -1);
    //  Not the start of a block, a free unit, or not the pool at all
    assert_int_equal (shmipc_loans_offset (pool, second + 8, 8), -1);
    assert_int_equal (shmipc_loans_offset (pool, second + S_UNIT, 8), -1);
    assert_int_equal (shmipc_loans_offset (pool, first + 4 * S_UNIT, 8), -1);
    assert_int_equal (shmipc_loans_offset (pool, first + 8 * S_UNIT, 8), -1);
    assert_int_equal (shmipc_loans_offset (pool, first - S_UNIT, 8), -1);
    uint8_t local [64];
    uint8_t *heap = (uint8_t *) malloc (S_UNIT);
    assert_non_null (heap);
    assert_int_equal (shmipc_loans_offset (pool, local, sizeof local), -1);
    assert_int_equal (shmipc_loans_offset (pool, heap, S_UNIT), -1);
    assert_int_equal (shmipc_loans_offset (pool, NULL, 0), -1);
    free (heap);
    //  The segment's header, before the data area
    const uint8_t *header = (const uint8_t *) shmipc_segment_data (shmipc_loans_segment (pool));
    assert_int_equal (shmipc_loans_offset (pool, header, 8), -1);

    //  Given back: no longer a loan
    shmipc_loans_unref (pool, first);
    assert_int_equal (shmipc_loans_offset (pool, first, 1), -1);
    assert_int_equal (shmipc_loans_offset (pool, second, 1), S_UNIT);
    shmipc_loans_unref (pool, second);
    assert_int_equal (shmipc_loans_offset (pool, second, 1), -1);
    shmipc_loans_release (&pool);
}

static void
test_pool_released_with_blocks_out_lives_until_the_last_unref (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    shmipc_loans_t *pool = s_pool_new (8);
    int maps_with_pool = s_pool_maps ();
    assert_true (maps_with_pool > maps_before);
    uint8_t *first = (uint8_t *) s_take_filled (pool, S_UNIT, 1);
    uint8_t *second = (uint8_t *) s_take_filled (pool, 2 * S_UNIT, 2);
    assert_int_equal (shmipc_loans_ref (pool, second), 0);

    //  The last holder lets go: the blocks out keep the pool
    shmipc_loans_t *handle = pool;
    shmipc_loans_release (&pool);
    assert_null (pool);
    assert_int_equal (s_pool_maps (), maps_with_pool);
    assert_true (tu_check (first, S_UNIT, 1));
    assert_true (tu_check (second, 2 * S_UNIT, 2));
    memset (first, 0x5a, S_UNIT);              //  Still the caller's memory

    shmipc_loans_unref (handle, first);
    assert_int_equal (s_pool_maps (), maps_with_pool);
    shmipc_loans_unref (handle, second);
    assert_int_equal (s_pool_maps (), maps_with_pool);
    assert_true (tu_check (second, 2 * S_UNIT, 2));
    //  The last reference of the last block: the pool goes
    shmipc_loans_unref (handle, second);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_pool_lives_until_every_holder_has_released_it (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    shmipc_loans_t *pool = s_pool_new (4);
    int maps_with_pool = s_pool_maps ();
    shmipc_loans_t *other = shmipc_loans_share (pool);
    assert_ptr_equal (other, pool);
    shmipc_loans_t *third = shmipc_loans_share (pool);
    shmipc_loans_release (&pool);
    shmipc_loans_release (&third);
    assert_int_equal (s_pool_maps (), maps_with_pool);
    void *block = s_take_filled (other, S_UNIT, 3);
    shmipc_loans_unref (other, block);
    shmipc_loans_release (&other);
    assert_int_equal (s_pool_maps (), maps_before);
    //  Releasing NULL does nothing
    shmipc_loans_release (&other);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Loans over a channel

//  The pool's units in the channel tests.
#define S_UNITS     64

//  A channel pair and a pool the client (a) lends from.
typedef struct {
    shmipc_channel_t *a;        //  Writer: lends from pool
    shmipc_channel_t *b;        //  Reader
    shmipc_loans_t *pool;       //  Our holder's reference
} s_lend_t;

static s_lend_t
s_lend_new (size_t capacity)
{
    s_lend_t lend;
    tu_channel_pair (capacity, capacity, &lend.a, &lend.b);
    lend.pool = s_pool_new (S_UNITS);
    shmipc_channel_set_loans (lend.a, lend.pool);
    return lend;
}

static void
s_lend_destroy (s_lend_t *lend)
{
    shmipc_channel_destroy (&lend->a);
    shmipc_channel_destroy (&lend->b);
    shmipc_loans_release (&lend->pool);
}

//  Send one frame of size bytes at data.
static int
s_send (shmipc_channel_t *channel, const void *data, size_t size, int flags)
{
    struct iovec frame = { (void *) data, size };
    return shmipc_channel_sendv (channel, &frame, 1, flags);
}

//  Lend a block of size bytes filled from seed, a message of its own, and
//  let go of it as the application does (ZeroMQ frees the message): the
//  channel lends it on until it comes back.
static void
s_send_loan (s_lend_t *lend, size_t size, uint64_t seed)
{
    void *data = s_take_filled (lend->pool, size, seed);
    assert_int_equal (s_send (lend->a, data, size, SHMIPC_DONTWAIT), 0);
    shmipc_loans_unref (lend->pool, data);
}

//  Receive a message in place and hold it: returns the hold, and in *data
//  where its first frame lies.
static shmipc_hold_t *
s_recv_held (shmipc_channel_t *reader, const void **data)
{
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (reader, &frames, &nframes, 0), 0);
    shmipc_hold_t *hold = shmipc_channel_hold (reader, 0);
    assert_non_null (hold);
    *data = frames [0].data;
    shmipc_channel_recv_done (reader);
    return hold;
}

static void
test_channel_sends_a_loaned_frame_as_an_offset_read_in_the_peers_read_only_pool (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    //  A ring of 4 KiB: a 200 KiB frame could only stream through it, in
    //  many calls; as a loan it is one small record
    s_lend_t lend = s_lend_new (4096);
    int maps_sender = s_pool_maps ();
    size_t size = 200 * 1024 + 13;
    uint8_t *data = (uint8_t *) s_take_filled (lend.pool, size, 42);
    assert_int_equal (s_send (lend.a, data, size, SHMIPC_DONTWAIT), 0);

    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (lend.b, &frames, &nframes, 0), 0);
    assert_int_equal (nframes, 1);
    assert_int_equal (frames [0].size, size);
    assert_true (tu_check (frames [0].data, size, 42));
    //  In the reader's own mapping of the pool, read-only: not the ring,
    //  not the writer's mapping
    assert_ptr_not_equal (frames [0].data, data);
    assert_true (s_in_pool (frames [0].data, size, "r--s"));
    assert_true (s_in_pool (data, size, "rw-s"));
    //  The same pages: the reader sees what the writer writes there
    data [size / 2] ^= 0x55;
    assert_int_equal (((const uint8_t *) frames [0].data) [size / 2], data [size / 2]);
    data [size / 2] ^= 0x55;
    assert_true (s_pool_maps () > maps_sender);
    shmipc_channel_recv_done (lend.b);

    shmipc_channel_stats_t stats;
    shmipc_channel_stats (lend.a, &stats);
    assert_int_equal (stats.msgs_sent, 1);
    assert_int_equal (stats.bytes_sent, size);
    shmipc_channel_stats (lend.b, &stats);
    assert_int_equal (stats.msgs_received, 1);
    assert_int_equal (stats.bytes_received, size);

    //  The pool is mapped once by the reader, however many loans follow
    int maps_both = s_pool_maps ();
    for (int round = 0; round < 5; round++) {
        assert_int_equal (s_send (lend.a, data, size, SHMIPC_DONTWAIT), 0);
        assert_int_equal (shmipc_channel_recv_view (lend.b, &frames, &nframes, 0), 0);
        assert_true (tu_check (frames [0].data, size, 42));
        shmipc_channel_recv_done (lend.b);
    }
    assert_int_equal (s_pool_maps (), maps_both);

    shmipc_loans_unref (lend.pool, data);
    s_lend_destroy (&lend);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_channel_recv_copies_a_loaned_frame_out_of_the_pool (void **state)
{
    s_lend_t lend = s_lend_new (4096);
    size_t size = 3 * S_UNIT;
    void *data = s_take_filled (lend.pool, size, 9);
    assert_int_equal (s_send (lend.a, data, size, SHMIPC_DONTWAIT), 0);
    shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), size);
    assert_true (tu_check (shmipc_msg_data (msg, 0), size, 9));
    assert_false (tu_in_segment (shmipc_msg_data (msg, 0)));
    //  A copy: the writer's later changes do not reach it
    memset (data, 0, size);
    assert_true (tu_check (shmipc_msg_data (msg, 0), size, 9));
    shmipc_msg_destroy (&msg);
    shmipc_loans_unref (lend.pool, data);
    s_lend_destroy (&lend);
}

static void
test_channel_keeps_a_loaned_block_until_the_reader_released_it_and_the_writer_looked (void **state)
{
    s_lend_t lend = s_lend_new (4096);
    //  The whole pool in one block: any take shows whether it is back. The
    //  application has let go of it: the channel still lends the block
    s_send_loan (&lend, S_UNITS * S_UNIT, 5);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    s_writer_looks (lend.a);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));

    //  Read, but not done: the reader may still read it
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (lend.b, &frames, &nframes, 0), 0);
    s_writer_looks (lend.a);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    assert_true (tu_check (frames [0].data, S_UNITS * S_UNIT, 5));
    shmipc_channel_recv_done (lend.b);

    //  Released by the reader: back once the writer has looked
    s_reader_idles (lend.b);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    s_writer_looks (lend.a);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));

    //  And a send looks too
    s_send_loan (&lend, S_UNITS * S_UNIT, 6);
    shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
    assert_non_null (msg);
    assert_true (tu_check (shmipc_msg_data (msg, 0), S_UNITS * S_UNIT, 6));
    shmipc_msg_destroy (&msg);
    s_reader_idles (lend.b);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    char small [8] = "ping";
    assert_int_equal (shmipc_channel_send (lend.a, small, sizeof small, SHMIPC_DONTWAIT), 0);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    s_lend_destroy (&lend);
}

static void
test_channel_keeps_a_held_loan_until_hold_release_and_the_writer_looked (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_lend_t lend = s_lend_new (4096);
    size_t size = S_UNITS * S_UNIT;
    s_send_loan (&lend, size, 11);
    const void *held;
    shmipc_hold_t *hold = s_recv_held (lend.b, &held);
    s_reader_idles (lend.b);

    //  The ring flows on; the block stays out while held
    char small [64];
    for (int round = 0; round < 200; round++) {
        tu_fill (small, sizeof small, (uint64_t) round + 100);
        assert_int_equal (shmipc_channel_send (lend.a, small, sizeof small, SHMIPC_DONTWAIT), 0);
        shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
        assert_non_null (msg);
        assert_true (tu_check (shmipc_msg_data (msg, 0), sizeof small, (uint64_t) round + 100));
        shmipc_msg_destroy (&msg);
    }
    s_reader_idles (lend.b);
    s_writer_looks (lend.a);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    assert_true (tu_check (held, size, 11));
    assert_true (s_in_pool (held, size, "r--s"));

    //  Released: back at the writer's next look, not before
    shmipc_hold_release (hold);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    s_writer_looks (lend.a);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    s_lend_destroy (&lend);
    tu_assert_baseline (baseline);
}

static void
test_channel_holds_loans_in_any_order_each_block_back_on_its_own_release (void **state)
{
    s_lend_t lend = s_lend_new (4096);
    enum { COUNT = 8 };
    uint8_t *blocks [COUNT];
    shmipc_hold_t *holds [COUNT];
    for (int index = 0; index < COUNT; index++) {
        blocks [index] = (uint8_t *) s_take_filled (lend.pool, 8 * S_UNIT, (uint64_t) index);
        assert_int_equal (s_send (lend.a, blocks [index], 8 * S_UNIT, SHMIPC_DONTWAIT), 0);
        shmipc_loans_unref (lend.pool, blocks [index]);
    }
    for (int index = 0; index < COUNT; index++) {
        const shmipc_frame_t *frames;
        size_t nframes;
        assert_int_equal (shmipc_channel_recv_view (lend.b, &frames, &nframes, 0), 0);
        assert_true (tu_check (frames [0].data, 8 * S_UNIT, (uint64_t) index));
        holds [index] = shmipc_channel_hold (lend.b, 0);
        assert_non_null (holds [index]);
        shmipc_channel_recv_done (lend.b);
    }
    s_reader_idles (lend.b);
    //  Give them back out of order: each block comes back by itself
    const int order [COUNT] = { 5, 0, 7, 2, 3, 6, 1, 4 };
    for (int step = 0; step < COUNT; step++) {
        int which = order [step];
        s_writer_looks (lend.a);
        assert_int_equal (shmipc_loans_offset (lend.pool, blocks [which], 1),
                          blocks [which] - blocks [0]);
        shmipc_hold_release (holds [which]);
        s_writer_looks (lend.a);
        assert_int_equal (shmipc_loans_offset (lend.pool, blocks [which], 1), -1);
        for (int later = step + 1; later < COUNT; later++)
            assert_true (shmipc_loans_offset (lend.pool, blocks [order [later]], 1) >= 0);
    }
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    s_lend_destroy (&lend);
}

static void
test_channel_message_mixing_loaned_and_ordinary_frames_arrives_whole_in_order (void **state)
{
    s_lend_t lend = s_lend_new (64 * 1024);
    uint8_t *loan_a = (uint8_t *) s_take_filled (lend.pool, 5 * S_UNIT + 7, 1);
    uint8_t *loan_b = (uint8_t *) s_take_filled (lend.pool, S_UNIT, 3);
    uint8_t *loan_c = (uint8_t *) s_take_filled (lend.pool, 1, 5);
    uint8_t *loan_d = (uint8_t *) shmipc_loans_take (lend.pool, 2 * S_UNIT);
    assert_non_null (loan_d);
    tu_fill (loan_d + S_UNIT, 100, 7);
    uint8_t small [10], medium [3000];
    tu_fill (small, sizeof small, 0);
    tu_fill (medium, sizeof medium, 4);
    uint8_t *heap = (uint8_t *) malloc (20000);
    assert_non_null (heap);
    tu_fill (heap, 20000, 6);
    //  Loans (whole-block frames that start at a block): a, b, c. Not
    //  loans: ordinary memory, an empty frame, a frame inside a block but
    //  not at its start (d + unit)
    struct iovec frames [] = {
        { small, sizeof small },            //  0
        { loan_a, 5 * S_UNIT + 7 },         //  1  loan
        { NULL, 0 },                        //  2
        { loan_b, S_UNIT },                 //  3  loan
        { medium, sizeof medium },          //  4
        { loan_c, 1 },                      //  5  loan
        { loan_d + S_UNIT, 100 },           //  6
        { heap, 20000 },                    //  7
    };
    const uint64_t seeds [] = { 0, 1, 0, 3, 4, 5, 7, 6 };
    const bool loaned [] = { false, true, false, true, false, true, false, false };
    size_t count = sizeof frames / sizeof frames [0];

    for (int round = 0; round < 3; round++) {
        assert_int_equal (shmipc_channel_sendv (lend.a, frames, count, 0), 0);
        if (round < 2) {
            const shmipc_frame_t *views;
            size_t nviews;
            assert_int_equal (shmipc_channel_recv_view (lend.b, &views, &nviews, 0), 0);
            assert_int_equal (nviews, count);
            for (size_t index = 0; index < count; index++) {
                assert_int_equal (views [index].size, frames [index].iov_len);
                if (frames [index].iov_len)
                    assert_true (tu_check (views [index].data, views [index].size,
                                           seeds [index]));
                //  The first message lies whole in the ring: ordinary
                //  frames there, loans in the pool
                if (round == 0 && frames [index].iov_len) {
                    assert_int_equal (s_in_pool (views [index].data, views [index].size,
                                                 "r--s"), loaned [index]);
                    assert_true (tu_in_segment (views [index].data));
                }
            }
            shmipc_channel_recv_done (lend.b);
        }
        else {
            shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
            assert_non_null (msg);
            assert_int_equal (shmipc_msg_frames (msg), count);
            for (size_t index = 0; index < count; index++) {
                assert_int_equal (shmipc_msg_size (msg, index), frames [index].iov_len);
                if (frames [index].iov_len)
                    assert_true (tu_check (shmipc_msg_data (msg, index),
                                           frames [index].iov_len, seeds [index]));
            }
            shmipc_msg_destroy (&msg);
        }
    }
    s_reader_idles (lend.b);
    shmipc_loans_unref (lend.pool, loan_a);
    shmipc_loans_unref (lend.pool, loan_b);
    shmipc_loans_unref (lend.pool, loan_c);
    shmipc_loans_unref (lend.pool, loan_d);
    s_writer_looks (lend.a);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    free (heap);
    s_lend_destroy (&lend);
}

static void
test_channel_loan_records_wrap_at_every_offset_of_a_tiny_ring (void **state)
{
    //  A 64-byte ring: a LOAN record (24 bytes) lands at every offset,
    //  across the ring's end too, between ordinary messages of other sizes
    s_lend_t lend = s_lend_new (SHMIPC_RING_MIN);
    uint8_t *data = (uint8_t *) s_take_filled (lend.pool, 2 * S_UNIT, 31);
    uint8_t filler [40];
    for (size_t shift = 0; shift < 24; shift++) {
        size_t size = shift % 9;
        tu_fill (filler, size, shift);
        assert_int_equal (shmipc_channel_send (lend.a, filler, size, SHMIPC_DONTWAIT), 0);
        shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
        assert_non_null (msg);
        assert_int_equal (shmipc_msg_size (msg, 0), size);
        shmipc_msg_destroy (&msg);
        s_reader_idles (lend.b);

        assert_int_equal (s_send (lend.a, data, 2 * S_UNIT, SHMIPC_DONTWAIT), 0);
        const shmipc_frame_t *frames;
        size_t nframes;
        assert_int_equal (shmipc_channel_recv_view (lend.b, &frames, &nframes, 0), 0);
        assert_int_equal (frames [0].size, 2 * S_UNIT);
        assert_true (tu_check (frames [0].data, 2 * S_UNIT, 31));
        assert_true (s_in_pool (frames [0].data, 2 * S_UNIT, "r--s"));
        //  Every other one held across the next round
        shmipc_hold_t *hold = shift % 2 ? shmipc_channel_hold (lend.b, 0) : NULL;
        shmipc_channel_recv_done (lend.b);
        s_reader_idles (lend.b);
        if (hold) {
            assert_int_equal (shmipc_channel_send (lend.a, filler, 8, SHMIPC_DONTWAIT), 0);
            msg = shmipc_channel_recv (lend.b, 0);
            assert_non_null (msg);
            shmipc_msg_destroy (&msg);
            s_reader_idles (lend.b);
            shmipc_hold_release (hold);
        }
    }
    shmipc_loans_unref (lend.pool, data);
    s_writer_looks (lend.a);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    s_lend_destroy (&lend);
}

static void
test_channel_streams_a_loaned_frame_as_bytes_when_its_message_exceeds_the_ring (void **state)
{
    //  A message bigger than the ring goes in chunks, its loaned frames
    //  copied like any other: the channel keeps no reference to them
    s_lend_t lend = s_lend_new (4096);
    void *data = s_take_filled (lend.pool, 2 * S_UNIT, 21);
    uint8_t *big = (uint8_t *) malloc (10000);
    assert_non_null (big);
    tu_fill (big, 10000, 22);
    struct iovec frames [] = { { data, 2 * S_UNIT }, { big, 10000 } };
    //  The reader drains as the writer streams: two threads would do it;
    //  here the reader reads between non-blocking sends
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_non_null (msg);
    bool sent = false, received = false;
    for (int tries = 0; tries < 10000 && !(sent && received); tries++) {
        if (!sent) {
            int rc = shmipc_channel_sendv (lend.a, frames, 2, SHMIPC_DONTWAIT);
            if (rc == 0)
                sent = true;
            else
                assert_int_equal (errno, EAGAIN);
        }
        if (!received) {
            int rc = shmipc_channel_recv_into (lend.b, msg, SHMIPC_DONTWAIT);
            if (rc == 0)
                received = true;
            else
                assert_int_equal (errno, EAGAIN);
        }
    }
    assert_true (sent);
    assert_true (received);
    assert_int_equal (shmipc_msg_frames (msg), 2);
    assert_true (tu_check (shmipc_msg_data (msg, 0), 2 * S_UNIT, 21));
    assert_true (tu_check (shmipc_msg_data (msg, 1), 10000, 22));
    shmipc_msg_destroy (&msg);
    shmipc_loans_unref (lend.pool, data);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    free (big);
    s_lend_destroy (&lend);
}

static void
test_channel_destroy_gives_back_the_loans_that_came_back (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_lend_t lend = s_lend_new (4096);
    //  Loans read and released, but not yet collected by the writer
    for (int index = 0; index < 3; index++)
        s_send_loan (&lend, 4 * S_UNIT, (uint64_t) index);
    for (int index = 0; index < 3; index++) {
        shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
        assert_non_null (msg);
        shmipc_msg_destroy (&msg);
    }
    s_reader_idles (lend.b);
    assert_false (s_pool_all_free (lend.pool, S_UNITS));
    shmipc_channel_destroy (&lend.a);
    assert_true (s_pool_all_free (lend.pool, S_UNITS));
    s_lend_destroy (&lend);
    tu_assert_baseline (baseline);
}

static void
test_channel_destroy_never_lets_a_loan_the_reader_may_still_read_be_reused (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    s_lend_t lend = s_lend_new (4096);
    int maps_sender = s_pool_maps () - maps_before;
    //  Three loans sent: the first read and held, two not read yet
    for (int index = 0; index < 3; index++)
        s_send_loan (&lend, 4 * S_UNIT, (uint64_t) index);
    const void *held;
    shmipc_hold_t *hold = s_recv_held (lend.b, &held);

    //  The writer goes; its application lends on from the same pool,
    //  taking every block it can get and writing over it
    shmipc_channel_destroy (&lend.a);
    void *taken [S_UNITS];
    size_t ntaken = 0;
    void *block;
    while ((block = shmipc_loans_take (lend.pool, S_UNIT))) {
        memset (block, 0xee, S_UNIT);
        taken [ntaken++] = block;
    }
    //  The reader still delivers what the ring held, as sent, and its
    //  held frame is unchanged
    assert_true (tu_check (held, 4 * S_UNIT, 0));
    for (int index = 1; index < 3; index++) {
        shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
        assert_non_null (msg);
        assert_int_equal (shmipc_msg_size (msg, 0), 4 * S_UNIT);
        assert_true (tu_check (shmipc_msg_data (msg, 0), 4 * S_UNIT, (uint64_t) index));
        shmipc_msg_destroy (&msg);
    }
    for (size_t index = 0; index < ntaken; index++)
        shmipc_loans_unref (lend.pool, taken [index]);

    //  The pool's last holder lets go: gone from the writer's side; the
    //  reader's mapping stays while it holds a loan, then goes too
    int maps_reader_only = s_pool_maps () - maps_sender;
    assert_true (maps_reader_only > maps_before);
    shmipc_loans_release (&lend.pool);
    assert_int_equal (s_pool_maps (), maps_reader_only);
    assert_true (tu_check (held, 4 * S_UNIT, 0));
    shmipc_channel_destroy (&lend.b);
    assert_int_equal (s_pool_maps (), maps_reader_only);
    assert_true (tu_check (held, 4 * S_UNIT, 0));
    shmipc_hold_release (hold);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_channel_destroy_frees_a_pool_whose_other_holders_are_gone (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    s_lend_t lend = s_lend_new (4096);
    s_send_loan (&lend, S_UNIT, 1);
    //  Only the channel holds the pool now, and one block through its loan
    shmipc_loans_release (&lend.pool);
    assert_true (s_pool_maps () > maps_before);
    shmipc_msg_t *msg = shmipc_channel_recv (lend.b, 0);
    assert_non_null (msg);
    assert_true (tu_check (shmipc_msg_data (msg, 0), S_UNIT, 1));
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&lend.a);
    shmipc_channel_destroy (&lend.b);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_channel_lends_from_its_first_pool_only_once_the_peer_has_it (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int maps_before = s_pool_maps ();
    s_lend_t lend = s_lend_new (64 * 1024);
    shmipc_loans_t *second = s_pool_new (8);

    //  Before the peer has a pool, the latest one set counts
    shmipc_channel_set_loans (lend.a, second);
    shmipc_channel_set_loans (lend.a, lend.pool);
    uint8_t *first_block = (uint8_t *) s_take_filled (lend.pool, S_UNIT, 1);
    uint8_t *second_block = (uint8_t *) s_take_filled (second, S_UNIT, 2);
    struct iovec frames [] = { { first_block, S_UNIT }, { second_block, S_UNIT } };
    assert_int_equal (shmipc_channel_sendv (lend.a, frames, 2, 0), 0);
    const shmipc_frame_t *views;
    size_t nviews;
    assert_int_equal (shmipc_channel_recv_view (lend.b, &views, &nviews, 0), 0);
    assert_int_equal (nviews, 2);
    assert_true (tu_check (views [0].data, S_UNIT, 1));
    assert_true (tu_check (views [1].data, S_UNIT, 2));
    assert_true (s_in_pool (views [0].data, S_UNIT, "r--s"));
    assert_false (s_in_pool (views [1].data, S_UNIT, "r--s"));
    shmipc_channel_recv_done (lend.b);

    //  Once it has one, another is ignored (NULL too): the first lends on
    shmipc_channel_set_loans (lend.a, second);
    shmipc_channel_set_loans (lend.a, NULL);
    assert_int_equal (shmipc_channel_sendv (lend.a, frames, 2, 0), 0);
    assert_int_equal (shmipc_channel_recv_view (lend.b, &views, &nviews, 0), 0);
    assert_true (tu_check (views [0].data, S_UNIT, 1));
    assert_true (tu_check (views [1].data, S_UNIT, 2));
    assert_true (s_in_pool (views [0].data, S_UNIT, "r--s"));
    assert_false (s_in_pool (views [1].data, S_UNIT, "r--s"));
    shmipc_channel_recv_done (lend.b);

    //  The channel never held the second pool past its replacement
    shmipc_loans_unref (second, second_block);
    int maps_now = s_pool_maps ();
    shmipc_loans_release (&second);
    assert_true (s_pool_maps () < maps_now);

    shmipc_loans_unref (lend.pool, first_block);
    s_lend_destroy (&lend);
    assert_int_equal (s_pool_maps (), maps_before);
    tu_assert_baseline (baseline);
}

static void
test_channel_without_a_pool_sends_pool_memory_as_bytes (void **state)
{
    //  A channel never told about the pool copies such frames like any
    //  other, and its peer maps nothing
    shmipc_channel_t *a, *b;
    tu_channel_pair (64 * 1024, 64 * 1024, &a, &b);
    shmipc_loans_t *pool = s_pool_new (8);
    int maps_sender = s_pool_maps ();
    void *data = s_take_filled (pool, 2 * S_UNIT, 8);
    assert_int_equal (s_send (a, data, 2 * S_UNIT, 0), 0);
    const shmipc_frame_t *views;
    size_t nviews;
    assert_int_equal (shmipc_channel_recv_view (b, &views, &nviews, 0), 0);
    assert_true (tu_check (views [0].data, 2 * S_UNIT, 8));
    assert_false (s_in_pool (views [0].data, 2 * S_UNIT, "r--s"));
    shmipc_channel_recv_done (b);
    assert_int_equal (s_pool_maps (), maps_sender);
    shmipc_loans_unref (pool, data);
    assert_true (s_pool_all_free (pool, 8));
    shmipc_loans_release (&pool);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
}

//  --------------------------------------------------------------------------
//  Threads

typedef struct {
    shmipc_loans_t *pool;
    int id;
    int rounds;
    int failures;               //  Takes that found no room (allowed)
    int errors;                 //  Wrong answers (none allowed)
} s_worker_t;

static void *
s_worker (void *arg)
{
    s_worker_t *worker = (s_worker_t *) arg;
    uint64_t state = (uint64_t) worker->id * 7919 + 1;
    for (int round = 0; round < worker->rounds; round++) {
        size_t size = 1 + tu_random (&state) % (3 * S_UNIT);
        uint8_t *data = (uint8_t *) shmipc_loans_take (worker->pool, size);
        if (!data) {
            worker->failures++;
            if (errno != ENOBUFS)
                worker->errors++;
            continue;
        }
        uint8_t mark = (uint8_t) (worker->id + 1);
        memset (data, mark, size);
        if (shmipc_loans_offset (worker->pool, data, size) < 0)
            worker->errors++;
        if (shmipc_loans_ref (worker->pool, data))
            worker->errors++;
        shmipc_loans_unref (worker->pool, data);
        //  Nobody else may have written into our block meanwhile
        for (size_t index = 0; index < size; index += 97)
            if (data [index] != mark)
                worker->errors++;
        if (data [size - 1] != mark)
            worker->errors++;
        shmipc_loans_unref (worker->pool, data);
    }
    return NULL;
}

static void
test_pool_take_and_unref_from_several_threads_never_share_a_block (void **state)
{
    enum { WORKERS = 4 };
    //  Small enough that the threads compete for room
    shmipc_loans_t *pool = s_pool_new (8);
    pthread_t threads [WORKERS];
    s_worker_t workers [WORKERS];
    int rounds = (int) tu_scaled (20000, 200);
    for (int index = 0; index < WORKERS; index++) {
        workers [index] = (s_worker_t) { .pool = pool, .id = index, .rounds = rounds };
        assert_int_equal (pthread_create (&threads [index], NULL, s_worker,
                                          &workers [index]), 0);
    }
    for (int index = 0; index < WORKERS; index++) {
        assert_int_equal (pthread_join (threads [index], NULL), 0);
        assert_int_equal (workers [index].errors, 0);
        assert_true (workers [index].failures < rounds);
    }
    assert_true (s_pool_all_free (pool, 8));
    shmipc_loans_release (&pool);
}

//  The reading end of the threaded channel test: count messages, each one
//  frame patterned from its sequence number; every third one held (its
//  LOAN record in the hold table) until four more have come.
typedef struct {
    shmipc_channel_t *channel;
    int count;
    int received;
    int errors;
} s_reader_t;

static void *
s_reader (void *arg)
{
    s_reader_t *reader = (s_reader_t *) arg;
    shmipc_hold_t *held [4] = { NULL };
    while (reader->received < reader->count) {
        const shmipc_frame_t *frames;
        size_t nframes;
        if (shmipc_channel_recv_view (reader->channel, &frames, &nframes, 0)) {
            reader->errors++;
            break;
        }
        uint64_t seq = (uint64_t) reader->received;
        if (nframes != 1 || !tu_check (frames [0].data, frames [0].size, seq))
            reader->errors++;
        //  Every third message held until four more have come
        size_t slot = (size_t) reader->received % 4;
        shmipc_hold_release (held [slot]);
        held [slot] = reader->received % 3 == 0 ? shmipc_channel_hold (reader->channel, 0)
                                                 : NULL;
        shmipc_channel_recv_done (reader->channel);
        reader->received++;
    }
    for (size_t slot = 0; slot < 4; slot++)
        shmipc_hold_release (held [slot]);
    return NULL;
}

static void
test_channel_loans_between_threads_all_arrive_and_every_block_comes_back (void **state)
{
    //  A pool of four blocks: the writer often waits for blocks to come
    //  back through the reader's releases and hold releases
    enum { BLOCK = 4 * S_UNIT };
    shmipc_channel_t *a, *b;
    tu_channel_pair (4096, 4096, &a, &b);
    shmipc_loans_t *pool = s_pool_new (4 * BLOCK / S_UNIT);
    shmipc_channel_set_loans (a, pool);
    shmipc_channel_set_sndtimeo (a, S_PATIENCE_MS);
    shmipc_channel_set_rcvtimeo (b, S_PATIENCE_MS);
    int count = (int) tu_scaled (3000, 50);
    s_reader_t reader = { .channel = b, .count = count };
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_reader, &reader), 0);

    for (int seq = 0; seq < count; seq++) {
        size_t size = BLOCK - (size_t) (seq % 1000);
        void *data = shmipc_loans_take (pool, size);
        int64_t deadline = s_now_ms () + S_PATIENCE_MS;
        while (!data) {
            assert_int_equal (errno, ENOBUFS);
            assert_true (s_now_ms () < deadline);
            usleep (100);
            s_writer_looks (a);
            data = shmipc_loans_take (pool, size);
        }
        tu_fill (data, size, (uint64_t) seq);
        assert_int_equal (s_send (a, data, size, 0), 0);
        shmipc_loans_unref (pool, data);
    }
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (reader.errors, 0);
    assert_int_equal (reader.received, count);
    //  The reader gives back what it read when it next finds nothing (the
    //  thread has ended: this thread may use its channel now); everything
    //  is back after the writer's next look
    s_reader_idles (b);
    s_writer_looks (a);
    assert_true (s_pool_all_free (pool, 4 * BLOCK / S_UNIT));
    shmipc_loans_release (&pool);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_pool_new_refuses_zero_and_oversize_and_rounds_up_to_units),
        cmocka_unit_test (test_pool_segment_is_a_sealed_memfd_a_peer_can_map_read_only),
        cmocka_unit_test (test_pool_take_and_unref_reuse_blocks_first_fit),
        cmocka_unit_test (test_pool_exhaustion_gives_null_with_enobufs_and_recovers_after_unref),
        cmocka_unit_test (test_pool_ref_keeps_a_block_until_every_reference_is_dropped),
        cmocka_unit_test (test_pool_offset_answers_only_for_taken_blocks_and_sizes_within_them),
        cmocka_unit_test (test_pool_released_with_blocks_out_lives_until_the_last_unref),
        cmocka_unit_test (test_pool_lives_until_every_holder_has_released_it),
        cmocka_unit_test (test_channel_sends_a_loaned_frame_as_an_offset_read_in_the_peers_read_only_pool),
        cmocka_unit_test (test_channel_recv_copies_a_loaned_frame_out_of_the_pool),
        cmocka_unit_test (test_channel_keeps_a_loaned_block_until_the_reader_released_it_and_the_writer_looked),
        cmocka_unit_test (test_channel_keeps_a_held_loan_until_hold_release_and_the_writer_looked),
        cmocka_unit_test (test_channel_holds_loans_in_any_order_each_block_back_on_its_own_release),
        cmocka_unit_test (test_channel_message_mixing_loaned_and_ordinary_frames_arrives_whole_in_order),
        cmocka_unit_test (test_channel_loan_records_wrap_at_every_offset_of_a_tiny_ring),
        cmocka_unit_test (test_channel_streams_a_loaned_frame_as_bytes_when_its_message_exceeds_the_ring),
        cmocka_unit_test (test_channel_destroy_gives_back_the_loans_that_came_back),
        cmocka_unit_test (test_channel_destroy_never_lets_a_loan_the_reader_may_still_read_be_reused),
        cmocka_unit_test (test_channel_destroy_frees_a_pool_whose_other_holders_are_gone),
        cmocka_unit_test (test_channel_lends_from_its_first_pool_only_once_the_peer_has_it),
        cmocka_unit_test (test_channel_without_a_pool_sends_pool_memory_as_bytes),
        cmocka_unit_test (test_pool_take_and_unref_from_several_threads_never_share_a_block),
        cmocka_unit_test (test_channel_loans_between_threads_all_arrive_and_every_block_comes_back),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
