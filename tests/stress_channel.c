/*  stress_channel - the long versions of the channel tests, registered only
    with -DSHMIPC_LONG_TESTS=ON: tens of millions of messages of random
    shapes over random ring sizes, wrap-around at every offset of every ring
    size up to 4 KiB, hundreds of writers killed at random points, full
    duplex poll loops, and hostile scribblers for many rounds. Minutes, not
    seconds; SHMIPC_TEST_SCALE scales them like the short ones.
*/
#include "testutil.h"
#include "util.h"
#include "shmipc_channel.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"
#include "shmipc_fdpass.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define C_CHECK(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "child %d: %s:%d: check failed: %s (errno %d %s)\n", \
                 (int) getpid (), __FILE__, __LINE__, #cond, errno, strerror (errno)); \
        return 1; \
    } \
} while (0)

#define S_PATIENCE_MS   120000
#define S_KIND          0x4e414843u
#define S_HEAD          64
#define S_TAIL          128

typedef struct {
    int sock;                   //  The child's end of the socket pair
    int other;                  //  The parent's end, closed in the child
    size_t capacity;            //  The child's ring
    size_t peer_capacity;       //  The parent's ring
    size_t shape;               //  Message size scale
    long count;                 //  Messages
    uint64_t seed;              //  For whatever the child makes up
} s_job_t;

//  Message index: 1 to 4 frames of sizes up to 3 * shape (often small),
//  frame j patterned from index * 4 + j.
static size_t
s_shape (uint64_t index, size_t shape, size_t sizes [4])
{
    uint64_t state = index * 0x9E3779B97F4A7C15ULL + 7;
    size_t nframes = 1 + tu_random (&state) % 4;
    for (size_t frame = 0; frame < nframes; frame++) {
        uint64_t roll = tu_random (&state);
        sizes [frame] = roll % 4 ? (size_t) (roll >> 8) % 200
                                 : (size_t) (roll >> 8) % (3 * shape);
    }
    return nframes;
}

static int
s_send_shaped (shmipc_channel_t *channel, uint64_t index, size_t shape,
               uint8_t *buffer, int flags)
{
    size_t sizes [4];
    size_t nframes = s_shape (index, shape, sizes);
    return tu_send_frames (channel, sizes, nframes, index, buffer, flags);
}

static bool
s_is_shaped (shmipc_msg_t *msg, uint64_t index, size_t shape)
{
    size_t sizes [4];
    size_t nframes = s_shape (index, shape, sizes);
    return tu_msg_is (msg, sizes, nframes, index);
}

static shmipc_channel_t *
s_child_channel (s_job_t *job)
{
    alarm (3600);
    close (job->other);
    shmipc_channel_t *channel = shmipc_channel_new (job->sock, "child",
                                                    job->capacity, SHMIPC_CLIENT);
    if (!channel)
        return NULL;
    if (shmipc_channel_handshake (channel, S_PATIENCE_MS)) {
        shmipc_channel_destroy (&channel);
        return NULL;
    }
    shmipc_channel_set_rcvtimeo (channel, S_PATIENCE_MS);
    shmipc_channel_set_sndtimeo (channel, S_PATIENCE_MS);
    return channel;
}

static pid_t
s_start (int (*fn) (void *), s_job_t *job, shmipc_channel_t **channel)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    job->sock = pair [1];
    job->other = pair [0];
    pid_t pid = tu_fork (fn, job);
    close (pair [1]);
    *channel = shmipc_channel_new (pair [0], "parent", job->peer_capacity, SHMIPC_SERVER);
    assert_non_null (*channel);
    assert_int_equal (shmipc_channel_handshake (*channel, S_PATIENCE_MS), 0);
    shmipc_channel_set_rcvtimeo (*channel, S_PATIENCE_MS);
    shmipc_channel_set_sndtimeo (*channel, S_PATIENCE_MS);
    return pid;
}

//  --------------------------------------------------------------------------

//  Send count shaped messages, some deferred and flushed in batches, then
//  receive count back and close.
static int
s_send_shaped_all (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (12 * job->shape + 800);
    C_CHECK (buffer);
    for (long index = 0; index < job->count; index++) {
        int flags = index % 7 == 3 ? SHMIPC_DEFER : 0;
        C_CHECK (s_send_shaped (channel, index, job->shape, buffer, flags) == 0);
    }
    C_CHECK (shmipc_channel_flush (channel) == 0);
    free (buffer);
    shmipc_channel_destroy (&channel);
    return 0;
}

