/*  =========================================================================
    testutil - the tests' one helper library (libshmipc_testutil): resource
    counts and baselines, where bytes lie, which tool runs us, scaling,
    endpoints, patterned bytes, channel pairs (testutil.c) and processes,
    ours and the helper programs' (testutil_proc.c). The czmq-layer helpers
    are in testutil_plugin.h, the reliability tests' in
    testutil_reliability.h.

    Owns nothing beyond what each helper returns to its caller.
    =========================================================================
*/

#ifndef SHMIPC_TESTUTIL_H_INCLUDED
#define SHMIPC_TESTUTIL_H_INCLUDED

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil_tools.h"
#include <sys/types.h>

#include "shmipc_channel.h"

//  --------------------------------------------------------------------------
//  Resources of this process (testutil.c)

//  Open descriptors, mappings and threads of this process, from /proc.
int tu_fd_count (void);
int tu_map_count (void);
int tu_thread_count (void);

//  Our descriptors whose /proc/self/fd links start with prefix: "pipe:["
//  (anonymous pipes, e.g. channels' wake pipes), "/memfd:" (memfds).
int tu_fds_linked_to (const char *prefix);

//  Lines of /proc/self/maps that contain needle (e.g. "/memfd:shmipc:").
int tu_maps_with (const char *needle);

//  This process's resident memory in KiB, from /proc/self/status.
long tu_rss_kib (void);

//  A snapshot of the three counts, taken at the start of a test.
typedef struct {
    int fds;                    //  Open descriptors
    int maps;                   //  Lines in /proc/self/maps
    int threads;                //  Entries in /proc/self/task
} tu_baseline_t;

tu_baseline_t tu_baseline (void);

//  Assert that descriptors, mappings and threads are back to baseline.
//  Threads and mappings released by other threads may lag a little, so
//  this waits up to two seconds for them to settle before failing; it
//  settles the allocator first (tu_settle_allocator).
void tu_assert_baseline (tu_baseline_t baseline);

//  Give back what the allocator holds freed: AddressSanitizer keeps freed
//  blocks, and the mappings of large ones, in quarantine until 256 MiB of
//  later frees. Call before counting mappings. No-op without a sanitizer.
void tu_settle_allocator (void);

//  --------------------------------------------------------------------------
//  Where bytes lie, from /proc/self/maps (testutil.c)

//  What /proc/self/maps calls the mappings of shmipc segments (memfds
//  named "shmipc:<name>", src/segment.c); a loan pool's name follows.
#define TU_SEGMENT_MAPPING  "/memfd:shmipc:"

//  Find the mapping that holds address: write its permissions ("r--s")
//  and its name (may be empty). Returns true if found.
bool tu_mapping_of (const void *address, char *perms, size_t perms_size,
                    char *name, size_t name_size);

//  True if the size bytes at data lie in mappings whose names contain
//  name_part, with permissions perms ("r--s"; NULL: any). The first and the
//  last byte are looked up: a range over two mappings side by side counts
//  if both are such (a mirrored ring maps its data area twice). Size 0
//  looks up data alone. False if data is NULL.
bool tu_in_mapping (const void *data, size_t size, const char *name_part,
                    const char *perms);

//  True if data lies in a mapping of any shmipc segment.
bool tu_in_segment (const void *data);

//  --------------------------------------------------------------------------
//  Which tool runs us: the one place the tests ask (testutil.c)

//  True when built with AddressSanitizer (gcc's or clang's way of saying so).
bool tu_under_asan (void);

//  True when built with ThreadSanitizer (gcc's or clang's way of saying so).
bool tu_under_tsan (void);

//  Return true when running under valgrind (RUNNING_ON_VALGRIND-free check).
int tu_under_valgrind (void);

//  --------------------------------------------------------------------------
//  Scaling, names, patterned bytes, channels (testutil.c)

//  Return count scaled by SHMIPC_TEST_SCALE (default 1; valgrind runs set
//  it lower), never below minimum.
long tu_scaled (long count, long minimum);

//  Write a fresh endpoint name unique to this process into buffer:
//  kind 'a' gives shm://@..., 'p' gives shm:///tmp/....
void tu_endpoint (char *buffer, size_t size, char kind);

//  xorshift64: return the next cheap, reproducible pseudo-random value and
//  advance *state (which must not be 0).
uint64_t tu_random (uint64_t *state);

