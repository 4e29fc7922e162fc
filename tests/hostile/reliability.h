/*  =========================================================================
    reliability - helpers shared by the reliability tests and their helper
    programs: helper processes with a stdin to stop them, the echo service
    that plays the victim, resource snapshots, and our own diagnostics
    captured from stderr

    Owns nothing beyond what each helper returns to its caller. Header-only
    (static inline), as plugin_testlib.h, so that the tests need no change
    to a shared CMake file.
    =========================================================================
*/

#ifndef SHMIPC_RELIABILITY_H_INCLUDED
#define SHMIPC_RELIABILITY_H_INCLUDED

#include "peer/plugin_testlib.h"

#include <dirent.h>
#include <sys/stat.h>

//  Generous bound for a helper's answer: a test fails instead of hanging.
//  Never a claim about speed.
#define RL_PATIENCE_MS  30000

#if defined (__SANITIZE_THREAD__)
#   define RL_TSAN 1
#elif defined (__has_feature)
#   if __has_feature (thread_sanitizer)
#       define RL_TSAN 1
#   endif
#endif

//  Growth of our resident memory tolerated where a test says "bounded":
//  allocator caches, not the megabytes a leak or an unbounded queue takes.
//  AddressSanitizer keeps freed memory in quarantine and shadow pages;
//  ThreadSanitizer's allocator and shadow give almost nothing back, so
//  under it memory is not measured.
#if defined (RL_TSAN)
#   define S_RL_RSS_SLACK_KIB (1L << 30)
#elif defined (__SANITIZE_ADDRESS__)
#   define S_RL_RSS_SLACK_KIB (96L * 1024)
#else
#   define S_RL_RSS_SLACK_KIB (16L * 1024)
#endif

//  Under valgrind, whose own heap is in our resident memory, memory is not
//  measured either.
#define RL_RSS_SLACK_KIB (tu_under_valgrind () ? 1L << 30 : S_RL_RSS_SLACK_KIB)

//  In the sanitizers' runtime: symbolize an address (may start the
//  external symbolizer, a process with two pipes to us).
void __sanitizer_symbolize_pc (void *pc, const char *format, char *buffer,
                               size_t size) __attribute__ ((weak));

//  --------------------------------------------------------------------------
//  Helper processes: tests/hostile/shmipc-hostile and
//  tests/hostile/shmipc-reliability-peer, next to the test binary. Each gets
//  a pipe on its stdin (closing it asks the helper to finish) and one on its
//  stdout (one line per event); its stderr is ours.

typedef struct {
    pid_t pid;                  //  The helper's pid, 0 once reaped
    int in;                     //  Its stdin (write end); owned, -1 once closed
    int out;                    //  Its stdout (read end); owned, -1 once closed
} rl_child_t;

//  While our stderr is captured (rl_log_start): the original stderr, for
//  the helpers and for what we pass on.
static inline int *
s_rl_stderr (void)
{
    static int fd = -1;
    return &fd;
}

