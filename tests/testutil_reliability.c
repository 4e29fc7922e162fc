/*  =========================================================================
    testutil_reliability - helpers shared by the reliability tests and their
    helper programs: helper processes, the echo service that plays the
    victim, resource snapshots, our diagnostics captured from stderr

    Owns, while rl_log_start is in force, the log file and our saved
    stderr; nothing else beyond what each helper returns to its caller.
    Declared in testutil_reliability.h.
    =========================================================================
*/

#include "testutil_reliability.h"

#include <malloc.h>

//  In the sanitizers' runtime: symbolize an address (may start the
//  external symbolizer, a process with two pipes to us).
void __sanitizer_symbolize_pc (void *pc, const char *format, char *buffer,
                               size_t size) __attribute__ ((weak));

//  The log rl_log_start made, and our stderr while it is in force.
typedef struct {
    int file;                   //  The log file (fd 2 points there too)
    char path [64];             //  Its name
    off_t forwarded;            //  What rl_log_forward has looked at
    int stderr_fd;              //  The original stderr, for the helpers and
                                //  for what we pass on; -1 when not captured
} s_log_t;

static s_log_t s_log = { -1, "", 0, -1 };

long
rl_rss_slack_kib (void)
{
    //  ThreadSanitizer's allocator and shadow give almost nothing back, and
    //  valgrind's own heap is in our resident memory
    if (tu_under_tsan () || tu_under_valgrind ())
        return 1L << 30;
    //  AddressSanitizer keeps freed memory in quarantine and shadow pages
    if (tu_under_asan ())
        return 96L * 1024;
    return 16L * 1024;
}

//  --------------------------------------------------------------------------
//  Helper processes

void
rl_start_argv (tu_child_t *child, const char *program, const char *const *args)
{
    char path [256];
    snprintf (path, sizeof path, "hostile/%s", program);
    tu_spawn_t how = {
        .stdin_pipe = true,
        .stderr_fd = s_log.stderr_fd,
        .wrapper = getenv ("RL_CHILD_WRAPPER")
    };
    tu_spawn (child, path, args, &how);
}

void
rl_start (tu_child_t *child, const char *program, const char *arg, ...)
{
    const char *args [48];
    va_list list;
    va_start (list, arg);
    tu_collect_args (args, 48, arg, list);
    va_end (list);
    rl_start_argv (child, program, args);
}

void
rl_expect (tu_child_t *child, const char *prefix, char *line, size_t size)
{
    char buffer [512] = "";
    int rc = tu_child_read_line (child, buffer, sizeof buffer, RL_PATIENCE_MS);
    if (rc || strncmp (buffer, prefix, strlen (prefix)))
        print_error ("helper %d: expected '%s...', got '%s'%s\n", (int) child->pid,
                     prefix, buffer, rc ? " (no line)" : "");
    assert_int_equal (rc, 0);
    assert_memory_equal (buffer, prefix, strlen (prefix));
    if (line)
        snprintf (line, size, "%s", buffer);
}

void
rl_expect_eventually (tu_child_t *child, const char *prefix)
{
    char line [512] = "";
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    while (zclock_mono () < deadline) {
        if (tu_child_read_line (child, line, sizeof line, RL_PATIENCE_MS))
            break;
        if (strncmp (line, prefix, strlen (prefix)) == 0)
            return;
    }
    fail_msg ("helper %d: no line '%s...' (last '%s')", (int) child->pid, prefix, line);
}

//  --------------------------------------------------------------------------
//  Resources

//  Mappings of memfds: our segments and the peers' we attached.
static int
s_memfd_count (void)
{
    return tu_maps_with ("/memfd:");
}

long
rl_rss_kib (void)
{
    tu_settle_allocator ();
    malloc_trim (0);
    return tu_rss_kib ();
}

rl_usage_t
rl_usage (void)
{
    //  Under a sanitizer, start its symbolizer now (ThreadSanitizer does at
    //  its first report, even one it then suppresses), so that its pipes
    //  are in every baseline
    static bool symbolized = false;
    if (!symbolized && __sanitizer_symbolize_pc) {
        char buffer [256];
        __sanitizer_symbolize_pc ((void *) s_memfd_count, "%F", buffer, sizeof buffer);
        symbolized = true;
    }
    tu_settle_allocator ();
    malloc_trim (0);
    rl_usage_t usage = {
        .fds = tu_fd_count (),
        .memfds = s_memfd_count (),
        .threads = tu_thread_count (),
        .rss_kib = tu_rss_kib ()
    };
    return usage;
}

