/*  =========================================================================
    test_plugin_zerocopy - zero-copy receive (shmipc_set_zerocopy,
    SHMIPC_ZEROCOPY=1): large frames reach the application in place, in the
    peer's read-only ring; small ones, and any past the holds' limits, are
    copied; held frames never stall the connection, are never written over,
    outlive their socket and their peer, and go back in any order

    Owns the sockets, frames and helper processes of each test; every test
    ends with its descriptors, mappings and threads back to where they were.
    Where a frame's bytes lie is read from /proc/self/maps: a lent frame is
    in a mapping of a shmipc segment ("/memfd:shmipc:..."), read-only and
    shared ("r--s"); a copied one is not in any segment.
    =========================================================================
*/

#include "testutil_plugin.h"

#include <inttypes.h>

#define S_KIB           1024
#define S_LEND_MIN      (64 * S_KIB)    //  Smallest frame lent (plugin/peer_pumps.c)
#define S_HOLDS_MAX     64              //  Most frames held at once

//  --------------------------------------------------------------------------
//  Where bytes lie

//  True if size bytes at data lie in read-only, shared mappings of a
//  shmipc segment: the frame is lent, in the peer's ring (a mirrored ring
//  maps its data area twice, side by side: both mappings are the
//  segment's, both read-only).
static bool
s_is_lent (const void *data, size_t size)
{
    return tu_in_mapping (data, size, TU_SEGMENT_MAPPING, "r--s");
}

//  The mappings of shmipc segments in this process, as /proc/self/maps
//  showed them at the last look: a stream asks about thousands of frames
//  (s_is_lent_known). Forgotten whenever a test may have unmapped one (a
//  socket destroyed, a peer gone), so that an address a segment no longer
//  covers is never taken for its.
#define S_SEGMAPS_MAX   1024

typedef struct {
    uintptr_t start;            //  First byte
    uintptr_t end;              //  Past the last byte
    bool read_only;             //  "r--s": read-only and shared (a
                                //  peer's segment, as we map it)
} s_segmap_t;

static s_segmap_t s_segmaps [S_SEGMAPS_MAX];
static size_t s_nsegmaps;
static bool s_segmaps_loaded;

static void
s_segmaps_forget (void)
{
    s_nsegmaps = 0;
    s_segmaps_loaded = false;
}

