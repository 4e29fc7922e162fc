/*  =========================================================================
    perf_spawn - child processes, seen from the coordinator: start (exec of
    ourselves, or a plain fork for limit roles), read their READY and
    RESULT lines, release and reap them, kill them on failure or interrupt

    Owns the table of live children that the signal handler kills, and the
    names of the socket files to remove if we are interrupted. Never
    touches czmq, so that a plain fork is safe here.
    =========================================================================
*/

#include "perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_LIVE_MAX  8

static char s_exe [PATH_MAX];                   //  Our executable
static volatile pid_t s_live [S_LIVE_MAX];      //  Children not yet reaped
static char s_cleanup [2][256];                 //  Files to remove on interrupt

int
perf_spawn_init (void)
{
    ssize_t size = readlink ("/proc/self/exe", s_exe, sizeof s_exe - 1);
    if (size <= 0)
        return -1;
    s_exe [size] = 0;
    return 0;
}

static void
s_track (pid_t pid)
{
    for (int index = 0; index < S_LIVE_MAX; index++)
        if (s_live [index] == 0) {
            s_live [index] = pid;
            return;
        }
}

static void
s_untrack (pid_t pid)
{
    for (int index = 0; index < S_LIVE_MAX; index++)
        if (s_live [index] == pid)
            s_live [index] = 0;
}

void
perf_spawn_set_cleanup (const char *path1, const char *path2)
{
    //  Written between runs only, when no signal handler can be reading
    snprintf (s_cleanup [0], sizeof s_cleanup [0], "%s", path1 ? path1 : "");
    snprintf (s_cleanup [1], sizeof s_cleanup [1], "%s", path2 ? path2 : "");
}

static void
s_on_signal (int signum)
{
    //  Async-signal-safe only: kill, unlink, write, _exit
    for (int index = 0; index < S_LIVE_MAX; index++)
        if (s_live [index] > 0)
            kill (s_live [index], SIGKILL);
    for (int index = 0; index < S_LIVE_MAX; index++)
        if (s_live [index] > 0)
            waitpid (s_live [index], NULL, 0);
    for (int index = 0; index < 2; index++)
        if (s_cleanup [index][0])
            unlink (s_cleanup [index]);
    static const char message [] = "\nshmipc-perf: interrupted; children killed\n";
    ssize_t ignored = write (STDERR_FILENO, message, sizeof message - 1);
    (void) ignored;
    _exit (128 + signum);
}

void
perf_spawn_signals (void)
{
    struct sigaction action = { .sa_handler = s_on_signal };
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
    sigaction (SIGHUP, &action, NULL);
    signal (SIGPIPE, SIG_IGN);
}

//  In a forked child: close every descriptor from 3 up except keep1 and
//  keep2 (-1 for none), so that no other child's pipe stays open in us.
static void
s_close_others (int keep1, int keep2)
{
    int low = keep1 < keep2 ? keep1 : keep2;
    int high = keep1 < keep2 ? keep2 : keep1;
    int from = 3;
    int keeps [2] = { low, high };
    for (int index = 0; index < 2; index++) {
        if (keeps [index] < from)
            continue;
        if (keeps [index] > from)
            close_range ((unsigned) from, (unsigned) keeps [index] - 1, 0);
        from = keeps [index] + 1;
    }
    close_range ((unsigned) from, ~0U, 0);
}

