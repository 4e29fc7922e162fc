/*  test_fdpass - bytes plus descriptors over AF_UNIX sockets: round trips,
    waiting, and refusals that must close every descriptor that arrived.
*/
#include "testutil.h"
#include "shmipc_fdpass.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

//  Open count descriptors, the ends of fresh pipes, into fds [0..count).
static void
s_make_pipes (int *fds, size_t count)
{
    for (size_t index = 0; index < count; index += 2) {
        int pipe_fds [2];
        assert_int_equal (pipe (pipe_fds), 0);
        fds [index] = pipe_fds [0];
        if (index + 1 < count)
            fds [index + 1] = pipe_fds [1];
        else
            close (pipe_fds [1]);
    }
}

static void
s_close_fds (const int *fds, size_t count)
{
    for (size_t index = 0; index < count; index++)
        close (fds [index]);
}

//  Return true if fds a and b are the same end of the same pipe.
static bool
s_same_file (int a, int b)
{
    struct stat st_a, st_b;
    if (fstat (a, &st_a) || fstat (b, &st_b))
        return false;
    return st_a.st_dev == st_b.st_dev && st_a.st_ino == st_b.st_ino
        && (fcntl (a, F_GETFL) & O_ACCMODE) == (fcntl (b, F_GETFL) & O_ACCMODE);
}

//  Return a descriptor on /dev/null, to send copies of.
static int
s_devnull (void)
{
    int fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true (fd >= 0);
    return fd;
}

//  Send nfds copies of fd in one raw sendmsg, split over ncmsg SCM_RIGHTS
//  control messages. Returns sendmsg's result.
static ssize_t
s_raw_send (int sock, int fd, size_t nfds, size_t ncmsg)
{
    size_t per = nfds / ncmsg;
    assert_true (per * ncmsg == nfds);
    size_t space = ncmsg * CMSG_SPACE (sizeof (int) * per);
    union {
        char buffer [4096];
        struct cmsghdr align;
    } control;
    assert_true (space <= sizeof control.buffer);
    memset (&control, 0, sizeof control);
    char byte = 'x';
    struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1,
        .msg_control = control.buffer, .msg_controllen = space
    };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
    for (size_t index = 0; index < ncmsg; index++) {
        assert_non_null (cmsg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN (sizeof (int) * per);
        for (size_t slot = 0; slot < per; slot++)
            memcpy (CMSG_DATA (cmsg) + slot * sizeof (int), &fd, sizeof fd);
        cmsg = CMSG_NXTHDR (&msg, cmsg);
    }
    return sendmsg (sock, &msg, MSG_NOSIGNAL);
}

//  Return the scheduler state letter of process pid (from /proc/PID/stat).
static char
s_process_state (pid_t pid)
{
    char path [64], line [512];
    snprintf (path, sizeof path, "/proc/%d/stat", (int) pid);
    FILE *file = fopen (path, "r");
    if (!file)
        return '?';
    size_t size = fread (line, 1, sizeof line - 1, file);
    fclose (file);
    line [size] = 0;
    const char *paren = strrchr (line, ')');
    return paren && paren [1] == ' ' ? paren [2] : '?';
}

//  Child: wait until the parent sleeps in a system call (its blocking
//  receive or send), so that the parent provably waited.
static void
s_wait_parent_sleeps (void)
{
    pid_t parent = getppid ();
    while (s_process_state (parent) != 'S')
        usleep (1000);
}