//  Look at /proc/self/maps again: read whole, parsed by hand (a frame may
//  be looked up thousands of times in a test, and sscanf for every line
//  of the file is slow under ThreadSanitizer).
static void
s_segmaps_load (void)
{
    int fd = open ("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    assert_true (fd >= 0);
    size_t size = 0, room = 64 * S_KIB;
    char *text = (char *) malloc (room);
    assert_non_null (text);
    while (true) {
        if (room - size < 4096) {
            room *= 2;
            text = (char *) realloc (text, room);
            assert_non_null (text);
        }
        ssize_t got = read (fd, text + size, room - size - 1);
        assert_true (got >= 0);
        if (got == 0)
            break;
        size += (size_t) got;
    }
    close (fd);
    text [size] = 0;
    s_nsegmaps = 0;
    s_segmaps_loaded = true;
    char *line = text;
    while (*line) {
        //  start-end perms offset dev inode [name]
        char *next = strchr (line, '\n');
        if (next)
            *next++ = 0;
        else
            next = line + strlen (line);
        if (strstr (line, TU_SEGMENT_MAPPING)) {
            char *cursor;
            uintptr_t start = (uintptr_t) strtoull (line, &cursor, 16);
            uintptr_t end = (uintptr_t) strtoull (cursor + 1, &cursor, 16);
            assert_true (s_nsegmaps < S_SEGMAPS_MAX);
            s_segmaps [s_nsegmaps++] = (s_segmap_t) {
                start, end, strncmp (cursor + 1, "r--s", 4) == 0 };
        }
        line = next;
    }
    free (text);
}

//  Return the segment mapping known to hold address, or NULL.
static const s_segmap_t *
s_segmap_of (const void *address)
{
    uintptr_t target = (uintptr_t) address;
    for (size_t index = 0; index < s_nsegmaps; index++)
        if (target >= s_segmaps [index].start && target < s_segmaps [index].end)
            return &s_segmaps [index];
    return NULL;
}

//  s_is_lent, from what we know (looked up once): for a stream over one
//  connection, during which no segment is mapped or unmapped.
static bool
s_is_lent_known (const void *data, size_t size)
{
    if (!s_segmaps_loaded)
        s_segmaps_load ();
    const s_segmap_t *first_map = s_segmap_of (data);
    const s_segmap_t *last_map = s_segmap_of ((const uint8_t *) data + (size ? size - 1 : 0));
    return first_map && last_map && first_map->read_only && last_map->read_only;
}

//  Destroy a socket; its segments may be unmapped.
static void
s_sock_destroy (zsock_t **sock_p)
{
    shmipc_sock_destroy (sock_p);
    s_segmaps_forget ();
}

//  --------------------------------------------------------------------------
//  A PUSH -> PULL pair over shm://, the PULL with zero-copy receive or not

typedef struct {
    zsock_t *push;
    zsock_t *pull;
} s_pair_t;

//  push_capacity: the sender's ring (0: the default), which bounds what the
//  receiver may hold. pull_zerocopy: < 0 leaves the socket's default.
static s_pair_t
s_pair_new (size_t push_capacity, int pull_zerocopy)
{
    s_pair_t pair;
    pair.pull = pt_sock (ZMQ_PULL);
    if (pull_zerocopy >= 0)
        assert_int_equal (shmipc_set_zerocopy (pair.pull, pull_zerocopy != 0), 0);
    char endpoint [128];
    pt_bind (pair.pull, &pt_shm, endpoint, sizeof endpoint);
    pair.push = pt_sock (ZMQ_PUSH);
    if (push_capacity)
        assert_int_equal (shmipc_set_capacity (pair.push, push_capacity), 0);
    pt_connect (pair.push, endpoint);
    pt_wait_peers (pair.pull, 1);
    return pair;
}

static void
s_pair_destroy (s_pair_t *pair)
{
    s_sock_destroy (&pair->push);
    s_sock_destroy (&pair->pull);
}

//  Send one frame of size bytes filled from seed.
static void
s_send_one (zsock_t *sock, size_t size, uint64_t seed)
{
    pt_send_frames (sock, &size, 1, seed);
}

//  Receive one single-frame message; assert its size and content.
static zframe_t *
s_recv_one (zsock_t *sock, size_t size, uint64_t seed)
{
    zframe_t *frame = zframe_recv (sock);
    assert_non_null (frame);
    assert_false (zframe_more (frame));
    assert_int_equal (zframe_size (frame), size);
    assert_true (tu_check (zframe_data (frame), size, tu_frame_seed (seed, 0)));
    return frame;
}

//  Send, receive and check one frame, and say whether it came lent.
static zframe_t *
s_round_trip (s_pair_t *pair, size_t size, uint64_t seed, bool *lent)
{
    s_send_one (pair->push, size, seed);
    zframe_t *frame = s_recv_one (pair->pull, size, seed);
    *lent = s_is_lent (zframe_data (frame), size);
    return frame;
}

//  --------------------------------------------------------------------------
//  Messages of a few frames, small and large, their sizes drawn from seq

#define S_FRAMES_MAX    4

static size_t
s_sizes_of (uint64_t seq, size_t *sizes)
{
    uint64_t state = seq * 0x9E3779B97F4A7C15ULL + 7;
    size_t nframes = 1 + (size_t) (tu_random (&state) % S_FRAMES_MAX);
    for (size_t index = 0; index < nframes; index++) {
        uint64_t draw = tu_random (&state);
        switch (draw % 4) {
            case 0:  sizes [index] = (size_t) (draw >> 8) % 2000; break;
            case 1:  sizes [index] = S_LEND_MIN - 8 + (size_t) (draw >> 8) % 16; break;
            default: sizes [index] = S_LEND_MIN + (size_t) (draw >> 8) % (200 * S_KIB);
        }
    }
    return nframes;
}

//  A PUSH in its own thread that connects to an endpoint and sends count
//  messages shaped by s_sizes_of, seeds first .. first + count - 1, then
//  reports how many went: "i" on its pipe; destroys its socket at $TERM.
typedef struct {
    const char *endpoint;
    size_t capacity;
    uint64_t first;
    long count;
} s_source_args_t;

static void
s_source (zsock_t *pipe, void *args)
{
    s_source_args_t *source = (s_source_args_t *) args;
    zsock_t *push = zsock_new (ZMQ_PUSH);
    zsock_set_sndtimeo (push, PT_PATIENCE_MS);
    //  zactor_new waits for this signal; a failure shows as fewer sent
    int rc = shmipc_set_capacity (push, source->capacity);
    if (rc == 0)
        rc = shmipc_connect (push, "%s", source->endpoint);
    zsock_signal (pipe, 0);
    long sent = 0;
    void *handle = zsock_resolve (push);
    zmq_msg_t frame;
    while (rc == 0 && sent < source->count) {
        uint64_t seq = source->first + (uint64_t) sent;
        size_t sizes [S_FRAMES_MAX];
        size_t nframes = s_sizes_of (seq, sizes);
        for (size_t index = 0; index < nframes && rc == 0; index++) {
            if (zmq_msg_init_size (&frame, sizes [index])) {
                rc = -1;
                break;
            }
            tu_fill (zmq_msg_data (&frame), sizes [index], tu_frame_seed (seq, index));
            if (zmq_msg_send (&frame, handle, index + 1 < nframes ? ZMQ_SNDMORE : 0) < 0) {
                zmq_msg_close (&frame);
                rc = -1;
            }
        }
        if (rc == 0)
            sent++;
    }
    zsock_send (pipe, "i", (int) sent);
    //  The socket stays until $TERM: the receiver, slow under a sanitizer,
    //  may still be reading what waits in it (a linger would drop that)
    char *command = zstr_recv (pipe);
    free (command);
    shmipc_sock_destroy (&push);
}

//  Start an s_source with args and wait until pull has peers connections,
//  the source's among them: its segment is mapped before we look at them.
static zactor_t *
s_source_start (s_source_args_t *args, zsock_t *pull, int peers)
{
    zactor_t *source = zactor_new (s_source, args);
    assert_non_null (source);
    pt_wait_peers (pull, peers);
    s_segmaps_forget ();
    return source;
}

//  Assert that the source sent all count messages.
static void
s_source_sent (zactor_t *source, long count)
{
    int sent = -1;
    assert_int_equal (zsock_recv (source, "i", &sent), 0);
    assert_int_equal (sent, count);
}

//  A PULL with zero-copy receive for a stream, bound to a fresh shm://
//  endpoint (written to endpoint): few messages wait in it, so fewer
//  frames are held on the way and more are left to lend.
static zsock_t *
s_stream_pull (char *endpoint, size_t size)
{
    zsock_t *pull = pt_sock (ZMQ_PULL);
    zsock_set_rcvhwm (pull, 2);
    assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
    pt_bind (pull, &pt_shm, endpoint, size);
    return pull;
}

//  A frame kept by a test, and the seed its bytes were filled from.
typedef struct {
    zframe_t *frame;
    uint64_t seed;
} s_held_t;

//  Check that a kept frame is as it came, and free it.
static void
s_held_free (s_held_t *held)
{
    assert_true (tu_check (zframe_data (held->frame), zframe_size (held->frame),
                           held->seed));
    zframe_destroy (&held->frame);
}

//  Receive message seq as s_sizes_of shapes it and check it (one
//  connection: s_is_lent_known tells lent frames). Into keep
//  (if not NULL) go its frames that came lent, counted in *kept (the
//  caller destroys them); the others are destroyed. Returns how many of
//  its frames were large enough to be lent.
static size_t
s_expect (zsock_t *pull, uint64_t seq, s_held_t *keep, size_t *kept)
{
    size_t sizes [S_FRAMES_MAX];
    size_t nframes = s_sizes_of (seq, sizes);
    size_t large = 0;
    for (size_t index = 0; index < nframes; index++) {
        zframe_t *frame = zframe_recv (pull);
        if (!frame)
            fail_msg ("message %" PRIu64 " frame %zu of %zu: %s", seq, index, nframes,
                      zmq_strerror (zmq_errno ()));
        uint64_t seed = tu_frame_seed (seq, index);
        if (zframe_size (frame) != sizes [index]
        ||  !tu_check (zframe_data (frame), sizes [index], seed)
        ||  (zframe_more (frame) != 0) != (index + 1 < nframes))
            fail_msg ("message %" PRIu64 " frame %zu of %zu: %zu bytes (%zu expected) "
                      "wrong or out of order", seq, index, nframes, zframe_size (frame),
                      sizes [index]);
        bool lent = s_is_lent_known (zframe_data (frame), zframe_size (frame));
        if (sizes [index] < S_LEND_MIN)
            assert_false (lent);
        else
            large++;
        if (lent && keep)
            keep [(*kept)++] = (s_held_t) { frame, seed };
        else
            zframe_destroy (&frame);
    }
    return large;
}

//  --------------------------------------------------------------------------
//  The tests

//  Without shmipc_set_zerocopy (and without SHMIPC_ZEROCOPY) every frame
//  is copied out of the ring: none is lent, none lies in a segment.
static void
test_zerocopy_off_by_default_copies (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (0, -1);
    for (uint64_t seq = 0; seq < 8; seq++) {
        s_send_one (pair.push, 256 * S_KIB, seq);
        zframe_t *frame = s_recv_one (pair.pull, 256 * S_KIB, seq);
        assert_false (tu_in_segment (zframe_data (frame)));
        zframe_destroy (&frame);
    }
    assert_int_equal (pt_frames_lent (pair.pull), 0);
    //  Asked for off, it stays off
    assert_int_equal (shmipc_set_zerocopy (pair.pull, false), 0);
    s_send_one (pair.push, 256 * S_KIB, 99);
    zframe_t *frame = s_recv_one (pair.pull, 256 * S_KIB, 99);
    assert_false (tu_in_segment (zframe_data (frame)));
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pair.pull), 0);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  With zero-copy receive, frames of 64 KiB and up arrive in the peer's
//  ring, mapped read-only; smaller ones are copied. Messages that mix both
//  arrive whole, in order, with the right bytes, and frames_lent counts
//  exactly the large frames (one message in flight at a time: nothing
//  else is held, so no large frame is refused a hold).
static void
test_zerocopy_lends_large_frames_in_place (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (0, 1);
    //  One large frame
    s_send_one (pair.push, 256 * S_KIB, 1);
    zframe_t *frame = s_recv_one (pair.pull, 256 * S_KIB, 1);
    assert_true (s_is_lent (zframe_data (frame), zframe_size (frame)));
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pair.pull), 1);

    //  At the edge: 64 KiB is lent, a byte less is not; nor is an empty one
    s_send_one (pair.push, S_LEND_MIN, 2);
    frame = s_recv_one (pair.pull, S_LEND_MIN, 2);
    assert_true (s_is_lent (zframe_data (frame), zframe_size (frame)));
    zframe_destroy (&frame);
    s_send_one (pair.push, S_LEND_MIN - 1, 3);
    frame = s_recv_one (pair.pull, S_LEND_MIN - 1, 3);
    assert_false (tu_in_segment (zframe_data (frame)));
    zframe_destroy (&frame);
    s_send_one (pair.push, 0, 4);
    frame = s_recv_one (pair.pull, 0, 4);
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pair.pull), 2);

    //  Messages that mix small and large frames, over many laps of the ring
    //  (the large frames of each take less than half of it together)
    uint64_t lent = 2;
    static const size_t mixes [][7] = {
        { 10, S_LEND_MIN, 100, 300000, S_LEND_MIN - 1, 0, 70000 },
        { 200000, 5, 200000, 0, 0, 0, 0 },
        { 0, 1, 2, 3, 4, 5, 6 },
        { 100000, 100000, 100000, 100000, 100000, 7, 0 },
    };
    static const size_t counts [] = { 7, 3, 7, 7 };
    for (uint64_t seq = 100; seq < 140; seq++) {
        size_t mix = seq % 4;
        const size_t *sizes = mixes [mix];
        size_t nframes = counts [mix];
        pt_send_frames (pair.push, sizes, nframes, seq);
        for (size_t index = 0; index < nframes; index++) {
            frame = zframe_recv (pair.pull);
            assert_non_null (frame);
            assert_int_equal (zframe_size (frame), sizes [index]);
            assert_true (tu_check (zframe_data (frame), sizes [index],
                                   tu_frame_seed (seq, index)));
            assert_int_equal (zframe_more (frame) != 0, index + 1 < nframes);
            if (sizes [index] >= S_LEND_MIN) {
                assert_true (s_is_lent (zframe_data (frame), zframe_size (frame)));
                lent++;
            }
            else
            if (sizes [index] > 0)
                assert_false (tu_in_segment (zframe_data (frame)));
            zframe_destroy (&frame);
        }
        assert_int_equal (pt_frames_lent (pair.pull), lent);
    }
    //  The sender's own receive direction is not lent: it did not ask
    assert_int_equal (pt_frames_lent (pair.push), 0);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  Frames of 1 MiB from a 4 MiB ring are lent, two of them held at once
