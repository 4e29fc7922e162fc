/*  =========================================================================
    testutil_plugin - helpers shared by the plugin tests and their helper
    programs: baselines that count segments, transports, waiting for
    connections, helper processes, tagged and sized messages

    Owns nothing beyond what each helper returns to its caller (a watch's
    monitor until pt_watch_stop). Declared in testutil_plugin.h.
    =========================================================================
*/

#include "testutil_plugin.h"

#include <glob.h>
#include <malloc.h>

//  Threads pt_warm_up starts at once: more than any test runs.
#define S_WARM_THREADS  160

//  The segment mappings at the last pt_baseline.
static int s_segments_at_baseline = 0;

int
pt_segment_count (void)
{
    return tu_maps_with ("/memfd:shmipc:");
}

tu_baseline_t
pt_baseline (void)
{
    tu_settle_allocator ();
    s_segments_at_baseline = pt_segment_count ();
    return tu_baseline ();
}

void
pt_assert_baseline (tu_baseline_t baseline)
{
    tu_settle_allocator ();
    int64_t deadline = zclock_mono () + 2000;
    while (pt_segment_count () != s_segments_at_baseline
    &&     zclock_mono () < deadline)
        zclock_sleep (10);
    assert_int_equal (pt_segment_count (), s_segments_at_baseline);
    //  Under ASan or valgrind most mappings are the tool's, and some grow
    //  for good with every new code path or heap size (ASan's stack depot
    //  and allocator regions, valgrind's heap): the mappings compared are
    //  then the segments, above
    if (tu_under_asan () || tu_under_valgrind ())
        baseline.maps = INT_MAX;
    tu_assert_baseline (baseline);
}

void
pt_warm_up (void)
{
    //  One arena, and large blocks always mapped and unmapped
    mallopt (M_ARENA_MAX, 1);
    mallopt (M_MMAP_THRESHOLD, 256 * 1024);
    //  ASan maps a region per size class the first time it is used, and
    //  one for its own batches once a thread's cache overflows
    for (size_t size = 1; size <= 256 * 1024; size += size < 4096 ? 8 : size / 16) {
        void *blocks [64];
        for (int index = 0; index < 64; index++)
            blocks [index] = malloc (size);
        for (int index = 0; index < 64; index++)
            free (blocks [index]);
    }
    zsock_t *sock = zsock_new (ZMQ_PAIR);
    zsock_destroy (&sock);
    //  glibc keeps up to 40 MiB of stacks of ended threads mapped, and ASan
    //  keeps what it made for as many threads as ever ran at once: more
    //  threads at once than any test runs (one actor per socket)
    assert_int_equal (tu_warm_threads (S_WARM_THREADS), 0);
    tu_settle_allocator ();
}

//  --------------------------------------------------------------------------
//  Transports

const pt_transport_t pt_shm = { PT_SHM, "shm" };
const pt_transport_t pt_shm_path = { PT_SHM_PATH, "shm-path" };
const pt_transport_t pt_ipc = { PT_IPC, "ipc" };
const pt_transport_t pt_tcp = { PT_TCP, "tcp" };

bool
pt_is_shm (const pt_transport_t *t)
{
    return t->kind == PT_SHM || t->kind == PT_SHM_PATH;
}

void
pt_fresh (const pt_transport_t *t, char *buffer, size_t size)
{
    static int counter = 0;
    switch (t->kind) {
        case PT_SHM:
            tu_endpoint (buffer, size, 'a');
            break;
        case PT_SHM_PATH:
            tu_endpoint (buffer, size, 'p');
            break;
        case PT_IPC:
            snprintf (buffer, size, "ipc:///tmp/shmipc-ptest-%d-%d",
                      (int) getpid (), counter++);
            break;
        case PT_TCP:
            snprintf (buffer, size, "tcp://127.0.0.1:*");
            break;
    }
}

void
pt_remove_socket_files (void)
{
    for (int which = 0; which < 2; which++) {
        char pattern [64];
        snprintf (pattern, sizeof pattern, "/tmp/shmipc-%s-%d-*",
                  which ? "test" : "ptest", (int) getpid ());
        glob_t found;
        if (glob (pattern, 0, NULL, &found) == 0)
            for (size_t index = 0; index < found.gl_pathc; index++)
                unlink (found.gl_pathv [index]);
        globfree (&found);
    }
}