static void
test_fdpass_round_trips_payload_and_fds_over_seqpacket (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int sent [SHMIPC_FDPASS_MAX];
    s_make_pipes (sent, SHMIPC_FDPASS_MAX);

    for (size_t nfds = 0; nfds <= SHMIPC_FDPASS_MAX; nfds++) {
        uint8_t payload [300], received [300];
        size_t size = 1 + nfds * 17;
        tu_fill (payload, size, nfds);
        assert_int_equal (shmipc_fdpass_send (pair [0], payload, size,
                                              sent, nfds, 0), (ssize_t) size);
        int fds [SHMIPC_FDPASS_MAX];
        size_t count = 99;
        assert_int_equal (shmipc_fdpass_recv (pair [1], received, sizeof received,
                                              fds, SHMIPC_FDPASS_MAX, &count, 0),
                          (ssize_t) size);
        assert_int_equal (count, nfds);
        assert_true (tu_check (received, size, nfds));
        for (size_t index = 0; index < count; index++)
            assert_true (s_same_file (fds [index], sent [index]));
        s_close_fds (fds, count);
    }
    s_close_fds (sent, SHMIPC_FDPASS_MAX);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_round_trips_payload_and_fds_over_stream (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM, 0, pair), 0);
    int sent [3];
    s_make_pipes (sent, 3);
    uint8_t payload [1000], received [1000];
    tu_fill (payload, sizeof payload, 7);
    assert_int_equal (shmipc_fdpass_send (pair [0], payload, sizeof payload,
                                          sent, 3, 0), (ssize_t) sizeof payload);
    //  A stream may deliver the bytes in pieces: the descriptors come with
    //  the first, and only with it
    size_t got = 0, total_fds = 0;
    int fds [SHMIPC_FDPASS_MAX];
    while (got < sizeof payload) {
        size_t count = 99;
        ssize_t rc = shmipc_fdpass_recv (pair [1], received + got,
                                         sizeof received - got, fds + total_fds,
                                         SHMIPC_FDPASS_MAX - total_fds, &count, 0);
        assert_true (rc > 0);
        if (got == 0)
            assert_int_equal (count, 3);
        else
            assert_int_equal (count, 0);
        got += (size_t) rc;
        total_fds += count;
    }
    assert_true (tu_check (received, sizeof received, 7));
    assert_int_equal (total_fds, 3);
    for (size_t index = 0; index < 3; index++)
        assert_true (s_same_file (fds [index], sent [index]));
    s_close_fds (fds, 3);
    s_close_fds (sent, 3);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_received_fds_are_close_on_exec (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int sent [2];
    s_make_pipes (sent, 2);
    //  The originals are not close-on-exec; the copies must be
    assert_int_equal (fcntl (sent [0], F_GETFD) & FD_CLOEXEC, 0);
    assert_int_equal (shmipc_fdpass_send (pair [0], "ab", 2, sent, 2, 0), 2);
    int fds [2];
    size_t count = 0;
    char buffer [8];
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer,
                                          fds, 2, &count, 0), 2);
    assert_int_equal (count, 2);
    for (size_t index = 0; index < count; index++)
        assert_int_equal (fcntl (fds [index], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    s_close_fds (fds, 2);
    s_close_fds (sent, 2);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_dontwait_on_empty_socket_gives_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int types [] = { SOCK_SEQPACKET, SOCK_STREAM };
    for (size_t type = 0; type < 2; type++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, types [type], 0, pair), 0);
        char buffer [16];
        int fds [1];
        size_t count = 99;
        errno = 0;
        assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer,
                                              fds, 1, &count, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (count, 0);
        close (pair [0]);
        close (pair [1]);
    }
    tu_assert_baseline (baseline);
}

static void
test_fdpass_dontwait_on_full_socket_gives_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    char block [4096];
    memset (block, 'f', sizeof block);
    long sent = 0;
    ssize_t rc;
    while ((rc = shmipc_fdpass_send (pair [0], block, sizeof block, NULL, 0,
                                     SHMIPC_DONTWAIT)) > 0)
        sent++;
    assert_int_equal (rc, -1);
    assert_int_equal (errno, EAGAIN);
    assert_true (sent > 0);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static int
s_send_after_parent_waits (void *arg)
{
    int sock = *(int *) arg;
    int fd = open ("/dev/null", O_RDONLY);
    if (fd == -1)
        return 2;
    s_wait_parent_sleeps ();
    if (shmipc_fdpass_send (sock, "late", 4, &fd, 1, 0) != 4)
        return 1;
    return 0;
}

static void
test_fdpass_blocking_recv_waits_for_sender (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    //  Waiting is the call's business, whatever O_NONBLOCK says
    assert_int_equal (fcntl (pair [1], F_SETFL, O_NONBLOCK), 0);
    pid_t child = tu_fork (s_send_after_parent_waits, &pair [0]);
    char buffer [16];
    int fds [1];
    size_t count = 0;
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer,
                                          fds, 1, &count, 0), 4);
    assert_memory_equal (buffer, "late", 4);
    assert_int_equal (count, 1);
    close (fds [0]);
    assert_int_equal (tu_wait (child), 0);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static int