//  (half the ring, counted in frame bytes), a third then copied; a message
//  larger than the ring, streamed through it in pieces, is copied, and
//  arrives whole.
static void
test_zerocopy_lends_up_to_half_the_ring_and_copies_streamed_messages (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (4 << 20, 1);
    bool lent;
    zframe_t *first = s_round_trip (&pair, 1 << 20, 1, &lent);
    assert_true (lent);
    zframe_t *second = s_round_trip (&pair, 1 << 20, 2, &lent);
    assert_true (lent);
    zframe_t *frame = s_round_trip (&pair, 1 << 20, 3, &lent);
    assert_false (lent);
    zframe_destroy (&frame);
    assert_true (tu_check (zframe_data (first), 1 << 20, tu_frame_seed (1, 0)));
    assert_true (tu_check (zframe_data (second), 1 << 20, tu_frame_seed (2, 0)));
    zframe_destroy (&first);
    zframe_destroy (&second);
    frame = s_round_trip (&pair, 6 << 20, 4, &lent);
    assert_false (lent);
    assert_false (tu_in_segment (zframe_data (frame)));
    zframe_destroy (&frame);
    frame = s_round_trip (&pair, 1 << 20, 5, &lent);
    assert_true (lent);
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pair.pull), 3);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  Holds may take about half of the sender's ring: from a 128 KiB ring a
//  64 KiB frame is lent, but not a second one while the first is held, nor
//  frames of 80 KiB and more. They are copied; none waits.
static void
test_zerocopy_lends_at_most_half_of_a_small_ring (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (128 * S_KIB, 1);
    bool lent;
    zframe_t *held = s_round_trip (&pair, S_LEND_MIN, 1, &lent);
    assert_true (lent);
    zframe_t *frame = s_round_trip (&pair, S_LEND_MIN, 2, &lent);
    assert_false (lent);
    zframe_destroy (&frame);
    zframe_destroy (&held);
    for (uint64_t seq = 3; seq < 100; seq++) {
        size_t size = 80 * S_KIB + (size_t) (seq * 977) % (100 * S_KIB);
        frame = s_round_trip (&pair, size, seq, &lent);
        assert_false (lent);
        zframe_destroy (&frame);
    }
    frame = s_round_trip (&pair, S_LEND_MIN, 100, &lent);
    assert_true (lent);
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pair.pull), 2);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  shmipc_set_zerocopy applies to the socket's next binds and connects:
//  connections accepted on an endpoint bound before it was called copy;
//  those of a later bind, or a later connect, lend.
static void
test_zerocopy_applies_to_the_next_binds_and_connects (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    char before [128], after [128];
    pt_bind (pull, &pt_shm, before, sizeof before);
    assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
    pt_bind (pull, &pt_shm, after, sizeof after);
    s_pair_t old_bind = { pt_sock (ZMQ_PUSH), pull };
    pt_connect (old_bind.push, before);
    s_pair_t new_bind = { pt_sock (ZMQ_PUSH), pull };
    pt_connect (new_bind.push, after);
    pt_wait_peers (pull, 2);
    bool lent;
    zframe_t *frame = s_round_trip (&old_bind, 200000, 1, &lent);
    assert_false (lent);
    zframe_destroy (&frame);
    frame = s_round_trip (&new_bind, 200000, 2, &lent);
    assert_true (lent);
    zframe_destroy (&frame);

    //  A connect after it lends too
    zsock_t *bound = pt_sock (ZMQ_PUSH);
    char endpoint [128];
    pt_bind (bound, &pt_shm, endpoint, sizeof endpoint);
    pt_connect (pull, endpoint);
    pt_wait_peers (bound, 1);
    s_pair_t connected = { bound, pull };
    frame = s_round_trip (&connected, 200000, 3, &lent);
    assert_true (lent);
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (pull), 2);
    s_sock_destroy (&old_bind.push);
    s_sock_destroy (&new_bind.push);
    s_sock_destroy (&bound);
    s_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  Copies of a lent frame (zmq_msg_copy shares its data) keep it held:
