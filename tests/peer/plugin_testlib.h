/*  =========================================================================
    plugin_testlib - helpers shared by the plugin tests (tests/test_plugin_*.c)
    and their peer program: transports, waiting for connections, helper
    processes, tagged messages

    Owns nothing beyond what each helper returns to its caller. Header-only
    (static inline) so that the tests need no change to a shared CMake file.
    =========================================================================
*/

#ifndef SHMIPC_PLUGIN_TESTLIB_H_INCLUDED
#define SHMIPC_PLUGIN_TESTLIB_H_INCLUDED

#include "testutil.h"
#include "shmipc.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

//  Generous bound for anything that should happen "soon": a test fails
//  instead of hanging. Never a claim about speed.
#define PT_PATIENCE_MS  10000

//  --------------------------------------------------------------------------
//  Before the first test: czmq's context and its threads exist, and the C
//  library's caches are as full as they get, so that mappings a test leaves
//  behind are ours, not malloc arenas or cached thread stacks

#define PT_WARM_THREADS 160

//  A thread that allocates a little, then waits for all the others.
static inline void *
s_pt_warm_thread (void *args)
{
    free (malloc (100));
    pthread_barrier_wait ((pthread_barrier_t *) args);
    return NULL;
}

#ifdef __SANITIZE_ADDRESS__
//  In libasan, not in its headers: empties the quarantine, so that freed
//  large blocks are unmapped now rather than after 256 MiB of later frees
void __sanitizer_purge_allocator (void);
#endif

static inline void
s_pt_settle_allocator (void)
{
#ifdef __SANITIZE_ADDRESS__
    __sanitizer_purge_allocator ();
#endif
}

//  Return how many mappings of shmipc segments (memfd "shmipc:...") this
//  process has.
static inline int
pt_segment_count (void)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    assert_non_null (file);
    char line [512];
    int count = 0;
    while (fgets (line, sizeof line, file))
        count += strstr (line, "/memfd:shmipc:") != NULL;
    fclose (file);
    return count;
}

static inline int *
s_pt_segments_at_baseline (void)
{
    static int count = 0;
    return &count;
}

//  tu_baseline and tu_assert_baseline, with the allocator settled first
//  (under ASan, blocks freed but held in quarantine keep their mappings),
//  and with the segment mappings counted apart.
static inline tu_baseline_t
pt_baseline (void)
{
    s_pt_settle_allocator ();
    *s_pt_segments_at_baseline () = pt_segment_count ();
    return tu_baseline ();
}

static inline void
pt_assert_baseline (tu_baseline_t baseline)
{
    s_pt_settle_allocator ();
    int64_t deadline = zclock_mono () + 2000;
    while (pt_segment_count () != *s_pt_segments_at_baseline ()
    &&     zclock_mono () < deadline)
        zclock_sleep (10);
    assert_int_equal (pt_segment_count (), *s_pt_segments_at_baseline ());
    //  Under ASan or valgrind most mappings are the tool's, and some grow
    //  for good with every new code path or heap size (ASan's stack depot
    //  and allocator regions, valgrind's heap): the mappings compared are
    //  then the segments, above
#ifdef __SANITIZE_ADDRESS__
    baseline.maps = INT_MAX;
#endif
    if (tu_under_valgrind ())
        baseline.maps = INT_MAX;
    tu_assert_baseline (baseline);
}

static inline void
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
    pthread_t threads [PT_WARM_THREADS];
    pthread_barrier_t barrier;
    pthread_barrier_init (&barrier, NULL, PT_WARM_THREADS + 1);
    for (int index = 0; index < PT_WARM_THREADS; index++)
        assert_int_equal (pthread_create (&threads [index], NULL, s_pt_warm_thread,
                                          &barrier), 0);
    pthread_barrier_wait (&barrier);
    for (int index = 0; index < PT_WARM_THREADS; index++)
        pthread_join (threads [index], NULL);
    pthread_barrier_destroy (&barrier);
    s_pt_settle_allocator ();
}

//  --------------------------------------------------------------------------
//  Transports: the same test body runs over each

typedef enum { PT_SHM, PT_SHM_PATH, PT_IPC, PT_TCP } pt_kind_t;

typedef struct {
    pt_kind_t kind;             //  Which transport
    const char *name;           //  For messages
} pt_transport_t;

static inline bool
pt_is_shm (const pt_transport_t *t)
{
    return t->kind == PT_SHM || t->kind == PT_SHM_PATH;
}

//  Write a fresh endpoint to bind (tcp: an ephemeral port on loopback).
static inline void
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

//  Remove the socket files named after this process (pt_fresh, tu_endpoint)
//  that are still there: libzmq 4.3.4 leaves ipc:// files behind when a
//  socket closes, and a killed helper leaves its shm:// file. For the end
//  of main.
static inline void
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

//  Bind sock to a fresh endpoint; write the endpoint peers connect to.
static inline void
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

static inline void
pt_connect (zsock_t *sock, const char *endpoint)
{
    int rc = shmipc_connect (sock, "%s", endpoint);
    if (rc == -1)
        print_error ("connect %s: %s\n", endpoint, strerror (errno));
    assert_int_equal (rc, 0);
}

//  A new socket of type attached to nothing, with a receive and a send
//  timeout so that a test fails instead of hanging.
static inline zsock_t *
pt_sock (int type)
{
    zsock_t *sock = shmipc_sock_new (type, NULL);
    assert_non_null (sock);
    zsock_set_rcvtimeo (sock, PT_PATIENCE_MS);
    zsock_set_sndtimeo (sock, PT_PATIENCE_MS);
    return sock;
}

//  --------------------------------------------------------------------------
//  Watching connections: the shm actor's counters, or a libzmq monitor