static void
test_stress_channel_delivers_random_shapes_over_random_rings (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t caps [] = { 64, 128, 256, 1024, 4096, 65536, 1 << 20 };
    uint64_t seed = 42;
    long rounds = tu_scaled (40, 4);
    for (long round = 0; round < rounds; round++) {
        //  Big messages through tiny rings cost a wake-up every few bytes:
        //  keep the sizes within a few rings, and fewer through small ones
        size_t capacity = caps [tu_random (&seed) % 7];
        size_t shape = caps [tu_random (&seed) % 5] * 2;
        if (shape > 4 * capacity)
            shape = 4 * capacity;
        s_job_t job = { .capacity = capacity,
                        .peer_capacity = caps [tu_random (&seed) % 7],
                        .shape = shape,
                        .count = tu_scaled (capacity >= 4096 ? 250000 : 25000, 1000) };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_send_shaped_all, &job, &channel);
        shmipc_msg_t *msg = shmipc_msg_new ();
        for (long index = 0; index < job.count; index++) {
            if (index % 3 == 0) {
                shmipc_msg_t *msgs [16];
                ssize_t got = shmipc_channel_recv_vectored (channel, msgs, 16, 0);
                assert_true (got >= 1);
                for (ssize_t each = 0; each < got; each++) {
                    assert_true (s_is_shaped (msgs [each], index + each, job.shape));
                    shmipc_msg_destroy (&msgs [each]);
                }
                index += got - 1;
            }
            else {
                assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
                assert_true (s_is_shaped (msg, index, job.shape));
            }
        }
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
        assert_int_equal (errno, ECONNRESET);
        assert_int_equal (tu_wait (pid), 0);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
    }
    tu_assert_baseline (baseline);
}

//  Numbered small messages for the hundred-million run.
static int
s_send_numbered (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t buffer [64];
    for (long index = 0; index < job->count; index++) {
        uint64_t sequence = (uint64_t) index;
        memcpy (buffer, &sequence, 8);
        C_CHECK (shmipc_channel_send (channel, buffer, 8 + index % 57, 0) == 0);
    }
    shmipc_channel_destroy (&channel);
    return 0;
}

static void
test_stress_channel_delivers_hundred_million_messages_in_order (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 65536, .peer_capacity = 4096,
                    .count = tu_scaled (100000000, 100000) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_send_numbered, &job, &channel);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; index < job.count; index++) {
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        uint64_t got;
        memcpy (&got, shmipc_msg_data (msg, 0), 8);
        if (got != (uint64_t) index || shmipc_msg_size (msg, 0) != 8 + (size_t) (index % 57))
            fail_msg ("message %ld: got %llu", index, (unsigned long long) got);
    }
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&channel);
    tu_assert_baseline (baseline);
}

static void
test_stress_channel_wraps_at_every_offset_of_every_small_ring (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t buffer [4096 * 2];
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (size_t cap = 64; cap <= 4096; cap *= 2) {
        shmipc_channel_t *a, *b;
        tu_channel_pair (cap, 64, &a, &b);
        uint64_t cursor = 0, seed = 0;
        for (size_t offset = 0; offset < cap; offset += 8) {
            for (size_t size = 0; shmipc_ring_record_size (size) <= cap; size++) {
                size_t delta = (offset - cursor) & (cap - 1);
                if (delta) {
                    assert_int_equal (shmipc_channel_send (a, buffer, delta - 8, SHMIPC_DONTWAIT), 0);
                    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
                    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
                    cursor += delta;
                }
                //  Two frames, split at every third point
                for (size_t split = 0; split <= size; split += 1 + size / 3) {
                    size_t first = split, second = size - split;
                    if (shmipc_ring_record_size (first) + shmipc_ring_record_size (second) > cap) {
                        first = size;
                        second = 0;
                        if (shmipc_ring_record_size (size) + 8 > cap)
                            break;
                    }
                    tu_fill (buffer, size, ++seed);
                    struct iovec frames [2] = { { buffer, first }, { buffer + first, second } };
                    assert_int_equal (shmipc_channel_sendv (a, frames, 2, SHMIPC_DONTWAIT), 0);
                    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
                    assert_int_equal (shmipc_msg_frames (msg), 2);
                    assert_int_equal (shmipc_msg_size (msg, 0), first);
                    assert_int_equal (shmipc_msg_size (msg, 1), second);
                    if (first)
                        assert_memory_equal (shmipc_msg_data (msg, 0), buffer, first);
                    if (second)
                        assert_memory_equal (shmipc_msg_data (msg, 1), buffer + first, second);
                    assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
                    cursor += shmipc_ring_record_size (first) + shmipc_ring_record_size (second);
                    //  Back to the offset for the next split
                    delta = (offset - cursor) & (cap - 1);
                    if (delta) {
                        assert_int_equal (shmipc_channel_send (a, buffer, delta - 8, SHMIPC_DONTWAIT), 0);
                        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), 0);
                        assert_int_equal (shmipc_channel_recv_into (b, msg, SHMIPC_DONTWAIT), -1);
                        cursor += delta;
                    }
                }
            }
        }
        shmipc_channel_destroy (&a);
        shmipc_channel_destroy (&b);
    }
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static int
s_stream_forever (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (12 * job->shape + 800);
    C_CHECK (buffer);
    for (uint64_t index = 0; ; index++)
        C_CHECK (s_send_shaped (channel, index, job->shape, buffer, 0) == 0);
}