//  Start helper program (a file name in hostile/) with args, a NULL-
//  terminated array. RL_CHILD_WRAPPER (e.g. "valgrind -q --error-exitcode=99")
//  runs it under another program.
static inline void
rl_start_argv (rl_child_t *child, const char *program, const char *const *args)
{
    char exe [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    assert_true (size > 0);
    exe [size] = 0;
    char *slash = strrchr (exe, '/');
    assert_non_null (slash);
    snprintf (slash, sizeof exe - (size_t) (slash - exe), "/hostile/%s", program);

    char *argv [64];
    int argc = 0;
    char wrapper [512] = "";
    const char *env = getenv ("RL_CHILD_WRAPPER");
    if (env && *env) {
        snprintf (wrapper, sizeof wrapper, "%s", env);
        char *saved;
        for (char *word = strtok_r (wrapper, " ", &saved); word && argc < 16;
             word = strtok_r (NULL, " ", &saved))
            argv [argc++] = word;
    }
    argv [argc++] = exe;
    for (int index = 0; args [index] && argc < 63; index++)
        argv [argc++] = (char *) args [index];
    argv [argc] = NULL;

    int in [2], out [2];
    assert_int_equal (pipe2 (in, O_CLOEXEC), 0);
    assert_int_equal (pipe2 (out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, in [0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2 (&actions, out [1], STDOUT_FILENO);
    if (*s_rl_stderr () >= 0)
        posix_spawn_file_actions_adddup2 (&actions, *s_rl_stderr (), STDERR_FILENO);
    fflush (NULL);
    int rc = posix_spawnp (&child->pid, argv [0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    close (in [0]);
    close (out [1]);
    if (rc)
        print_error ("spawn %s: %s\n", argv [0], strerror (rc));
    assert_int_equal (rc, 0);
    child->in = in [1];
    child->out = out [0];
}

//  Start helper program with arguments (a NULL-terminated list).
static inline void
rl_start (rl_child_t *child, const char *program, const char *arg, ...)
{
    const char *args [48];
    int count = 0;
    va_list list;
    va_start (list, arg);
    for (const char *next = arg; next && count < 47; next = va_arg (list, const char *))
        args [count++] = next;
    va_end (list);
    args [count] = NULL;
    rl_start_argv (child, program, args);
}

//  Read one line of the helper's stdout into line (without newline),
//  waiting up to timeout_ms. Returns 0, or -1 at end of file or timeout.
static inline int
rl_read_line (rl_child_t *child, char *line, size_t size, int timeout_ms)
{
    return tu_read_line (child->out, line, size, timeout_ms);
}

//  Read the helper's next line, which must start with prefix; return it
//  in line (which may be NULL if not wanted).
static inline void
rl_expect (rl_child_t *child, const char *prefix, char *line, size_t size)
{
    char buffer [512] = "";
    int rc = rl_read_line (child, buffer, sizeof buffer, RL_PATIENCE_MS);
    if (rc || strncmp (buffer, prefix, strlen (prefix)))
        print_error ("helper %d: expected '%s...', got '%s'%s\n", (int) child->pid,
                     prefix, buffer, rc ? " (no line)" : "");
    assert_int_equal (rc, 0);
    assert_memory_equal (buffer, prefix, strlen (prefix));
    if (line)
        snprintf (line, size, "%s", buffer);
}

//  Read the helper's lines until one starts with prefix.
static inline void
rl_expect_eventually (rl_child_t *child, const char *prefix)
{
    char line [512] = "";
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    while (zclock_mono () < deadline) {
        if (rl_read_line (child, line, sizeof line, RL_PATIENCE_MS))
            break;
        if (strncmp (line, prefix, strlen (prefix)) == 0)
            return;
    }
    fail_msg ("helper %d: no line '%s...' (last '%s')", (int) child->pid, prefix, line);
}

//  Close the helper's stdin: it finishes what it does and says so.
static inline void
rl_stop (rl_child_t *child)
{
    if (child->in >= 0) {
        close (child->in);
        child->in = -1;
    }
}

//  Send sig (if not 0), wait for the helper and return its exit code (or
//  128 + signal); close its pipes.
static inline int
rl_finish (rl_child_t *child, int sig)
{
    int code = -1;
    if (child->pid > 0) {
        if (sig)
            kill (child->pid, sig);
        rl_stop (child);
        code = tu_wait (child->pid);
        child->pid = 0;
    }
    rl_stop (child);
    if (child->out >= 0) {
        close (child->out);
        child->out = -1;
    }
    return code;
}

//  --------------------------------------------------------------------------
//  Resources of this process: descriptors, memfd mappings (our segments and
//  the peers' we attached, whatever they are called), threads, memory

typedef struct {
    int fds;                    //  Open descriptors
    int memfds;                 //  Mappings of memfds
    int threads;                //  Threads
    long rss_kib;               //  Resident memory
} rl_usage_t;

static inline int
rl_memfd_count (void)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    assert_non_null (file);
    char line [512];
    int count = 0;
    while (fgets (line, sizeof line, file))
        count += strstr (line, "/memfd:") != NULL;
    fclose (file);
    return count;
}

//  Return our resident memory in KiB, once the allocators have given back
//  what they hold free (AddressSanitizer's quarantine, free pages inside
//  the heap): what stays is in use.
static inline long
rl_rss_kib (void)
{
    s_pt_settle_allocator ();
    malloc_trim (0);
    return pt_rss_kib ();
}

static inline rl_usage_t
rl_usage (void)
{
    //  Under a sanitizer, start its symbolizer now (ThreadSanitizer does at
    //  its first report, even one it then suppresses), so that its pipes
    //  are in every baseline
    static bool symbolized = false;
    if (!symbolized && __sanitizer_symbolize_pc) {
        char buffer [256];
        __sanitizer_symbolize_pc ((void *) rl_memfd_count, "%F", buffer, sizeof buffer);
        symbolized = true;
    }
    s_pt_settle_allocator ();
    malloc_trim (0);
    rl_usage_t usage = {
        .fds = tu_fd_count (),
        .memfds = rl_memfd_count (),
        .threads = tu_thread_count (),
        .rss_kib = pt_rss_kib ()
    };
    return usage;
}


//  Wait until descriptors, memfd mappings and threads are back to
//  baseline, and resident memory is within RL_RSS_SLACK_KIB of it; fail
//  after two seconds of waiting. Returns the usage then.
static inline rl_usage_t
rl_assert_usage (rl_usage_t baseline)
{
    rl_usage_t now = rl_usage ();
    int64_t deadline = zclock_mono () + 2000;
    while ((now.fds != baseline.fds || now.memfds != baseline.memfds
            || now.threads != baseline.threads)
    &&     zclock_mono () < deadline) {
        zclock_sleep (10);
        now = rl_usage ();
    }
    if (now.fds != baseline.fds || now.memfds != baseline.memfds
    ||  now.threads != baseline.threads
    ||  now.rss_kib > baseline.rss_kib + RL_RSS_SLACK_KIB)
        print_error ("usage: fds %d -> %d, memfd maps %d -> %d, threads %d -> %d, "
                     "RSS %ld -> %ld KiB\n", baseline.fds, now.fds, baseline.memfds,
                     now.memfds, baseline.threads, now.threads,
                     baseline.rss_kib, now.rss_kib);
    if (now.fds != baseline.fds)
        tu_print_fds ();
    assert_int_equal (now.fds, baseline.fds);
    assert_int_equal (now.memfds, baseline.memfds);
    assert_int_equal (now.threads, baseline.threads);
    assert_true (now.rss_kib <= baseline.rss_kib + RL_RSS_SLACK_KIB);
    return now;
}

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

static inline void
s_rl_service (zsock_t *pipe, void *args)
{
    rl_service_args_t *config = (rl_service_args_t *) args;
    zsock_t *router = shmipc_sock_new (ZMQ_ROUTER, NULL);
    zsock_signal (pipe, 0);
    int rc = router ? 0 : -1;
    if (rc == 0 && config->capacity)
        rc = shmipc_set_capacity (router, config->capacity);
    if (rc == 0 && config->maxmsgsize)
        zsock_set_maxmsgsize (router, (int) config->maxmsgsize);
    if (rc == 0 && config->rcvhwm)
        zsock_set_rcvhwm (router, config->rcvhwm);
    for (size_t index = 0; rc == 0 && index < config->nuids; index++)
        rc = shmipc_allow_uid (router, config->uids [index]);
    if (rc == 0)
        rc = shmipc_bind (router, "%s", config->endpoint);
    zsock_signal (pipe, rc == 0 ? 0 : (byte) errno);
    if (rc) {
        shmipc_sock_destroy (&router);
        free (zstr_recv (pipe));        //  $TERM
        return;
    }
    uint64_t echoed = 0;
    bool paused = false;
    while (true) {
        zmq_pollitem_t items [] = {
            { .socket = zsock_resolve (pipe), .events = ZMQ_POLLIN },
            { .socket = zsock_resolve (router), .events = ZMQ_POLLIN }
        };
        if (zmq_poll (items, paused ? 1 : 2, -1) == -1)
            break;
        if (items [0].revents & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            if (command && streq (command, "STATS")) {
                shmipc_stats_t stats;
                shmipc_sock_stats (router, &stats);
                zsock_send (pipe, "8888888", stats.peers, stats.accepted,
                            stats.closed, stats.errors, stats.msgs_in,
                            stats.msgs_out, echoed);
            }
            else
            if (command && (streq (command, "PAUSE") || streq (command, "RESUME"))) {
                paused = streq (command, "PAUSE");
                zsock_signal (pipe, 0);
            }
            free (command);
            if (term)
                break;
        }
        if (!paused && (items [1].revents & ZMQ_POLLIN)) {
            //  What is waiting (a bounded batch), then back to the pipe
            zmsg_t *msg;
            for (int count = 0; count < 1000 && (zsock_events (router) & ZMQ_POLLIN)
                                && (msg = zmsg_recv (router)); count++) {
                zmsg_send (&msg, router);
                echoed++;
            }
        }
    }
    shmipc_sock_destroy (&router);
}

//  Start the service; args must outlive it.
static inline zactor_t *
rl_service_new (rl_service_args_t *args)
{
    zactor_t *service = zactor_new (s_rl_service, args);
    assert_non_null (service);
    int status = zsock_wait (service);
    if (status)
        print_error ("service: bind %s: %s\n", args->endpoint, strerror (status));
    assert_int_equal (status, 0);
    return service;
}

static inline void
rl_service_stats (zactor_t *service, rl_stats_t *stats)
{
    zstr_send (service, "STATS");
    assert_int_equal (zsock_recv (service, "8888888", &stats->peers, &stats->accepted,
                                  &stats->closed, &stats->errors, &stats->msgs_in,
                                  &stats->msgs_out, &stats->echoed), 0);
}

static inline void
rl_service_pause (zactor_t *service, bool pause)
{
    zstr_send (service, pause ? "PAUSE" : "RESUME");
    assert_int_equal (zsock_wait (service), 0);
}

//  Wait until the service's counter field (a member of rl_stats_t) reaches
//  at least value; fail after RL_PATIENCE_MS. Returns the stats then.
#define RL_WAIT_STAT(service, field, value) \
    s_rl_wait_stat ((service), offsetof (rl_stats_t, field), (value), #field)

static inline rl_stats_t
s_rl_wait_stat (zactor_t *service, size_t offset, uint64_t value, const char *name)
{
    rl_stats_t stats;
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    rl_service_stats (service, &stats);
    uint64_t *field = (uint64_t *) ((char *) &stats + offset);
    while (*field < value && zclock_mono () < deadline) {
        zclock_sleep (5);
        rl_service_stats (service, &stats);
    }
    if (*field < value)
        print_error ("service: waited for %s >= %" PRIu64 ", saw %" PRIu64 "\n",
                     name, value, *field);
    assert_true (*field >= value);
    return stats;
}

//  --------------------------------------------------------------------------
//  Our diagnostics: with rl_log_start, verbose mode is on and this
//  process's stderr goes to a file, so that a test can check the reason
//  logged for each connection it had closed. rl_log_stop passes on every
//  line that is not ours (cmocka's messages, sanitizer reports) and removes
//  the file; if we crash, it stays, and its name was printed.

typedef struct {
    int file;                   //  The log file (fd 2 points there too)
    char path [64];             //  Its name
    off_t forwarded;            //  What rl_log_forward has looked at
} s_rl_log_t;

static inline s_rl_log_t *
s_rl_log (void)
{
    static s_rl_log_t log = { -1, "", 0 };
    return &log;
}

static inline void
rl_log_start (void)
{
    s_rl_log_t *log = s_rl_log ();
    snprintf (log->path, sizeof log->path, "/tmp/shmipc-rel-log-%d", (int) getpid ());
    log->file = open (log->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true (log->file >= 0);
    printf ("reliability: our diagnostics go to %s\n", log->path);
    fflush (stdout);
    fflush (stderr);
    *s_rl_stderr () = fcntl (STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    assert_true (*s_rl_stderr () >= 0);
    assert_int_equal (dup2 (log->file, STDERR_FILENO), STDERR_FILENO);
    shmipc_set_verbose (true);
}

//  Return the log's size now: a mark to search from.
static inline off_t
rl_log_mark (void)
{
    struct stat st;
    assert_int_equal (fstat (s_rl_log ()->file, &st), 0);
    return st.st_size;
}

//  Return the log from mark on, as a new string.
static inline char *
rl_log_since (off_t mark)
{
    off_t end = rl_log_mark ();
    size_t size = end > mark ? (size_t) (end - mark) : 0;
    char *text = (char *) malloc (size + 1);
    assert_non_null (text);
    ssize_t got = size ? pread (s_rl_log ()->file, text, size, mark) : 0;
    text [got > 0 ? got : 0] = 0;
    return text;
}

//  Wait until the log, from mark on, holds needle; fail after
//  RL_PATIENCE_MS (and show what it holds).
static inline void
rl_log_expect (off_t mark, const char *needle)
{
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    while (true) {
        char *text = rl_log_since (mark);
        bool found = strstr (text, needle) != NULL;
        if (!found && zclock_mono () >= deadline)
            print_error ("log: no '%s' in:\n%s\n", needle, text);
        free (text);
        if (found)
            return;
        assert_true (zclock_mono () < deadline);
        zclock_sleep (5);
    }
}

//  Pass on to the real stderr the lines written since the last call that
//  are not our diagnostics (cmocka's failure messages, sanitizer reports).
//  As a per-test teardown, it keeps each test's messages next to it.
static inline int
rl_log_forward (void **state)
{
    s_rl_log_t *log = s_rl_log ();
    if (log->file < 0)
        return 0;
    fflush (stderr);
    fflush (stdout);
    off_t end = rl_log_mark ();
    char *text = rl_log_since (log->forwarded);
    log->forwarded = end;
    FILE *out = fdopen (dup (*s_rl_stderr ()), "w");
    if (out) {
        char *saved;
        for (char *line = strtok_r (text, "\n", &saved); line;
             line = strtok_r (NULL, "\n", &saved))
            if (strncmp (line, "shmipc[", 7) != 0)
                fprintf (out, "%s\n", line);
        fclose (out);
    }
    free (text);
    return 0;
}

static inline void
rl_log_stop (bool keep)
{
    s_rl_log_t *log = s_rl_log ();
    if (log->file < 0)
        return;
    rl_log_forward (NULL);
    shmipc_set_verbose (false);
    fflush (stderr);
    dup2 (*s_rl_stderr (), STDERR_FILENO);
    close (*s_rl_stderr ());
    *s_rl_stderr () = -1;
    close (log->file);
    log->file = -1;
    if (!keep && !getenv ("RL_KEEP_LOG"))
        unlink (log->path);
}

#endif
