/*  test_endpoint - shm:// endpoints: parsing and its limits, listeners on
    paths and abstract names, socket files, and peer credential checks.
*/
#include "testutil.h"
#include "endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define S_NOBODY 65534

//  Exit codes of the children in the credential tests
#define S_CLOSED    20          //  Connected, then the server closed on us
#define S_ACCEPTED  21          //  Connected, and the server sent a byte
#define S_REFUSED   22          //  connect failed with EACCES

static const char *
s_path_of (const char *endpoint)
{
    return endpoint + strlen ("shm://");
}

//  Parse endpoint expecting EINVAL.
static void
s_assert_parse_refused (const char *endpoint)
{
    struct sockaddr_un addr;
    socklen_t addr_len = 0;
    errno = 0;
    assert_int_equal (shmipc__endpoint_parse (endpoint, &addr, &addr_len), -1);
    assert_int_equal (errno, EINVAL);
}

//  Connect to listener's endpoint and accept; both ends returned.
static void
s_connect_pair (shmipc_listener_t *listener, int *client, int *server)
{
    *client = shmipc_endpoint_connect (shmipc_listener_endpoint (listener), 0);
    assert_true (*client >= 0);
    *server = shmipc_listener_accept (listener);
    assert_true (*server >= 0);
}

//  Return true if endpoint leads to a live listener.
static bool
s_can_connect (const char *endpoint)
{
    int sock = shmipc_endpoint_connect (endpoint, 0);
    if (sock == -1)
        return false;
    close (sock);
    return true;
}

