/*  =========================================================================
    test_swap_linked - the transport swap in a program linked with
    libshmipc, no launcher: raw libzmq sockets of the program's own
    contexts take shm:// endpoints through shmipc_bind and friends (the
    void * form) and the libzmq-shaped shmipc_zmq_* calls; the plain
    zmq_getsockopt, zmq_close and zmq_ctx_term (libshmipc's own) know
    about them; relative and wildcard endpoints; errors

    Owns the sockets and contexts of each test; every test ends with its
    descriptors, mappings and threads back to where they were. A context
    terminate that hangs ends the program with a message (s_term).
    =========================================================================
*/

#include "testutil_plugin.h"

#include <sys/stat.h>

#define S_ENDPOINT_MAX  512
#define S_COUNT         100         //  Messages each way
#define S_SIZE          1000        //  Their payload
#define S_TERM_S        30          //  A context terminate that takes longer hangs

//  --------------------------------------------------------------------------
//  Helpers

//  What s_term waits for, for the alarm's message
static const char *volatile s_terminating = "";

static void
s_term_alarm (int sig)
{
    const char *parts [] = { "test_swap_linked: FAIL: ", s_terminating,
                             " still had not returned after 30 s\n" };
    for (size_t part = 0; part < 3; part++)
        if (write (STDERR_FILENO, parts [part], strlen (parts [part])) < 0)
            break;
    _exit (1);
}

//  Terminate a context with the plain zmq_ctx_term (libshmipc's, which
//  ends our bridges first), failing the program if it hangs
static void
s_term (void *ctx)
{
    s_terminating = "zmq_ctx_term";
    signal (SIGALRM, s_term_alarm);
    alarm (S_TERM_S);
    int rc = zmq_ctx_term (ctx);
    alarm (0);
    assert_int_equal (rc, 0);
}

