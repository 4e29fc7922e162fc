/*  =========================================================================
    swap_util - failing, watching, counting and helper processes for the
    czmq launcher tests' programs (swap_util.h says what each call does)

    Owns the table of running children, so that a failure or the watchdog
    can end them.
    =========================================================================
*/

#include "swap_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef TU_UNDER_TSAN
#   include <sanitizer/common_interface_defs.h>
#endif

#define S_MAX_CHILDREN  8
#define S_MAX_ARGS      16
#define S_WARM_THREADS  64          //  More than any case runs at once

extern char **environ;

static const char *s_program = "swap";
static const char *s_role = "";
static const char *volatile s_stage = "starting";
//  Children to end when we fail; 0 marks a free slot
static volatile pid_t s_children [S_MAX_CHILDREN];


//  --------------------------------------------------------------------------
//  Failing loudly, never hanging

static void
s_kill_children (void)
{
    for (int index = 0; index < S_MAX_CHILDREN; index++)
        if (s_children [index] > 0)
            kill (s_children [index], SIGKILL);
}

static void
s_write (const char *text)
{
    if (write (STDERR_FILENO, text, strlen (text)) < 0)
        return;                 //  Nothing better to do
}

//  Only async-signal-safe calls here: any thread may be anywhere
static void
s_watchdog (int sig)
{
    s_write (s_program);
    s_write (" ");
    s_write (s_role);
    s_write (": FAIL: watchdog: still running after " );
    char seconds [16];
    int length = 0;
    for (int value = SU_WATCHDOG_S; value && length < 15; value /= 10)
        seconds [length++] = (char) ('0' + value % 10);
    for (int index = length - 1; index >= 0; index--) {
        char digit [2] = { seconds [index], 0 };
        s_write (digit);
    }
    s_write (" s, stuck in: ");
    s_write (s_stage);
    s_write ("\n");
    s_kill_children ();
    _exit (3);
}

void
su_init (const char *program, const char *role)
{
    s_program = program;
    s_role = role;
    s_stage = "starting";
    //  A fork inherits the parent's table, not its children
    for (int index = 0; index < S_MAX_CHILDREN; index++)
        s_children [index] = 0;
    //  One malloc arena, large blocks mapped and unmapped at once, before
    //  any thread: mappings then count what is held
    mallopt (M_ARENA_MAX, 1);
    mallopt (M_MMAP_THRESHOLD, 256 * 1024);
    signal (SIGALRM, s_watchdog);
    signal (SIGPIPE, SIG_IGN);
    alarm (SU_WATCHDOG_S);
    const char *preload = getenv ("LD_PRELOAD");
    if (!preload || !strstr (preload, "shmipc"))
        fprintf (stderr, "%s %s: LD_PRELOAD names no shmipc library: "
                 "run under shmipc-run\n", program, role);
}

void
su_stage (const char *stage)
{
    s_stage = stage;
}

void
su_fail (const char *format, ...)
{
    char message [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    fprintf (stderr, "%s %s [%d]: FAIL: %s: %s\n", s_program, s_role, (int) getpid (),
             s_stage, message);
    fflush (stderr);
    s_kill_children ();
    _exit (1);
}

bool
su_under_tsan (void)
{
#ifdef TU_UNDER_TSAN
    return true;
#else
    return false;
#endif
}

int64_t
su_now_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

void
su_sleep_ms (int ms)
{
    struct timespec delay = { ms / 1000, (long) (ms % 1000) * 1000000 };
    while (nanosleep (&delay, &delay) == -1 && errno == EINTR)
        ;
}


//  --------------------------------------------------------------------------
//  This process's resources

static int
s_count_dir (const char *path)
{
    DIR *dir = opendir (path);
    su_assert (dir, "cannot read %s: %s", path, strerror (errno));
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += entry->d_name [0] != '.';
    closedir (dir);
    return count - (streq (path, "/proc/self/fd") ? 1 : 0);    //  Our own
}

static void
s_count_maps (int *maps, int *segments)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    su_assert (file, "cannot read /proc/self/maps: %s", strerror (errno));
    char line [4096];
    *maps = 0;
    *segments = 0;
    while (fgets (line, sizeof line, file)) {
        //  Count lines, not pieces of over-long ones
        if (strchr (line, '\n'))
            (*maps)++;
        if (strstr (line, SU_SHM_MARK))
            (*segments)++;
    }
    fclose (file);
}

