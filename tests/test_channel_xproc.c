/*  test_channel_xproc - the channel between two processes: a forked child
    on one end of a socketpair, the test on the other. Ordering, sizes up to
    1 GiB, whole multi-frame delivery when the writer dies part-way, peers
    killed with SIGKILL, graceful close, back-pressure, polling and wake-ups.

    Children never return into cmocka: they check with C_CHECK and exit with
    a status the parent asserts.
*/
#include "testutil.h"
#include "shmipc_channel.h"
#include "shmipc_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

//  In a child: on failure say where and why, and exit with status 1.
#define C_CHECK(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "child %d: %s:%d: check failed: %s (errno %d %s)\n", \
                 (int) getpid (), __FILE__, __LINE__, #cond, errno, strerror (errno)); \
        return 1; \
    } \
} while (0)

//  How long anything may wait before we call it a hang (ms), and how long
//  a child may live at all (s): a stuck child dies of SIGALRM.
#define S_PATIENCE_MS   60000
#define S_CHILD_LIFE    900

//  What a child is to do, and the descriptors it is given.
typedef struct {
    int sock;                   //  The child's end of the socket pair
    int other;                  //  The parent's end, closed in the child
    int down [2];               //  Pipe parent -> child
    int up [2];                 //  Pipe child -> parent
    size_t capacity;            //  The child's ring
    size_t peer_capacity;       //  The parent's ring
    long count;                 //  Messages, when the job counts them
    size_t shape;               //  Shaped messages' size scale (s_shape)
} s_job_t;

//  --------------------------------------------------------------------------
//  Helpers, both sides

//  Read or write one byte on a pipe, retrying on EINTR. Return 0 or -1.
static int
s_pipe_put (int fd, char byte)
{
    while (write (fd, &byte, 1) != 1)
        if (errno != EINTR)
            return -1;
    return 0;
}

static int
s_pipe_get (int fd, char *byte)
{
    ssize_t rc;
    while ((rc = read (fd, byte, 1)) != 1)
        if (rc == 0 || errno != EINTR)
            return -1;
    return 0;
}

//  The shape of test message index: 1 to 3 frames, sizes up to 2 * cap
//  (so some stream), frame j patterned from seed index * 4 + j.
static size_t
s_shape (uint64_t index, size_t cap, size_t sizes [3])
{
    size_t nframes = 1 + index % 3;
    for (size_t frame = 0; frame < nframes; frame++)
        sizes [frame] = (size_t) ((index * 2654435761u + frame * 40503u) % (2 * cap));
    if (index % 5 == 0)
        sizes [0] = index % 17;      //  Plenty of small ones too
    return nframes;
}

//  Send test message index (buffer holds at least 6 * cap bytes). Returns
//  the sendv result.
static int
s_send_shaped (shmipc_channel_t *channel, uint64_t index, size_t cap,
               uint8_t *buffer, int flags)
{
    size_t sizes [3];
    size_t nframes = s_shape (index, cap, sizes);
    return tu_send_frames (channel, sizes, nframes, index, buffer, flags);
}

//  Return true if msg is test message index, whole.
static bool
s_is_shaped (shmipc_msg_t *msg, uint64_t index, size_t cap)
{
    size_t sizes [3];
    size_t nframes = s_shape (index, cap, sizes);
    return tu_msg_is (msg, sizes, nframes, index);
}

//  A numbered message: 8 bytes of sequence, then size - 8 patterned bytes.
static void
s_numbered (uint8_t *buffer, uint64_t sequence, size_t size)
{
    memcpy (buffer, &sequence, 8);
    tu_fill (buffer + 8, size - 8, sequence);
}

//  Return true if msg is one frame holding numbered message sequence.
static bool
s_is_numbered (shmipc_msg_t *msg, uint64_t sequence, size_t size)
{
    if (shmipc_msg_frames (msg) != 1 || shmipc_msg_size (msg, 0) != size)
        return false;
    uint64_t got;
    memcpy (&got, shmipc_msg_data (msg, 0), 8);
    return got == sequence
        && tu_check ((const uint8_t *) shmipc_msg_data (msg, 0) + 8, size - 8, sequence);
}

//  --------------------------------------------------------------------------
//  Starting and ending children