void
pt_bind (zsock_t *sock, const pt_transport_t *t, char *endpoint, size_t size)
{
    char fresh [256];
    pt_fresh (t, fresh, sizeof fresh);
    int rc = shmipc_bind (sock, "%s", fresh);
    if (rc == -1)
        print_error ("bind %s: %s\n", fresh, strerror (errno));
    assert_true (rc >= 0);
    if (t->kind == PT_TCP) {
        assert_true (rc > 0);
        snprintf (endpoint, size, "tcp://127.0.0.1:%d", rc);
    }
    else
        snprintf (endpoint, size, "%s", fresh);
}

void
pt_connect (zsock_t *sock, const char *endpoint)
{
    int rc = shmipc_connect (sock, "%s", endpoint);
    if (rc == -1)
        print_error ("connect %s: %s\n", endpoint, strerror (errno));
    assert_int_equal (rc, 0);
}

zsock_t *
pt_sock (int type)
{
    zsock_t *sock = shmipc_sock_new (type, NULL);
    assert_non_null (sock);
    zsock_set_rcvtimeo (sock, PT_PATIENCE_MS);
    zsock_set_sndtimeo (sock, PT_PATIENCE_MS);
    return sock;
}

//  --------------------------------------------------------------------------
//  Watching connections

void
pt_watch_start (pt_watch_t *watch, zsock_t *sock, const pt_transport_t *t)
{
    static int counter = 0;
    memset (watch, 0, sizeof *watch);
    watch->sock = sock;
    watch->t = t;
    if (pt_is_shm (t))
        return;
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "inproc://pt-monitor-%d-%d",
              (int) getpid (), counter++);
    assert_int_equal (zmq_socket_monitor (zsock_resolve (sock), endpoint,
                                          ZMQ_EVENT_ALL), 0);
    watch->monitor = zsock_new_pair (endpoint);
    assert_non_null (watch->monitor);
    zsock_set_rcvtimeo (watch->monitor, 0);
}

void
pt_watch_stop (pt_watch_t *watch)
{
    if (watch->monitor) {
        zmq_socket_monitor (zsock_resolve (watch->sock), NULL, 0);
        zsock_destroy (&watch->monitor);
    }
}

//  Read the monitor events waiting (ipc/tcp).
static void
s_watch_read (pt_watch_t *watch)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (watch->monitor);
        if (!msg)
            return;
        zframe_t *frame = zmsg_first (msg);
        if (frame && zframe_size (frame) == 6) {
            uint16_t event;
            memcpy (&event, zframe_data (frame), 2);
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                watch->handshakes++;
            else
            if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            ||  event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
                watch->refusals++;
            else
            if (event == ZMQ_EVENT_DISCONNECTED)
                watch->disconnects++;
        }
        zmsg_destroy (&msg);
    }
}

int
pt_watch_count (pt_watch_t *watch, char what)
{
    if (pt_is_shm (watch->t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (watch->sock, &stats), 0);
        return what == 'h' ? (int) stats.peers
             : what == 'r' ? (int) stats.errors
             : (int) stats.closed;
    }
    s_watch_read (watch);
    return what == 'h' ? watch->handshakes
         : what == 'r' ? watch->refusals
         : watch->refusals + watch->disconnects;
}

void
pt_watch_wait (pt_watch_t *watch, char what, int count)
{
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    int seen = pt_watch_count (watch, what);
    while (seen < count && zclock_mono () < deadline) {
        zclock_sleep (5);
        seen = pt_watch_count (watch, what);
    }
    if (seen < count)
        print_error ("%s: waited for %d '%c', saw %d\n",
                     watch->t->name, count, what, seen);
    assert_true (seen >= count);
}

uint64_t
pt_frames_lent (zsock_t *sock)
{
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (sock, &stats), 0);
    return stats.frames_lent;
}

void
pt_wait_peers (zsock_t *sock, int count)
{
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (sock, &stats), 0);
    while ((int) stats.peers != count && zclock_mono () < deadline) {
        zclock_sleep (5);
        assert_int_equal (shmipc_sock_stats (sock, &stats), 0);
    }
    assert_int_equal ((int) stats.peers, count);
}

//  --------------------------------------------------------------------------
//  Helper processes

void
pt_peer_start (tu_child_t *peer, const char *program, const char *arg, ...)
{
    const char *args [16];
    va_list list;
    va_start (list, arg);
    tu_collect_args (args, 16, arg, list);
    va_end (list);
    tu_spawn (peer, program, args, NULL);
}

