/*  test_hardening_endpoint - regressions from an attack run on listeners:
    the socket file's mode is set without following a path (D8), and of
    listeners racing for one path exactly one wins (D9).
*/
#include "testutil.h"
#include "shmipc_endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define S_RACERS 8              //  Listeners racing for each path

//  --------------------------------------------------------------------------
//  An attacker between bind and the next system call: this bind replaces
//  libc's for the whole test program, and once armed swaps the socket file
//  bind just made for a symbolic link, as a local user in a world-writable
//  directory can.

static const char *s_swap_path;     //  Swap after the next bind to this path
static const char *s_swap_target;   //  for a symbolic link to this file

int
bind (int sock, __CONST_SOCKADDR_ARG addr, socklen_t addr_len)
{
    int rc = (int) syscall (SYS_bind, sock, addr.__sockaddr__, addr_len);
    const struct sockaddr_un *un = addr.__sockaddr_un__;
    if (rc == 0 && s_swap_path && un->sun_family == AF_UNIX
    &&  strcmp (un->sun_path, s_swap_path) == 0) {
        s_swap_path = NULL;
        if (unlink (un->sun_path) || symlink (s_swap_target, un->sun_path))
            abort ();
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Helpers

//  Make a fresh directory for one test: /tmp/shmipc-test-<pid>-<tag>.
static void
s_make_dir (char *dir, size_t size, const char *tag)
{
    snprintf (dir, size, "/tmp/shmipc-test-%d-%s", (int) getpid (), tag);
    assert_int_equal (mkdir (dir, 0700), 0);
}

//  Create a regular file at path with exactly mode.
static void
s_make_file (const char *path, mode_t mode)
{
    int fd = open (path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, mode);
    assert_true (fd >= 0);
    assert_int_equal (fchmod (fd, mode), 0);
    close (fd);
}

//  Bind a socket to path and close it without unlinking: a crash's leftover.
static void
s_make_stale_socket_file (const char *path)
{
    int sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true (sock >= 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf (addr.sun_path, sizeof addr.sun_path, "%s", path);
    assert_int_equal (bind (sock, (struct sockaddr *) &addr, sizeof addr), 0);
    close (sock);
}

static mode_t
s_mode_of (const char *path)
{
    struct stat st;
    assert_int_equal (lstat (path, &st), 0);
    return st.st_mode & 07777;
}

//  Return true if a connect to endpoint reaches listener (its accept
//  takes the connection), not some other socket at the same path.
static bool
s_reaches (const char *endpoint, shmipc_listener_t *listener)
{
    int client = shmipc_endpoint_connect (endpoint, SHMIPC_DONTWAIT);
    if (client == -1)
        return false;
    int server = shmipc_listener_accept (listener);
    close (client);
    if (server == -1)
        return false;
    close (server);
    return true;
}

//  Wait up to 30 s for one byte on sock. Returns it, or -1.
static int
s_recv_byte (int sock)
{
    struct pollfd item = { .fd = sock, .events = POLLIN };
    char byte;
    if (poll (&item, 1, 30000) != 1 || recv (sock, &byte, 1, 0) != 1)
        return -1;
    return (unsigned char) byte;
}

//  --------------------------------------------------------------------------
//  D8: the socket file's mode

static void
test_hardening_endpoint_socket_file_is_owner_only_from_its_creation (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Even a umask that takes the owner's own bits
    mode_t umasks [] = { 0, 022, 0277 };
    for (size_t index = 0; index < 3; index++) {
        char endpoint [128];
        tu_endpoint (endpoint, sizeof endpoint, 'p');
        const char *path = endpoint + strlen ("shm://");
        mode_t saved = umask (umasks [index]);
        shmipc_listener_t *listener = shmipc_listener_new (endpoint);
        umask (saved);
        assert_non_null (listener);
        struct stat st;
        assert_int_equal (lstat (path, &st), 0);
        assert_true (S_ISSOCK (st.st_mode));
        assert_int_equal (st.st_mode & 07777, 0600);
        //  The socket itself had that mode before bind: bind created the
        //  file owner-only, there was no window before a chmod
        assert_int_equal (fstat (shmipc_listener_fd (listener), &st), 0);
        assert_int_equal (st.st_mode & 07777, 0600);
        assert_true (s_reaches (endpoint, listener));
        shmipc_listener_destroy (&listener);
    }
    tu_assert_baseline (baseline);
}

static void
test_hardening_endpoint_listener_leaves_a_file_swapped_in_after_bind_alone (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char dir [96], path [128], target [128], endpoint [160];
    s_make_dir (dir, sizeof dir, "swap");
    snprintf (path, sizeof path, "%s/sock", dir);
    snprintf (target, sizeof target, "%s/target", dir);
    snprintf (endpoint, sizeof endpoint, "shm://%s", path);
    s_make_file (target, 0644);

    //  Right after bind, the socket file becomes a link to our file
    s_swap_path = path;
    s_swap_target = target;
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, ESTALE);
    assert_null (s_swap_path);              //  The swap did happen
    //  Its target was not changed, and the link was not removed
    assert_int_equal (s_mode_of (target), 0644);
    struct stat st;
    assert_int_equal (lstat (path, &st), 0);
    assert_true (S_ISLNK (st.st_mode));

    assert_int_equal (unlink (path), 0);
    assert_int_equal (unlink (target), 0);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

static void
test_hardening_endpoint_set_mode_does_not_follow_a_symlink (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char dir [96], path [128], target [128], moved [128], endpoint [160];
    s_make_dir (dir, sizeof dir, "link");
    snprintf (path, sizeof path, "%s/sock", dir);
    snprintf (target, sizeof target, "%s/target", dir);
    snprintf (moved, sizeof moved, "%s/moved", dir);
    snprintf (endpoint, sizeof endpoint, "shm://%s", path);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    assert_int_equal (s_mode_of (path), 0600);

    //  The socket file replaced by a link to a file of ours
    s_make_file (target, 0644);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (symlink (target, path), 0);
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, ELOOP);
    assert_int_equal (s_mode_of (target), 0644);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (unlink (target), 0);
    shmipc_listener_destroy (&listener);

    //  Nor a link to our own socket file, moved away
    listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    assert_int_equal (rename (path, moved), 0);
    assert_int_equal (symlink (moved, path), 0);
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, ELOOP);
    assert_int_equal (s_mode_of (moved), 0600);
    shmipc_listener_destroy (&listener);
    //  Destroy removed neither the link nor the moved file
    assert_int_equal (unlink (path), 0);
    assert_int_equal (unlink (moved), 0);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

static void
test_hardening_endpoint_set_mode_changes_only_its_own_socket (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char dir [96], path [128], endpoint [160];
    s_make_dir (dir, sizeof dir, "other");
    snprintf (path, sizeof path, "%s/sock", dir);
    snprintf (endpoint, sizeof endpoint, "shm://%s", path);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    //  Ours: changed
    assert_int_equal (shmipc_listener_set_mode (listener, 0660), 0);
    assert_int_equal (s_mode_of (path), 0660);

    //  Another socket file in its place: left alone
    assert_int_equal (unlink (path), 0);
    s_make_stale_socket_file (path);
    assert_int_equal (chmod (path, 0640), 0);
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, ESTALE);
    assert_int_equal (s_mode_of (path), 0640);
    assert_int_equal (unlink (path), 0);

    //  A regular file: left alone
    s_make_file (path, 0644);
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, ESTALE);
    assert_int_equal (s_mode_of (path), 0644);
    assert_int_equal (unlink (path), 0);

    //  Nothing: ENOENT
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, ENOENT);
    shmipc_listener_destroy (&listener);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  D9: racing listeners