//  In the child: close what belongs to the parent and make our channel.
static shmipc_channel_t *
s_child_channel (s_job_t *job)
{
    alarm (S_CHILD_LIFE);
    close (job->other);
    close (job->down [1]);
    close (job->up [0]);
    shmipc_channel_t *channel = shmipc_channel_new (job->sock, "child",
                                                    job->capacity, SHMIPC_CLIENT);
    if (!channel) {
        fprintf (stderr, "child: shmipc_channel_new: %s\n", strerror (errno));
        return NULL;
    }
    if (shmipc_channel_handshake (channel, S_PATIENCE_MS)) {
        fprintf (stderr, "child: handshake: %s\n", strerror (errno));
        shmipc_channel_destroy (&channel);
        return NULL;
    }
    shmipc_channel_set_rcvtimeo (channel, S_PATIENCE_MS);
    shmipc_channel_set_sndtimeo (channel, S_PATIENCE_MS);
    return channel;
}

//  In the child: done well; clean up and return the exit status 0.
static int
s_child_done (s_job_t *job, shmipc_channel_t **channel)
{
    shmipc_channel_destroy (channel);
    close (job->down [0]);
    close (job->up [1]);
    return 0;
}

//  Fork a child running fn (job) on a fresh socket pair and pipes; make our
//  own channel (ring capacity job->peer_capacity) on the other end.
static pid_t
s_start (int (*fn) (void *), s_job_t *job, shmipc_channel_t **channel)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    assert_int_equal (pipe2 (job->down, O_CLOEXEC), 0);
    assert_int_equal (pipe2 (job->up, O_CLOEXEC), 0);
    job->sock = pair [1];
    job->other = pair [0];
    pid_t pid = tu_fork (fn, job);
    close (pair [1]);
    close (job->down [0]);
    close (job->up [1]);
    *channel = shmipc_channel_new (pair [0], "parent", job->peer_capacity, SHMIPC_SERVER);
    assert_non_null (*channel);
    assert_int_equal (shmipc_channel_handshake (*channel, S_PATIENCE_MS), 0);
    shmipc_channel_set_rcvtimeo (*channel, S_PATIENCE_MS);
    shmipc_channel_set_sndtimeo (*channel, S_PATIENCE_MS);
    return pid;
}

//  In the parent: wait for the child's PIPE record, which it sends once it
//  has our HELLO (so it may come after our handshake is done), and take
//  it, so that our descriptors stay quiet until the child does something.
static void
s_take_pipe_record (shmipc_channel_t *channel)
{
    struct pollfd item = { .fd = shmipc_channel_fd (channel), .events = POLLIN };
    assert_int_equal (poll (&item, 1, S_PATIENCE_MS), 1);
    assert_int_equal (shmipc_channel_events (channel), SHMIPC_POLLOUT);
    assert_int_equal (tu_channel_wait (channel, 0, NULL), 0);
}

//  In the parent: close our pipe ends.
static void
s_end (s_job_t *job)
{
    close (job->down [1]);
    close (job->up [0]);
}

//  --------------------------------------------------------------------------
//  Order and sizes

static int
s_send_numbered (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t buffer [128];
    uint8_t second [3] = { 1, 2, 3 };
    for (long index = 0; index < job->count; index++) {
        size_t size = 8 + index % 57;
        s_numbered (buffer, index, size);
        if (index % 1000 == 999) {
            //  Now and then a three-frame message, the same plus two frames
            struct iovec frames [3] = {
                { buffer, size }, { second, 3 }, { NULL, 0 }
            };
            C_CHECK (shmipc_channel_sendv (channel, frames, 3, 0) == 0);
        }
        else
            C_CHECK (shmipc_channel_send (channel, buffer, size, 0) == 0);
    }
    return s_child_done (job, &channel);
}