su_counts_t
su_counts (void)
{
    su_counts_t counts;
    counts.threads = s_count_dir ("/proc/self/task");
    counts.fds = s_count_dir ("/proc/self/fd");
    s_count_maps (&counts.maps, &counts.segments);
    return counts;
}

void
su_warm_up (void)
{
    su_assert (tu_warm_threads (S_WARM_THREADS) == 0, "pthread_create failed");
}

//  glibc frees cached stacks beyond its limit only when a stack is cached,
//  and only those of threads that have fully ended: a detached thread
//  caches its own while still on it. One thread made and joined trims the
//  cache, so that stacks over the limit do not count as ours.
static void
s_trim_stack_cache (void)
{
    su_assert (tu_warm_threads (1) == 0, "pthread_create failed");
}

//  The whole of /proc/self/maps (a new string), for what a failure prints
static char *
s_read_maps (void)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    su_assert (file, "cannot read /proc/self/maps: %s", strerror (errno));
    char *text = NULL;
    size_t size = 0;
    FILE *copy = open_memstream (&text, &size);
    su_assert (copy, "open_memstream: %s", strerror (errno));
    char line [4096];
    while (fgets (line, sizeof line, file))
        fputs (line, copy);
    fclose (file);
    fclose (copy);
    return text;
}

//  The mappings at the last su_settled_counts
static char *s_base_maps;

su_counts_t
su_settled_counts (void)
{
#ifdef TU_UNDER_TSAN
    //  TSan starts its symbolizer (two pipes) at its first report,
    //  suppressed ones too: before the baseline, not after
    char symbol [128];
    __sanitizer_symbolize_pc ((void *) (uintptr_t) &su_settled_counts, "%f", symbol,
                              sizeof symbol);
#endif
    s_trim_stack_cache ();
    su_counts_t last = su_counts ();
    for (int64_t deadline = su_now_ms () + 2000; su_now_ms () < deadline; ) {
        su_sleep_ms (50);
        su_counts_t now = su_counts ();
        if (now.threads == last.threads && now.fds == last.fds
        &&  now.segments == last.segments)
            break;
        last = now;
    }
    free (s_base_maps);
    s_base_maps = s_read_maps ();
    return su_counts ();
}

