/*  =========================================================================
    testutil - helpers shared by the tests: resource counts, scaling, child
    processes, channel pairs

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
#include <sys/types.h>

#include "shmipc_channel.h"

//  Open descriptors, mappings and threads of this process, from /proc.
int tu_fd_count (void);
int tu_map_count (void);
int tu_thread_count (void);

//  A snapshot of the three counts, taken at the start of a test.
typedef struct {
    int fds;                    //  Open descriptors
    int maps;                   //  Lines in /proc/self/maps
    int threads;                //  Entries in /proc/self/task
} tu_baseline_t;

tu_baseline_t tu_baseline (void);

//  Assert that descriptors, mappings and threads are back to baseline.
//  Threads and mappings released by other threads may lag a little, so
//  this waits up to two seconds for them to settle before failing.
void tu_assert_baseline (tu_baseline_t baseline);

//  Return count scaled by SHMIPC_TEST_SCALE (default 1; valgrind runs set
//  it lower), never below minimum.
long tu_scaled (long count, long minimum);

//  Return true when running under valgrind (RUNNING_ON_VALGRIND-free check).
int tu_under_valgrind (void);

//  Write a fresh endpoint name unique to this process into buffer:
//  kind 'a' gives shm://@..., 'p' gives shm:///tmp/....
void tu_endpoint (char *buffer, size_t size, char kind);

//  Run fn (arg) in a forked child, which exits with its return value.
pid_t tu_fork (int (*fn) (void *), void *arg);

//  Wait for a child; return its exit code, or 128 + signal if killed.
int tu_wait (pid_t pid);

//  Create two channels joined by a socketpair, handshake done.
void tu_channel_pair (size_t capacity_a, size_t capacity_b,
                      shmipc_channel_t **a, shmipc_channel_t **b);

//  Print this process's descriptors and what they are (post-mortem).
void tu_print_fds (void);

//  Read one line from fd into line (without newline), waiting up to
//  timeout_ms in all. Returns 0, or -1 at end of file or timeout.
int tu_read_line (int fd, char *line, size_t size, int timeout_ms);

//  Fill buffer with a pattern derived from seed; check it.
void tu_fill (void *buffer, size_t size, uint64_t seed);
int tu_check (const void *buffer, size_t size, uint64_t seed);

//  Send one message of nframes frames of the given sizes (at most 8), frame
//  f filled with seed * 4 + f, laid out in buffer; returns the sendv result.
int tu_send_frames (shmipc_channel_t *channel, const size_t *sizes, size_t nframes,
                    uint64_t seed, uint8_t *buffer, int flags);

//  True if msg is the message tu_send_frames sent with these arguments.
bool tu_msg_is (shmipc_msg_t *msg, const size_t *sizes, size_t nframes, uint64_t seed);

#endif