int
perf_spawn (perf_child_t *child, const perf_job_t *job, perf_role_fn *fn)
{
    memset (child, 0, sizeof *child);
    child->in_fd = child->out_fd = -1;
    child->label = job->role;

    //  The command line, built before fork
    char numbers [13][64];
    snprintf (numbers [0], 64, "size=%zu", job->size);
    snprintf (numbers [1], 64, "count=%" PRIu64, job->count);
    snprintf (numbers [2], 64, "warmup=%" PRIu64, job->warmup);
    snprintf (numbers [3], 64, "capacity=%zu", job->capacity);
    snprintf (numbers [4], 64, "hwm=%d", job->hwm);
    snprintf (numbers [5], 64, "spin=%d", job->spin_us);
    snprintf (numbers [6], 64, "batch=%d", job->batch);
    snprintf (numbers [7], 64, "timeout=%d", job->timeout_s);
    snprintf (numbers [8], 64, "settle=%d", job->settle_ms);
    snprintf (numbers [9], 64, "memcpy_ms=%d", job->memcpy_ms);
    snprintf (numbers [10], 64, "zerocopy=%d", job->zerocopy);
    snprintf (numbers [11], 64, "loan=%d", job->loan);
    char endpoint [300];
    snprintf (endpoint, sizeof endpoint, "endpoint=%s", job->endpoint);
    char *argv [] = {
        s_exe, "--role", (char *) job->role, endpoint,
        numbers [0], numbers [1], numbers [2], numbers [3], numbers [4],
        numbers [5], numbers [6], numbers [7], numbers [8], numbers [9],
        numbers [10], numbers [11], NULL
    };
    int in [2], out [2];
    if (pipe2 (in, O_CLOEXEC))
        return -1;
    if (pipe2 (out, O_CLOEXEC)) {
        close (in [0]);
        close (in [1]);
        return -1;
    }
    fflush (stdout);
    fflush (stderr);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0) {
        //  No orphans: we die with the coordinator, even by SIGKILL
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (99);
        signal (SIGINT, SIG_DFL);
        signal (SIGTERM, SIG_DFL);
        signal (SIGHUP, SIG_DFL);
        signal (SIGPIPE, SIG_DFL);
        if (dup2 (in [0], STDIN_FILENO) < 0 || dup2 (out [1], STDOUT_FILENO) < 0)
            _exit (98);
        //  Never live longer than the run may (the default action kills us)
        alarm ((unsigned) job->timeout_s + 10);
        if (fn) {
            s_close_others (job->fd_a, job->fd_b);
            perf_set_role (job->role);
            _exit (fn (job));
        }
        execv (s_exe, argv);
        fprintf (stderr, "shmipc-perf: cannot exec %s: %s\n", s_exe, strerror (errno));
        _exit (127);
    }
    int saved = errno;
    close (in [0]);
    close (out [1]);
    if (pid < 0) {
        close (in [1]);
        close (out [0]);
        errno = saved;
        return -1;
    }
    s_track (pid);
    child->pid = pid;
    child->in_fd = in [1];
    child->out_fd = out [0];
    return 0;
}

//  Handle one line from a child.
static void
s_handle_line (perf_child_t *child, char *line)
{
    if (strncmp (line, "READY", 5) == 0 && (line [5] == ' ' || line [5] == 0)) {
        snprintf (child->ready, sizeof child->ready, "%s", line [5] ? line + 6 : "");
        child->got_ready = true;
    }
    else
    if (strncmp (line, "RESULT", 6) == 0 && (line [6] == ' ' || line [6] == 0)) {
        snprintf (child->result, sizeof child->result, "%s", line [6] ? line + 7 : "");
        child->got_result = true;
    }
    else
        fprintf (stderr, "\nshmipc-perf: %s says: %s\n", child->label, line);
}

//  Read what the child wrote; split it into lines.
static void
s_read_child (perf_child_t *child)
{
    while (true) {
        size_t room = sizeof child->buffer - 1 - child->buffered;
        if (room == 0) {
            child->buffered = 0;        //  A line too long: not ours; drop it
            room = sizeof child->buffer - 1;
        }
        ssize_t size = read (child->out_fd, child->buffer + child->buffered, room);
        if (size < 0 && errno == EINTR)
            continue;
        if (size <= 0) {
            child->eof = true;
            return;
        }
        child->buffered += (size_t) size;
        char *start = child->buffer;
        char *newline;
        while ((newline = memchr (start, '\n',
                                  child->buffered - (size_t) (start - child->buffer)))) {
            *newline = 0;
            s_handle_line (child, start);
            start = newline + 1;
        }
        child->buffered -= (size_t) (start - child->buffer);
        memmove (child->buffer, start, child->buffered);
        return;
    }
}