//  What is left, for the failure message: threads (by name), descriptors
//  (what they are) and the mappings not there at the baseline
static void
s_print_left (void)
{
    DIR *dir = opendir ("/proc/self/task");
    struct dirent *entry;
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [300], name [64] = "?";
        snprintf (path, sizeof path, "/proc/self/task/%s/comm", entry->d_name);
        FILE *file = fopen (path, "r");
        if (file) {
            if (fgets (name, sizeof name, file))
                name [strcspn (name, "\n")] = 0;
            fclose (file);
        }
        fprintf (stderr, "    thread %s: %s\n", entry->d_name, name);
    }
    if (dir)
        closedir (dir);
    dir = opendir ("/proc/self/fd");
    while (dir && (entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [300], target [PATH_MAX] = "?";
        snprintf (path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t length = readlink (path, target, sizeof target - 1);
        if (length >= 0)
            target [length] = 0;
        fprintf (stderr, "    fd %s: %s\n", entry->d_name, target);
    }
    if (dir)
        closedir (dir);
    //  The mappings that were not there at the baseline
    char *now = s_read_maps ();
    for (char *line = strtok (now, "\n"); line && s_base_maps; line = strtok (NULL, "\n"))
        if (!strstr (s_base_maps, line) && !strstr (line, "[heap]"))
            fprintf (stderr, "    new mapping: %s\n", line);
    free (now);
}

void
su_expect_counts (su_counts_t base, const char *after)
{
#if defined (TU_UNDER_TSAN) || defined (TU_UNDER_ASAN)
    //  The runtime's own mappings come and go: count the segments only
    base.maps = INT_MAX;
#endif
    s_trim_stack_cache ();
    su_counts_t now = su_counts ();
    int64_t deadline = su_now_ms () + 3000;
    //  Threads end, and sockets are reaped, a moment after they close
    while ((now.threads != base.threads || now.fds != base.fds
        ||  now.segments > base.segments || now.maps > base.maps)
    &&     su_now_ms () < deadline) {
        su_sleep_ms (10);
        s_trim_stack_cache ();
        now = su_counts ();
    }
    if (now.threads == base.threads && now.fds == base.fds
    &&  now.segments <= base.segments && now.maps <= base.maps)
        return;
    fprintf (stderr, "%s %s: left %s: threads %d -> %d, descriptors %d -> %d, "
             "shmipc segments %d -> %d, mappings %d -> %d; now:\n", s_program, s_role,
             after, base.threads, now.threads, base.fds, now.fds, base.segments,
             now.segments, base.maps, now.maps);
    s_print_left ();
    su_fail ("resources left %s (listed above)", after);
}

void
su_expect_shared_memory (int above, const char *who)
{
    int64_t deadline = su_now_ms () + SU_TIMEOUT_MS;
    su_counts_t now = su_counts ();
    while (now.segments <= above && su_now_ms () < deadline) {
        su_sleep_ms (5);
        now = su_counts ();
    }
    su_assert (now.segments > above,
               "no new \"%s\" mapping in /proc/self/maps (%s) within %d ms: "
               "shm:// did not go through shared memory (not run under shmipc-run?)",
               SU_SHM_MARK, who, SU_TIMEOUT_MS);
}


//  --------------------------------------------------------------------------
//  Files

void
su_temp_dir (char *buffer, size_t size, const char *tag)
{
    snprintf (buffer, size, "/tmp/swap_czmq-%s.XXXXXX", tag);
    su_assert (mkdtemp (buffer), "mkdtemp %s: %s", buffer, strerror (errno));
}

bool
su_exists (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0;
}

bool
su_is_socket (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0 && S_ISSOCK (info.st_mode);
}

bool
su_is_dir (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0 && S_ISDIR (info.st_mode);
}

void
su_remove_dir (const char *dir)
{
    if (rmdir (dir) == 0)
        return;
    int error = errno;
    DIR *handle = opendir (dir);
    struct dirent *entry;
    while (handle && (entry = readdir (handle)))
        if (!streq (entry->d_name, ".") && !streq (entry->d_name, ".."))
            fprintf (stderr, "%s %s: left in %s: %s\n", s_program, s_role, dir,
                     entry->d_name);
    if (handle)
        closedir (handle);
    su_fail ("rmdir %s: %s (files left behind, listed above)", dir, strerror (error));
}


//  --------------------------------------------------------------------------
//  Helper processes

static void
s_track (pid_t pid)
{
    for (int index = 0; index < S_MAX_CHILDREN; index++)
        if (s_children [index] == 0) {
            s_children [index] = pid;
            return;
        }
    su_fail ("more than %d children at once", S_MAX_CHILDREN);
}

static void
s_untrack (pid_t pid)
{
    for (int index = 0; index < S_MAX_CHILDREN; index++)
        if (s_children [index] == pid)
            s_children [index] = 0;
}

void
su_spawn (su_child_t *child, const char *tmpdir, const char *role, ...)
{
    //  Everything the child needs is made before fork: other threads run,
    //  so between fork and exec only async-signal-safe calls
    const char *args [S_MAX_ARGS + 1];
    int count = 0;
    args [count++] = s_program;
    args [count++] = role;
    va_list list;
    va_start (list, role);
    const char *arg;
    while ((arg = va_arg (list, const char *)) && count < S_MAX_ARGS)
        args [count++] = arg;
    va_end (list);
    args [count] = NULL;

    size_t variables = 0;
    while (environ [variables])
        variables++;
    char **env = calloc (variables + 2, sizeof (char *));
    su_assert (env, "out of memory");
    size_t used = 0;
    for (size_t index = 0; index < variables; index++)
        if (!tmpdir || strncmp (environ [index], "TMPDIR=", 7))
            env [used++] = environ [index];
    char tmpdir_variable [PATH_MAX + 8];
    if (tmpdir) {
        snprintf (tmpdir_variable, sizeof tmpdir_variable, "TMPDIR=%s", tmpdir);
        env [used++] = tmpdir_variable;
    }
    env [used] = NULL;

    int in [2], out [2];
    su_assert (pipe2 (in, O_CLOEXEC) == 0 && pipe2 (out, O_CLOEXEC) == 0,
               "pipe: %s", strerror (errno));
    pid_t parent = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    su_assert (pid >= 0, "fork: %s", strerror (errno));
    if (pid == 0) {
        //  Never outlive the test
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) || getppid () != parent)
            _exit (1);
        if (dup2 (in [0], STDIN_FILENO) == -1 || dup2 (out [1], STDOUT_FILENO) == -1)
            _exit (1);
        execve ("/proc/self/exe", (char **) args, env);
        s_write ("swap: FAIL: cannot exec /proc/self/exe\n");
        _exit (127);
    }
    free (env);
    close (in [0]);
    close (out [1]);
    child->pid = pid;
    child->in = in [1];
    child->out = out [0];
    s_track (pid);
}