static void
test_stress_channel_writers_killed_at_random_points_leave_whole_messages (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t seed = 7;
    long rounds = tu_scaled (500, 10);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long round = 0; round < rounds; round++) {
        size_t caps [] = { 64, 256, 4096, 65536 };
        size_t capacity = caps [tu_random (&seed) % 4];
        size_t shape = caps [tu_random (&seed) % 4];
        if (shape > 4 * capacity)
            shape = 4 * capacity;       //  As above: tiny rings, small messages
        s_job_t job = { .capacity = capacity, .peer_capacity = 4096, .shape = shape };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_stream_forever, &job, &channel);
        uint64_t index = 0;
        long before = (long) (tu_random (&seed) % 3000);
        for (; index < (uint64_t) before; index++) {
            assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
            assert_true (s_is_shaped (msg, index, job.shape));
        }
        assert_int_equal (kill (pid, SIGKILL), 0);
        assert_int_equal (tu_wait (pid), 128 + SIGKILL);
        while (shmipc_channel_recv_into (channel, msg, 0) == 0)
            assert_true (s_is_shaped (msg, index++, job.shape));
        assert_int_equal (errno, ECONNRESET);
        shmipc_channel_destroy (&channel);
    }
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

//  Send and receive count shaped messages through events () and poll only.
static int
s_full_duplex (shmipc_channel_t *channel, long count, size_t shape)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    uint8_t *buffer = (uint8_t *) malloc (12 * shape + 800);
    C_CHECK (msg && buffer);
    long sent = 0, received = 0;
    while (sent < count || received < count) {
        int events = shmipc_channel_events (channel);
        //  The peer may finish and close while we still read what it sent
        C_CHECK (!(events & SHMIPC_POLLERR) || (events & SHMIPC_POLLIN));
        bool progress = false;
        if (events & SHMIPC_POLLIN) {
            C_CHECK (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT) == 0);
            C_CHECK (s_is_shaped (msg, received, shape));
            received++;
            progress = true;
        }
        if ((events & SHMIPC_POLLOUT) && sent < count) {
            //  An oversize message may go part of the way: the same call
            //  again goes on with it
            if (s_send_shaped (channel, sent, shape, buffer, SHMIPC_DONTWAIT) == 0) {
                sent++;
                progress = true;
            }
            else
                C_CHECK (errno == EAGAIN);
        }
        if (!progress) {
            C_CHECK (tu_channel_wait (channel, S_PATIENCE_MS, NULL) >= 1);
        }
    }
    shmipc_msg_destroy (&msg);
    free (buffer);
    return 0;
}

static int
s_child_full_duplex (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    C_CHECK (s_full_duplex (channel, job->count, job->shape) == 0);
    //  Wait for the parent to close first
    shmipc_msg_t *msg = shmipc_channel_recv (channel, 0);
    C_CHECK (msg == NULL && errno == ECONNRESET);
    shmipc_channel_destroy (&channel);
    return 0;
}

static void
test_stress_channel_full_duplex_poll_loops_with_oversize_messages (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    long rounds = tu_scaled (6, 2);
    size_t caps [] = { 256, 4096, 65536 };
    for (long round = 0; round < rounds; round++) {
        s_job_t job = { .capacity = caps [round % 3], .peer_capacity = caps [(round + 1) % 3],
                        .shape = 1024, .count = tu_scaled (300000, 2000) };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_child_full_duplex, &job, &channel);
        assert_int_equal (s_full_duplex (channel, job.count, job.shape), 0);
        shmipc_channel_destroy (&channel);
        assert_int_equal (tu_wait (pid), 0);
    }
    tu_assert_baseline (baseline);
}