//  What a racer reports each round
#define S_WON       'W'         //  Won, and a connect reaches our listener
#define S_WON_DEAF  'U'         //  Won, but a connect does not reach us
#define S_LOST      'L'         //  Lost with EADDRINUSE
#define S_ERROR     'E'         //  Failed otherwise

typedef struct {
    int index;                  //  Which racer; odd ones spell paths with "/."
    int ctl;                    //  Our end of the control socket pair
    int go;                     //  Shared start pipe: one byte per racer a round
    const char *dir;            //  Directory of the raced paths
    const int *inherited;       //  Parent ends of the control pairs so far
    int ninherited;             //  How many, to close in the child
} s_racer_t;

//  Child: each round, on the start byte, race for <dir>/r<round>; report
//  the outcome, hold the listener until told 'e', destroy it, answer 'd'.
//  Ends on 'q' or end of file, or with an error after 30 s of silence.
static int
s_racer_run (void *arg)
{
    s_racer_t *racer = (s_racer_t *) arg;
    for (int index = 0; index < racer->ninherited; index++)
        close (racer->inherited [index]);
    for (int round = 0; ; round++) {
        struct pollfd items [2] = {
            { .fd = racer->go, .events = POLLIN },
            { .fd = racer->ctl, .events = POLLIN }
        };
        if (poll (items, 2, 30000) <= 0)
            return 30;
        if (items [1].revents)
            return 0;           //  'q' or the parent is gone
        char byte;
        if (read (racer->go, &byte, 1) != 1)
            return 31;
        char endpoint [160];
        snprintf (endpoint, sizeof endpoint, "shm://%s%s/r%d", racer->dir,
                  racer->index % 2 ? "/." : "", round);
        shmipc_listener_t *listener = shmipc_listener_new (endpoint);
        char outcome = listener ? (s_reaches (endpoint, listener) ? S_WON : S_WON_DEAF)
                     : errno == EADDRINUSE ? S_LOST : S_ERROR;
        if (send (racer->ctl, &outcome, 1, 0) != 1)
            return 32;
        int command = s_recv_byte (racer->ctl);
        shmipc_listener_destroy (&listener);
        if (command != 'e')
            return 33;
        if (send (racer->ctl, "d", 1, 0) != 1)
            return 34;
    }
}

