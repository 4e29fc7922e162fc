/*  =========================================================================
    testutil_reliability - helpers shared by the reliability tests
    (tests/test_reliability_*.c, test_hardening_limits.c) and their helper
    programs: helper processes with a stdin to stop them, the echo service
    that plays the victim, resource snapshots, and our own diagnostics
    captured from stderr

    Owns nothing beyond what each helper returns to its caller; while
    rl_log_start is in force, the log file and our saved stderr. Bodies in
    testutil_reliability.c, part of libshmipc_testutil.
    =========================================================================
*/

#ifndef SHMIPC_TESTUTIL_RELIABILITY_H_INCLUDED
#define SHMIPC_TESTUTIL_RELIABILITY_H_INCLUDED

#include "testutil_plugin.h"

#include <dirent.h>
#include <inttypes.h>
#include <sys/stat.h>

//  Generous bound for a helper's answer: a test fails instead of hanging.
//  Never a claim about speed.
#define RL_PATIENCE_MS  30000

//  Growth of our resident memory tolerated where a test says "bounded", in
//  KiB: allocator caches, not the megabytes a leak or an unbounded queue
//  takes. Larger under AddressSanitizer (quarantine, shadow pages); under
//  ThreadSanitizer and valgrind memory is not measured.
long rl_rss_slack_kib (void);

//  --------------------------------------------------------------------------
//  Helper processes (tu_child_t): tests/hostile/shmipc-hostile and
//  tests/hostile/shmipc-reliability-peer, next to the test binary. Each gets
//  a pipe on its stdin (closing it asks the helper to finish, tu_child_stop)
//  and one on its stdout (one line per event); its stderr is ours.

//  Start helper program (a file name in hostile/) with args, a NULL-
//  terminated array. RL_CHILD_WRAPPER (e.g. "valgrind -q --error-exitcode=99")
//  runs it under another program.
void rl_start_argv (tu_child_t *child, const char *program, const char *const *args);

//  Start helper program with arguments (a NULL-terminated list).
void rl_start (tu_child_t *child, const char *program, const char *arg, ...);

//  Read the helper's next line, which must start with prefix; return it
//  in line (which may be NULL if not wanted).
void rl_expect (tu_child_t *child, const char *prefix, char *line, size_t size);

//  Read the helper's lines until one starts with prefix.
void rl_expect_eventually (tu_child_t *child, const char *prefix);

//  --------------------------------------------------------------------------
//  Resources of this process: descriptors, memfd mappings (our segments and
//  the peers' we attached, whatever they are called), threads, memory

typedef struct {
    int fds;                    //  Open descriptors
    int memfds;                 //  Mappings of memfds
    int threads;                //  Threads
    long rss_kib;               //  Resident memory
} rl_usage_t;

//  Return our resident memory in KiB, once the allocators have given back
//  what they hold free (AddressSanitizer's quarantine, free pages inside
//  the heap): what stays is in use.
long rl_rss_kib (void);

//  A snapshot of our resources now.
rl_usage_t rl_usage (void);

//  Wait until descriptors, memfd mappings and threads are back to
//  baseline, and resident memory is within rl_rss_slack_kib of it; fail
//  after two seconds of waiting. Returns the usage then.
rl_usage_t rl_assert_usage (rl_usage_t baseline);

//  --------------------------------------------------------------------------
//  The victim: a ROUTER echo service on a genuine plugin socket, in an
//  actor of this process. It sends every message back to whoever sent it
//  (dropped, as ROUTER does, when that peer's pipe is full or it is gone).
//  Commands: STATS (see rl_stats_t), PAUSE / RESUME (stop and start reading
//  the socket), $TERM.

typedef struct {
    const char *endpoint;       //  Where to bind
    size_t capacity;            //  Ring bytes (0: the default)
    uid_t uids [4];             //  Extra uids allowed
    size_t nuids;               //  How many
    int64_t maxmsgsize;         //  ZMQ_MAXMSGSIZE (0: not set)
    int rcvhwm;                 //  ZMQ_RCVHWM (0: the default)
} rl_service_args_t;

typedef struct {
    uint64_t peers;             //  shmipc_sock_stats: connections up now
    uint64_t accepted;          //  Connections accepted
    uint64_t closed;            //  Connections closed
    uint64_t errors;            //  Of those, refused or closed by an error
    uint64_t msgs_in;           //  Messages received over shm
    uint64_t msgs_out;          //  Messages sent over shm
    uint64_t echoed;            //  Messages the service sent back
} rl_stats_t;

//  Start the service; args must outlive it.
zactor_t *rl_service_new (rl_service_args_t *args);

//  Ask the service for its counters.
void rl_service_stats (zactor_t *service, rl_stats_t *stats);

//  Stop (pause true) or start again reading the service's socket.
void rl_service_pause (zactor_t *service, bool pause);

//  Wait until the service's counter field (a member of rl_stats_t) reaches
//  at least value; fail after RL_PATIENCE_MS. Returns the stats then.
#define RL_WAIT_STAT(service, field, value) \
    rl_wait_stat ((service), offsetof (rl_stats_t, field), (value), #field)

//  RL_WAIT_STAT's body: the counter at offset in rl_stats_t, called name.
rl_stats_t rl_wait_stat (zactor_t *service, size_t offset, uint64_t value,
                         const char *name);

//  --------------------------------------------------------------------------
//  Our diagnostics: with rl_log_start, verbose mode is on and this
//  process's stderr goes to a file, so that a test can check the reason
//  logged for each connection it had closed. rl_log_stop passes on every
//  line that is not ours (cmocka's messages, sanitizer reports) and removes
//  the file; if we crash, it stays, and its name was printed.

//  Send our stderr to the log file and turn verbose mode on.
void rl_log_start (void);

//  Return the log's size now: a mark to search from.
off_t rl_log_mark (void);

//  Return the log from mark on, as a new string.
char *rl_log_since (off_t mark);

//  Wait until the log, from mark on, holds needle; fail after
//  RL_PATIENCE_MS (and show what it holds).
void rl_log_expect (off_t mark, const char *needle);

//  Pass on to the real stderr the lines written since the last call that
//  are not our diagnostics (cmocka's failure messages, sanitizer reports).
//  As a per-test teardown, it keeps each test's messages next to it.
int rl_log_forward (void **state);

//  Restore our stderr, turn verbose mode off; remove the log unless keep
//  (or RL_KEEP_LOG is set).
void rl_log_stop (bool keep);

#endif
