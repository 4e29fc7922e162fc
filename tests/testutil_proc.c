/*  =========================================================================
    testutil_proc - processes for the tests: forked children, helper
    programs started with pipes on their stdin and stdout, and the few
    things every helper program does (die with its test, say a line)

    Owns the descriptors of each tu_child_t it starts until
    tu_child_finish. Declared in testutil.h.
    =========================================================================
*/

#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void
tu_print_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [300], target [256];
        snprintf (path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t size = readlink (path, target, sizeof target - 1);
        target [size > 0 ? size : 0] = 0;
        print_error ("  fd %s -> %s\n", entry->d_name, target);
    }
    closedir (dir);
}


pid_t
tu_fork (int (*fn) (void *), void *arg)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        _exit (fn (arg));
    return pid;
}

int
tu_wait (pid_t pid)
{
    int status;
    while (waitpid (pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return WEXITSTATUS (status);
}


int
tu_read_line (int fd, char *line, size_t size, int timeout_ms)
{
    size_t used = 0;
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    int64_t deadline = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    while (used + 1 < size) {
        clock_gettime (CLOCK_MONOTONIC, &now);
        int left = (int) (deadline - ((int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000));
        struct pollfd item = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll (&item, 1, left) <= 0)
            return -1;
        char ch;
        if (read (fd, &ch, 1) != 1)
            return -1;
        if (ch == '\n')
            break;
        line [used++] = ch;
    }
    line [used] = 0;
    return 0;
}

int
tu_collect_args (const char **args, int size, const char *first, va_list list)
{
    int count = 0;
    for (const char *next = first; next && count < size - 1;
         next = va_arg (list, const char *))
        args [count++] = next;
    args [count] = NULL;
    return count;
}

void
tu_spawn (tu_child_t *child, const char *program, const char *const *args,
          const tu_spawn_t *how)
{
    static const tu_spawn_t plain = { false, 0, NULL, NULL };
    if (!how)
        how = &plain;
    char exe [PATH_MAX];
    ssize_t size = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    assert_true (size > 0);
    exe [size] = 0;
    char *slash = strrchr (exe, '/');
    assert_non_null (slash);
    snprintf (slash, sizeof exe - (size_t) (slash - exe), "/%s", program);

    char *argv [64];
    int argc = 0;
    char wrapper [512] = "";
    if (how->wrapper && *how->wrapper) {
        snprintf (wrapper, sizeof wrapper, "%s", how->wrapper);
        char *saved;
        for (char *word = strtok_r (wrapper, " ", &saved); word && argc < 16;
             word = strtok_r (NULL, " ", &saved))
            argv [argc++] = word;
    }
    argv [argc++] = exe;
    for (int index = 0; args [index] && argc < 63; index++)
        argv [argc++] = (char *) args [index];
    argv [argc] = NULL;

    int in [2] = { -1, -1 }, out [2];
    if (how->stdin_pipe)
        assert_int_equal (pipe2 (in, O_CLOEXEC), 0);
    assert_int_equal (pipe2 (out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    if (how->stdin_pipe)
        posix_spawn_file_actions_adddup2 (&actions, in [0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2 (&actions, out [1], STDOUT_FILENO);
    if (how->stderr_fd > STDERR_FILENO)
        posix_spawn_file_actions_adddup2 (&actions, how->stderr_fd, STDERR_FILENO);
    else
    if (how->stderr_path)
        posix_spawn_file_actions_addopen (&actions, STDERR_FILENO, how->stderr_path,
                                          O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush (NULL);
    //  With a wrapper, argv [0] is looked up on PATH
    int rc = posix_spawnp (&child->pid, argv [0], &actions, NULL, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    if (how->stdin_pipe)
        close (in [0]);
    close (out [1]);
    if (rc)
        print_error ("spawn %s: %s\n", argv [0], strerror (rc));
    assert_int_equal (rc, 0);
    child->in = in [1];
    child->out = out [0];
}

int
tu_child_read_line (tu_child_t *child, char *line, size_t size, int timeout_ms)
{
    return tu_read_line (child->out, line, size, timeout_ms);
}

void
tu_child_stop (tu_child_t *child)
{
    if (child->in >= 0) {
        close (child->in);
        child->in = -1;
    }
}

int
tu_child_finish (tu_child_t *child, int sig)
{
    int code = -1;
    if (child->pid > 0) {
        if (sig)
            kill (child->pid, sig);
        tu_child_stop (child);
        code = tu_wait (child->pid);
        child->pid = 0;
    }
    tu_child_stop (child);
    if (child->out >= 0) {
        close (child->out);
        child->out = -1;
    }
    return code;
}

bool
tu_child_init (void)
{
    //  Never outlive the test that started us
    prctl (PR_SET_PDEATHSIG, SIGKILL);
    return getppid () != 1;
}