rl_usage_t
rl_assert_usage (rl_usage_t baseline)
{
    long slack = rl_rss_slack_kib ();
    rl_usage_t now = rl_usage ();
    int64_t deadline = zclock_mono () + 2000;
    //  libzmq's reaper frees a closed socket's pipes in its own time: give
    //  the memory, like the descriptors, a moment to come back
    while ((now.fds != baseline.fds || now.memfds != baseline.memfds
            || now.threads != baseline.threads
            || now.rss_kib > baseline.rss_kib + slack)
    &&     zclock_mono () < deadline) {
        zclock_sleep (10);
        now = rl_usage ();
    }
    if (now.fds != baseline.fds || now.memfds != baseline.memfds
    ||  now.threads != baseline.threads
    ||  now.rss_kib > baseline.rss_kib + slack)
        print_error ("usage: fds %d -> %d, memfd maps %d -> %d, threads %d -> %d, "
                     "RSS %ld -> %ld KiB\n", baseline.fds, now.fds, baseline.memfds,
                     now.memfds, baseline.threads, now.threads,
                     baseline.rss_kib, now.rss_kib);
    if (now.fds != baseline.fds)
        tu_print_fds ();
    assert_int_equal (now.fds, baseline.fds);
    assert_int_equal (now.memfds, baseline.memfds);
    assert_int_equal (now.threads, baseline.threads);
    assert_true (now.rss_kib <= baseline.rss_kib + slack);
    return now;
}

//  --------------------------------------------------------------------------
//  The victim

static void
s_service (zsock_t *pipe, void *args)
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

zactor_t *
rl_service_new (rl_service_args_t *args)
{
    zactor_t *service = zactor_new (s_service, args);
    assert_non_null (service);
    int status = zsock_wait (service);
    if (status)
        print_error ("service: bind %s: %s\n", args->endpoint, strerror (status));
    assert_int_equal (status, 0);
    return service;
}

void
rl_service_stats (zactor_t *service, rl_stats_t *stats)
{
    zstr_send (service, "STATS");
    assert_int_equal (zsock_recv (service, "8888888", &stats->peers, &stats->accepted,
                                  &stats->closed, &stats->errors, &stats->msgs_in,
                                  &stats->msgs_out, &stats->echoed), 0);
}

void
rl_service_pause (zactor_t *service, bool pause)
{
    zstr_send (service, pause ? "PAUSE" : "RESUME");
    assert_int_equal (zsock_wait (service), 0);
}

rl_stats_t
rl_wait_stat (zactor_t *service, size_t offset, uint64_t value, const char *name)
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
//  Our diagnostics

void
rl_log_start (void)
{
    snprintf (s_log.path, sizeof s_log.path, "/tmp/shmipc-rel-log-%d", (int) getpid ());
    s_log.file = open (s_log.path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true (s_log.file >= 0);
    printf ("reliability: our diagnostics go to %s\n", s_log.path);
    fflush (stdout);
    fflush (stderr);
    s_log.stderr_fd = fcntl (STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    assert_true (s_log.stderr_fd >= 0);
    assert_int_equal (dup2 (s_log.file, STDERR_FILENO), STDERR_FILENO);
    shmipc_set_verbose (true);
}

off_t
rl_log_mark (void)
{
    struct stat st;
    assert_int_equal (fstat (s_log.file, &st), 0);
    return st.st_size;
}

char *
rl_log_since (off_t mark)
{
    off_t end = rl_log_mark ();
    size_t size = end > mark ? (size_t) (end - mark) : 0;
    char *text = (char *) malloc (size + 1);
    assert_non_null (text);
    ssize_t got = size ? pread (s_log.file, text, size, mark) : 0;
    text [got > 0 ? got : 0] = 0;
    return text;
}

void
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

int
rl_log_forward (void **state)
{
    if (s_log.file < 0)
        return 0;
    fflush (stderr);
    fflush (stdout);
    off_t end = rl_log_mark ();
    char *text = rl_log_since (s_log.forwarded);
    s_log.forwarded = end;
    FILE *out = fdopen (dup (s_log.stderr_fd), "w");
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

void
rl_log_stop (bool keep)
{
    if (s_log.file < 0)
        return;
    rl_log_forward (NULL);
    shmipc_set_verbose (false);
    fflush (stderr);
    dup2 (s_log.stderr_fd, STDERR_FILENO);
    close (s_log.stderr_fd);
    s_log.stderr_fd = -1;
    close (s_log.file);
    s_log.file = -1;
    if (!keep && !getenv ("RL_KEEP_LOG"))
        unlink (s_log.path);
}