s_drain_after_parent_waits (void *arg)
{
    int *pair = (int *) arg;
    close (pair [0]);           //  So that the parent's close ends the stream
    int sock = pair [1];
    s_wait_parent_sleeps ();
    char block [4096];
    //  Read everything, including the record the parent was waiting to send
    long records = 0;
    while (true) {
        size_t count;
        ssize_t rc = shmipc_fdpass_recv (sock, block, sizeof block, NULL, 0,
                                         &count, 0);
        if (rc == 0)
            break;
        if (rc != (ssize_t) sizeof block)
            return 1;
        records++;
    }
    return records > 1 ? 0 : 2;
}

static void
test_fdpass_blocking_send_waits_for_room (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    assert_int_equal (fcntl (pair [0], F_SETFL, O_NONBLOCK), 0);
    char block [4096];
    memset (block, 'w', sizeof block);
    while (shmipc_fdpass_send (pair [0], block, sizeof block, NULL, 0,
                               SHMIPC_DONTWAIT) > 0)
        ;
    assert_int_equal (errno, EAGAIN);
    pid_t child = tu_fork (s_drain_after_parent_waits, pair);
    close (pair [1]);
    assert_int_equal (shmipc_fdpass_send (pair [0], block, sizeof block, NULL, 0, 0),
                      (ssize_t) sizeof block);
    close (pair [0]);
    assert_int_equal (tu_wait (child), 0);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_refuses_more_fds_than_max_and_closes_them (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int sent [SHMIPC_FDPASS_MAX];
    s_make_pipes (sent, SHMIPC_FDPASS_MAX);
    int before = tu_fd_count ();
    //  Every (sent, allowed) pair with sent > allowed
    for (size_t nfds = 1; nfds <= SHMIPC_FDPASS_MAX; nfds++)
        for (size_t max_fds = 0; max_fds < nfds; max_fds++) {
            assert_int_equal (shmipc_fdpass_send (pair [0], "x", 1, sent, nfds, 0), 1);
            char buffer [8];
            int fds [SHMIPC_FDPASS_MAX];
            size_t count = 99;
            errno = 0;
            assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer,
                                                  max_fds ? fds : NULL, max_fds,
                                                  &count, SHMIPC_DONTWAIT), -1);
            assert_int_equal (errno, EPROTO);
            assert_int_equal (count, 0);
            assert_int_equal (tu_fd_count (), before);
        }
    s_close_fds (sent, SHMIPC_FDPASS_MAX);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_refuses_flood_of_64_fds_without_leaking (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int fd = s_devnull ();
    int before = tu_fd_count ();
    assert_int_equal (s_raw_send (pair [0], fd, 64, 1), 1);
    char buffer [8];
    int fds [SHMIPC_FDPASS_MAX];
    size_t count = 99;
    errno = 0;
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, fds,
                                          SHMIPC_FDPASS_MAX, &count, 0), -1);
    assert_int_equal (errno, EPROTO);
    assert_int_equal (count, 0);
    assert_int_equal (tu_fd_count (), before);
    close (fd);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_refuses_several_scm_rights_messages_without_leaking (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int fd = s_devnull ();
    int before = tu_fd_count ();
    //  Each part alone is within the limit; together they are not
    size_t shapes [][2] = { { 4, 2 }, { 24, 3 }, { 32, 4 }, { 20, 2 }, { 18, 2 } };
    for (size_t shape = 0; shape < sizeof shapes / sizeof shapes [0]; shape++) {
        assert_int_equal (s_raw_send (pair [0], fd, shapes [shape][0],
                                      shapes [shape][1]), 1);
        char buffer [8];
        int fds [SHMIPC_FDPASS_MAX];
        size_t count = 99;
        errno = 0;
        //  Room for 3: each split send carries more
        assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, fds,
                                              3, &count, 0), -1);
        assert_int_equal (errno, EPROTO);
        assert_int_equal (count, 0);
        assert_int_equal (tu_fd_count (), before);
    }
    close (fd);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_record_longer_than_buffer_gives_emsgsize_and_closes_fds (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int sent [4];
    s_make_pipes (sent, 4);
    int before = tu_fd_count ();
    uint8_t payload [64];
    tu_fill (payload, sizeof payload, 3);
    assert_int_equal (shmipc_fdpass_send (pair [0], payload, sizeof payload,
                                          sent, 4, 0), (ssize_t) sizeof payload);
    uint8_t buffer [63];
    int fds [SHMIPC_FDPASS_MAX];
    size_t count = 99;
    errno = 0;
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, fds,
                                          SHMIPC_FDPASS_MAX, &count, 0), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (count, 0);
    assert_int_equal (tu_fd_count (), before);
    //  The record is gone; the socket goes on working
    assert_int_equal (shmipc_fdpass_send (pair [0], payload, 10, NULL, 0, 0), 10);
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, fds,
                                          SHMIPC_FDPASS_MAX, &count, 0), 10);
    assert_int_equal (count, 0);
    assert_memory_equal (buffer, payload, 10);
    s_close_fds (sent, 4);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static int s_sigpipes;