int
perf_spawn_wait (perf_child_t *children, size_t count, bool want_ready,
                 bool want_result, int64_t deadline_ns)
{
    while (true) {
        bool satisfied = true;
        for (size_t index = 0; index < count; index++) {
            perf_child_t *child = &children [index];
            if ((want_ready && !child->got_ready) || (want_result && !child->got_result)) {
                satisfied = false;
                if (child->eof) {
                    fprintf (stderr, "\nshmipc-perf: %s ended before its %s\n",
                             child->label, want_ready && !child->got_ready
                                           ? "READY" : "RESULT");
                    return -1;
                }
            }
        }
        if (satisfied)
            return 0;
        int64_t left_ns = deadline_ns - perf_now_ns ();
        if (left_ns <= 0) {
            fprintf (stderr, "\nshmipc-perf: timed out waiting for");
            for (size_t index = 0; index < count; index++)
                if ((want_ready && !children [index].got_ready)
                ||  (want_result && !children [index].got_result))
                    fprintf (stderr, " %s", children [index].label);
            fprintf (stderr, " (see --timeout)\n");
            return -1;
        }
        struct pollfd items [S_LIVE_MAX];
        size_t owners [S_LIVE_MAX];
        nfds_t nitems = 0;
        for (size_t index = 0; index < count && nitems < S_LIVE_MAX; index++)
            if (!children [index].eof && children [index].out_fd >= 0) {
                items [nitems] = (struct pollfd) {
                    .fd = children [index].out_fd, .events = POLLIN };
                owners [nitems++] = index;
            }
        int timeout_ms = (int) ((left_ns + 999999) / 1000000);
        int rc = poll (items, nitems, timeout_ms);
        if (rc < 0 && errno != EINTR)
            return -1;
        for (nfds_t item = 0; rc > 0 && item < nitems; item++)
            if (items [item].revents)
                s_read_child (&children [owners [item]]);
    }
}

int
perf_spawn_finish (perf_child_t *children, size_t count, bool kill_first,
                   int64_t deadline_ns)
{
    int rc = 0;
    for (size_t index = 0; index < count; index++) {
        perf_child_t *child = &children [index];
        if (child->in_fd >= 0) {
            close (child->in_fd);
            child->in_fd = -1;
        }
        if (kill_first && child->pid > 0)
            kill (child->pid, SIGKILL);
    }
    size_t left = 0;
    for (size_t index = 0; index < count; index++)
        left += children [index].pid > 0;
    bool killed = kill_first;
    while (left) {
        for (size_t index = 0; index < count; index++) {
            perf_child_t *child = &children [index];
            if (child->pid <= 0)
                continue;
            int status;
            pid_t pid = waitpid (child->pid, &status, killed ? 0 : WNOHANG);
            if (pid == 0)
                continue;
            if (pid < 0 && errno == EINTR)
                continue;
            if (pid > 0 && !kill_first
            &&  !(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
                if (WIFSIGNALED (status))
                    fprintf (stderr, "\nshmipc-perf: %s killed by signal %d%s\n",
                             child->label, WTERMSIG (status),
                             WTERMSIG (status) == SIGALRM ? " (its alarm: timed out)" : "");
                else
                    fprintf (stderr, "\nshmipc-perf: %s exited with status %d\n",
                             child->label, WEXITSTATUS (status));
                rc = -1;
            }
            s_untrack (child->pid);
            child->pid = 0;
            left--;
        }
        if (left && !killed) {
            if (perf_now_ns () >= deadline_ns) {
                for (size_t index = 0; index < count; index++)
                    if (children [index].pid > 0) {
                        fprintf (stderr, "\nshmipc-perf: %s did not exit; killed\n",
                                 children [index].label);
                        kill (children [index].pid, SIGKILL);
                    }
                killed = true;
                rc = -1;
            }
            else
                usleep (2000);
        }
    }
    for (size_t index = 0; index < count; index++)
        if (children [index].out_fd >= 0) {
            close (children [index].out_fd);
            children [index].out_fd = -1;
        }
    return kill_first ? -1 : rc;
}

int
perf_result_u64 (const char *result, const char *key, uint64_t *value)
{
    size_t key_size = strlen (key);
    const char *at = result;
    while (at && *at) {
        while (*at == ' ')
            at++;
        if (strncmp (at, key, key_size) == 0 && at [key_size] == '=') {
            char *end;
            errno = 0;
            *value = strtoull (at + key_size + 1, &end, 10);
            return errno || (*end && *end != ' ') ? -1 : 0;
        }
        at = strchr (at, ' ');
    }
    return -1;
}