void
su_adopt (su_child_t *child, pid_t pid)
{
    child->pid = pid;
    child->in = -1;
    child->out = -1;
    s_track (pid);
}

void
su_child_line (su_child_t *child, char *line, size_t size)
{
    int64_t deadline = su_now_ms () + SU_TIMEOUT_MS;
    size_t length = 0;
    while (true) {
        int64_t left = deadline - su_now_ms ();
        struct pollfd item = { .fd = child->out, .events = POLLIN };
        int rc = left > 0 ? poll (&item, 1, (int) left) : 0;
        if (rc == -1 && errno == EINTR)
            continue;
        su_assert (rc == 1, "no line from helper %d within %d ms (got \"%.*s\" so far)",
                   (int) child->pid, SU_TIMEOUT_MS, (int) length, line);
        char byte;
        ssize_t got = read (child->out, &byte, 1);
        if (got == -1 && errno == EINTR)
            continue;
        su_assert (got == 1, "helper %d ended its output (failed? see its message) "
                   "before a whole line (got \"%.*s\")", (int) child->pid,
                   (int) length, line);
        if (byte == '\n')
            break;
        if (length + 1 < size)
            line [length++] = byte;
    }
    line [length] = 0;
}

void
su_child_expect (su_child_t *child, const char *expected)
{
    char line [256];
    su_child_line (child, line, sizeof line);
    su_assert (streq (line, expected), "helper %d said \"%s\", expected \"%s\"",
               (int) child->pid, line, expected);
}

void
su_child_release (su_child_t *child)
{
    if (child->in != -1) {
        close (child->in);
        child->in = -1;
    }
}

void
su_child_reap (su_child_t *child)
{
    su_child_release (child);
    int64_t deadline = su_now_ms () + SU_TIMEOUT_MS;
    int status = 0;
    while (true) {
        pid_t rc = waitpid (child->pid, &status, WNOHANG);
        if (rc == child->pid)
            break;
        su_assert (rc == 0 || errno == EINTR, "waitpid %d: %s", (int) child->pid,
                   strerror (errno));
        su_assert (su_now_ms () < deadline, "helper %d did not exit within %d ms",
                   (int) child->pid, SU_TIMEOUT_MS);
        su_sleep_ms (5);
    }
    s_untrack (child->pid);
    pid_t pid = child->pid;
    child->pid = 0;
    if (child->out != -1) {
        close (child->out);
        child->out = -1;
    }
    su_assert (WIFEXITED (status), "helper %d was killed by signal %d", (int) pid,
               WTERMSIG (status));
    su_assert (WEXITSTATUS (status) == 0,
               "helper %d failed, exit status %d (its message is above)", (int) pid,
               WEXITSTATUS (status));
}

void
su_wait_parent (void)
{
    int64_t deadline = su_now_ms () + SU_TIMEOUT_MS;
    while (true) {
        int64_t left = deadline - su_now_ms ();
        struct pollfd item = { .fd = STDIN_FILENO, .events = POLLIN };
        int rc = left > 0 ? poll (&item, 1, (int) left) : 0;
        if (rc == -1 && errno == EINTR)
            continue;
        su_assert (rc == 1, "the parent did not release us within %d ms", SU_TIMEOUT_MS);
        char byte;
        ssize_t got = read (STDIN_FILENO, &byte, 1);
        if (got == 0)
            return;             //  Released
        su_assert (got == 1 || errno == EINTR, "read stdin: %s", strerror (errno));
    }
}