//  Speak the handshake, then publish mostly honest records with rare junk,
//  for ever (until killed or hung up on).
static int
s_scribble (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    alarm (3600);
    close (job->other);
    size_t size = shmipc__segment_bytes (job->capacity);
    shmipc_segment_t *segment = shmipc_segment_new ("hostile", size, S_KIND);
    C_CHECK (segment);
    uint8_t *base = (uint8_t *) shmipc_segment_data (segment);
    int fd = shmipc_segment_fd (segment);
    uint8_t hello [SHMIPC__HELLO_FIXED + 8];
    size_t hello_size = shmipc__wire_hello (hello, SHMIPC_CLIENT, job->capacity, size, "h", 1);
    C_CHECK (shmipc_fdpass_send (job->sock, hello, hello_size, &fd, 1, 0) == (ssize_t) hello_size);
    uint8_t buffer [SHMIPC__WIRE_MAX];
    size_t nfds;
    int victim_fd;
    C_CHECK (shmipc_fdpass_recv (job->sock, buffer, sizeof buffer, &victim_fd, 1, &nfds, 0) > 0
             && nfds == 1);
    size_t victim_size = SHMIPC_SEGMENT_HEADER + 4096;
    shmipc_segment_t *victim = shmipc_segment_attach (victim_fd, victim_size, victim_size, S_KIND);
    C_CHECK (victim);
    const uint8_t *victim_base = (const uint8_t *) shmipc_segment_data (victim);
    uint64_t state = job->seed, head = 0, mask = job->capacity - 1;
    while (true) {
        uint64_t tail = atomic_load_explicit ((_Atomic uint64_t *) (victim_base + S_TAIL),
                                              memory_order_acquire);
        uint64_t end = tail + job->capacity;
        while (head + 16 <= end && tu_random (&state) % 8) {
            uint64_t roll = tu_random (&state);
            uint32_t record_size = (uint32_t) (roll % 100);
            uint32_t flags = (uint32_t) ((roll >> 8) % 3);
            if ((roll >> 16) % 4096 == 0)
                flags = (uint32_t) (roll >> 32);
            size_t need = shmipc_ring_record_size (record_size);
            if (head + need > end)
                break;
            if ((roll >> 28) % 4096 == 0)
                record_size = (uint32_t) (roll >> 36);
            uint64_t header = (uint64_t) record_size | ((uint64_t) flags << 32);
            memcpy (base + SHMIPC_SEGMENT_HEADER + (head & mask), &header, 8);
            for (size_t index = 0; index + 8 < need; index++)
                base [SHMIPC_SEGMENT_HEADER + ((head + 8 + index) & mask)] = (uint8_t) tu_random (&state);
            head += need;
        }
        uint64_t publish = tu_random (&state) % 8192 ? head : tu_random (&state);
        atomic_store_explicit ((_Atomic uint64_t *) (base + S_HEAD), publish, memory_order_release);
        ssize_t rc = recv (job->sock, buffer, sizeof buffer, MSG_DONTWAIT);
        if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    shmipc_segment_destroy (&victim);
    shmipc_segment_destroy (&segment);
    return 0;
}

static void
test_stress_channel_survives_many_hostile_scribblers (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    long rounds = tu_scaled (400, 20);
    size_t caps [] = { 64, 256, 4096, 65536 };
    long protos = 0, delivered = 0;
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long round = 0; round < rounds; round++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        s_job_t job = { .sock = pair [1], .other = pair [0], .capacity = caps [round % 4],
                        .seed = 999 + round };
        pid_t pid = tu_fork (s_scribble, &job);
        close (pair [1]);
        shmipc_channel_t *victim = shmipc_channel_new (pair [0], "victim", 4096, SHMIPC_SERVER);
        assert_non_null (victim);
        shmipc_channel_set_maxmsgsize (victim, 1 << 20);
        shmipc_channel_set_rcvtimeo (victim, 5);
        int rc = shmipc_channel_handshake (victim, 10000);
        for (long tries = 0; rc == 0 && tries < 1000000; tries++) {
            rc = shmipc_channel_recv_into (victim, msg, tries % 2 ? 0 : SHMIPC_DONTWAIT);
            if (rc == 0)
                delivered++;
            else
            if (errno == EAGAIN)
                rc = 0;
        }
        assert_int_equal (rc, -1);
        assert_true (errno == EPROTO || errno == EMSGSIZE || errno == ECONNRESET);
        protos += errno == EPROTO;
        kill (pid, SIGKILL);
        int status = tu_wait (pid);
        assert_true (status == 0 || status == 128 + SIGKILL);
        shmipc_channel_destroy (&victim);
    }
    print_message ("    %ld rounds: %ld EPROTO, %ld messages delivered\n",
                   rounds, protos, delivered);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_stress_channel_delivers_hundred_million_messages_in_order),
        cmocka_unit_test (test_stress_channel_delivers_random_shapes_over_random_rings),
        cmocka_unit_test (test_stress_channel_wraps_at_every_offset_of_every_small_ring),
        cmocka_unit_test (test_stress_channel_writers_killed_at_random_points_leave_whole_messages),
        cmocka_unit_test (test_stress_channel_full_duplex_poll_loops_with_oversize_messages),
        cmocka_unit_test (test_stress_channel_survives_many_hostile_scribblers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