void
pt_peer_expect (tu_child_t *peer, const char *expected)
{
    char line [256] = "";
    int rc = tu_child_read_line (peer, line, sizeof line, PT_PATIENCE_MS);
    if (rc || strcmp (line, expected))
        print_error ("peer %d: expected '%s', got '%s'%s\n", (int) peer->pid,
                     expected, line, rc ? " (no line)" : "");
    assert_int_equal (rc, 0);
    assert_string_equal (line, expected);
}

//  --------------------------------------------------------------------------
//  Messages

int
pt_send_tagged (void *handle, const char *tag, long seq, size_t payload, int flags)
{
    char head [64];
    int size = snprintf (head, sizeof head, "%s:%ld", tag, seq);
    zmq_msg_t body;
    if (zmq_msg_init_size (&body, payload))
        return -1;
    tu_fill (zmq_msg_data (&body), payload, (uint64_t) seq);
    if (zmq_send (handle, head, (size_t) size, flags | ZMQ_SNDMORE) == -1) {
        zmq_msg_close (&body);
        return -1;
    }
    //  Once the first frame went, the rest of the message goes
    int rc = zmq_msg_send (&body, handle, flags & ~ZMQ_DONTWAIT);
    if (rc == -1)
        zmq_msg_close (&body);
    return rc;
}

int
pt_recv_tagged (void *handle, char *tag, size_t tag_size, long *seq)
{
    zmq_msg_t head, body;
    zmq_msg_init (&head);
    zmq_msg_init (&body);
    int rc = -1;
    if (zmq_msg_recv (&head, handle, 0) >= 0 && zmq_msg_more (&head)
    &&  zmq_msg_recv (&body, handle, 0) >= 0 && !zmq_msg_more (&body)) {
        char text [64];
        size_t size = zmq_msg_size (&head);
        if (size < sizeof text) {
            memcpy (text, zmq_msg_data (&head), size);
            text [size] = 0;
            char *colon = strrchr (text, ':');
            if (colon && (size_t) (colon - text) < tag_size) {
                *colon = 0;
                memcpy (tag, text, (size_t) (colon - text) + 1);
                *seq = atol (colon + 1);
                rc = tu_check (zmq_msg_data (&body), zmq_msg_size (&body),
                               (uint64_t) *seq) ? 0 : -1;
            }
        }
    }
    zmq_msg_close (&head);
    zmq_msg_close (&body);
    return rc;
}

void
pt_send_frames (zsock_t *sock, const size_t *sizes, size_t nframes, uint64_t seed)
{
    void *handle = zsock_resolve (sock);
    for (size_t index = 0; index < nframes; index++) {
        zmq_msg_t frame;
        assert_int_equal (zmq_msg_init_size (&frame, sizes [index]), 0);
        tu_fill (zmq_msg_data (&frame), sizes [index], tu_frame_seed (seed, index));
        int rc = zmq_msg_send (&frame, handle, index + 1 < nframes ? ZMQ_SNDMORE : 0);
        if (rc != (int) sizes [index]) {
            print_error ("send frame %zu of %zu: %s\n", index, nframes,
                         zmq_strerror (zmq_errno ()));
            zmq_msg_close (&frame);
        }
        assert_int_equal (rc, (int) sizes [index]);
    }
}

void
pt_expect_frames (zsock_t *sock, const size_t *sizes, size_t nframes, uint64_t seed)
{
    void *handle = zsock_resolve (sock);
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    for (size_t index = 0; index < nframes; index++) {
        int rc = zmq_msg_recv (&frame, handle, 0);
        if (rc == -1)
            print_error ("frame %zu of %zu: %s\n", index, nframes,
                         zmq_strerror (zmq_errno ()));
        assert_true (rc >= 0);
        size_t size = sizes [index];
        bool sized = zmq_msg_size (&frame) == size;
        bool filled = sized && tu_check (zmq_msg_data (&frame), size,
                                         tu_frame_seed (seed, index));
        bool more = zmq_msg_more (&frame) == (index + 1 < nframes);
        if (!sized || !filled || !more)
            print_error ("message %" PRIu64 " of %zu frames: frame %zu has %zu bytes "
                         "(expected %zu), content %s, more %d\n", seed, nframes, index,
                         zmq_msg_size (&frame), size, filled ? "good" : "bad",
                         zmq_msg_more (&frame));
        assert_true (sized && filled && more);
    }
    zmq_msg_close (&frame);
}