static void
test_channel_delivers_million_messages_in_order_across_processes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 65536, .peer_capacity = 4096,
                    .count = tu_scaled (1000000, 2000) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_send_numbered, &job, &channel);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; index < job.count; index++) {
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        size_t size = 8 + index % 57;
        if (index % 1000 == 999) {
            assert_int_equal (shmipc_msg_frames (msg), 3);
            assert_int_equal (shmipc_msg_size (msg, 1), 3);
            assert_int_equal (shmipc_msg_size (msg, 2), 0);
            uint64_t got;
            memcpy (&got, shmipc_msg_data (msg, 0), 8);
            assert_int_equal (got, index);
        }
        else
        if (!s_is_numbered (msg, index, size)) {
            uint64_t got = 0;
            if (shmipc_msg_frames (msg) && shmipc_msg_size (msg, 0) >= 8)
                memcpy (&got, shmipc_msg_data (msg, 0), 8);
            fail_msg ("message %ld: got sequence %llu, %zu frames",
                      index, (unsigned long long) got, shmipc_msg_frames (msg));
        }
    }
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_int_equal (stats.msgs_received, job.count);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

//  The sizes every ring must carry: empty, one byte, the largest that
//  fits, ring - 1, ring, ring + 1, and 64 MiB (streamed through a small
//  ring, but not the tiniest: a million 56-byte chunks take too long).
static size_t
s_edge_sizes (size_t cap, size_t sizes [7])
{
    size_t list [7] = { 0, 1, cap - 8, cap - 1, cap, cap + 1, 64 << 20 };
    memcpy (sizes, list, sizeof list);
    return cap >= 4096 ? 7 : 6;
}

static int
s_exchange_edge_sizes (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (64 << 20);
    C_CHECK (buffer);
    //  First we send, then we receive what the parent sends back
    size_t sizes [7];
    size_t count = s_edge_sizes (job->capacity, sizes);
    for (size_t index = 0; index < count; index++) {
        tu_fill (buffer, sizes [index], index);
        C_CHECK (shmipc_channel_send (channel, buffer, sizes [index], 0) == 0);
    }
    count = s_edge_sizes (job->peer_capacity, sizes);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (size_t index = 0; index < count; index++) {
        C_CHECK (shmipc_channel_recv_into (channel, msg, 0) == 0);
        C_CHECK (shmipc_msg_frames (msg) == 1);
        C_CHECK (shmipc_msg_size (msg, 0) == sizes [index]);
        C_CHECK (tu_check (shmipc_msg_data (msg, 0), sizes [index], 100 + index));
    }
    shmipc_msg_destroy (&msg);
    free (buffer);
    return s_child_done (job, &channel);
}

static void
test_channel_carries_edge_sizes_up_to_64_mib_across_processes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t caps [][2] = { { 4096, 65536 }, { 64, 4096 } };
    for (size_t round = 0; round < 2; round++) {
        s_job_t job = { .capacity = caps [round][0], .peer_capacity = caps [round][1] };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_exchange_edge_sizes, &job, &channel);
        size_t sizes [7];
        size_t count = s_edge_sizes (job.capacity, sizes);
        shmipc_msg_t *msg = shmipc_msg_new ();
        for (size_t index = 0; index < count; index++) {
            assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
            assert_int_equal (shmipc_msg_frames (msg), 1);
            assert_int_equal (shmipc_msg_size (msg, 0), sizes [index]);
            assert_true (tu_check (shmipc_msg_data (msg, 0), sizes [index], index));
        }
        uint8_t *buffer = (uint8_t *) malloc (64 << 20);
        assert_non_null (buffer);
        count = s_edge_sizes (job.peer_capacity, sizes);
        for (size_t index = 0; index < count; index++) {
            tu_fill (buffer, sizes [index], 100 + index);
            assert_int_equal (shmipc_channel_send (channel, buffer, sizes [index], 0), 0);
        }
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
        assert_int_equal (errno, ECONNRESET);
        assert_int_equal (tu_wait (pid), 0);
        free (buffer);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

#define S_GIB (1UL << 30)

static int
s_send_one_gib (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (S_GIB);
    C_CHECK (buffer);
    tu_fill (buffer, S_GIB, 1234);
    C_CHECK (shmipc_channel_send (channel, buffer, S_GIB, 0) == 0);
    free (buffer);
    return s_child_done (job, &channel);
}