static void
s_on_sigpipe (int signum)
{
    s_sigpipes++;
}

static void
test_fdpass_send_to_closed_peer_gives_epipe_without_sigpipe (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    struct sigaction action, saved;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_sigpipe;
    sigemptyset (&action.sa_mask);
    assert_int_equal (sigaction (SIGPIPE, &action, &saved), 0);
    s_sigpipes = 0;
    int types [] = { SOCK_SEQPACKET, SOCK_STREAM };
    for (size_t type = 0; type < 2; type++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, types [type], 0, pair), 0);
        close (pair [1]);
        int fd = s_devnull ();
        for (int flags = 0; flags <= SHMIPC_DONTWAIT; flags += SHMIPC_DONTWAIT) {
            errno = 0;
            assert_int_equal (shmipc_fdpass_send (pair [0], "x", 1, &fd, 1, flags), -1);
            assert_int_equal (errno, EPIPE);
        }
        close (fd);
        close (pair [0]);
    }
    assert_int_equal (s_sigpipes, 0);
    assert_int_equal (sigaction (SIGPIPE, &saved, NULL), 0);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_send_of_zero_bytes_gives_einval (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    int fd = 0;
    errno = 0;
    assert_int_equal (shmipc_fdpass_send (pair [0], "x", 0, &fd, 1, 0), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_fdpass_send (pair [0], NULL, 0, NULL, 0, 0), -1);
    assert_int_equal (errno, EINVAL);
    //  Nothing went out
    char buffer [8];
    size_t count = 99;
    assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, NULL, 0,
                                          &count, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    close (pair [0]);
    close (pair [1]);
    tu_assert_baseline (baseline);
}

static void
test_fdpass_end_of_stream_returns_zero (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int types [] = { SOCK_SEQPACKET, SOCK_STREAM };
    for (size_t type = 0; type < 2; type++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, types [type], 0, pair), 0);
        //  One record still queued is delivered before the end
        assert_int_equal (shmipc_fdpass_send (pair [0], "bye", 3, NULL, 0, 0), 3);
        close (pair [0]);
        char buffer [8];
        int fds [1];
        size_t count = 99;
        assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer, fds,
                                              1, &count, 0), 3);
        assert_int_equal (count, 0);
        for (int flags = 0; flags <= SHMIPC_DONTWAIT; flags += SHMIPC_DONTWAIT) {
            count = 99;
            assert_int_equal (shmipc_fdpass_recv (pair [1], buffer, sizeof buffer,
                                                  fds, 1, &count, flags), 0);
            assert_int_equal (count, 0);
        }
        close (pair [1]);
    }
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_fdpass_round_trips_payload_and_fds_over_seqpacket),
        cmocka_unit_test (test_fdpass_round_trips_payload_and_fds_over_stream),
        cmocka_unit_test (test_fdpass_received_fds_are_close_on_exec),
        cmocka_unit_test (test_fdpass_dontwait_on_empty_socket_gives_eagain),
        cmocka_unit_test (test_fdpass_dontwait_on_full_socket_gives_eagain),
        cmocka_unit_test (test_fdpass_blocking_recv_waits_for_sender),
        cmocka_unit_test (test_fdpass_blocking_send_waits_for_room),
        cmocka_unit_test (test_fdpass_refuses_more_fds_than_max_and_closes_them),
        cmocka_unit_test (test_fdpass_refuses_flood_of_64_fds_without_leaking),
        cmocka_unit_test (test_fdpass_refuses_several_scm_rights_messages_without_leaking),
        cmocka_unit_test (test_fdpass_record_longer_than_buffer_gives_emsgsize_and_closes_fds),
        cmocka_unit_test (test_fdpass_send_to_closed_peer_gives_epipe_without_sigpipe),
        cmocka_unit_test (test_fdpass_send_of_zero_bytes_gives_einval),
        cmocka_unit_test (test_fdpass_end_of_stream_returns_zero),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