typedef struct {
    zsock_t *sock;              //  Watched; not owned
    const pt_transport_t *t;    //  Its transport
    zsock_t *monitor;           //  ipc/tcp: monitor events; owned
    int handshakes;             //  ipc/tcp: successful handshakes seen
    int refusals;               //  ipc/tcp: failed handshakes seen
    int disconnects;            //  ipc/tcp: disconnections seen
} pt_watch_t;

//  Start watching sock (before it binds or connects).
static inline void
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

static inline void
pt_watch_stop (pt_watch_t *watch)
{
    if (watch->monitor) {
        zmq_socket_monitor (zsock_resolve (watch->sock), NULL, 0);
        zsock_destroy (&watch->monitor);
    }
}

//  Read the monitor events waiting (ipc/tcp).
static inline void
s_pt_watch_read (pt_watch_t *watch)
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

//  What the watch has seen so far (see pt_watch_wait).
static inline int
s_pt_watch_count (pt_watch_t *watch, char what)
{
    if (pt_is_shm (watch->t)) {
        shmipc_stats_t stats;
        assert_int_equal (shmipc_sock_stats (watch->sock, &stats), 0);
        return what == 'h' ? (int) stats.peers
             : what == 'r' ? (int) stats.errors
             : (int) stats.closed;
    }
    s_pt_watch_read (watch);
    return what == 'h' ? watch->handshakes
         : what == 'r' ? watch->refusals
         : watch->refusals + watch->disconnects;
}

//  Wait until count connections are up (h; for shm: live now, for libzmq:
//  handshakes that succeeded), were refused (r: for libzmq, failed
//  handshakes) or have ended in any way (e). Fails the test after
//  PT_PATIENCE_MS.
static inline void
pt_watch_wait (pt_watch_t *watch, char what, int count)
{
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    int seen = s_pt_watch_count (watch, what);
    while (seen < count && zclock_mono () < deadline) {
        zclock_sleep (5);
        seen = s_pt_watch_count (watch, what);
    }
    if (seen < count)
        print_error ("%s: waited for %d '%c', saw %d\n",
                     watch->t->name, count, what, seen);
    assert_true (seen >= count);
}

//  Return what the watch has seen so far, without waiting.
static inline int
pt_watch_count (pt_watch_t *watch, char what)
{
    return s_pt_watch_count (watch, what);
}

//  For shm: wait until the socket has count live peers (greeting done).
static inline void
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
//  Helper processes: tests/peer/shmipc-test-peer, next to the test binary

typedef struct {
    pid_t pid;                  //  The helper's pid, 0 once reaped
    int out;                    //  Its stdout (read end); owned
} pt_peer_t;

//  Start the peer program with arguments (NULL-terminated list).
static inline void
pt_peer_start (pt_peer_t *peer, const char *arg, ...)
{
    char exe [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    assert_true (size > 0);
    exe [size] = 0;
    char *slash = strrchr (exe, '/');
    assert_non_null (slash);
    snprintf (slash, sizeof exe - (size_t) (slash - exe), "/peer/shmipc-test-peer");

    char *argv [16];
    int argc = 0;
    argv [argc++] = exe;
    va_list args;
    va_start (args, arg);
    for (const char *next = arg; next && argc < 15; next = va_arg (args, const char *))
        argv [argc++] = (char *) next;
    va_end (args);
    argv [argc] = NULL;

    int pipe_fds [2];
    assert_int_equal (pipe2 (pipe_fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, pipe_fds [1], STDOUT_FILENO);
    int rc = posix_spawn (&peer->pid, exe, &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    close (pipe_fds [1]);
    if (rc)
        print_error ("spawn %s: %s\n", exe, strerror (rc));
    assert_int_equal (rc, 0);
    peer->out = pipe_fds [0];
}

//  Read one line from the peer's stdout into line (without newline).
//  Returns 0, or -1 at end of file or after PT_PATIENCE_MS.
static inline int
pt_peer_read_line (pt_peer_t *peer, char *line, size_t size)
{
    return tu_read_line (peer->out, line, size, PT_PATIENCE_MS);
}

//  Assert the peer's next line is expected.
static inline void
pt_peer_expect (pt_peer_t *peer, const char *expected)
{
    char line [256] = "";
    int rc = pt_peer_read_line (peer, line, sizeof line);
    if (rc || strcmp (line, expected))
        print_error ("peer %d: expected '%s', got '%s'%s\n", (int) peer->pid,
                     expected, line, rc ? " (no line)" : "");
    assert_int_equal (rc, 0);
    assert_string_equal (line, expected);
}

//  Send sig (if not 0), wait for the peer and return its exit code (or
//  128 + signal); close its stdout.
static inline int
pt_peer_finish (pt_peer_t *peer, int sig)
{
    int code = -1;
    if (peer->pid > 0) {
        if (sig)
            kill (peer->pid, sig);
        code = tu_wait (peer->pid);
        peer->pid = 0;
    }
    if (peer->out >= 0) {
        close (peer->out);
        peer->out = -1;
    }
    return code;
}

//  --------------------------------------------------------------------------
//  Tagged messages: frame 0 is "tag:seq", frame 1 (optional) a payload
//  filled from seq, so that order, origin and content can all be checked

//  Send one tagged message; returns zmq_msg_send's result for the last
//  frame (-1 with errno on failure; nothing was sent then).
static inline int
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

//  Receive one tagged message: its tag into tag, its seq; checks the
//  payload. Returns 0, or -1 on timeout or a malformed message.
static inline int
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

//  Return this process's resident memory in KiB, from /proc/self/status.
static inline long
pt_rss_kib (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    assert_non_null (file);
    char line [256];
    long rss = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "VmRSS: %ld kB", &rss) == 1)
            break;
    fclose (file);
    assert_true (rss > 0);
    return rss;
}

#endif
