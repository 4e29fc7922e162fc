/*  =========================================================================
    testutil_plugin - helpers shared by the plugin tests (tests/test_plugin_*.c,
    test_hardening_plugin.c), the reliability helpers and the helper
    programs: baselines that count segments, transports, waiting for
    connections, helper processes, tagged messages

    Owns nothing beyond what each helper returns to its caller. Bodies in
    testutil_plugin.c, part of libshmipc_testutil.
    =========================================================================
*/

#ifndef SHMIPC_TESTUTIL_PLUGIN_H_INCLUDED
#define SHMIPC_TESTUTIL_PLUGIN_H_INCLUDED

#include "testutil.h"
#include "shmipc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  Generous bound for anything that should happen "soon": a test fails
//  instead of hanging. Never a claim about speed.
#define PT_PATIENCE_MS  10000

//  The plugin tests' far end, relative to the test program's directory.
#define PT_PEER         "peer/shmipc-test-peer"

//  --------------------------------------------------------------------------
//  Baselines: the segment mappings counted apart, the allocator settled

//  Return how many mappings of shmipc segments (memfd "shmipc:...") this
//  process has.
int pt_segment_count (void);

//  tu_baseline and tu_assert_baseline, with the allocator settled first
//  (under ASan, blocks freed but held in quarantine keep their mappings),
//  and with the segment mappings counted apart.
tu_baseline_t pt_baseline (void);
void pt_assert_baseline (tu_baseline_t baseline);

//  Before the first test: czmq's context and its threads exist, and the C
//  library's caches are as full as they get, so that mappings a test leaves
//  behind are ours, not malloc arenas or cached thread stacks.
void pt_warm_up (void);

//  --------------------------------------------------------------------------
//  Transports: the same test body runs over each

typedef enum { PT_SHM, PT_SHM_PATH, PT_IPC, PT_TCP } pt_kind_t;

typedef struct {
    pt_kind_t kind;             //  Which transport
    const char *name;           //  For messages
} pt_transport_t;

//  The transports the plugin tests run over: shm:// (abstract), shm://
//  (path), ipc://, tcp://127.0.0.1.
extern const pt_transport_t pt_shm, pt_shm_path, pt_ipc, pt_tcp;

//  A cmocka entry running fn over transport (shm, shm_path, ipc, tcp): its
//  state points to the transport, its name says which.
#define PT_TEST(fn, transport) \
    { #fn " (" #transport ")", fn, NULL, NULL, (void *) &pt_##transport }

//  True for shm:// (abstract or path).
bool pt_is_shm (const pt_transport_t *t);

//  Write a fresh endpoint to bind (tcp: an ephemeral port on loopback).
void pt_fresh (const pt_transport_t *t, char *buffer, size_t size);

//  Remove the socket files named after this process (pt_fresh, tu_endpoint)
//  that are still there: libzmq 4.3.4 leaves ipc:// files behind when a
//  socket closes, and a killed helper leaves its shm:// file. For the end
//  of main.
void pt_remove_socket_files (void);

//  Bind sock to a fresh endpoint; write the endpoint peers connect to.
void pt_bind (zsock_t *sock, const pt_transport_t *t, char *endpoint, size_t size);

//  Connect sock to endpoint; fails the test if it cannot.
void pt_connect (zsock_t *sock, const char *endpoint);

//  A new socket of type attached to nothing, with a receive and a send
//  timeout so that a test fails instead of hanging.
zsock_t *pt_sock (int type);

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
void pt_watch_start (pt_watch_t *watch, zsock_t *sock, const pt_transport_t *t);

//  Stop watching; frees the monitor.
void pt_watch_stop (pt_watch_t *watch);

//  Wait until count connections are up (h; for shm: live now, for libzmq:
//  handshakes that succeeded), were refused (r: for libzmq, failed
//  handshakes) or have ended in any way (e). Fails the test after
//  PT_PATIENCE_MS.
void pt_watch_wait (pt_watch_t *watch, char what, int count);

//  Return what the watch has seen so far, without waiting.
int pt_watch_count (pt_watch_t *watch, char what);

//  For shm: wait until the socket has count live peers (greeting done).
void pt_wait_peers (zsock_t *sock, int count);

//  Return the frames sock has received in place (zero-copy receive).
uint64_t pt_frames_lent (zsock_t *sock);

//  --------------------------------------------------------------------------
//  Helper processes (tu_child_t): PT_PEER and the like, next to the test

//  Start program (relative to the test program's directory, e.g. PT_PEER)
//  with arguments (NULL-terminated list), its stdout piped to peer->out.
void pt_peer_start (tu_child_t *peer, const char *program, const char *arg, ...);

//  Assert the peer's next line is expected (within PT_PATIENCE_MS).
void pt_peer_expect (tu_child_t *peer, const char *expected);

//  --------------------------------------------------------------------------
//  Messages: frame 0 is "tag:seq", frame 1 (optional) a payload filled
//  from seq, so that order, origin and content can all be checked; or
//  frames of given sizes filled as tu_frame_seed says

//  Send one tagged message; returns zmq_msg_send's result for the last
//  frame (-1 with errno on failure; nothing was sent then).
int pt_send_tagged (void *handle, const char *tag, long seq, size_t payload, int flags);

//  Receive one tagged message: its tag into tag, its seq; checks the
//  payload. Returns 0, or -1 on timeout or a malformed message.
int pt_recv_tagged (void *handle, char *tag, size_t tag_size, long *seq);

//  Send one message of nframes frames of the given sizes, frame f filled
//  from tu_frame_seed (seed, f); fails the test if a frame does not go.
void pt_send_frames (zsock_t *sock, const size_t *sizes, size_t nframes, uint64_t seed);

//  Receive one message and assert it is the one pt_send_frames sent: as
//  many frames, each of its size and content, more flags right.
void pt_expect_frames (zsock_t *sock, const size_t *sizes, size_t nframes, uint64_t seed);

#endif