static void
test_channel_carries_one_gib_message_across_processes (void **state)
{
    if (tu_under_valgrind () || tu_scaled (1000, 0) < 1000)
        skip ();
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 1 << 20, .peer_capacity = 4096 };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_send_one_gib, &job, &channel);
    shmipc_msg_t *msg = shmipc_channel_recv (channel, 0);
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), S_GIB);
    assert_true (tu_check (shmipc_msg_data (msg, 0), S_GIB, 1234));
    shmipc_msg_destroy (&msg);
    assert_int_equal (tu_wait (pid), 0);
    assert_null (shmipc_channel_recv (channel, 0));
    assert_int_equal (errno, ECONNRESET);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Whole messages only, whatever happens to the writer

#define S_WHOLE_BEFORE 6        //  Whole messages sent before the big one

//  Send S_WHOLE_BEFORE shaped messages, then an oversize three-frame
//  message one non-blocking step at a time, as the parent says: after each
//  step, report on the up pipe and wait on the down pipe. Never finishes:
//  the parent kills us part-way.
static int
s_stream_in_steps (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    size_t cap = job->capacity;
    uint8_t *buffer = (uint8_t *) malloc (10 * cap);
    C_CHECK (buffer);
    for (uint64_t index = 0; index < S_WHOLE_BEFORE; index++)
        C_CHECK (s_send_shaped (channel, index, cap, buffer, 0) == 0);
    struct iovec frames [3] = {
        { buffer, 3 * cap }, { buffer + 3 * cap, 2 * cap }, { buffer + 5 * cap, 5 * cap }
    };
    tu_fill (buffer, 10 * cap, 99);
    while (true) {
        C_CHECK (shmipc_channel_sendv (channel, frames, 3, SHMIPC_DONTWAIT) == -1);
        C_CHECK (errno == EAGAIN);
        char byte;
        C_CHECK (s_pipe_put (job->up [1], 's') == 0);
        C_CHECK (s_pipe_get (job->down [0], &byte) == 0);
    }
}