//  Bind a socket to path and close it without unlinking: a crash's leftover.
static void
s_make_stale_socket_file (const char *path, int type)
{
    int sock = socket (AF_UNIX, type, 0);
    assert_true (sock >= 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy (addr.sun_path, path);
    assert_int_equal (bind (sock, (struct sockaddr *) &addr, sizeof addr), 0);
    close (sock);
}

static void
test_endpoint_is_shm_checks_the_scheme (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    assert_true (shmipc_endpoint_is_shm ("shm://@x"));
    assert_true (shmipc_endpoint_is_shm ("shm://"));
    assert_false (shmipc_endpoint_is_shm (NULL));
    assert_false (shmipc_endpoint_is_shm (""));
    assert_false (shmipc_endpoint_is_shm ("shm:/"));
    assert_false (shmipc_endpoint_is_shm ("SHM://x"));
    assert_false (shmipc_endpoint_is_shm ("ipc:///tmp/x"));
    tu_assert_baseline (baseline);
}

static void
test_endpoint_parse_accepts_path_and_abstract_name (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    struct sockaddr_un addr;
    socklen_t addr_len;
    memset (&addr, 0xaa, sizeof addr);
    assert_int_equal (shmipc__endpoint_parse ("shm:///tmp/some.sock", &addr, &addr_len), 0);
    assert_int_equal (addr.sun_family, AF_UNIX);
    assert_string_equal (addr.sun_path, "/tmp/some.sock");
    assert_int_equal (addr_len, offsetof (struct sockaddr_un, sun_path) + 15);

    memset (&addr, 0xaa, sizeof addr);
    assert_int_equal (shmipc__endpoint_parse ("shm://@name/with:odd chars", &addr,
                                             &addr_len), 0);
    assert_int_equal (addr.sun_family, AF_UNIX);
    assert_int_equal (addr.sun_path [0], 0);
    assert_memory_equal (addr.sun_path + 1, "name/with:odd chars", 19);
    assert_int_equal (addr_len, offsetof (struct sockaddr_un, sun_path) + 20);
    //  A one-character name or path is enough
    assert_int_equal (shmipc__endpoint_parse ("shm://@x", &addr, &addr_len), 0);
    assert_int_equal (addr_len, offsetof (struct sockaddr_un, sun_path) + 2);
    assert_int_equal (shmipc__endpoint_parse ("shm:///x", &addr, &addr_len), 0);
    assert_int_equal (addr_len, offsetof (struct sockaddr_un, sun_path) + 3);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_parse_rejects_malformed_endpoints (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    const char *bad [] = {
        NULL, "", "tcp://x", "ipc:///tmp/x", "shm:/tmp/x", "SHM:///tmp/x",
        "shm://", "shm://*", "shm://@", "shm:///", " shm:///tmp/x"
    };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++)
        s_assert_parse_refused (bad [index]);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_parse_rejects_control_characters (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    for (int ch = 1; ch < 0x80; ch++) {
        if (ch >= 0x20 && ch != 0x7f)
            continue;
        char endpoint [64];
        snprintf (endpoint, sizeof endpoint, "shm:///tmp/a%cb", ch);
        s_assert_parse_refused (endpoint);
        snprintf (endpoint, sizeof endpoint, "shm://@a%cb", ch);
        s_assert_parse_refused (endpoint);
        snprintf (endpoint, sizeof endpoint, "shm://@%c", ch);
        s_assert_parse_refused (endpoint);
        snprintf (endpoint, sizeof endpoint, "shm:///tmp/ab%c", ch);
        s_assert_parse_refused (endpoint);
    }
    //  Bytes past ASCII are not control characters (UTF-8 names)
    struct sockaddr_un addr;
    socklen_t addr_len;
    assert_int_equal (shmipc__endpoint_parse ("shm://@caf\xc3\xa9", &addr, &addr_len), 0);
    tu_assert_baseline (baseline);
}

//  Return "shm://" + prefix + filler up to total characters after "shm://".
static char *
s_long_endpoint (const char *prefix, size_t total)
{
    size_t scheme = strlen ("shm://");
    char *endpoint = (char *) malloc (scheme + total + 1);
    assert_non_null (endpoint);
    strcpy (endpoint, "shm://");
    strcat (endpoint, prefix);
    size_t at = strlen (endpoint);
    while (at < scheme + total)
        endpoint [at++] = 'x';
    endpoint [at] = 0;
    return endpoint;
}

static void
test_endpoint_parse_path_limit_is_107_bytes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  sun_path holds 108 bytes, the terminating NUL included
    _Static_assert (sizeof ((struct sockaddr_un *) 0)->sun_path == 108, "sun_path");
    size_t path_max = 107;
    struct sockaddr_un addr;
    socklen_t addr_len;
    char *endpoint = s_long_endpoint ("/tmp/", path_max);
    assert_int_equal (shmipc__endpoint_parse (endpoint, &addr, &addr_len), 0);
    assert_int_equal (strlen (addr.sun_path), path_max);
    assert_int_equal (addr_len, sizeof addr);
    free (endpoint);
    endpoint = s_long_endpoint ("/tmp/", path_max + 1);
    s_assert_parse_refused (endpoint);
    free (endpoint);
    endpoint = s_long_endpoint ("/tmp/", 4000);
    s_assert_parse_refused (endpoint);
    free (endpoint);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_parse_abstract_limit_is_106_bytes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    struct sockaddr_un addr;
    socklen_t addr_len;
    //  '@' and 106 bytes of name: as long as a path may be (as in ZeroMQ)
    char *endpoint = s_long_endpoint ("@", 1 + 106);
    assert_int_equal (shmipc__endpoint_parse (endpoint, &addr, &addr_len), 0);
    assert_int_equal (addr_len, offsetof (struct sockaddr_un, sun_path) + 1 + 106);
    assert_int_equal (addr.sun_path [0], 0);
    assert_memory_equal (addr.sun_path + 1, endpoint + strlen ("shm://@"), 106);
    free (endpoint);
    endpoint = s_long_endpoint ("@", 1 + 107);
    s_assert_parse_refused (endpoint);
    free (endpoint);
    endpoint = s_long_endpoint ("@", 1 + 108);
    s_assert_parse_refused (endpoint);
    free (endpoint);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_longest_path_and_name_really_listen (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  A directory whose name pads the socket path to exactly 107 bytes
    char dir [128];
    snprintf (dir, sizeof dir, "/tmp/shmipc-test-%d-long-", (int) getpid ());
    size_t at = strlen (dir);
    while (at < 107 - 2)
        dir [at++] = 'd';
    dir [at] = 0;
    assert_int_equal (mkdir (dir, 0700), 0);
    char endpoint [160];
    snprintf (endpoint, sizeof endpoint, "shm://%s/s", dir);
    assert_int_equal (strlen (s_path_of (endpoint)), 107);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    int client, server;
    s_connect_pair (listener, &client, &server);
    close (client);
    close (server);
    shmipc_listener_destroy (&listener);
    assert_int_equal (rmdir (dir), 0);

    char *name = s_long_endpoint ("@shmipc-test-long-", 1 + 106);
    listener = shmipc_listener_new (name);
    assert_non_null (listener);
    s_connect_pair (listener, &client, &server);
    close (client);
    close (server);
    shmipc_listener_destroy (&listener);
    free (name);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_listener_socket_file_is_owner_only (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    //  Whatever the umask says
    mode_t saved = umask (0);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    umask (saved);
    assert_non_null (listener);
    struct stat st;
    assert_int_equal (lstat (s_path_of (endpoint), &st), 0);
    assert_true (S_ISSOCK (st.st_mode));
    assert_int_equal (st.st_mode & 07777, 0600);
    assert_int_equal (shmipc_listener_set_mode (listener, 0660), 0);
    assert_int_equal (lstat (s_path_of (endpoint), &st), 0);
    assert_int_equal (st.st_mode & 07777, 0660);
    assert_string_equal (shmipc_listener_endpoint (listener), endpoint);
    shmipc_listener_destroy (&listener);
    assert_null (listener);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_listener_replaces_stale_socket_file (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int types [] = { SOCK_SEQPACKET, SOCK_STREAM };
    for (size_t index = 0; index < 2; index++) {
        char endpoint [128];
        tu_endpoint (endpoint, sizeof endpoint, 'p');
        s_make_stale_socket_file (s_path_of (endpoint), types [index]);
        errno = 0;
        assert_int_equal (shmipc_endpoint_connect (endpoint, 0), -1);
        assert_int_equal (errno, ECONNREFUSED);
        shmipc_listener_t *listener = shmipc_listener_new (endpoint);
        assert_non_null (listener);
        struct stat st;
        assert_int_equal (lstat (s_path_of (endpoint), &st), 0);
        assert_int_equal (st.st_mode & 07777, 0600);
        int client, server;
        s_connect_pair (listener, &client, &server);
        close (client);
        close (server);
        shmipc_listener_destroy (&listener);
        errno = 0;
        assert_int_equal (lstat (s_path_of (endpoint), &st), -1);
        assert_int_equal (errno, ENOENT);
    }
    tu_assert_baseline (baseline);
}

static void
test_endpoint_listener_does_not_steal_live_listener (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    shmipc_listener_t *first = shmipc_listener_new (endpoint);
    assert_non_null (first);
    struct stat before, after;
    assert_int_equal (lstat (s_path_of (endpoint), &before), 0);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EADDRINUSE);
    assert_int_equal (lstat (s_path_of (endpoint), &after), 0);
    assert_int_equal (before.st_ino, after.st_ino);
    //  The path still leads to the first listener
    int client = shmipc_endpoint_connect (endpoint, 0);
    assert_true (client >= 0);
    close (client);
    shmipc_listener_destroy (&first);

    //  Nor a live listener of another socket type
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    int other = socket (AF_UNIX, SOCK_STREAM, 0);
    assert_true (other >= 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    strcpy (addr.sun_path, s_path_of (endpoint));
    assert_int_equal (bind (other, (struct sockaddr *) &addr, sizeof addr), 0);
    assert_int_equal (listen (other, 4), 0);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EADDRINUSE);
    assert_int_equal (lstat (s_path_of (endpoint), &after), 0);
    assert_true (S_ISSOCK (after.st_mode));
    close (other);
    assert_int_equal (unlink (s_path_of (endpoint)), 0);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_listener_leaves_non_socket_alone_with_eexist (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    const char *path = s_path_of (endpoint);
    int fd = open (path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    assert_true (fd >= 0);
    assert_int_equal (write (fd, "precious", 8), 8);
    close (fd);
    struct stat before, after;
    assert_int_equal (lstat (path, &before), 0);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EEXIST);
    assert_int_equal (lstat (path, &after), 0);
    assert_int_equal (before.st_ino, after.st_ino);
    assert_int_equal (after.st_mode & 07777, 0644);
    assert_int_equal (after.st_size, 8);
    char content [16];
    fd = open (path, O_RDONLY | O_CLOEXEC);
    assert_true (fd >= 0);
    assert_int_equal (read (fd, content, sizeof content), 8);
    assert_memory_equal (content, "precious", 8);
    close (fd);
    assert_int_equal (unlink (path), 0);

    //  A directory, and a symbolic link to a socket, are not ours either
    assert_int_equal (mkdir (path, 0700), 0);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EEXIST);
    assert_int_equal (rmdir (path), 0);
    char target [128];
    tu_endpoint (target, sizeof target, 'p');
    s_make_stale_socket_file (s_path_of (target), SOCK_SEQPACKET);
    assert_int_equal (symlink (s_path_of (target), path), 0);
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EEXIST);
    assert_int_equal (lstat (path, &after), 0);
    assert_true (S_ISLNK (after.st_mode));
    assert_int_equal (unlink (path), 0);
    assert_int_equal (unlink (s_path_of (target)), 0);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_listener_destroy_removes_only_its_own_file (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    const char *path = s_path_of (endpoint);
    struct stat st;
    //  Ours: removed
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    shmipc_listener_destroy (&listener);
    errno = 0;
    assert_int_equal (lstat (path, &st), -1);
    assert_int_equal (errno, ENOENT);

    //  Replaced by a successor listener after we bound: kept
    shmipc_listener_t *first = shmipc_listener_new (endpoint);
    assert_non_null (first);
    assert_int_equal (unlink (path), 0);
    shmipc_listener_t *second = shmipc_listener_new (endpoint);
    assert_non_null (second);
    shmipc_listener_destroy (&first);
    assert_int_equal (lstat (path, &st), 0);
    assert_true (s_can_connect (endpoint));
    int server = shmipc_listener_accept (second);
    assert_true (server >= 0);
    close (server);
    shmipc_listener_destroy (&second);
    assert_int_equal (lstat (path, &st), -1);

    //  Replaced by someone's regular file: kept, untouched
    first = shmipc_listener_new (endpoint);
    assert_non_null (first);
    assert_int_equal (unlink (path), 0);
    int fd = open (path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
    assert_true (fd >= 0);
    close (fd);
    struct stat before;
    assert_int_equal (lstat (path, &before), 0);
    shmipc_listener_destroy (&first);
    assert_int_equal (lstat (path, &st), 0);
    assert_true (S_ISREG (st.st_mode));
    assert_int_equal (st.st_ino, before.st_ino);
    assert_int_equal (unlink (path), 0);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_relative_path_resolves_against_the_working_directory (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char dir [] = "/tmp/shmipc-test-rel-XXXXXX";
    assert_non_null (mkdtemp (dir));
    int cwd = open (".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true (cwd >= 0);
    assert_int_equal (chdir (dir), 0);
    shmipc_listener_t *listener = shmipc_listener_new ("shm://front.shm");
    assert_non_null (listener);
    assert_string_equal (shmipc_listener_endpoint (listener), "shm://front.shm");
    int client, server;
    s_connect_pair (listener, &client, &server);
    close (client);
    close (server);
    //  The file is where the working directory was at bind time
    assert_int_equal (fchdir (cwd), 0);
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s/front.shm", dir);
    struct stat st;
    assert_int_equal (lstat (path, &st), 0);
    assert_true (S_ISSOCK (st.st_mode));
    shmipc_listener_destroy (&listener);
    assert_int_equal (lstat (path, &st), -1);
    close (cwd);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_wildcard_listener_makes_and_removes_a_private_path (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_listener_t *one = shmipc_listener_new ("shm://*");
    shmipc_listener_t *two = shmipc_listener_new ("shm://*");
    assert_non_null (one);
    assert_non_null (two);
    const char *endpoint = shmipc_listener_endpoint (one);
    assert_true (strncmp (endpoint, "shm:///", 7) == 0);
    assert_string_not_equal (endpoint, shmipc_listener_endpoint (two));
    //  Its directory is ours alone
    char dir [PATH_MAX];
    snprintf (dir, sizeof dir, "%s", endpoint + 6);
    *strrchr (dir, '/') = 0;
    struct stat st;
    assert_int_equal (stat (dir, &st), 0);
    assert_int_equal (st.st_mode & 0777, 0700);
    int client, server;
    s_connect_pair (one, &client, &server);
    close (client);
    close (server);
    shmipc_listener_destroy (&one);
    shmipc_listener_destroy (&two);
    assert_int_equal (stat (dir, &st), -1);
    assert_int_equal (errno, ENOENT);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_abstract_listener_accepts_without_a_file (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    int client, server;
    s_connect_pair (listener, &client, &server);
    assert_int_equal (send (client, "ping", 4, 0), 4);
    char buffer [8];
    assert_int_equal (recv (server, buffer, sizeof buffer, 0), 4);
    assert_memory_equal (buffer, "ping", 4);
    close (client);
    close (server);
    //  A second listener on the same name is refused
    errno = 0;
    assert_null (shmipc_listener_new (endpoint));
    assert_int_equal (errno, EADDRINUSE);
    //  No file to change the mode of
    errno = 0;
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), -1);
    assert_int_equal (errno, EINVAL);
    shmipc_listener_destroy (&listener);
    //  Gone with the listener
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect (endpoint, 0), -1);
    assert_int_equal (errno, ECONNREFUSED);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_connect_and_accept_give_a_seqpacket_pair (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    for (int flags = 0; flags <= SHMIPC_DONTWAIT; flags += SHMIPC_DONTWAIT) {
        int client = shmipc_endpoint_connect (endpoint, flags);
        assert_true (client >= 0);
        //  Readable: a peer is waiting
        struct pollfd item = { .fd = shmipc_listener_fd (listener), .events = POLLIN };
        assert_int_equal (poll (&item, 1, 0), 1);
        int server = shmipc_listener_accept (listener);
        assert_true (server >= 0);
        int ends [2] = { client, server };
        for (size_t index = 0; index < 2; index++) {
            int type = 0;
            socklen_t size = sizeof type;
            assert_int_equal (getsockopt (ends [index], SOL_SOCKET, SO_TYPE,
                                          &type, &size), 0);
            assert_int_equal (type, SOCK_SEQPACKET);
            assert_int_equal (fcntl (ends [index], F_GETFL) & O_NONBLOCK, O_NONBLOCK);
            assert_int_equal (fcntl (ends [index], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
            uid_t uid = 12345;
            assert_int_equal (shmipc_endpoint_peer_uid (ends [index], &uid), 0);
            assert_int_equal (uid, geteuid ());
        }
        //  Records keep their boundaries, both ways
        assert_int_equal (send (client, "abc", 3, 0), 3);
        assert_int_equal (send (client, "de", 2, 0), 2);
        assert_int_equal (send (server, "xyz", 3, 0), 3);
        char buffer [8];
        assert_int_equal (recv (server, buffer, sizeof buffer, 0), 3);
        assert_int_equal (recv (server, buffer, sizeof buffer, 0), 2);
        assert_int_equal (recv (client, buffer, sizeof buffer, 0), 3);
        assert_memory_equal (buffer, "xyz", 3);
        close (client);
        close (server);
    }
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_accept_with_nobody_waiting_gives_eagain (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    for (int kind = 0; kind < 2; kind++) {
        tu_endpoint (endpoint, sizeof endpoint, kind ? 'a' : 'p');
        shmipc_listener_t *listener = shmipc_listener_new (endpoint);
        assert_non_null (listener);
        errno = 0;
        assert_int_equal (shmipc_listener_accept (listener), -1);
        assert_int_equal (errno, EAGAIN);
        //  Also after the one waiting peer was taken
        int client, server;
        s_connect_pair (listener, &client, &server);
        errno = 0;
        assert_int_equal (shmipc_listener_accept (listener), -1);
        assert_int_equal (errno, EAGAIN);
        close (client);
        close (server);
        shmipc_listener_destroy (&listener);
    }
    tu_assert_baseline (baseline);
}

static void
test_endpoint_connect_reports_missing_or_dead_server (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    for (int flags = 0; flags <= SHMIPC_DONTWAIT; flags += SHMIPC_DONTWAIT) {
        errno = 0;
        assert_int_equal (shmipc_endpoint_connect (endpoint, flags), -1);
        assert_int_equal (errno, ENOENT);
    }
    s_make_stale_socket_file (s_path_of (endpoint), SOCK_SEQPACKET);
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect (endpoint, 0), -1);
    assert_int_equal (errno, ECONNREFUSED);
    assert_int_equal (unlink (s_path_of (endpoint)), 0);
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect (endpoint, 0), -1);
    assert_int_equal (errno, ECONNREFUSED);
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect ("tcp://127.0.0.1:5555", 0), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_endpoint_connect ("shm://*", 0), -1);
    assert_int_equal (errno, EINVAL);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_allow_uid_holds_sixteen_uids (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    for (uid_t uid = 1000; uid < 1016; uid++)
        assert_int_equal (shmipc_listener_allow_uid (listener, uid), 0);
    errno = 0;
    assert_int_equal (shmipc_listener_allow_uid (listener, 2000), -1);
    assert_int_equal (errno, ENOSPC);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Credentials: children that run as nobody (root only)

//  Drop to nobody for good. Returns 0 or -1.
static int
s_become_nobody (void)
{
    if (setgroups (0, NULL) || setgid (S_NOBODY) || setuid (S_NOBODY))
        return -1;
    return geteuid () == S_NOBODY ? 0 : -1;
}

typedef struct {
    const char *endpoint;       //  Where to connect or listen
    int report;                 //  Socket to tell the parent how it went
    int parent_end;             //  The parent's end, for the child to close
} s_child_t;

//  Child: as nobody, connect to the endpoint, report the outcome byte, then
//  wait to see whether the server closes on us or sends a byte.
static int
s_nobody_connects (void *arg)
{
    s_child_t *child = (s_child_t *) arg;
    close (child->parent_end);
    if (s_become_nobody ())
        return 10;
    int sock = shmipc_endpoint_connect (child->endpoint, 0);
    char outcome = sock >= 0 ? 'c' : errno == EACCES ? 'a' : 'e';
    if (send (child->report, &outcome, 1, 0) != 1)
        return 11;
    if (sock == -1)
        return outcome == 'a' ? S_REFUSED : 12;
    struct pollfd item = { .fd = sock, .events = POLLIN };
    if (poll (&item, 1, -1) != 1)
        return 13;
    char byte;
    ssize_t rc = recv (sock, &byte, 1, 0);
    close (sock);
    return rc == 0 ? S_CLOSED : rc == 1 && byte == 'k' ? S_ACCEPTED : 14;
}

//  Fork a nobody client of endpoint; return its pid and the outcome byte
//  it reported after connecting.
static pid_t
s_start_nobody_client (const char *endpoint, char *outcome)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    s_child_t child = { .endpoint = endpoint, .report = pair [1],
                        .parent_end = pair [0] };
    pid_t pid = tu_fork (s_nobody_connects, &child);
    close (pair [1]);
    assert_int_equal (recv (pair [0], outcome, 1, 0), 1);
    close (pair [0]);
    return pid;
}

static bool
s_skip_unless_root (void)
{
    if (geteuid () == 0)
        return false;
    print_message ("not running as root: credential test skipped\n");
    return true;
}

static void
test_endpoint_listener_refuses_peer_of_other_uid_until_allowed (void **state)
{
    if (s_skip_unless_root ())
        skip ();
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    //  Allowing someone else changes nothing for nobody
    assert_int_equal (shmipc_listener_allow_uid (listener, 1000), 0);

    //  Refused, and the connection closed
    char outcome;
    pid_t pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'c');
    errno = 0;
    assert_int_equal (shmipc_listener_accept (listener), -1);
    assert_int_equal (errno, EACCES);
    assert_int_equal (tu_wait (pid), S_CLOSED);
    errno = 0;
    assert_int_equal (shmipc_listener_accept (listener), -1);
    assert_int_equal (errno, EAGAIN);

    //  Allowed by uid
    assert_int_equal (shmipc_listener_allow_uid (listener, S_NOBODY), 0);
    pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'c');
    int server = shmipc_listener_accept (listener);
    assert_true (server >= 0);
    uid_t uid;
    assert_int_equal (shmipc_endpoint_peer_uid (server, &uid), 0);
    assert_int_equal (uid, S_NOBODY);
    assert_int_equal (send (server, "k", 1, 0), 1);
    close (server);
    assert_int_equal (tu_wait (pid), S_ACCEPTED);
    shmipc_listener_destroy (&listener);

    //  Allowed as any uid
    listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    shmipc_listener_allow_any_uid (listener);
    pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'c');
    server = shmipc_listener_accept (listener);
    assert_true (server >= 0);
    assert_int_equal (send (server, "k", 1, 0), 1);
    close (server);
    assert_int_equal (tu_wait (pid), S_ACCEPTED);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

static void
test_endpoint_socket_file_mode_decides_who_may_connect (void **state)
{
    if (s_skip_unless_root ())
        skip ();
    tu_baseline_t baseline = tu_baseline ();
    char dir [64];
    snprintf (dir, sizeof dir, "/tmp/shmipc-test-%d-open", (int) getpid ());
    assert_int_equal (mkdir (dir, 0777), 0);
    assert_int_equal (chmod (dir, 0777), 0);
    char endpoint [128];
    snprintf (endpoint, sizeof endpoint, "shm://%s/sock", dir);
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);

    //  0600: nobody cannot even connect
    char outcome;
    pid_t pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'a');
    assert_int_equal (tu_wait (pid), S_REFUSED);
    errno = 0;
    assert_int_equal (shmipc_listener_accept (listener), -1);
    assert_int_equal (errno, EAGAIN);

    //  0666: connects, then the uid check refuses it
    assert_int_equal (shmipc_listener_set_mode (listener, 0666), 0);
    pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'c');
    errno = 0;
    assert_int_equal (shmipc_listener_accept (listener), -1);
    assert_int_equal (errno, EACCES);
    assert_int_equal (tu_wait (pid), S_CLOSED);

    //  And once allowed, it is accepted
    assert_int_equal (shmipc_listener_allow_uid (listener, S_NOBODY), 0);
    pid = s_start_nobody_client (endpoint, &outcome);
    assert_int_equal (outcome, 'c');
    int server = shmipc_listener_accept (listener);
    assert_true (server >= 0);
    assert_int_equal (send (server, "k", 1, 0), 1);
    close (server);
    assert_int_equal (tu_wait (pid), S_ACCEPTED);
    shmipc_listener_destroy (&listener);
    assert_int_equal (rmdir (dir), 0);
    tu_assert_baseline (baseline);
}

//  Child: as nobody, listen on the endpoint, say 'r' when ready, and keep
//  listening until the parent closes the report socket.
static int
s_nobody_listens (void *arg)
{
    s_child_t *child = (s_child_t *) arg;
    close (child->parent_end);  //  So that the parent's close ends the wait
    if (s_become_nobody ())
        return 10;
    shmipc_listener_t *listener = shmipc_listener_new (child->endpoint);
    char ready = listener ? 'r' : 'f';
    if (send (child->report, &ready, 1, 0) != 1)
        return 11;
    if (!listener)
        return 12;
    char byte;
    while (recv (child->report, &byte, 1, 0) > 0)
        ;
    shmipc_listener_destroy (&listener);
    return 0;
}

static void
test_endpoint_connect_refuses_server_of_other_uid_unless_any_uid (void **state)
{
    if (s_skip_unless_root ())
        skip ();
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    s_child_t child = { .endpoint = endpoint, .report = pair [1],
                        .parent_end = pair [0] };
    pid_t pid = tu_fork (s_nobody_listens, &child);
    close (pair [1]);
    char ready;
    assert_int_equal (recv (pair [0], &ready, 1, 0), 1);
    assert_int_equal (ready, 'r');

    for (int flags = 0; flags <= SHMIPC_DONTWAIT; flags += SHMIPC_DONTWAIT) {
        int before = tu_fd_count ();
        errno = 0;
        assert_int_equal (shmipc_endpoint_connect (endpoint, flags), -1);
        assert_int_equal (errno, EACCES);
        assert_int_equal (tu_fd_count (), before);
        int sock = shmipc_endpoint_connect (endpoint, flags | SHMIPC_ANY_UID);
        assert_true (sock >= 0);
        uid_t uid;
        assert_int_equal (shmipc_endpoint_peer_uid (sock, &uid), 0);
        assert_int_equal (uid, S_NOBODY);
        assert_int_equal (fcntl (sock, F_GETFL) & O_NONBLOCK, O_NONBLOCK);
        close (sock);
    }
    close (pair [0]);
    assert_int_equal (tu_wait (pid), 0);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_endpoint_is_shm_checks_the_scheme),
        cmocka_unit_test (test_endpoint_parse_accepts_path_and_abstract_name),
        cmocka_unit_test (test_endpoint_parse_rejects_malformed_endpoints),
        cmocka_unit_test (test_endpoint_parse_rejects_control_characters),
        cmocka_unit_test (test_endpoint_parse_path_limit_is_107_bytes),
        cmocka_unit_test (test_endpoint_parse_abstract_limit_is_106_bytes),
        cmocka_unit_test (test_endpoint_longest_path_and_name_really_listen),
        cmocka_unit_test (test_endpoint_listener_socket_file_is_owner_only),
        cmocka_unit_test (test_endpoint_listener_replaces_stale_socket_file),
        cmocka_unit_test (test_endpoint_listener_does_not_steal_live_listener),
        cmocka_unit_test (test_endpoint_listener_leaves_non_socket_alone_with_eexist),
        cmocka_unit_test (test_endpoint_listener_destroy_removes_only_its_own_file),
        cmocka_unit_test (test_endpoint_relative_path_resolves_against_the_working_directory),
        cmocka_unit_test (test_endpoint_wildcard_listener_makes_and_removes_a_private_path),
        cmocka_unit_test (test_endpoint_abstract_listener_accepts_without_a_file),
        cmocka_unit_test (test_endpoint_connect_and_accept_give_a_seqpacket_pair),
        cmocka_unit_test (test_endpoint_accept_with_nobody_waiting_gives_eagain),
        cmocka_unit_test (test_endpoint_connect_reports_missing_or_dead_server),
        cmocka_unit_test (test_endpoint_allow_uid_holds_sixteen_uids),
        cmocka_unit_test (test_endpoint_listener_refuses_peer_of_other_uid_until_allowed),
        cmocka_unit_test (test_endpoint_socket_file_mode_decides_who_may_connect),
        cmocka_unit_test (test_endpoint_connect_refuses_server_of_other_uid_unless_any_uid),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