//  Run rounds races of S_RACERS listeners for fresh paths, each holding a
//  stale socket file first if stale is set. Return how many rounds had
//  exactly one winner, reachable, and every other racer refused with
//  EADDRINUSE.
static int
s_race (int rounds, bool stale)
{
    char dir [96];
    s_make_dir (dir, sizeof dir, stale ? "race-stale" : "race");
    int go [2];
    assert_int_equal (pipe2 (go, O_CLOEXEC), 0);
    int ctl [S_RACERS];
    pid_t pids [S_RACERS];
    for (int index = 0; index < S_RACERS; index++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
                                      pair), 0);
        ctl [index] = pair [0];
        s_racer_t racer = {
            .index = index, .ctl = pair [1], .go = go [0], .dir = dir,
            .inherited = ctl, .ninherited = index + 1
        };
        pids [index] = tu_fork (s_racer_run, &racer);
        close (pair [1]);
    }
    int good = 0;
    for (int round = 0; round < rounds; round++) {
        char path [128];
        snprintf (path, sizeof path, "%s/r%d", dir, round);
        if (stale)
            s_make_stale_socket_file (path);
        char start [S_RACERS];
        memset (start, 'g', sizeof start);
        assert_int_equal (write (go [1], start, sizeof start), sizeof start);
        int won = 0, deaf = 0, lost = 0;
        for (int index = 0; index < S_RACERS; index++) {
            int outcome = s_recv_byte (ctl [index]);
            won += outcome == S_WON;
            deaf += outcome == S_WON_DEAF;
            lost += outcome == S_LOST;
        }
        if (won == 1 && deaf == 0 && lost == S_RACERS - 1)
            good++;
        else
            print_error ("round %d: %d won, %d won but unreachable, %d lost\n",
                         round, won, deaf, lost);
        for (int index = 0; index < S_RACERS; index++)
            assert_int_equal (send (ctl [index], "e", 1, 0), 1);
        for (int index = 0; index < S_RACERS; index++)
            assert_int_equal (s_recv_byte (ctl [index]), 'd');
        //  The winner removed its file, and left nothing else behind
        struct stat st;
        errno = 0;
        assert_int_equal (lstat (path, &st), -1);
        assert_int_equal (errno, ENOENT);
    }
    for (int index = 0; index < S_RACERS; index++) {
        assert_int_equal (send (ctl [index], "q", 1, 0), 1);
        assert_int_equal (tu_wait (pids [index]), 0);
        close (ctl [index]);
    }
    close (go [0]);
    close (go [1]);
    assert_int_equal (rmdir (dir), 0);
    return good;
}

static void
test_hardening_endpoint_racing_listeners_have_exactly_one_winner (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int rounds = (int) tu_scaled (200, 5);
    int good = s_race (rounds, false);
    print_message ("%d rounds of %d racers: %d with exactly one winner\n",
                   rounds, S_RACERS, good);
    assert_int_equal (good, rounds);
    tu_assert_baseline (baseline);
}