//  Fill buffer with a pattern derived from seed; check it.
void tu_fill (void *buffer, size_t size, uint64_t seed);
int tu_check (const void *buffer, size_t size, uint64_t seed);

//  The seed of frame index of message seed: every multi-frame helper
//  (tu_send_frames, pt_send_frames) fills frames so.
uint64_t tu_frame_seed (uint64_t seed, size_t index);

//  Create two channels joined by a socketpair, handshake done: a is the
//  client, b the server.
void tu_channel_pair (size_t capacity_a, size_t capacity_b,
                      shmipc_channel_t **a, shmipc_channel_t **b);

//  Wait up to timeout_ms (-1: for ever) until the channel has something to
//  say, as a poll loop must wait since wire version 3: on POLLIN of
//  shmipc_channel_fd and of shmipc_channel_wake_fd (the pipe the peer wakes
//  us through, polled once the handshake has made it, i.e. when >= 0).
//  Reads nothing, so call shmipc_channel_events first, as the API asks.
//  Returns like poll: how many of the two are ready (0 at timeout), or -1
//  with errno. *woke_p, if not NULL, gets the ready ones: bit 0 the socket,
//  bit 1 the wake pipe.
int tu_channel_wait (shmipc_channel_t *channel, int timeout_ms, int *woke_p);

//  Send one message of nframes frames of the given sizes (at most 8), frame
//  f filled with tu_frame_seed (seed, f), laid out in buffer; returns the
//  sendv result.
int tu_send_frames (shmipc_channel_t *channel, const size_t *sizes, size_t nframes,
                    uint64_t seed, uint8_t *buffer, int flags);

//  True if msg is the message tu_send_frames sent with these arguments.
bool tu_msg_is (shmipc_msg_t *msg, const size_t *sizes, size_t nframes, uint64_t seed);

//  --------------------------------------------------------------------------
//  Processes (testutil_proc.c)

//  Print this process's descriptors and what they are (post-mortem).
void tu_print_fds (void);

//  Run fn (arg) in a forked child, which exits with its return value.
pid_t tu_fork (int (*fn) (void *), void *arg);

//  Wait for a child; return its exit code, or 128 + signal if killed.
int tu_wait (pid_t pid);

//  Read one line from fd into line (without newline), waiting up to
//  timeout_ms in all. Returns 0, or -1 at end of file or timeout.
int tu_read_line (int fd, char *line, size_t size, int timeout_ms);

//  Collect first and the strings after it in list, up to a NULL, into args
//  (room for size, a NULL last). Returns how many were collected.
int tu_collect_args (const char **args, int size, const char *first, va_list list);

//  A helper program a test started (tu_spawn).
typedef struct {
    pid_t pid;                  //  Its pid, 0 once reaped
    int in;                     //  Its stdin (write end); owned, -1 if none or closed
    int out;                    //  Its stdout (read end); owned, -1 once closed
} tu_child_t;

//  How tu_spawn starts a program; all zero is "as a plain child".
typedef struct {
    bool stdin_pipe;            //  A pipe on its stdin (else it shares ours)
    int stderr_fd;              //  Its stderr: this descriptor if above 2
    const char *stderr_path;    //  Else this file, created, if not NULL
    const char *wrapper;        //  Words to run it under (e.g. "valgrind -q")
} tu_spawn_t;

//  Start program, a path relative to the directory of this test program
//  (e.g. "peer/shmipc-test-peer"), with args (a NULL-terminated array), its
//  stdout on a pipe that child->out reads. how may be NULL. Fails the test
//  if the program cannot start.
void tu_spawn (tu_child_t *child, const char *program, const char *const *args,
               const tu_spawn_t *how);

//  Read one line of the child's stdout into line (without newline),
//  waiting up to timeout_ms. Returns 0, or -1 at end of file or timeout.
int tu_child_read_line (tu_child_t *child, char *line, size_t size, int timeout_ms);

//  Close the child's stdin (if it has one): a helper that reads it takes
//  that as the word to finish.
void tu_child_stop (tu_child_t *child);

//  Send sig (if not 0), close the child's stdin, wait for it and return its
//  exit code (or 128 + signal); close its stdout. Idempotent (-1 then).
int tu_child_finish (tu_child_t *child, int sig);

//  For a helper program, first thing in main: die with the test that
//  started us. Returns false if that test is gone already (exit then).
bool tu_child_init (void);

#endif