//  A raw libzmq socket of ctx, with timeouts so a test fails, not hangs
static void *
s_raw (void *ctx, int type)
{
    void *sock = zmq_socket (ctx, type);
    assert_non_null (sock);
    int timeout = PT_PATIENCE_MS;
    assert_int_equal (zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal (zmq_setsockopt (sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
    return sock;
}

//  A zsock_t of czmq's own, made with zsock_new (not shmipc_sock_new)
static zsock_t *
s_zsock (int type)
{
    zsock_t *sock = zsock_new (type);
    assert_non_null (sock);
    zsock_set_rcvtimeo (sock, PT_PATIENCE_MS);
    zsock_set_sndtimeo (sock, PT_PATIENCE_MS);
    return sock;
}

//  Send count tagged messages from one handle to the other (raw sockets;
//  zsock_resolve a zsock_t) and check each arrives, in order
static void
s_flow (void *from, void *to, const char *tag)
{
    for (long seq = 0; seq < S_COUNT; seq++)
        assert_true (pt_send_tagged (from, tag, seq, S_SIZE, 0) >= 0);
    for (long seq = 0; seq < S_COUNT; seq++) {
        char got [16];
        long got_seq = -1;
        assert_int_equal (pt_recv_tagged (to, got, sizeof got, &got_seq), 0);
        assert_string_equal (got, tag);
        assert_int_equal (got_seq, seq);
    }
}

//  ZMQ_LAST_ENDPOINT through the plain zmq_getsockopt
static void
s_last_endpoint (void *sock, char *buffer, size_t size)
{
    assert_int_equal (zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, buffer, &size), 0);
}

static bool
s_exists (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0;
}

static bool
s_is_socket (const char *path)
{
    struct stat info;
    return lstat (path, &info) == 0 && S_ISSOCK (info.st_mode);
}

//  The directory part of path, into buffer
static void
s_parent (const char *path, char *buffer, size_t size)
{
    snprintf (buffer, size, "%s", path);
    char *slash = strrchr (buffer, '/');
    assert_non_null (slash);
    *slash = 0;
}

static bool
s_starts_with (const char *string, const char *prefix)
{
    return strncmp (string, prefix, strlen (prefix)) == 0;
}

//  --------------------------------------------------------------------------
//  Raw sockets of any context

static void
test_raw_sockets_of_two_contexts_talk_both_ways (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    void *ctx_server = zmq_ctx_new ();
    void *ctx_client = zmq_ctx_new ();
    void *server = s_raw (ctx_server, ZMQ_PAIR);
    void *client = s_raw (ctx_client, ZMQ_PAIR);
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    assert_int_equal (shmipc_bind (server, "%s", endpoint), 0);
    assert_int_equal (shmipc_connect (client, "%s", endpoint), 0);

    s_flow (client, server, "up");
    s_flow (server, client, "down");
    //  Through shared memory, not a fallback: the actor counted it all
    assert_true (pt_segment_count () > 0);
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (server, &stats), 0);
    assert_int_equal (stats.peers, 1);
    assert_int_equal (stats.msgs_in, S_COUNT);
    assert_int_equal (stats.msgs_out, S_COUNT);

    assert_int_equal (zmq_close (client), 0);
    assert_int_equal (zmq_close (server), 0);
    s_term (ctx_client);
    s_term (ctx_server);
    pt_assert_baseline (baseline);
}

static void
test_raw_socket_and_zsock_talk_both_ways (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    void *ctx = zmq_ctx_new ();

    //  A zsock_t ROUTER, a raw DEALER with a routing id
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    zsock_t *router = s_zsock (ZMQ_ROUTER);
    assert_int_equal (shmipc_bind (router, "%s", endpoint), 0);
    void *dealer = s_raw (ctx, ZMQ_DEALER);
    assert_int_equal (zmq_setsockopt (dealer, ZMQ_ROUTING_ID, "raw", 3), 0);
    assert_int_equal (shmipc_zmq_connect (dealer, endpoint), 0);
    assert_int_equal (zmq_send (dealer, "hello", 5, 0), 5);
    char *id = NULL, *body = NULL;
    assert_int_equal (zstr_recvx (router, &id, &body, NULL), 2);
    assert_string_equal (id, "raw");
    assert_string_equal (body, "hello");
    assert_int_equal (zstr_sendx (router, id, "back", NULL), 0);
    zstr_free (&id);
    zstr_free (&body);
    char reply [16] = "";
    assert_int_equal (zmq_recv (dealer, reply, sizeof reply - 1, 0), 4);
    assert_string_equal (reply, "back");

    //  A raw PULL attached ('@') like a zsock_t, a zsock_t PUSH
    char second [S_ENDPOINT_MAX], attach [S_ENDPOINT_MAX + 1];
    pt_fresh (t, second, sizeof second);
    snprintf (attach, sizeof attach, "@%s", second);
    void *pull = s_raw (ctx, ZMQ_PULL);
    assert_int_equal (shmipc_attach (pull, attach, false), 0);
    zsock_t *push = s_zsock (ZMQ_PUSH);
    assert_int_equal (shmipc_connect (push, "%s", second), 0);
    s_flow (zsock_resolve (push), pull, "z");
    assert_true (pt_segment_count () > 0);

    zsock_destroy (&router);
    zsock_destroy (&push);
    assert_int_equal (zmq_close (dealer), 0);
    assert_int_equal (zmq_close (pull), 0);
    s_term (ctx);
    pt_assert_baseline (baseline);
}

static void
test_shmipc_zmq_calls_work_as_libzmq_calls_do (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    void *ctx = zmq_ctx_new ();
    void *pull = s_raw (ctx, ZMQ_PULL);
    void *push = s_raw (ctx, ZMQ_PUSH);
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    assert_int_equal (shmipc_zmq_bind (pull, endpoint), 0);
    assert_int_equal (shmipc_zmq_connect (push, endpoint), 0);
    s_flow (push, pull, "p");

    //  Undone once; a second time there is nothing to undo
    assert_int_equal (shmipc_zmq_disconnect (push, endpoint), 0);
    errno = 0;
    assert_int_equal (shmipc_zmq_disconnect (push, endpoint), -1);
    assert_int_equal (errno, ENOENT);
    assert_int_equal (shmipc_zmq_unbind (pull, endpoint), 0);
    if (t->kind == PT_SHM_PATH)
        assert_false (s_exists (endpoint + strlen ("shm://")));
    errno = 0;
    assert_int_equal (shmipc_zmq_unbind (pull, endpoint), -1);
    assert_int_equal (errno, ENOENT);

    //  Other schemes go to libzmq: zmq_bind returns 0, not a port
    assert_int_equal (shmipc_zmq_bind (pull, "tcp://127.0.0.1:*"), 0);
    char last [S_ENDPOINT_MAX];
    size_t size = sizeof last;
    assert_int_equal (shmipc_zmq_getsockopt (pull, ZMQ_LAST_ENDPOINT, last, &size), 0);
    assert_true (s_starts_with (last, "tcp://127.0.0.1:"));
    assert_int_equal (shmipc_zmq_unbind (pull, last), 0);

    assert_int_equal (shmipc_zmq_close (push), 0);
    assert_int_equal (shmipc_zmq_close (pull), 0);
    s_terminating = "shmipc_zmq_ctx_term";
    signal (SIGALRM, s_term_alarm);
    alarm (S_TERM_S);
    assert_int_equal (shmipc_zmq_ctx_term (ctx), 0);
    alarm (0);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  ZMQ_LAST_ENDPOINT, relative paths and shm://*

static void
test_last_endpoint_shows_the_wildcard_path_then_each_later_bind (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    void *ctx = zmq_ctx_new ();
    void *router = s_raw (ctx, ZMQ_ROUTER);
    assert_int_equal (shmipc_zmq_bind (router, "shm://*"), 0);
    char last [S_ENDPOINT_MAX], prefix [S_ENDPOINT_MAX];
    s_last_endpoint (router, last, sizeof last);
    const char *tmpdir = getenv ("TMPDIR") && *getenv ("TMPDIR") ? getenv ("TMPDIR") : "/tmp";
    snprintf (prefix, sizeof prefix, "shm://%s/", tmpdir);
    if (!s_starts_with (last, prefix))
        print_error ("ZMQ_LAST_ENDPOINT after shm://* is %s\n", last);
    assert_true (s_starts_with (last, prefix));
    //  A socket file, in a directory of its own
    char path [S_ENDPOINT_MAX], dir [S_ENDPOINT_MAX];
    snprintf (path, sizeof path, "%s", last + strlen ("shm://"));
    s_parent (path, dir, sizeof dir);
    assert_true (s_is_socket (path));
    assert_string_not_equal (dir, tmpdir);

    //  A peer of another context connects to what it says
    void *ctx_peer = zmq_ctx_new ();
    void *dealer = s_raw (ctx_peer, ZMQ_DEALER);
    assert_int_equal (shmipc_connect (dealer, "%s", last), 0);
    assert_int_equal (zmq_send (dealer, "hi", 2, 0), 2);
    zmq_msg_t id;
    zmq_msg_init (&id);
    assert_true (zmq_msg_recv (&id, router, 0) > 0);
    assert_true (zmq_msg_more (&id));
    char body [8] = "";
    assert_int_equal (zmq_recv (router, body, sizeof body - 1, 0), 2);
    assert_string_equal (body, "hi");
    zmq_msg_close (&id);

    //  Later binds of libzmq's schemes show theirs, a later shm:// its own
    char ipc [S_ENDPOINT_MAX], other [S_ENDPOINT_MAX];
    pt_fresh (&pt_ipc, ipc, sizeof ipc);
    assert_int_equal (shmipc_zmq_bind (router, ipc), 0);
    s_last_endpoint (router, other, sizeof other);
    assert_string_equal (other, ipc);
    assert_int_equal (shmipc_zmq_bind (router, "tcp://127.0.0.1:*"), 0);
    s_last_endpoint (router, other, sizeof other);
    assert_true (s_starts_with (other, "tcp://127.0.0.1:"));
    char abstract [S_ENDPOINT_MAX];
    tu_endpoint (abstract, sizeof abstract, 'a');
    assert_int_equal (shmipc_bind (router, "%s", abstract), 0);
    s_last_endpoint (router, other, sizeof other);
    assert_string_equal (other, abstract);

    //  The same through czmq's zsock_last_endpoint on a zsock_t
    zsock_t *pull = s_zsock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (pull, "shm://*"), 0);
    char *zlast = zsock_last_endpoint (pull);
    assert_non_null (zlast);
    assert_true (s_starts_with (zlast, prefix));
    assert_string_not_equal (zlast, last);
    char zpath [S_ENDPOINT_MAX], zdir [S_ENDPOINT_MAX];
    snprintf (zpath, sizeof zpath, "%s", zlast + strlen ("shm://"));
    s_parent (zpath, zdir, sizeof zdir);
    assert_true (s_is_socket (zpath));
    zstr_free (&zlast);

    //  Closing removes the file and the directory made for it
    assert_int_equal (zmq_close (dealer), 0);
    assert_int_equal (zmq_close (router), 0);
    s_term (ctx_peer);
    s_term (ctx);
    assert_false (s_exists (path));
    assert_false (s_exists (dir));
    zsock_destroy (&pull);
    assert_false (s_exists (zpath));
    assert_false (s_exists (zdir));
    pt_assert_baseline (baseline);
}

static void
test_last_endpoint_shows_a_relative_bind_resolved_at_bind_time (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char home [PATH_MAX], dir [] = "/tmp/shmipc-swap-linked.XXXXXX";
    assert_non_null (getcwd (home, sizeof home));
    assert_non_null (mkdtemp (dir));
    assert_int_equal (chdir (dir), 0);

    void *ctx = zmq_ctx_new ();
    void *pull = s_raw (ctx, ZMQ_PULL);
    assert_int_equal (shmipc_zmq_bind (pull, "shm://relative.sock"), 0);
    char path [S_ENDPOINT_MAX], absolute [S_ENDPOINT_MAX + 8], last [S_ENDPOINT_MAX];
    snprintf (path, sizeof path, "%s/relative.sock", dir);
    snprintf (absolute, sizeof absolute, "shm://%s", path);
    assert_true (s_is_socket (path));
    s_last_endpoint (pull, last, sizeof last);
    //  As given (as ipc:// shows it) or resolved: either names the file
    if (!streq (last, "shm://relative.sock") && !streq (last, absolute))
        print_error ("ZMQ_LAST_ENDPOINT after shm://relative.sock is %s\n", last);
    assert_true (streq (last, "shm://relative.sock") || streq (last, absolute));

    //  A zsock_t PUSH connects to what it says
    zsock_t *push = s_zsock (ZMQ_PUSH);
    assert_int_equal (shmipc_connect (push, "%s", last), 0);
    s_flow (zsock_resolve (push), pull, "r");
    zsock_destroy (&push);

    //  Closed from elsewhere, the socket still removes its own file
    assert_int_equal (chdir (home), 0);
    assert_int_equal (zmq_close (pull), 0);
    s_term (ctx);
    assert_false (s_exists (path));
    assert_int_equal (rmdir (dir), 0);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Closing and terminating with the plain calls

static void
test_zsock_destroy_frees_everything_of_a_zsock_with_shm_endpoints (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    char abstract [S_ENDPOINT_MAX], path [S_ENDPOINT_MAX];
    pt_fresh (&pt_shm, abstract, sizeof abstract);
    pt_fresh (&pt_shm_path, path, sizeof path);
    //  zsock_new, not shmipc_sock_new: any zsock_t takes shm:// endpoints
    zsock_t *pull = s_zsock (ZMQ_PULL);
    assert_int_equal (shmipc_bind (pull, "%s", abstract), 0);
    assert_int_equal (shmipc_bind (pull, "%s", path), 0);
    assert_true (shmipc_bind (pull, "tcp://127.0.0.1:*") > 0);
    zsock_t *push_a = s_zsock (ZMQ_PUSH);
    zsock_t *push_p = s_zsock (ZMQ_PUSH);
    assert_int_equal (shmipc_connect (push_a, "%s", abstract), 0);
    assert_int_equal (shmipc_connect (push_p, "%s", path), 0);
    s_flow (zsock_resolve (push_a), zsock_resolve (pull), "a");
    s_flow (zsock_resolve (push_p), zsock_resolve (pull), "p");
    assert_true (pt_segment_count () > 0);

    zsock_destroy (&push_a);
    zsock_destroy (&push_p);
    zsock_destroy (&pull);
    assert_false (s_exists (path + strlen ("shm://")));
    pt_assert_baseline (baseline);
}

static void
test_zmq_close_then_ctx_term_returns_and_leaves_nothing (void **state)
{
    const pt_transport_t *t = *state;
    tu_baseline_t baseline = pt_baseline ();
    void *ctx = zmq_ctx_new ();
    void *push = s_raw (ctx, ZMQ_PUSH);
    int linger = -1;
    assert_int_equal (zmq_setsockopt (push, ZMQ_LINGER, &linger, sizeof linger), 0);
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (t, endpoint, sizeof endpoint);
    assert_int_equal (shmipc_bind (push, "%s", endpoint), 0);
    zsock_t *pull = s_zsock (ZMQ_PULL);
    assert_int_equal (shmipc_connect (pull, "%s", endpoint), 0);
    s_flow (push, zsock_resolve (pull), "d");

    //  Everything was delivered: linger -1 has nothing to wait for, and
    //  no bridge of ours may keep the context waiting
    assert_int_equal (zmq_close (push), 0);
    s_term (ctx);
    zsock_destroy (&pull);
    if (t->kind == PT_SHM_PATH)
        assert_false (s_exists (endpoint + strlen ("shm://")));
    pt_assert_baseline (baseline);
}

static void
test_ctx_term_does_not_wait_for_another_contexts_linger (void **state)
{
    //  Context A's socket closes with linger -1 and data its peer does not
    //  read yet: its actor lingers. Terminating context B meanwhile must
    //  not wait for that, only for B's own sockets
    tu_baseline_t baseline = pt_baseline ();
    void *ctx_a = zmq_ctx_new ();
    void *ctx_b = zmq_ctx_new ();
    char endpoint [S_ENDPOINT_MAX];
    pt_fresh (&pt_shm, endpoint, sizeof endpoint);
    zsock_t *pull = s_zsock (ZMQ_PULL);
    zsock_set_rcvhwm (pull, 1);
    assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
    void *push = s_raw (ctx_a, ZMQ_PUSH);
    int linger = -1;
    assert_int_equal (zmq_setsockopt (push, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal (shmipc_set_capacity (push, 4096), 0);
    assert_int_equal (shmipc_connect (push, "%s", endpoint), 0);
    //  More than the ring, the bridges and the pipes hold: some stays
    //  with the lingering actor until pull reads
    int sent = 0;
    while (sent < 2000 && pt_send_tagged (push, "a", sent, 900, ZMQ_DONTWAIT) >= 0)
        sent++;
    assert_true (sent > 0);
    assert_int_equal (zmq_close (push), 0);

    void *other = s_raw (ctx_b, ZMQ_PULL);
    char endpoint_b [S_ENDPOINT_MAX];
    pt_fresh (&pt_shm, endpoint_b, sizeof endpoint_b);
    assert_int_equal (shmipc_bind (other, "%s", endpoint_b), 0);
    assert_int_equal (zmq_close (other), 0);
    int64_t start = zclock_mono ();
    s_term (ctx_b);
    assert_true (zclock_mono () - start < PT_PATIENCE_MS);

    //  Now read everything: A's actor finishes, and A terminates
    for (long seq = 0; seq < sent; seq++) {
        char tag [16];
        long got = -1;
        assert_int_equal (pt_recv_tagged (zsock_resolve (pull), tag, sizeof tag, &got), 0);
        assert_int_equal (got, seq);
    }
    s_term (ctx_a);
    zsock_destroy (&pull);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Errors

static void
test_connecting_to_the_shm_wildcard_fails_with_einval (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    void *ctx = zmq_ctx_new ();
    void *raw = s_raw (ctx, ZMQ_DEALER);
    zsock_t *sock = s_zsock (ZMQ_DEALER);
    errno = 0;
    assert_int_equal (shmipc_connect (raw, "shm://*"), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_zmq_connect (raw, "shm://*"), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_connect (sock, "shm://*"), -1);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (shmipc_attach (raw, ">shm://*", false), -1);
    assert_int_equal (errno, EINVAL);
    zsock_destroy (&sock);
    assert_int_equal (zmq_close (raw), 0);
    s_term (ctx);
    pt_assert_baseline (baseline);
}

static void
test_relative_endpoint_too_long_once_resolved_fails (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  A short name in a deep directory: the name fits a socket address
    //  (107 bytes), the resolved path does not
    char home [PATH_MAX], top [] = "/tmp/shmipc-swap-linked.XXXXXX", deep [PATH_MAX];
    assert_non_null (getcwd (home, sizeof home));
    assert_non_null (mkdtemp (top));
    snprintf (deep, sizeof deep, "%s/%080d", top, 0);
    assert_int_equal (mkdir (deep, 0700), 0);
    assert_int_equal (chdir (deep), 0);
    const char *endpoint = "shm://a-relative-socket.sock";
    assert_true (strlen (deep) + 1 + strlen (endpoint + 6) > 107);

    void *ctx = zmq_ctx_new ();
    void *raw = s_raw (ctx, ZMQ_PULL);
    zsock_t *sock = s_zsock (ZMQ_PULL);
    errno = 0;
    assert_int_equal (shmipc_bind (raw, "%s", endpoint), -1);
    print_message ("bind %s in a %zu-byte directory: %s\n", endpoint, strlen (deep),
                   strerror (errno));
    assert_true (errno == EINVAL || errno == ENAMETOOLONG);
    errno = 0;
    assert_int_equal (shmipc_zmq_bind (raw, endpoint), -1);
    assert_true (errno == EINVAL || errno == ENAMETOOLONG);
    errno = 0;
    assert_int_equal (shmipc_zmq_connect (raw, endpoint), -1);
    assert_true (errno == EINVAL || errno == ENAMETOOLONG);
    errno = 0;
    assert_int_equal (shmipc_bind (sock, "%s", endpoint), -1);
    assert_true (errno == EINVAL || errno == ENAMETOOLONG);

    assert_int_equal (chdir (home), 0);
    zsock_destroy (&sock);
    assert_int_equal (zmq_close (raw), 0);
    s_term (ctx);
    //  Nothing was made there
    assert_int_equal (rmdir (deep), 0);
    assert_int_equal (rmdir (top), 0);
    pt_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        PT_TEST (test_raw_sockets_of_two_contexts_talk_both_ways, shm),
        PT_TEST (test_raw_sockets_of_two_contexts_talk_both_ways, shm_path),
        PT_TEST (test_raw_socket_and_zsock_talk_both_ways, shm),
        PT_TEST (test_raw_socket_and_zsock_talk_both_ways, shm_path),
        PT_TEST (test_shmipc_zmq_calls_work_as_libzmq_calls_do, shm),
        PT_TEST (test_shmipc_zmq_calls_work_as_libzmq_calls_do, shm_path),
        cmocka_unit_test (test_last_endpoint_shows_the_wildcard_path_then_each_later_bind),
        cmocka_unit_test (test_last_endpoint_shows_a_relative_bind_resolved_at_bind_time),
        cmocka_unit_test (test_zsock_destroy_frees_everything_of_a_zsock_with_shm_endpoints),
        PT_TEST (test_zmq_close_then_ctx_term_returns_and_leaves_nothing, shm),
        PT_TEST (test_zmq_close_then_ctx_term_returns_and_leaves_nothing, shm_path),
        cmocka_unit_test (test_ctx_term_does_not_wait_for_another_contexts_linger),
        cmocka_unit_test (test_connecting_to_the_shm_wildcard_fails_with_einval),
        cmocka_unit_test (test_relative_endpoint_too_long_once_resolved_fails),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return failed;
}