static void
test_channel_writer_killed_mid_multiframe_stream_never_delivers_part (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 65536, .peer_capacity = 4096 };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_stream_in_steps, &job, &channel);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (uint64_t index = 0; index < S_WHOLE_BEFORE; index++) {
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        assert_true (s_is_shaped (msg, index, job.capacity));
    }
    //  Five steps of at most a ring each: well into the second frame of ten
    for (int step = 0; step < 5; step++) {
        char byte;
        assert_int_equal (s_pipe_get (job.up [0], &byte), 0);
        assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (s_pipe_put (job.down [1], 'g'), 0);
    }
    char byte;
    assert_int_equal (s_pipe_get (job.up [0], &byte), 0);
    assert_int_equal (kill (pid, SIGKILL), 0);
    assert_int_equal (tu_wait (pid), 128 + SIGKILL);
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, ECONNRESET);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_int_equal (stats.msgs_received, S_WHOLE_BEFORE);
    assert_true (stats.bytes_received > 0);
    assert_int_equal (shmipc_channel_events (channel) & SHMIPC_POLLIN, 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

//  Send shaped messages for ever (until killed).
static int
s_stream_forever (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (6 * job->capacity);
    C_CHECK (buffer);
    for (uint64_t index = 0; ; index++)
        C_CHECK (s_send_shaped (channel, index, job->capacity, buffer, 0) == 0);
}

static void
test_channel_writer_killed_mid_stream_leaves_whole_messages_then_econnreset (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    long rounds = tu_scaled (20, 2);
    for (long round = 0; round < rounds; round++) {
        s_job_t job = { .capacity = 4096, .peer_capacity = 4096 };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_stream_forever, &job, &channel);
        shmipc_msg_t *msg = shmipc_msg_new ();
        uint64_t index = 0;
        long before = tu_scaled (500, 20) + round * 7;
        for (; index < (uint64_t) before; index++) {
            assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
            assert_true (s_is_shaped (msg, index, job.capacity));
        }
        //  The writer is most likely streaming now; whatever it was doing,
        //  what follows is whole messages, in order, then ECONNRESET
        assert_int_equal (kill (pid, SIGKILL), 0);
        assert_int_equal (tu_wait (pid), 128 + SIGKILL);
        while (shmipc_channel_recv_into (channel, msg, 0) == 0) {
            assert_true (s_is_shaped (msg, index, job.capacity));
            index++;
        }
        assert_int_equal (errno, ECONNRESET);
        //  No signal either way: our sends now fail with EPIPE
        uint8_t buffer [100] = { 0 };
        int rc;
        long sends = 0;
        while ((rc = shmipc_channel_send (channel, buffer, sizeof buffer, 0)) == 0)
            assert_true (++sends < 100);
        assert_int_equal (errno, EPIPE);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

//  Say we are ready, then wait for a message that never comes.
static int
s_wait_for_message (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    shmipc_channel_set_rcvtimeo (channel, -1);
    C_CHECK (s_pipe_put (job->up [1], 'r') == 0);
    shmipc_msg_t *msg = shmipc_channel_recv (channel, 0);
    C_CHECK (msg == NULL);      //  Killed before this
    return 1;
}

static void
test_channel_send_to_killed_reader_fails_with_epipe_not_sigpipe (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Three ways to meet the dead reader: small sends until the ring is
    //  full, a blocking oversize message, and a control message
    for (int round = 0; round < 3; round++) {
        s_job_t job = { .capacity = 4096, .peer_capacity = 4096 };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_wait_for_message, &job, &channel);
        char byte;
        assert_int_equal (s_pipe_get (job.up [0], &byte), 0);
        assert_int_equal (kill (pid, SIGKILL), 0);
        assert_int_equal (tu_wait (pid), 128 + SIGKILL);
        if (round == 0) {
            uint8_t buffer [100] = { 0 };
            long sends = 0;
            while (shmipc_channel_send (channel, buffer, sizeof buffer, 0) == 0)
                assert_true (++sends <= 4096 / 108 + 1);
            assert_int_equal (errno, EPIPE);
        }
        else
        if (round == 1) {
            uint8_t *big = (uint8_t *) calloc (1, 1 << 20);
            assert_non_null (big);
            assert_int_equal (shmipc_channel_send (channel, big, 1 << 20, 0), -1);
            assert_int_equal (errno, EPIPE);
            free (big);
        }
        else {
            assert_int_equal (shmipc_channel_send_ctrl (channel, "c", 1), -1);
            assert_int_equal (errno, EPIPE);
        }
        assert_int_equal (shmipc_channel_send (channel, "x", 1, 0), -1);
        assert_int_equal (errno, EPIPE);
        assert_null (shmipc_channel_recv (channel, 0));
        assert_int_equal (errno, ECONNRESET);
        assert_true (shmipc_channel_events (channel) & SHMIPC_POLLERR);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

//  Send count shaped messages, then close at once.
static int
s_send_and_close (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t *buffer = (uint8_t *) malloc (6 * job->shape);
    C_CHECK (buffer);
    for (long index = 0; index < job->count; index++)
        C_CHECK (s_send_shaped (channel, index, job->shape, buffer, 0) == 0);
    free (buffer);
    return s_child_done (job, &channel);
}

static void
test_channel_graceful_close_delivers_every_message_then_econnreset (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Twice: a writer that is long gone before we read (everything fits in
    //  its ring), and one that streams while we read and then closes
    for (int round = 0; round < 2; round++) {
        s_job_t job = { .capacity = round ? 4096 : 1 << 20, .peer_capacity = 4096,
                        .count = round ? tu_scaled (3000, 50) : 40, .shape = 4096 };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_send_and_close, &job, &channel);
        if (round == 0)
            assert_int_equal (tu_wait (pid), 0);
        shmipc_msg_t *msg = shmipc_msg_new ();
        for (long index = 0; index < job.count; index++) {
            assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
            assert_true (s_is_shaped (msg, index, job.shape));
        }
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
        assert_int_equal (errno, ECONNRESET);
        if (round == 1)
            assert_int_equal (tu_wait (pid), 0);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Back-pressure

//  Wait for the parent's word, then read count numbered messages slowly.
static int
s_read_slowly (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    char byte;
    C_CHECK (s_pipe_get (job->down [0], &byte) == 0);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; index < job->count; index++) {
        if (index % 50 == 0)
            usleep (1000);
        C_CHECK (shmipc_channel_recv_into (channel, msg, 0) == 0);
        C_CHECK (s_is_numbered (msg, index, 1000));
    }
    shmipc_msg_destroy (&msg);
    return s_child_done (job, &channel);
}

static void
test_channel_blocking_send_completes_as_slow_reader_drains (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 4096, .peer_capacity = 16384,
                    .count = tu_scaled (20000, 300) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_read_slowly, &job, &channel);
    s_take_pipe_record (channel);
    uint8_t buffer [1000];
    //  The reader has not started: fill the ring without waiting
    long index = 0;
    while (true) {
        s_numbered (buffer, index, sizeof buffer);
        if (shmipc_channel_send (channel, buffer, sizeof buffer, SHMIPC_DONTWAIT))
            break;
        index++;
    }
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (index, 16384 / shmipc_ring_record_size (1000));
    //  Nothing says we can go on: neither descriptor is readable
    assert_int_equal (shmipc_channel_events (channel) & SHMIPC_POLLOUT, 0);
    assert_int_equal (tu_channel_wait (channel, 0, NULL), 0);
    struct mallinfo2 heap_before = mallinfo2 ();
    //  Let it read; every blocking send completes as it drains, and all we
    //  hold meanwhile is the ring
    assert_int_equal (s_pipe_put (job.down [1], 'g'), 0);
    for (; index < job.count; index++) {
        s_numbered (buffer, index, sizeof buffer);
        assert_int_equal (shmipc_channel_send (channel, buffer, sizeof buffer, 0), 0);
    }
    struct mallinfo2 heap_after = mallinfo2 ();
    assert_int_equal (heap_after.uordblks, heap_before.uordblks);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_int_equal (stats.msgs_sent, job.count);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

//  Send a 1000-byte message, then one that needs the space of the first
//  back, then read count messages and a last one.
static int
s_send_then_read (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    shmipc_channel_set_sndtimeo (channel, 20000);
    uint8_t buffer [3100];
    s_numbered (buffer, 0, 1000);
    C_CHECK (shmipc_channel_send (channel, buffer, 1000, 0) == 0);
    s_numbered (buffer, 1, 3100);
    C_CHECK (shmipc_channel_send (channel, buffer, 3100, 0) == 0);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; index < job->count; index++) {
        C_CHECK (shmipc_channel_recv_into (channel, msg, 0) == 0);
        C_CHECK (s_is_numbered (msg, index, 500));
    }
    shmipc_msg_destroy (&msg);
    return s_child_done (job, &channel);
}

static void
test_channel_peers_that_send_before_reading_do_not_deadlock (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    long rounds = tu_scaled (50, 3);
    for (long round = 0; round < rounds; round++) {
        s_job_t job = { .capacity = 4096, .peer_capacity = 4096, .count = 40 };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_send_then_read, &job, &channel);
        shmipc_channel_set_sndtimeo (channel, 20000);
        shmipc_msg_t *msg = shmipc_msg_new ();
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        assert_true (s_is_numbered (msg, 0, 1000));
        //  Our ring fills long before the child reads it: it reads only
        //  once its second message is through
        uint8_t buffer [500];
        for (long index = 0; index < job.count; index++) {
            s_numbered (buffer, index, sizeof buffer);
            assert_int_equal (shmipc_channel_send (channel, buffer, sizeof buffer, 0), 0);
        }
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        assert_true (s_is_numbered (msg, 1, 3100));
        assert_int_equal (tu_wait (pid), 0);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Polling and wake-ups

//  Send count numbered messages of 64 bytes, then report our counters on
//  the up pipe and wait for the parent's word before closing.
static int
s_send_and_report (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    uint8_t buffer [64];
    for (long index = 0; index < job->count; index++) {
        s_numbered (buffer, index, sizeof buffer);
        C_CHECK (shmipc_channel_send (channel, buffer, sizeof buffer, 0) == 0);
        if (index % 97 == 0)
            sched_yield ();     //  Let the reader catch up now and then
    }
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    C_CHECK (write (job->up [1], &stats, sizeof stats) == sizeof stats);
    char byte;
    C_CHECK (s_pipe_get (job->down [0], &byte) == 0);
    return s_child_done (job, &channel);
}

static shmipc_channel_stats_t
s_child_stats (s_job_t *job)
{
    shmipc_channel_stats_t stats;
    size_t got = 0;
    while (got < sizeof stats) {
        ssize_t rc = read (job->up [0], (char *) &stats + got, sizeof stats - got);
        assert_true (rc > 0);
        got += (size_t) rc;
    }
    return stats;
}

static void
test_channel_poll_loop_wakes_at_most_once_per_message (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 65536, .peer_capacity = 4096,
                    .count = tu_scaled (50000, 500) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_send_and_report, &job, &channel);
    shmipc_msg_t *msg = shmipc_msg_new ();
    long received = 0, wakeups = 0;
    while (received < job.count) {
        int events = shmipc_channel_events (channel);
        assert_int_equal (events & SHMIPC_POLLERR, 0);
        if (events & SHMIPC_POLLIN) {
            assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), 0);
            assert_true (s_is_numbered (msg, received, 64));
            received++;
            continue;
        }
        assert_true (tu_channel_wait (channel, S_PATIENCE_MS, NULL) >= 1);
        wakeups++;
    }
    shmipc_channel_stats_t child = s_child_stats (&job);
    assert_int_equal (child.msgs_sent, job.count);
    print_message ("    %ld messages, %ld poll wake-ups, %llu wake-ups sent\n",
                   received, wakeups, (unsigned long long) child.wakeups_sent);
    assert_true (wakeups <= job.count + 16);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_true (stats.wakeups_received <= (uint64_t) wakeups + 1);
    //  Nothing more, then the end: the descriptor signals it
    assert_int_equal (s_pipe_put (job.down [1], 'd'), 0);
    while (true) {
        int events = shmipc_channel_events (channel);
        assert_int_equal (events & SHMIPC_POLLIN, 0);
        if (events & SHMIPC_POLLERR)
            break;
        assert_true (tu_channel_wait (channel, S_PATIENCE_MS, NULL) >= 1);
    }
    assert_int_equal (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

static void
test_channel_awake_reader_costs_the_writer_few_wakeups (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Twice: a reader that spins between messages with the spin option,
    //  and one that spins on non-blocking receives
    for (int round = 0; round < 2; round++) {
        s_job_t job = { .capacity = 65536, .peer_capacity = 4096,
                        .count = tu_scaled (200000, 2000) };
        shmipc_channel_t *channel;
        pid_t pid = s_start (s_send_and_report, &job, &channel);
        if (round == 0)
            shmipc_channel_set_spin (channel, 1000000);
        shmipc_msg_t *msg = shmipc_msg_new ();
        long eagains = 0;
        for (long index = 0; index < job.count; index++) {
            if (round == 0)
                assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
            else
                while (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT)) {
                    assert_int_equal (errno, EAGAIN);
                    eagains++;
                }
            assert_true (s_is_numbered (msg, index, 64));
        }
        shmipc_channel_stats_t child = s_child_stats (&job);
        assert_int_equal (child.msgs_sent, job.count);
        print_message ("    %s: %llu messages, %llu wake-ups sent, %ld EAGAIN\n",
                       round ? "non-blocking spin" : "spin option",
                       (unsigned long long) child.msgs_sent,
                       (unsigned long long) child.wakeups_sent, eagains);
        assert_true (child.wakeups_sent * 10 < child.msgs_sent);
        assert_int_equal (s_pipe_put (job.down [1], 'd'), 0);
        assert_int_equal (tu_wait (pid), 0);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&channel);
        s_end (&job);
    }
    tu_assert_baseline (baseline);
}

//  Both sides run the same loop: send count numbered messages and receive
//  count, without ever blocking in a call, driven by events () and poll.
static int
s_full_duplex (shmipc_channel_t *channel, long count)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    C_CHECK (msg);
    uint8_t buffer [300];
    long sent = 0, received = 0;
    while (sent < count || received < count) {
        int events = shmipc_channel_events (channel);
        C_CHECK ((events & SHMIPC_POLLERR) == 0);
        bool progress = false;
        if (events & SHMIPC_POLLIN) {
            C_CHECK (shmipc_channel_recv_into (channel, msg, SHMIPC_DONTWAIT) == 0);
            C_CHECK (s_is_numbered (msg, received, 8 + received % 293));
            received++;
            progress = true;
        }
        if ((events & SHMIPC_POLLOUT) && sent < count) {
            size_t size = 8 + sent % 293;
            s_numbered (buffer, sent, size);
            if (shmipc_channel_send (channel, buffer, size, SHMIPC_DONTWAIT) == 0) {
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
    return 0;
}

static int
s_child_full_duplex (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    C_CHECK (s_full_duplex (channel, job->count) == 0);
    //  Stay until the parent has all of ours
    char byte;
    C_CHECK (s_pipe_get (job->down [0], &byte) == 0);
    return s_child_done (job, &channel);
}

static void
test_channel_full_duplex_poll_loops_exchange_messages_both_ways (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 2048, .peer_capacity = 4096,
                    .count = tu_scaled (100000, 1000) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_child_full_duplex, &job, &channel);
    assert_int_equal (s_full_duplex (channel, job.count), 0);
    assert_int_equal (s_pipe_put (job.down [1], 'd'), 0);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (channel, &stats);
    assert_int_equal (stats.msgs_sent, job.count);
    assert_int_equal (stats.msgs_received, job.count);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

static int
s_send_numbered_spinning (void *arg)
{
    s_job_t *job = (s_job_t *) arg;
    shmipc_channel_t *channel = s_child_channel (job);
    C_CHECK (channel);
    shmipc_channel_set_spin (channel, 50);
    uint8_t buffer [600];
    for (long index = 0; index < job->count; index++) {
        size_t size = 8 + index % 593;
        s_numbered (buffer, index, size);
        C_CHECK (shmipc_channel_send (channel, buffer, size, 0) == 0);
    }
    return s_child_done (job, &channel);
}

static void
test_channel_spinning_peers_deliver_in_order (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_job_t job = { .capacity = 4096, .peer_capacity = 4096,
                    .count = tu_scaled (100000, 1000) };
    shmipc_channel_t *channel;
    pid_t pid = s_start (s_send_numbered_spinning, &job, &channel);
    shmipc_channel_set_spin (channel, 50);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (long index = 0; index < job.count; index++) {
        assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), 0);
        assert_true (s_is_numbered (msg, index, 8 + index % 593));
    }
    assert_int_equal (shmipc_channel_recv_into (channel, msg, 0), -1);
    assert_int_equal (errno, ECONNRESET);
    assert_int_equal (tu_wait (pid), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&channel);
    s_end (&job);
    tu_assert_baseline (baseline);
}

//  testutil warms the allocator's size classes; our messages go far past
//  them, and valgrind's allocator grows its arena once for each new range
//  of big blocks (then keeps it): take blocks from 128 KiB to 128 MiB, all
//  at once, and give them back before the first baseline.
static int
s_warm_big_blocks (void **state)
{
    void *volatile blocks [11];
    for (size_t index = 0; index < 11; index++)
        blocks [index] = malloc ((size_t) 128 << (10 + index));
    for (size_t index = 0; index < 11; index++)
        free (blocks [index]);
    tu_settle_allocator ();
    return 0;
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_channel_delivers_million_messages_in_order_across_processes),
        cmocka_unit_test (test_channel_carries_edge_sizes_up_to_64_mib_across_processes),
        cmocka_unit_test (test_channel_carries_one_gib_message_across_processes),
        cmocka_unit_test (test_channel_writer_killed_mid_multiframe_stream_never_delivers_part),
        cmocka_unit_test (test_channel_writer_killed_mid_stream_leaves_whole_messages_then_econnreset),
        cmocka_unit_test (test_channel_send_to_killed_reader_fails_with_epipe_not_sigpipe),
        cmocka_unit_test (test_channel_graceful_close_delivers_every_message_then_econnreset),
        cmocka_unit_test (test_channel_blocking_send_completes_as_slow_reader_drains),
        cmocka_unit_test (test_channel_peers_that_send_before_reading_do_not_deadlock),
        cmocka_unit_test (test_channel_poll_loop_wakes_at_most_once_per_message),
        cmocka_unit_test (test_channel_awake_reader_costs_the_writer_few_wakeups),
        cmocka_unit_test (test_channel_full_duplex_poll_loops_exchange_messages_both_ways),
        cmocka_unit_test (test_channel_spinning_peers_deliver_in_order),
    };
    return cmocka_run_group_tests (tests, s_warm_big_blocks, NULL);
}