static void
test_hardening_endpoint_racing_listeners_replace_a_stale_file_once (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int rounds = (int) tu_scaled (200, 5);
    int good = s_race (rounds, true);
    print_message ("%d rounds of %d racers for a stale file: %d with exactly "
                   "one winner\n", rounds, S_RACERS, good);
    assert_int_equal (good, rounds);
    tu_assert_baseline (baseline);
}

static void
test_hardening_endpoint_listener_still_replaces_a_stale_socket_file (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    const char *path = endpoint + strlen ("shm://");
    s_make_stale_socket_file (path);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    struct stat after;
    assert_int_equal (lstat (path, &after), 0);
    assert_true (S_ISSOCK (after.st_mode));
    assert_int_equal (after.st_mode & 07777, 0600);
    //  Reachable: ours, not the stale file (tmpfs may reuse its inode)
    assert_true (s_reaches (endpoint, listener));
    //  And a second listener leaves the live one alone
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EADDRINUSE);
    assert_true (s_reaches (endpoint, listener));
    shmipc_listener_destroy (&listener);
    errno = 0;
    assert_int_equal (lstat (path, &after), -1);
    assert_int_equal (errno, ENOENT);
    tu_assert_baseline (baseline);
}

//  Bind the lock name shmipc uses for path, as a squatter would; return
//  the socket. The name is a protocol between shmipc versions: it is
//  spelled out here, not taken from the library.
static int
s_squat_lock (const char *dir, const char *name)
{
    struct stat st;
    assert_int_equal (stat (dir, &st), 0);
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (const char *at = name; *at; at++)
        hash = (hash ^ (unsigned char) *at) * 0x100000001b3ULL;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int size = snprintf (addr.sun_path + 1, sizeof addr.sun_path - 1,
                         "shmipc-lock/%llx:%llx/%016llx",
                         (unsigned long long) st.st_dev,
                         (unsigned long long) st.st_ino,
                         (unsigned long long) hash);
    int sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    assert_true (sock >= 0);
    assert_int_equal (bind (sock, (struct sockaddr *) &addr,
                            offsetof (struct sockaddr_un, sun_path) + 1 + size), 0);
    return sock;
}

static void
test_hardening_endpoint_squatted_lock_delays_but_never_steals (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char dir [96], stale [128], endpoint [160];
    s_make_dir (dir, sizeof dir, "squat");
    snprintf (stale, sizeof stale, "%s/stale", dir);
    s_make_stale_socket_file (stale);
    struct stat before, after;
    assert_int_equal (lstat (stale, &before), 0);
    int squat_fresh = s_squat_lock (dir, "fresh");
    int squat_stale = s_squat_lock (dir, "stale");

    //  A fresh path is still bound, once the wait is over
    snprintf (endpoint, sizeof endpoint, "shm://%s/fresh", dir);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    assert_true (s_reaches (endpoint, listener));
    shmipc_listener_destroy (&listener);
    //  But a socket file is not replaced without the lock
    snprintf (endpoint, sizeof endpoint, "shm://%s", stale);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EADDRINUSE);
    assert_int_equal (lstat (stale, &after), 0);
    assert_int_equal (after.st_ino, before.st_ino);

    //  A squatter gone, the lock is free again
    close (squat_stale);
    listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    assert_true (s_reaches (endpoint, listener));
    shmipc_listener_destroy (&listener);
    close (squat_fresh);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_hardening_endpoint_socket_file_is_owner_only_from_its_creation),
        cmocka_unit_test (test_hardening_endpoint_listener_leaves_a_file_swapped_in_after_bind_alone),
        cmocka_unit_test (test_hardening_endpoint_set_mode_does_not_follow_a_symlink),
        cmocka_unit_test (test_hardening_endpoint_set_mode_changes_only_its_own_socket),
        cmocka_unit_test (test_hardening_endpoint_racing_listeners_have_exactly_one_winner),
        cmocka_unit_test (test_hardening_endpoint_racing_listeners_replace_a_stale_file_once),
        cmocka_unit_test (test_hardening_endpoint_listener_still_replaces_a_stale_socket_file),
        cmocka_unit_test (test_hardening_endpoint_squatted_lock_delays_but_never_steals),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
