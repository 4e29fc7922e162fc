/*  =========================================================================
    test_reliability_access - who may talk to a genuine plugin socket

    A path endpoint's socket file is owner-only; a peer running as another
    uid is refused by default, in both directions (a server refusing a
    client, a client refusing a server), the refusal logged and counted,
    and accepted only once shmipc_allow_uid lets that uid in. The peer of
    another uid is shmipc-hostile in its uid or uidserver mode: it drops
    to that uid before it does anything else, and uses only the core.

    The uid tests need root (to become another uid); without it they are
    skipped. Owns the sockets and processes it starts.
    =========================================================================
*/

#include "testutil_reliability.h"

//  The uid the peers drop to: nobody.
#define S_OTHER_UID     65534
#define S_OTHER_TEXT    "65534"

static void
s_need_root (void)
{
    if (geteuid () != 0) {
        print_message ("    not root: cannot run a peer as another uid\n");
        skip ();
    }
}

static void
test_socket_file_is_owner_only_by_default (void **state)
{
    rl_usage_t start = rl_usage ();
    char endpoint [256];
    tu_endpoint (endpoint, sizeof endpoint, 'p');
    zsock_t *router = pt_sock (ZMQ_ROUTER);
    //  Even a peer we would let in: the file comes first
    assert_int_equal (shmipc_allow_uid (router, S_OTHER_UID), 0);
    assert_int_equal (shmipc_bind (router, "%s", endpoint), 0);
    const char *path = endpoint + strlen ("shm://");
    struct stat st;
    assert_int_equal (lstat (path, &st), 0);
    assert_true (S_ISSOCK (st.st_mode));
    assert_int_equal (st.st_mode & 07777, 0600);
    assert_int_equal (st.st_uid, geteuid ());
    print_message ("    %s: mode %04o, owner %u\n", path, (unsigned) (st.st_mode & 07777),
                   (unsigned) st.st_uid);
    if (geteuid () == 0) {
        tu_child_t peer;
        rl_start (&peer, "shmipc-hostile", "uid", S_OTHER_TEXT, endpoint, NULL);
        char line [128];
        rl_expect (&peer, "connect refused ", line, sizeof line);
        assert_int_equal (atoi (line + strlen ("connect refused ")), EACCES);
        assert_int_equal (tu_child_finish (&peer, 0), 0);
        print_message ("    uid %d, although allowed by the socket: '%s' (EACCES)\n",
                       S_OTHER_UID, line);
    }
    shmipc_stats_t stats;
    assert_int_equal (shmipc_sock_stats (router, &stats), 0);
    assert_int_equal (stats.accepted, 0);
    shmipc_sock_destroy (&router);
    //  And the file goes with the socket
    assert_int_equal (lstat (path, &st), -1);
    rl_assert_usage (start);
}

static void
test_server_refuses_a_client_of_another_uid_unless_allowed (void **state)
{
    s_need_root ();
    rl_usage_t start = rl_usage ();
    for (int allowed = 0; allowed < 2; allowed++) {
        char endpoint [256];
        tu_endpoint (endpoint, sizeof endpoint, 'a');
        rl_service_args_t args = { .endpoint = endpoint };
        if (allowed)
            args.uids [args.nuids++] = S_OTHER_UID;
        zactor_t *service = rl_service_new (&args);
        off_t mark = rl_log_mark ();
        tu_child_t peer;
        rl_start (&peer, "shmipc-hostile", "uid", S_OTHER_TEXT, endpoint, NULL);
        char line [128];
        rl_expect (&peer, allowed ? "echo ok" : "closed", line, sizeof line);
        assert_int_equal (tu_child_finish (&peer, 0), 0);
        rl_stats_t stats;
        if (allowed) {
            stats = RL_WAIT_STAT (service, closed, 1);
            assert_int_equal (stats.accepted, 1);
            assert_int_equal (stats.errors, 0);
            assert_int_equal (stats.echoed, 1);
        }
        else {
            //  Refused at the door: never accepted, counted, logged
            stats = RL_WAIT_STAT (service, errors, 1);
            assert_int_equal (stats.accepted, 0);
            assert_int_equal (stats.echoed, 0);
            rl_log_expect (mark, "refused peer running as uid " S_OTHER_TEXT);
        }
        print_message ("    client of uid %d, %s: '%s'; server: %" PRIu64 " accepted, %"
                       PRIu64 " errors\n", S_OTHER_UID, allowed ? "allowed" : "by default",
                       line, stats.accepted, stats.errors);
        zactor_destroy (&service);
    }
    rl_assert_usage (start);
}

static void
test_client_refuses_a_server_of_another_uid_unless_allowed (void **state)
{
    s_need_root ();
    rl_usage_t start = rl_usage ();
    char endpoint [256];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    tu_child_t server;
    rl_start (&server, "shmipc-hostile", "uidserver", S_OTHER_TEXT, endpoint, NULL);
    rl_expect (&server, "ready", NULL, 0);

    //  By default: refused, again at each reconnect, logged and counted;
    //  nothing ever connects
    off_t mark = rl_log_mark ();
    zsock_t *dealer = pt_sock (ZMQ_DEALER);
    zsock_set_reconnect_ivl (dealer, 20);
    pt_connect (dealer, endpoint);
    int64_t deadline = zclock_mono () + RL_PATIENCE_MS;
    shmipc_stats_t stats;
    do {
        zclock_sleep (10);
        assert_int_equal (shmipc_sock_stats (dealer, &stats), 0);
    } while (stats.errors < 3 && zclock_mono () < deadline);
    assert_true (stats.errors >= 3);
    assert_int_equal (stats.connected, 0);
    assert_int_equal (stats.peers, 0);
    rl_log_expect (mark, "refused server running as uid " S_OTHER_TEXT);
    print_message ("    server of uid %d by default: refused %" PRIu64 " times, %" PRIu64
                   " connections\n", S_OTHER_UID, stats.errors, stats.connected);
    shmipc_sock_destroy (&dealer);

    //  Allowed: served
    dealer = pt_sock (ZMQ_DEALER);
    assert_int_equal (shmipc_allow_uid (dealer, S_OTHER_UID), 0);
    pt_connect (dealer, endpoint);
    assert_int_equal (zstr_send (dealer, "allowed"), 0);
    char *echo = zstr_recv (dealer);
    assert_non_null (echo);
    assert_string_equal (echo, "allowed");
    free (echo);
    assert_int_equal (shmipc_sock_stats (dealer, &stats), 0);
    assert_int_equal (stats.connected, 1);
    print_message ("    server of uid %d, allowed: echoed, %" PRIu64 " connection\n",
                   S_OTHER_UID, stats.connected);
    shmipc_sock_destroy (&dealer);
    rl_expect_eventually (&server, "served 1");
    assert_int_equal (tu_child_finish (&server, SIGKILL), 128 + SIGKILL);
    rl_assert_usage (start);
}

int
main (void)
{
    pt_warm_up ();
    rl_log_start ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_teardown (test_socket_file_is_owner_only_by_default, rl_log_forward),
        cmocka_unit_test_teardown (test_server_refuses_a_client_of_another_uid_unless_allowed,
                                   rl_log_forward),
        cmocka_unit_test_teardown (test_client_refuses_a_server_of_another_uid_unless_allowed,
                                   rl_log_forward),
    };
    if (getenv ("SHMIPC_TEST_FILTER"))
        cmocka_set_test_filter (getenv ("SHMIPC_TEST_FILTER"));
    int failed = cmocka_run_group_tests (tests, NULL, NULL);
    rl_log_stop (failed != 0);
    pt_remove_socket_files ();
    return failed;
}