//  its ring space goes back when the last of them is closed.
static void
test_copies_of_a_lent_frame_keep_it_held (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  Half of the 1 MiB ring holds one 300000-byte frame, not two
    s_pair_t pair = s_pair_new (1 << 20, 1);
    void *pull = zsock_resolve (pair.pull);
    zmq_msg_t original, copy, next;
    zmq_msg_init (&original);
    zmq_msg_init (&copy);
    zmq_msg_init (&next);
    s_send_one (pair.push, 300000, 1);
    assert_int_equal (zmq_msg_recv (&original, pull, 0), 300000);
    assert_true (s_is_lent (zmq_msg_data (&original), 300000));
    assert_int_equal (zmq_msg_copy (&copy, &original), 0);
    assert_ptr_equal (zmq_msg_data (&copy), zmq_msg_data (&original));
    zmq_msg_close (&original);
    //  The copy still holds it: the next one is copied
    s_send_one (pair.push, 300000, 2);
    assert_int_equal (zmq_msg_recv (&next, pull, 0), 300000);
    assert_false (s_is_lent (zmq_msg_data (&next), 300000));
    assert_true (tu_check (zmq_msg_data (&next), 300000, tu_frame_seed (2, 0)));
    assert_true (tu_check (zmq_msg_data (&copy), 300000, tu_frame_seed (1, 0)));
    zmq_msg_close (&copy);
    //  Now it is back: the next one is lent
    s_send_one (pair.push, 300000, 3);
    assert_int_equal (zmq_msg_recv (&next, pull, 0), 300000);
    assert_true (s_is_lent (zmq_msg_data (&next), 300000));
    assert_true (tu_check (zmq_msg_data (&next), 300000, tu_frame_seed (3, 0)));
    zmq_msg_close (&next);
    assert_int_equal (pt_frames_lent (pair.pull), 2);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  Frames the application keeps cost the sender only their own bytes: it
//  writes around them (every other frame of the first 40 is kept, so the
//  held ones are scattered over the ring), while fifty rings' worth of
//  messages of every shape stream past, all in order, all intact. The
//  held frames are never written over.
static void
test_held_frames_do_not_stall_the_connection (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    const size_t capacity = 4 << 20;
    char endpoint [128];
    zsock_t *pull = s_stream_pull (endpoint, sizeof endpoint);

    //  First, one at a time: 40 frames, every other one kept (lent: 20 of
    //  64 KiB are a third of the 2 MiB that may be held)
    zsock_t *push = pt_sock (ZMQ_PUSH);
    assert_int_equal (shmipc_set_capacity (push, capacity), 0);
    pt_connect (push, endpoint);
    s_pair_t pair = { push, pull };
    enum { S_KEEP = 20 };
    zframe_t *held [S_KEEP];
    for (int index = 0; index < 2 * S_KEEP; index++) {
        bool lent;
        zframe_t *frame = s_round_trip (&pair, S_LEND_MIN, 1000 + index, &lent);
        assert_true (lent);
        if (index % 2 == 0)
            held [index / 2] = frame;
        else
            zframe_destroy (&frame);
    }
    uint64_t lent_before = pt_frames_lent (pull);
    assert_int_equal (lent_before, 2 * S_KEEP);

    //  Then a stream, from another thread, of 50 rings' worth of bytes:
    //  messages of about 220 KiB on average
    long count = tu_scaled (50L * (long) capacity / (220 * S_KIB), 60);
    s_source_args_t args = { endpoint, capacity, 1, count };
    zactor_t *source = s_source_start (&args, pull, 2);
    size_t large = 0;
    for (long index = 0; index < count; index++)
        large += s_expect (pull, args.first + (uint64_t) index, NULL, NULL);
    s_source_sent (source, count);
    uint64_t lent_during = pt_frames_lent (pull) - lent_before;
    print_message ("    %ld messages streamed past %d held frames: %" PRIu64
                   " of %zu large frames lent\n", count, S_KEEP, lent_during, large);
    assert_true (lent_during > 0);

    //  The held frames are as they came
    for (int index = 0; index < S_KEEP; index++) {
        assert_int_equal (zframe_size (held [index]), S_LEND_MIN);
        assert_true (s_is_lent (zframe_data (held [index]), S_LEND_MIN));
        assert_true (tu_check (zframe_data (held [index]), S_LEND_MIN,
                               tu_frame_seed (1000 + (uint64_t) index * 2, 0)));
    }
    for (int index = 0; index < S_KEEP; index++)
        zframe_destroy (&held [index]);
    zactor_destroy (&source);
    s_segmaps_forget ();      //  Its socket is gone
    s_sock_destroy (&push);
    s_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  Past half the sender's ring, or past 64 frames, held at once, the next
//  large frames are copied; once the application frees one, frames are
//  lent again.
static void
test_frames_past_the_hold_limits_are_copied (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  Half of a 1 MiB ring, counted in frame bytes: five frames of 100000
    //  bytes fit in it, a sixth does not
    s_pair_t pair = s_pair_new (1 << 20, 1);
    zframe_t *held [S_HOLDS_MAX + 2];
    bool lent;
    for (int index = 0; index < 5; index++) {
        held [index] = s_round_trip (&pair, 100000, (uint64_t) index, &lent);
        assert_true (lent);
    }
    zframe_t *copied = s_round_trip (&pair, 100000, 5, &lent);
    assert_false (lent);
    zframe_destroy (&copied);
    assert_int_equal (pt_frames_lent (pair.pull), 5);
    zframe_destroy (&held [2]);
    held [2] = s_round_trip (&pair, 100000, 6, &lent);
    assert_true (lent);
    for (int index = 0; index < 5; index++)
        zframe_destroy (&held [index]);
    assert_int_equal (pt_frames_lent (pair.pull), 6);
    s_pair_destroy (&pair);

    //  64 frames of a 16 MiB ring (4 MiB of its 8 MiB): the 65th is copied
    pair = s_pair_new (16 << 20, 1);
    for (int index = 0; index < S_HOLDS_MAX; index++) {
        held [index] = s_round_trip (&pair, S_LEND_MIN, (uint64_t) index, &lent);
        assert_true (lent);
    }
    held [S_HOLDS_MAX] = s_round_trip (&pair, S_LEND_MIN, S_HOLDS_MAX, &lent);
    assert_false (lent);
    zframe_destroy (&held [S_HOLDS_MAX]);
    zframe_destroy (&held [17]);
    held [17] = s_round_trip (&pair, S_LEND_MIN, 1000, &lent);
    assert_true (lent);
    assert_int_equal (pt_frames_lent (pair.pull), S_HOLDS_MAX + 1);
    for (int index = 0; index < S_HOLDS_MAX; index++) {
        uint64_t seed = index == 17 ? 1000 : (uint64_t) index;
        assert_true (tu_check (zframe_data (held [index]), S_LEND_MIN,
                               tu_frame_seed (seed, 0)));
        zframe_destroy (&held [index]);
    }
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  A lent frame stays readable after both sockets are destroyed; its
//  segments stay mapped until it is freed, and no longer.
static void
test_frames_outlive_the_socket_and_the_peer (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    int segments = pt_segment_count ();
    s_pair_t pair = s_pair_new (0, 1);
    bool lent;
    zframe_t *frame = s_round_trip (&pair, 300000, 42, &lent);
    assert_true (lent);
    s_pair_destroy (&pair);
    //  Both sockets and their actors are gone; the frame still reads
    assert_true (pt_segment_count () > segments);
    assert_true (s_is_lent (zframe_data (frame), 300000));
    assert_true (tu_check (zframe_data (frame), 300000, tu_frame_seed (42, 0)));
    zframe_destroy (&frame);
    pt_assert_baseline (baseline);
}

//  The same with the peer in another process, killed while we hold its
//  frame: our mapping of its ring keeps the bytes.
static void
test_frames_outlive_a_killed_peer_process (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    int segments = pt_segment_count ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
    char endpoint [128], connect [130];
    pt_bind (pull, &pt_shm, endpoint, sizeof endpoint);
    snprintf (connect, sizeof connect, ">%s", endpoint);
    tu_child_t peer;
    pt_peer_start (&peer, PT_PEER, "pushloop", connect, "Z", "150000", "3", NULL);
    pt_peer_expect (&peer, "ready");
    zframe_t *frames [6];
    for (int index = 0; index < 6; index++) {
        frames [index] = zframe_recv (pull);
        assert_non_null (frames [index]);
    }
    //  The tagged messages: "Z:seq", then 150000 bytes filled from seq (all
    //  three held at once: less than half the 1 MiB ring)
    for (int index = 0; index < 3; index++) {
        assert_true (zframe_streq (frames [2 * index], index == 0 ? "Z:0"
                                   : index == 1 ? "Z:1" : "Z:2"));
        assert_true (s_is_lent (zframe_data (frames [2 * index + 1]), 150000));
    }
    assert_int_equal (tu_child_finish (&peer, SIGKILL), 128 + SIGKILL);
    //  Our side sees it go, and lets go of its connection
    pt_wait_peers (pull, 0);
    s_sock_destroy (&pull);
    assert_true (pt_segment_count () > segments);
    for (int index = 0; index < 3; index++) {
        zframe_t *body = frames [2 * index + 1];
        assert_int_equal (zframe_size (body), 150000);
        assert_true (tu_check (zframe_data (body), 150000, (uint64_t) index));
    }
    for (int index = 0; index < 6; index++)
        zframe_destroy (&frames [index]);
    pt_assert_baseline (baseline);
}

//  Frames lent but never read, still queued in the socket when it is
//  destroyed, are freed by libzmq: nothing stays mapped.
static void
test_unread_lent_frames_are_released_when_the_socket_closes (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (4 << 20, 1);
    for (uint64_t seq = 0; seq < 5; seq++)
        s_send_one (pair.push, 200000, seq);
    //  All five are out of the ring, lent, waiting in the socket
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    while (pt_frames_lent (pair.pull) < 5 && zclock_mono () < deadline)
        zclock_sleep (5);
    assert_int_equal (pt_frames_lent (pair.pull), 5);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

//  A connecting socket keeps zero-copy receive through a reconnect: the
//  new connection to a restarted peer lends too.
static void
test_zerocopy_survives_a_reconnect (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *push = pt_sock (ZMQ_PUSH);
    char endpoint [128];
    pt_bind (push, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *pull = pt_sock (ZMQ_PULL);
    zsock_set_reconnect_ivl (pull, 10);
    assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
    pt_connect (pull, endpoint);
    pt_wait_peers (push, 1);
    s_pair_t pair = { push, pull };
    bool lent;
    zframe_t *kept = s_round_trip (&pair, 200000, 1, &lent);
    assert_true (lent);
    //  The peer goes, and comes back on the same endpoint
    s_sock_destroy (&push);
    pt_wait_peers (pull, 0);
    push = pt_sock (ZMQ_PUSH);
    assert_int_equal (shmipc_bind (push, "%s", endpoint), 0);
    pt_wait_peers (pull, 1);
    pair.push = push;
    zframe_t *frame = s_round_trip (&pair, 200000, 2, &lent);
    assert_true (lent);
    zframe_destroy (&frame);
    //  The frame of the first connection is still as it came
    assert_true (tu_check (zframe_data (kept), 200000, tu_frame_seed (1, 0)));
    zframe_destroy (&kept);
    assert_int_equal (pt_frames_lent (pull), 2);
    s_sock_destroy (&push);
    s_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  Held frames go back in any order (each one's space returns, the others
//  stay intact) while messages keep coming: a window of held frames, one
//  freed at random each time it is full.
static void
test_frames_released_in_any_order (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    const size_t capacity = 4 << 20;
    char endpoint [128];
    zsock_t *pull = s_stream_pull (endpoint, sizeof endpoint);
    long count = tu_scaled (2000, 100);
    s_source_args_t args = { endpoint, capacity, 5000, count };
    zactor_t *source = s_source_start (&args, pull, 1);

    //  What is held: each frame with the seed it was filled from
    enum { S_WINDOW = 12 };
    s_held_t window [S_WINDOW];
    size_t held = 0;
    uint64_t random = 12345;
    size_t large = 0, kept_in_all = 0;
    for (long index = 0; index < count; index++) {
        s_held_t fresh [S_FRAMES_MAX];
        size_t kept = 0;
        large += s_expect (pull, args.first + (uint64_t) index, fresh, &kept);
        kept_in_all += kept;
        for (size_t position = 0; position < kept; position++) {
            if (held == S_WINDOW) {
                //  Full: free one at random, after checking it
                size_t victim = (size_t) (tu_random (&random) % held);
                s_held_free (&window [victim]);
                window [victim] = window [--held];
            }
            window [held++] = fresh [position];
        }
        //  Now and then, let go of the whole window, newest first
        if (tu_random (&random) % 50 == 0)
            while (held > 0)
                s_held_free (&window [--held]);
    }
    s_source_sent (source, count);
    uint64_t lent = pt_frames_lent (pull);
    print_message ("    %ld messages: %" PRIu64 " of %zu large frames lent, %d held at most\n",
                   count, lent, large, S_WINDOW);
    //  Some were lent, and some copied: twelve frames of up to 264 KiB
    //  (with those on their way) pass half the 4 MiB ring at times
    assert_true (lent > 0);
    if (count >= 1000)
        assert_true (lent < large);
    //  Those we saw in the ring are those lent
    assert_int_equal (kept_in_all, lent);
    //  Free the rest from the oldest, after the connection is gone
    zactor_destroy (&source);
    s_segmaps_forget ();      //  Its socket is gone
    s_sock_destroy (&pull);
    for (size_t index = 0; index < held; index++)
        s_held_free (&window [index]);
    pt_assert_baseline (baseline);
}

//  SHMIPC_ZEROCOPY=1 in the environment turns zero-copy receive on for
//  sockets made from then on, without shmipc_set_zerocopy (as under
//  shmipc-run); shmipc_set_zerocopy (false) still turns it off.
static void
test_zerocopy_environment_turns_it_on_for_new_sockets (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    assert_int_equal (setenv ("SHMIPC_ZEROCOPY", "1", 1), 0);
    s_pair_t on = s_pair_new (0, -1);
    s_pair_t off = s_pair_new (0, 0);
    unsetenv ("SHMIPC_ZEROCOPY");
    bool lent;
    zframe_t *frame = s_round_trip (&on, 200000, 1, &lent);
    assert_true (lent);
    zframe_destroy (&frame);
    frame = s_round_trip (&off, 200000, 2, &lent);
    assert_false (lent);
    assert_false (tu_in_segment (zframe_data (frame)));
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (on.pull), 1);
    assert_int_equal (pt_frames_lent (off.pull), 0);
    s_pair_destroy (&on);
    s_pair_destroy (&off);
    //  Unset, new sockets copy again
    s_pair_t later = s_pair_new (0, -1);
    frame = s_round_trip (&later, 200000, 3, &lent);
    assert_false (lent);
    zframe_destroy (&frame);
    assert_int_equal (pt_frames_lent (later.pull), 0);
    s_pair_destroy (&later);
    pt_assert_baseline (baseline);
}

//  czmq's zmsg: zmsg_recv takes a message with lent frames like any other,
//  zmsg_send passes a lent frame on (here back to its sender, a DEALER
//  with zero-copy receive too, through a ROUTER), and zmsg_destroy frees
//  them: the last one unmaps the segments after the sockets are gone.
static void
test_zmsg_carries_and_releases_lent_frames (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    int segments = pt_segment_count ();
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    assert_int_equal (shmipc_set_zerocopy (router, true), 0);
    char endpoint [128];
    pt_bind (router, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    assert_int_equal (shmipc_set_zerocopy (dealer, true), 0);
    pt_connect (dealer, endpoint);
    pt_wait_peers (router, 1);

    zmsg_t *kept = NULL;
    for (uint64_t seq = 0; seq < 10; seq++) {
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, "head");
        zframe_t *body = zframe_new (NULL, 200000);
        tu_fill (zframe_data (body), 200000, seq);
        zmsg_append (msg, &body);
        zmsg_addstr (msg, "tail");
        assert_int_equal (zmsg_send (&msg, dealer), 0);

        //  The ROUTER sees [routing id] head body tail, body lent
        msg = zmsg_recv (router);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 4);
        zmsg_first (msg);
        zframe_t *frame = zmsg_next (msg);
        assert_true (zframe_streq (frame, "head"));
        frame = zmsg_next (msg);
        assert_int_equal (zframe_size (frame), 200000);
        assert_true (s_is_lent (zframe_data (frame), 200000));
        assert_true (tu_check (zframe_data (frame), 200000, seq));
        frame = zmsg_next (msg);
        assert_true (zframe_streq (frame, "tail"));
        //  Back to the dealer, the lent frame with it (copied into the
        //  router's own ring, freed once it is there)
        assert_int_equal (zmsg_send (&msg, router), 0);

        msg = zmsg_recv (dealer);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), 3);
        assert_true (zframe_streq (zmsg_first (msg), "head"));
        frame = zmsg_next (msg);
        assert_int_equal (zframe_size (frame), 200000);
        assert_true (s_is_lent (zframe_data (frame), 200000));
        assert_true (tu_check (zframe_data (frame), 200000, seq));
        if (seq == 5)
            kept = msg;
        else
            zmsg_destroy (&msg);
    }
    assert_int_equal (pt_frames_lent (router), 10);
    assert_int_equal (pt_frames_lent (dealer), 10);
    s_sock_destroy (&dealer);
    s_sock_destroy (&router);
    //  The kept message still reads, and still holds its segments
    assert_true (pt_segment_count () > segments);
    zmsg_first (kept);
    zframe_t *body = zmsg_next (kept);
    assert_true (tu_check (zframe_data (body), 200000, 5));
    zmsg_destroy (&kept);
    pt_assert_baseline (baseline);
}

//  Before each test: what we knew of the segments may be stale.
static int
s_setup (void **state)
{
    s_segmaps_forget ();
    return 0;
}

int
main (void)
{
    //  The tests say when zero-copy receive is on; the caller's
    //  environment does not
    unsetenv ("SHMIPC_ZEROCOPY");
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup (test_zerocopy_off_by_default_copies, s_setup),
        cmocka_unit_test_setup (test_zerocopy_lends_large_frames_in_place, s_setup),
        cmocka_unit_test_setup (test_zerocopy_lends_up_to_half_the_ring_and_copies_streamed_messages, s_setup),
        cmocka_unit_test_setup (test_zerocopy_lends_at_most_half_of_a_small_ring, s_setup),
        cmocka_unit_test_setup (test_zerocopy_applies_to_the_next_binds_and_connects, s_setup),
        cmocka_unit_test_setup (test_copies_of_a_lent_frame_keep_it_held, s_setup),
        cmocka_unit_test_setup (test_held_frames_do_not_stall_the_connection, s_setup),
        cmocka_unit_test_setup (test_frames_past_the_hold_limits_are_copied, s_setup),
        cmocka_unit_test_setup (test_frames_outlive_the_socket_and_the_peer, s_setup),
        cmocka_unit_test_setup (test_frames_outlive_a_killed_peer_process, s_setup),
        cmocka_unit_test_setup (test_unread_lent_frames_are_released_when_the_socket_closes, s_setup),
        cmocka_unit_test_setup (test_zerocopy_survives_a_reconnect, s_setup),
        cmocka_unit_test_setup (test_frames_released_in_any_order, s_setup),
        cmocka_unit_test_setup (test_zerocopy_environment_turns_it_on_for_new_sockets, s_setup),
        cmocka_unit_test_setup (test_zmsg_carries_and_releases_lent_frames, s_setup),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
