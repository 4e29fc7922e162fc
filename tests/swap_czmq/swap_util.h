/*  =========================================================================
    swap_util - what the czmq launcher tests' programs (swap_czmq.c,
    swap_czmq_raw.c) share: fail loudly and never hang (a watchdog), count
    this process's threads, descriptors, mappings and shmipc segments, make
    and remove temporary directories, and start this program again as a
    helper process with a role, talking to it over its stdin and stdout

    Plain C and Linux, no czmq, libzmq or libshmipc: the programs stay what
    they stand for, programs that know nothing of shmipc. Owns the children
    it starts until su_child_reap.
    =========================================================================
*/

#ifndef SWAP_UTIL_H_INCLUDED
#define SWAP_UTIL_H_INCLUDED

#include "testutil_tools.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#ifndef streq
#   define streq(a, b)  (strcmp ((a), (b)) == 0)
#endif

#define SU_TIMEOUT_MS   10000       //  Any one wait: past it, a failure
#define SU_WATCHDOG_S   40          //  One process, start to end
#define SU_SHM_MARK     "/memfd:shmipc:"
#define SU_SKIPPED      77          //  Exit status of a case that cannot run

//  --------------------------------------------------------------------------
//  Failing loudly, never hanging

//  First thing in main (and in a forked child): name this process in
//  messages ("PROGRAM ROLE") and arm the watchdog, which ends a process
//  stuck anywhere (zmq_ctx_term, exit...) with a message and status 3.
//  Says so on stderr if LD_PRELOAD names no shmipc library (not run under
//  shmipc-run: the cases will fail, and this says why).
void su_init (const char *program, const char *role);

//  Say what we are doing now, for failure and watchdog messages. stage
//  must outlive the stage (a string literal).
void su_stage (const char *stage);

//  Print "PROGRAM ROLE: FAIL: STAGE: message" on stderr, kill the children
//  still running, and exit 1 at once (no exit handlers: a failed process
//  must not then hang in them). Safe from any thread.
void su_fail (const char *format, ...)
    __attribute__ ((format (printf, 1, 2), noreturn));

#define su_assert(condition, ...) \
    do { if (!(condition)) su_fail (__VA_ARGS__); } while (0)

//  True when built with ThreadSanitizer (gcc's or clang's way of saying so).
bool su_under_tsan (void);

//  CLOCK_MONOTONIC in ms: the same clock in every process, so that times
//  can be compared across processes.
int64_t su_now_ms (void);
void su_sleep_ms (int ms);

//  --------------------------------------------------------------------------
//  This process's resources

typedef struct {
    int threads;                //  Entries in /proc/self/task
    int fds;                    //  Entries in /proc/self/fd
    int maps;                   //  Lines in /proc/self/maps
    int segments;               //  Of them, shmipc segments (SU_SHM_MARK)
} su_counts_t;

su_counts_t su_counts (void);

//  The counts once they hold still (50 ms apart, for at most 2 s): a
//  socket just closed keeps its descriptor until libzmq's reaper gets to
//  it. For a baseline.
su_counts_t su_settled_counts (void);

//  Make the mapping counts comparable: fill glibc's cache of thread
//  stacks (more threads at once than any case runs). Call once the
//  threads that stay (czmq's context) run. (su_init has given malloc one
//  arena, so that threads do not add arenas.)
void su_warm_up (void);

//  Wait up to 3 s until threads and descriptors are back to base, no more
//  segments are mapped than in base and no more mappings than in base
//  (under a sanitizer, whose runtime maps as it goes, the segments only);
//  else fail, listing the threads, descriptors and mappings left. after
//  says when.
void su_expect_counts (su_counts_t base, const char *after);

//  The proof that shm:// went through shared memory: wait until this
//  process maps more than above shmipc segments (a live shm:// connection
//  maps the peer's), else fail. who says which process and why.
void su_expect_shared_memory (int above, const char *who);

//  --------------------------------------------------------------------------
//  Files

//  Make a fresh directory /tmp/swap_czmq-TAG.XXXXXX.
void su_temp_dir (char *buffer, size_t size, const char *tag);

bool su_exists (const char *path);
bool su_is_socket (const char *path);
bool su_is_dir (const char *path);

//  Remove dir, which must be empty; else fail, listing what is left.
void su_remove_dir (const char *dir);

//  --------------------------------------------------------------------------
//  Helper processes: this program again, with a role

typedef struct {
    pid_t pid;                  //  0 once reaped
    int in;                     //  Its stdin (write end), -1 once closed
    int out;                    //  Its stdout (read end), -1 once closed
} su_child_t;

//  Start this program (/proc/self/exe, so it inherits LD_PRELOAD) with
//  role and the arguments after it (a NULL-terminated list), stdin and
//  stdout on pipes. If tmpdir is not NULL the child gets TMPDIR=tmpdir.
//  The child dies with us (PR_SET_PDEATHSIG).
void su_spawn (su_child_t *child, const char *tmpdir, const char *role, ...)
    __attribute__ ((sentinel));

//  Take a child made by fork () (no pipes) into our care: su_fail kills
//  it, su_child_reap waits for it.
void su_adopt (su_child_t *child, pid_t pid);

//  Read the child's next line (without newline) within SU_TIMEOUT_MS; fail
//  at end of file or timeout.
void su_child_line (su_child_t *child, char *line, size_t size);

//  Read the child's next line; fail unless it is expected.
void su_child_expect (su_child_t *child, const char *expected);

//  Close the child's stdin: the word to finish (su_wait_parent).
void su_child_release (su_child_t *child);

//  Release the child and wait for it: it must exit with status 0 within
//  SU_TIMEOUT_MS, else fail (a child that hangs is killed).
void su_child_reap (su_child_t *child);

//  In a helper: wait until the parent releases us (end of stdin); fail
//  after SU_TIMEOUT_MS.
void su_wait_parent (void);

#endif
