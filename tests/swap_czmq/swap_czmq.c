/*  =========================================================================
    swap_czmq - an unmodified czmq program on shm://, for the launcher tests

    Links czmq and libzmq only, never libshmipc: it stands for a czmq
    program compiled with no idea of shmipc, to which shmipc-run gives
    shm:// by LD_PRELOAD. Each case is one ctest (CMakeLists.txt here):

        zproxy      czmq's zproxy with shm:// FRONTEND, BACKEND and CAPTURE;
                    REQ clients here, REP workers in a helper process
        actor       an actor class of our own that makes its PULL on shm://
                    in its own thread; a helper process pushes to it
        relative    shm://relative/path binds and connects against the
                    working directory; LAST_ENDPOINT; the file goes with
                    the socket even after a chdir
        wildcard    the shm:// wildcard ('*' for the path): LAST_ENDPOINT
                    names a fresh path under $TMPDIR, a peer connects to
                    it, unbind and destroy remove the file and its
                    directory
        destroy     plain zsock_destroy of shm:// sockets leaves no thread,
                    descriptor or segment behind
        exit-live   a helper returns from main with a live shm:// PUSH (linger
                    set) still holding most of its messages: it exits 0 and
                    we receive them all; then we return with ours live too
        fork        fork with czmq and shm:// running: the child makes its
                    own sockets, talks to us over shm:// both ways, exits;
                    both processes carry on

    Every process that had shm:// peers checks that it mapped shmipc's
    memfd segments while connected: the proof that shared memory, not
    another transport, carried the messages.

        swap_czmq CASE              run one case (under shmipc-run)
        swap_czmq ROLE ARGS...      a helper process a case starts

    Exits 0 when the case passes, 1 with a message on stderr when a check
    fails, 3 when the watchdog finds a process stuck, 77 when the case
    cannot run in this build (fork under ThreadSanitizer).
    =========================================================================
*/

#include <czmq.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "swap_util.h"

#define S_PROGRAM       "swap_czmq"
#define S_DIR_MAX       256         //  Our temporary directories' names
#define S_ENDPOINT_MAX  512

//  Sizes: each case runs in a second or two
#define S_ROUNDS        50          //  zproxy: requests per client
#define S_CLIENTS       2           //  zproxy: REQ clients here
#define S_WORKERS       2           //  zproxy: REP workers in the helper
#define S_COUNT         200         //  messages per peer, small ones
#define S_SIZE          1000        //  their payload
#define S_LIVE_COUNT    2000        //  exit-live: 2000 x 2 KiB, far more
#define S_LIVE_SIZE     2048        //  than one 1 MiB ring holds
#define S_LIVE_DELAY_MS 300         //  exit-live: we start reading late

//  A socket a helper leaves open for exit to deal with. Global, as in a
//  program that forgets it: still reachable at exit.
static zsock_t *volatile s_live;


//  --------------------------------------------------------------------------
//  Messages: frame 0 "TAG:SEQ:SIZE", frame 1 SIZE bytes filled from seq,
//  so that origin, order and content can all be checked

static void
s_send_seq (zsock_t *sock, const char *tag, int seq, size_t size)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstrf (msg, "%s:%d:%zu", tag, seq, size);
    zframe_t *payload = zframe_new (NULL, size);
    byte *data = zframe_data (payload);
    for (size_t index = 0; index < size; index++)
        data [index] = (byte) (seq * 7 + index);
    zmsg_append (msg, &payload);
    if (zmsg_send (&msg, sock)) {
        int error = zmq_errno ();
        zmsg_destroy (&msg);
        su_fail ("send %s:%d: %s%s", tag, seq, zmq_strerror (error),
                 error == EAGAIN ? " (timed out)" : "");
    }
}

//  Receive one message s_send_seq sent and check its payload; write its
//  tag, return its seq, or -1 if none came within the socket's timeout.
static int
s_recv_seq (zsock_t *sock, char *tag, size_t tag_size)
{
    zmsg_t *msg = zmsg_recv (sock);
    if (!msg) {
        su_assert (zmq_errno () == EAGAIN, "receive: %s", zmq_strerror (zmq_errno ()));
        return -1;
    }
    su_assert (zmsg_size (msg) == 2, "a message of %zu frames, expected 2",
               zmsg_size (msg));
    char *head = zmsg_popstr (msg);
    char name [64];
    int seq;
    size_t size;
    su_assert (sscanf (head, "%63[^:]:%d:%zu", name, &seq, &size) == 3,
               "malformed first frame \"%s\"", head);
    zframe_t *payload = zmsg_pop (msg);
    su_assert (zframe_size (payload) == size, "%s: payload of %zu bytes, expected %zu",
               head, zframe_size (payload), size);
    byte *data = zframe_data (payload);
    for (size_t index = 0; index < size; index++)
        su_assert (data [index] == (byte) (seq * 7 + index),
                   "%s: payload corrupt at byte %zu", head, index);
    zframe_destroy (&payload);
    zmsg_destroy (&msg);
    zstr_free (&head);
    snprintf (tag, tag_size, "%s", name);
    return seq;
}

//  Receive count messages from each of the ntags senders, each sender's
//  in order (fair queueing interleaves them)
static void
s_expect_streams (zsock_t *sock, const char *tags [], int ntags, int count)
{
    int next [8] = { 0 };
    assert (ntags <= 8);
    for (int received = 0; received < ntags * count; received++) {
        char tag [64];
        int seq = s_recv_seq (sock, tag, sizeof tag);
        su_assert (seq >= 0, "%d messages of %d received, then none within %d ms",
                   received, ntags * count, SU_TIMEOUT_MS);
        int which = 0;
        while (which < ntags && !streq (tags [which], tag))
            which++;
        su_assert (which < ntags, "a message from unknown sender \"%s\"", tag);
        su_assert (seq == next [which], "from %s: message %d where %d was due", tag, seq,
                   next [which]);
        next [which]++;
    }
}

//  ZMQ_LAST_ENDPOINT, through czmq and through libzmq: the same string
static char *
s_last_endpoint (zsock_t *sock)
{
    char *last = zsock_last_endpoint (sock);
    su_assert (last, "zsock_last_endpoint: %s", zmq_strerror (zmq_errno ()));
    char raw [S_ENDPOINT_MAX];
    size_t size = sizeof raw;
    su_assert (zmq_getsockopt (zsock_resolve (sock), ZMQ_LAST_ENDPOINT, raw, &size) == 0,
               "zmq_getsockopt ZMQ_LAST_ENDPOINT: %s", zmq_strerror (zmq_errno ()));
    su_assert (streq (last, raw), "zsock_last_endpoint \"%s\" but ZMQ_LAST_ENDPOINT \"%s\"",
               last, raw);
    return last;
}

static zsock_t *
s_sock (int type)
{
    zsock_t *sock = zsock_new (type);
    su_assert (sock, "zsock_new: %s", zmq_strerror (zmq_errno ()));
    zsock_set_rcvtimeo (sock, SU_TIMEOUT_MS);
    zsock_set_sndtimeo (sock, SU_TIMEOUT_MS);
    return sock;
}

static void
s_bind (zsock_t *sock, const char *endpoint)
{
    int rc = zsock_bind (sock, "%s", endpoint);
    su_assert (rc == 0, "zsock_bind %s: %s%s", endpoint, zmq_strerror (zmq_errno ()),
               zmq_errno () == EPROTONOSUPPORT ? " (not run under shmipc-run?)" : "");
}

static void
s_connect (zsock_t *sock, const char *endpoint)
{
    su_assert (zsock_connect (sock, "%s", endpoint) == 0, "zsock_connect %s: %s",
               endpoint, zmq_strerror (zmq_errno ()));
}

//  Wait (bounded) until the process maps no shmipc segment any more
static void
s_expect_no_segments (const char *after)
{
    int64_t deadline = su_now_ms () + 3000;
    while (su_counts ().segments && su_now_ms () < deadline)
        su_sleep_ms (10);
    su_assert (su_counts ().segments == 0, "%d shmipc segments still mapped %s",
               su_counts ().segments, after);
}


//  --------------------------------------------------------------------------
//  Helper roles, each in a process of its own

//  push ENDPOINT TAG COUNT SIZE: a PUSH attached to ENDPOINT ('>' or '@')
//  sends COUNT messages, says "sent COUNT", stays connected until released,
//  then zsock_destroy with linger -1: all of it is delivered.
static int
s_role_push (const char *endpoint, const char *tag, int count, size_t size)
{
    su_stage ("push");
    zsock_t *push = s_sock (ZMQ_PUSH);
    zsock_set_linger (push, -1);
    su_assert (zsock_attach (push, endpoint, false) == 0, "zsock_attach %s: %s", endpoint,
               zmq_strerror (zmq_errno ()));
    for (int seq = 0; seq < count; seq++)
        s_send_seq (push, tag, seq, size);
    su_expect_shared_memory (0, "a pushing peer, connected");
    tu_say ("sent %d", count);
    su_wait_parent ();
    su_stage ("zsock_destroy with linger -1");
    zsock_destroy (&push);
    return 0;
}

//  workers ENDPOINT TOTAL: S_WORKERS REP sockets connected to ENDPOINT
//  answer TOTAL requests in all, each "REQUEST" with "REQUEST:wINDEX";
//  then say "served N N..." and end (linger -1: the last replies arrive).
static int
s_role_workers (const char *endpoint, int total)
{
    su_stage ("workers");
    zsock_t *workers [S_WORKERS];
    zpoller_t *poller = zpoller_new (NULL);
    for (int index = 0; index < S_WORKERS; index++) {
        workers [index] = s_sock (ZMQ_REP);
        zsock_set_linger (workers [index], -1);
        s_connect (workers [index], endpoint);
        zpoller_add (poller, workers [index]);
    }
    int served [S_WORKERS] = { 0 };
    for (int done = 0; done < total; done++) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, SU_TIMEOUT_MS);
        su_assert (which, "no request within %d ms, after %d of %d", SU_TIMEOUT_MS,
                   done, total);
        int index = 0;
        while (workers [index] != which)
            index++;
        char *request = zstr_recv (which);
        su_assert (request, "receive a request: %s", zmq_strerror (zmq_errno ()));
        su_assert (zstr_sendf (which, "%s:w%d", request, index) == 0, "reply: %s",
                   zmq_strerror (zmq_errno ()));
        zstr_free (&request);
        served [index]++;
        if (done == 0)
            su_expect_shared_memory (0, "the workers, connected to the proxy's backend");
    }
    zpoller_destroy (&poller);
    char line [64] = "served";
    for (int index = 0; index < S_WORKERS; index++) {
        snprintf (line + strlen (line), sizeof line - strlen (line), " %d", served [index]);
        zsock_destroy (&workers [index]);
    }
    tu_say ("%s", line);
    return 0;
}

//  exit-live-push ENDPOINT COUNT SIZE: a PUSH with linger 10 s and no
//  high-water mark takes COUNT messages at once, says "sent COUNT" and
//  returns from main with the socket live: exit must deliver them.
static int
s_role_exit_live_push (const char *endpoint, int count, size_t size)
{
    su_stage ("exit-live push");
    zsock_t *push = s_sock (ZMQ_PUSH);
    s_live = push;
    zsock_set_linger (push, SU_TIMEOUT_MS);
    zsock_set_sndhwm (push, 0);
    s_connect (push, endpoint);
    for (int seq = 0; seq < count; seq++)
        s_send_seq (push, "L", seq, size);
    su_expect_shared_memory (0, "the exiting peer, connected");
    tu_say ("sent %d", count);
    su_stage ("exit with a live shm:// socket");
    return 0;                   //  The socket stays live: that's the point
}


//  --------------------------------------------------------------------------
//  zproxy: czmq's own actor makes the shm:// sockets (zsock_attach), and
//  its CAPTURE socket connects over shm:// too

static int
s_case_zproxy (void)
{
    su_stage ("zproxy set-up");
    char dir [S_DIR_MAX], frontend [S_ENDPOINT_MAX], backend [S_ENDPOINT_MAX];
    char capture [S_ENDPOINT_MAX], attach [S_ENDPOINT_MAX + 1];
    su_temp_dir (dir, sizeof dir, "zproxy");
    snprintf (frontend, sizeof frontend, "shm://@swap_czmq-%d-frontend", (int) getpid ());
    snprintf (backend, sizeof backend, "shm://%s/backend", dir);
    snprintf (capture, sizeof capture, "shm://@swap_czmq-%d-capture", (int) getpid ());

    zsock_t *captured = s_sock (ZMQ_PULL);
    s_bind (captured, capture);
    zactor_t *proxy = zactor_new (zproxy, NULL);
    su_assert (proxy, "zactor_new (zproxy): %s", zmq_strerror (zmq_errno ()));
    zsock_set_rcvtimeo (proxy, SU_TIMEOUT_MS);
    snprintf (attach, sizeof attach, "@%s", frontend);
    zstr_sendx (proxy, "FRONTEND", "ROUTER", attach, NULL);
    su_assert (zsock_wait (proxy) == 0, "zproxy FRONTEND %s: no answer", attach);
    snprintf (attach, sizeof attach, "@%s", backend);
    zstr_sendx (proxy, "BACKEND", "DEALER", attach, NULL);
    su_assert (zsock_wait (proxy) == 0, "zproxy BACKEND %s: no answer", attach);
    zstr_sendx (proxy, "CAPTURE", capture, NULL);
    su_assert (zsock_wait (proxy) == 0, "zproxy CAPTURE %s: no answer", capture);
    su_assert (su_is_socket (backend + strlen ("shm://")),
               "no socket file at %s after the proxy bound it", backend + strlen ("shm://"));

    su_stage ("zproxy traffic");
    su_child_t workers;
    char total [16];
    snprintf (total, sizeof total, "%d", S_CLIENTS * S_ROUNDS);
    su_spawn (&workers, NULL, "workers", backend, total, NULL);
    zsock_t *clients [S_CLIENTS];
    for (int client = 0; client < S_CLIENTS; client++) {
        clients [client] = s_sock (ZMQ_REQ);
        s_connect (clients [client], frontend);
    }
    for (int round = 0; round < S_ROUNDS; round++) {
        for (int client = 0; client < S_CLIENTS; client++)
            su_assert (zstr_sendf (clients [client], "c%d:%d", client, round) == 0,
                       "client %d: send: %s", client, zmq_strerror (zmq_errno ()));
        for (int client = 0; client < S_CLIENTS; client++) {
            char *reply = zstr_recv (clients [client]);
            su_assert (reply, "client %d, round %d: no reply: %s", client, round,
                       zmq_strerror (zmq_errno ()));
            char expected [32];
            snprintf (expected, sizeof expected, "c%d:%d:w", client, round);
            su_assert (strncmp (reply, expected, strlen (expected)) == 0,
                       "client %d got \"%s\", expected \"%s*\"", client, reply, expected);
            zstr_free (&reply);
        }
        if (round == 0)
            su_expect_shared_memory (0, "the clients and the proxy");
    }
    //  The capture saw every request and every reply
    for (int seen = 0; seen < 2 * S_CLIENTS * S_ROUNDS; seen++) {
        zmsg_t *msg = zmsg_recv (captured);
        su_assert (msg, "capture: %d messages of %d, then none", seen,
                   2 * S_CLIENTS * S_ROUNDS);
        zmsg_destroy (&msg);
    }
    char served [64];
    su_child_line (&workers, served, sizeof served);
    su_child_reap (&workers);

    su_stage ("zproxy teardown");
    for (int client = 0; client < S_CLIENTS; client++)
        zsock_destroy (&clients [client]);
    zactor_destroy (&proxy);
    zsock_destroy (&captured);
    su_assert (!su_exists (backend + strlen ("shm://")),
               "%s still exists after the proxy destroyed its socket", backend);
    su_remove_dir (dir);
    s_expect_no_segments ("after the proxy and its peers were destroyed");
    printf ("swap_czmq zproxy: %d requests through zproxy over shm:// (workers %s), "
            "all captured over shm://\n", S_CLIENTS * S_ROUNDS, served);
    return 0;
}


//  --------------------------------------------------------------------------
//  actor: a zactor class of our own makes its shm:// PULL inside its thread

//  The collector actor: binds a PULL to the endpoint in args (its own
//  socket, made in its own thread), counts what arrives from one sender
//  in order, and answers REPORT with "is": its bind error ("" if none) and
//  the count, then its ZMQ_LAST_ENDPOINT.
static void
s_collector (zsock_t *pipe, void *args)
{
    char bind [S_ENDPOINT_MAX + 1];
    snprintf (bind, sizeof bind, "@%s", (const char *) args);
    zsock_t *pull = zsock_new_pull (bind);
    char error [S_ENDPOINT_MAX + 128] = "";
    if (!pull)
        snprintf (error, sizeof error, "zsock_new_pull (\"%s\"): %s", bind,
                  zmq_strerror (zmq_errno ()));
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    if (pull)
        zpoller_add (poller, pull);
    int received = 0;
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            if (command && streq (command, "REPORT")) {
                char *last = pull ? zsock_last_endpoint (pull) : NULL;
                zsock_send (pipe, "sis", error, received, last ? last : "");
                zstr_free (&last);
            }
            zstr_free (&command);
            if (term)
                break;
        }
        else
        if (which == pull) {
            char tag [64];
            int seq = s_recv_seq (pull, tag, sizeof tag);
            su_assert (seq >= 0, "the actor's PULL was ready, then had nothing");
            su_assert (streq (tag, "A") && seq == received,
                       "the actor got %s:%d where A:%d was due", tag, seq, received);
            received++;
        }
        else
            break;              //  Interrupted
    }
    zpoller_destroy (&poller);
    zsock_destroy (&pull);
}

static int
s_case_actor (void)
{
    su_stage ("actor");
    zsock_t *warm = zsock_new (ZMQ_PAIR);        //  czmq's context and its threads
    zsock_destroy (&warm);
    su_warm_up ();
    su_counts_t before = su_settled_counts ();
    char endpoint [S_ENDPOINT_MAX], connect [S_ENDPOINT_MAX + 1], count [16], size [16];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_czmq-%d-actor", (int) getpid ());
    zactor_t *collector = zactor_new (s_collector, endpoint);
    su_assert (collector, "zactor_new: %s", zmq_strerror (zmq_errno ()));
    zsock_set_rcvtimeo (collector, SU_TIMEOUT_MS);

    char *error = NULL, *last = NULL;
    int received = -1;
    zstr_send (collector, "REPORT");
    su_assert (zsock_recv (collector, "sis", &error, &received, &last) == 0,
               "the actor did not report");
    su_assert (streq (error, ""), "the actor could not bind: %s", error);
    su_assert (streq (last, endpoint), "the actor's ZMQ_LAST_ENDPOINT is \"%s\", "
               "expected \"%s\"", last, endpoint);
    zstr_free (&error);
    zstr_free (&last);

    su_child_t pusher;
    snprintf (connect, sizeof connect, ">%s", endpoint);
    snprintf (count, sizeof count, "%d", S_COUNT);
    snprintf (size, sizeof size, "%d", S_SIZE);
    su_spawn (&pusher, NULL, "push", connect, "A", count, size, NULL);
    char expected [32];
    snprintf (expected, sizeof expected, "sent %d", S_COUNT);
    su_child_expect (&pusher, expected);
    int64_t deadline = su_now_ms () + SU_TIMEOUT_MS;
    while (received < S_COUNT) {
        su_assert (su_now_ms () < deadline, "the actor got %d messages of %d within %d ms",
                   received, S_COUNT, SU_TIMEOUT_MS);
        zstr_send (collector, "REPORT");
        su_assert (zsock_recv (collector, "sis", &error, &received, &last) == 0,
                   "the actor did not report");
        zstr_free (&error);
        zstr_free (&last);
        if (received < S_COUNT)
            su_sleep_ms (5);
    }
    su_expect_shared_memory (0, "the actor's process, its peer connected");
    su_child_reap (&pusher);

    su_stage ("zactor_destroy");
    zactor_destroy (&collector);
    su_expect_counts (before, "after zactor_destroy of the actor with an shm:// PULL");
    printf ("swap_czmq actor: the actor's own shm:// PULL received %d messages; "
            "its thread and socket are gone\n", S_COUNT);
    return 0;
}


//  --------------------------------------------------------------------------
//  relative: shm://relative/path against the working directory at bind and
//  connect time

static int
s_case_relative (void)
{
    su_stage ("relative set-up");
    char dir [S_DIR_MAX], nest [S_DIR_MAX + 8], path [S_DIR_MAX + 32];
    su_temp_dir (dir, sizeof dir, "relative");
    su_assert (chdir (dir) == 0, "chdir %s: %s", dir, strerror (errno));

    //  Bind, then unbind with the same relative name: the file comes and goes
    su_stage ("relative bind and unbind");
    zsock_t *first = s_sock (ZMQ_PULL);
    s_bind (first, "shm://first.sock");
    snprintf (path, sizeof path, "%s/first.sock", dir);
    su_assert (su_is_socket (path), "no socket file at %s after binding shm://first.sock",
               path);
    su_assert (zsock_unbind (first, "shm://first.sock") == 0, "zsock_unbind: %s",
               zmq_strerror (zmq_errno ()));
    su_assert (!su_exists (path), "%s is still there after zsock_unbind", path);
    zsock_destroy (&first);

    //  A path with a directory in it; two peers: one with the relative
    //  name, one with what ZMQ_LAST_ENDPOINT reports
    su_stage ("relative bind with peers");
    snprintf (nest, sizeof nest, "%s/nest", dir);
    su_assert (mkdir ("nest", 0700) == 0, "mkdir nest: %s", strerror (errno));
    zsock_t *pull = s_sock (ZMQ_PULL);
    s_bind (pull, "shm://nest/second.sock");
    snprintf (path, sizeof path, "%s/nest/second.sock", dir);
    su_assert (su_is_socket (path), "no socket file at %s", path);
    su_assert (streq (zsock_endpoint (pull), "shm://nest/second.sock"),
               "zsock_endpoint is \"%s\", expected what was given", zsock_endpoint (pull));
    char *last = s_last_endpoint (pull);
    char absolute [S_DIR_MAX + 40];
    snprintf (absolute, sizeof absolute, "shm://%s", path);
    //  As given (as ipc:// shows it) or resolved: either names the file
    su_assert (streq (last, "shm://nest/second.sock") || streq (last, absolute),
               "ZMQ_LAST_ENDPOINT is \"%s\", expected \"shm://nest/second.sock\" or \"%s\"",
               last, absolute);
    char count [16], size [16], connect [S_ENDPOINT_MAX + 1];
    snprintf (count, sizeof count, "%d", S_COUNT);
    snprintf (size, sizeof size, "%d", S_SIZE);
    su_child_t by_name, by_last;
    su_spawn (&by_name, NULL, "push", ">shm://nest/second.sock", "N", count, size, NULL);
    //  A resolved endpoint stands alone: its peer works from elsewhere
    if (streq (last, absolute))
        su_assert (chdir ("/") == 0, "chdir /: %s", strerror (errno));
    snprintf (connect, sizeof connect, ">%s", last);
    su_spawn (&by_last, NULL, "push", connect, "L", count, size, NULL);
    const char *tags [] = { "N", "L" };
    s_expect_streams (pull, tags, 2, S_COUNT);
    su_expect_shared_memory (0, "the relative endpoint's server, peers connected");
    char expected [32];
    snprintf (expected, sizeof expected, "sent %d", S_COUNT);
    su_child_expect (&by_name, expected);
    su_child_expect (&by_last, expected);
    su_child_reap (&by_name);
    su_child_reap (&by_last);

    //  Resolved at bind time: destroyed from another directory, the socket
    //  still removes its own file
    su_stage ("relative destroy elsewhere");
    su_assert (chdir ("/") == 0, "chdir /: %s", strerror (errno));
    zsock_destroy (&pull);
    su_assert (!su_exists (path), "%s is still there after zsock_destroy (from /)", path);
    su_assert (rmdir (nest) == 0, "rmdir %s: %s", nest, strerror (errno));
    su_remove_dir (dir);
    printf ("swap_czmq relative: bound shm://nest/second.sock (LAST_ENDPOINT %s), "
            "peers by name and by LAST_ENDPOINT, file gone with the socket\n", last);
    zstr_free (&last);
    return 0;
}


//  --------------------------------------------------------------------------
//  wildcard: shm://* under $TMPDIR. The case runs the checks in a helper
//  whose TMPDIR is a directory of ours, so that we can see it left nothing.

static int
s_case_wildcard (void)
{
    su_stage ("wildcard");
    char dir [S_DIR_MAX];
    su_temp_dir (dir, sizeof dir, "wildcard");
    su_child_t child;
    su_spawn (&child, dir, "wildcard-child", NULL);
    char line [256];
    su_child_line (&child, line, sizeof line);
    su_child_reap (&child);
    su_remove_dir (dir);
    printf ("swap_czmq wildcard: %s; nothing left under TMPDIR\n", line);
    return 0;
}

//  The directory part of path (a new string)
static char *
s_dirname (const char *path)
{
    char *dir = strdup (path);
    char *slash = strrchr (dir, '/');
    if (slash)
        *slash = 0;
    return dir;
}

//  Check a fresh shm://* endpoint and return its path (in endpoint)
static const char *
s_check_wildcard_endpoint (const char *endpoint, const char *tmpdir)
{
    size_t length = strlen (tmpdir);
    su_assert (strncmp (endpoint, "shm://", 6) == 0 && strncmp (endpoint + 6, tmpdir, length) == 0
               && endpoint [6 + length] == '/',
               "ZMQ_LAST_ENDPOINT after binding shm://* is \"%s\", expected shm://%s/...",
               endpoint, tmpdir);
    const char *path = endpoint + 6;
    su_assert (su_is_socket (path), "no socket file at %s", path);
    char *parent = s_dirname (path);
    su_assert (!streq (parent, tmpdir) && su_is_dir (parent),
               "%s is not in a directory of its own under %s", path, tmpdir);
    free (parent);
    return path;
}

static int
s_case_wildcard_child (void)
{
    su_stage ("wildcard bind");
    const char *tmpdir = getenv ("TMPDIR");
    su_assert (tmpdir && *tmpdir, "no TMPDIR");
    zsock_t *pull = s_sock (ZMQ_PULL);
    s_bind (pull, "shm://*");
    su_assert (streq (zsock_endpoint (pull), "shm://*"),
               "zsock_endpoint is \"%s\", expected what was given (shm://*), as for ipc://*",
               zsock_endpoint (pull));
    char *last = s_last_endpoint (pull);
    const char *path = s_check_wildcard_endpoint (last, tmpdir);
    char *parent = s_dirname (path);

    su_stage ("wildcard peer");
    char count [16], size [16], connect [S_ENDPOINT_MAX + 1], expected [32];
    snprintf (count, sizeof count, "%d", S_COUNT);
    snprintf (size, sizeof size, "%d", S_SIZE);
    snprintf (connect, sizeof connect, ">%s", last);
    su_child_t peer;
    su_spawn (&peer, NULL, "push", connect, "W", count, size, NULL);
    const char *tags [] = { "W" };
    s_expect_streams (pull, tags, 1, S_COUNT);
    su_expect_shared_memory (0, "the shm://* server, its peer connected");
    snprintf (expected, sizeof expected, "sent %d", S_COUNT);
    su_child_expect (&peer, expected);
    su_child_reap (&peer);

    //  A second shm://* gets a path of its own; a later tcp bind is then
    //  what ZMQ_LAST_ENDPOINT shows
    su_stage ("wildcard second bind");
    zsock_t *other = s_sock (ZMQ_PULL);
    s_bind (other, "shm://*");
    char *other_last = s_last_endpoint (other);
    const char *other_path = s_check_wildcard_endpoint (other_last, tmpdir);
    char *other_parent = s_dirname (other_path);
    su_assert (!streq (other_last, last), "two shm://* binds got the same endpoint %s", last);
    su_assert (zsock_bind (pull, "tcp://127.0.0.1:*") > 0, "zsock_bind tcp: %s",
               zmq_strerror (zmq_errno ()));
    char *tcp_last = s_last_endpoint (pull);
    su_assert (strncmp (tcp_last, "tcp://127.0.0.1:", 16) == 0,
               "ZMQ_LAST_ENDPOINT after a tcp bind is \"%s\"", tcp_last);
    zstr_free (&tcp_last);

    su_stage ("wildcard unbind and destroy");
    su_assert (zsock_unbind (pull, "%s", last) == 0, "zsock_unbind %s: %s", last,
               zmq_strerror (zmq_errno ()));
    su_assert (!su_exists (path) && !su_exists (parent),
               "after zsock_unbind, %s or its directory is still there", path);
    zsock_destroy (&other);
    su_assert (!su_exists (other_path) && !su_exists (other_parent),
               "after zsock_destroy, %s or its directory is still there", other_path);
    zsock_destroy (&pull);
    tu_say ("shm://* bound at %s, a peer connected to it, unbind and destroy removed "
            "file and directory", last);
    free (parent);
    free (other_parent);
    zstr_free (&other_last);
    zstr_free (&last);
    return 0;
}


//  --------------------------------------------------------------------------
//  destroy: plain zsock_destroy leaves nothing behind

static void
s_destroy_round (const char *dir, int round)
{
    char abstract [S_ENDPOINT_MAX], path [S_ENDPOINT_MAX], nobody [S_ENDPOINT_MAX];
    char idle [S_ENDPOINT_MAX];
    snprintf (abstract, sizeof abstract, "shm://@swap_czmq-%d-destroy-%d", (int) getpid (),
              round);
    snprintf (path, sizeof path, "shm://%s/destroy-%d.sock", dir, round);
    snprintf (nobody, sizeof nobody, "shm://@swap_czmq-%d-nobody-%d", (int) getpid (),
              round);
    snprintf (idle, sizeof idle, "shm://@swap_czmq-%d-idle-%d", (int) getpid (), round);

    //  A PULL on two shm:// endpoints and a tcp one, a PUSH on each shm://
    zsock_t *pull = s_sock (ZMQ_PULL);
    s_bind (pull, abstract);
    s_bind (pull, path);
    su_assert (zsock_bind (pull, "tcp://127.0.0.1:*") > 0, "zsock_bind tcp: %s",
               zmq_strerror (zmq_errno ()));
    zsock_t *push_a = s_sock (ZMQ_PUSH);
    s_connect (push_a, abstract);
    zsock_t *push_b = s_sock (ZMQ_PUSH);
    s_connect (push_b, path);
    //  One connecting to nobody, a message queued for it; one bound, idle
    zsock_t *dealer = s_sock (ZMQ_DEALER);
    zsock_set_reconnect_ivl (dealer, 20);
    s_connect (dealer, nobody);
    zsock_set_sndtimeo (dealer, 0);
    zstr_send (dealer, "never delivered");
    zsock_t *router = s_sock (ZMQ_ROUTER);
    s_bind (router, idle);

    for (int seq = 0; seq < S_COUNT; seq++) {
        s_send_seq (push_a, "A", seq, S_SIZE);
        s_send_seq (push_b, "B", seq, S_SIZE);
    }
    const char *tags [] = { "A", "B" };
    s_expect_streams (pull, tags, 2, S_COUNT);
    su_expect_shared_memory (0, "both ends in this process, connected");

    zsock_destroy (&push_a);
    zsock_destroy (&push_b);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
    zsock_destroy (&pull);
    su_assert (!su_exists (path + strlen ("shm://")),
               "%s is still there after zsock_destroy", path + strlen ("shm://"));
}

static int
s_case_destroy (void)
{
    su_stage ("destroy");
    char dir [S_DIR_MAX];
    su_temp_dir (dir, sizeof dir, "destroy");
    //  czmq's context and its threads stay: they are czmq's, not ours
    zsock_t *warm = zsock_new (ZMQ_PAIR);
    zsock_destroy (&warm);
    su_warm_up ();
    su_counts_t before = su_settled_counts ();
    su_assert (before.segments == 0, "%d shmipc segments mapped before any shm:// socket",
               before.segments);
    //  Twice: what the first round left would show, and so would growth
    for (int round = 0; round < 2; round++) {
        s_destroy_round (dir, round);
        su_expect_counts (before, round == 0 ? "after zsock_destroy of five shm:// sockets"
                                             : "after zsock_destroy, second round");
    }
    su_remove_dir (dir);
    printf ("swap_czmq destroy: plain zsock_destroy of shm:// sockets (bound, "
            "connected, reconnecting, idle) left no thread, descriptor or segment\n");
    return 0;
}


//  --------------------------------------------------------------------------
//  exit-live: a program that returns from main with live shm:// sockets

static int
s_case_exit_live (void)
{
    su_stage ("exit-live");
    char endpoint [S_ENDPOINT_MAX], count [16], size [16];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_czmq-%d-live", (int) getpid ());
    zsock_t *pull = s_sock (ZMQ_PULL);
    s_live = pull;
    //  Little room here (the actor's bridge copies both marks): what does
    //  not fit the ring waits in the helper until we read
    zsock_set_rcvhwm (pull, 10);
    zsock_set_sndhwm (pull, 10);
    s_bind (pull, endpoint);
    snprintf (count, sizeof count, "%d", S_LIVE_COUNT);
    snprintf (size, sizeof size, "%d", S_LIVE_SIZE);
    su_child_t child;
    su_spawn (&child, NULL, "exit-live-push", endpoint, count, size, NULL);
    char expected [32];
    snprintf (expected, sizeof expected, "sent %d", S_LIVE_COUNT);
    su_child_expect (&child, expected);
    //  Its main returns now, while most of the messages wait for us
    int64_t start = su_now_ms ();
    su_sleep_ms (S_LIVE_DELAY_MS);
    //  4 MiB cannot be in a 1 MiB ring and a few messages: the helper
    //  must still be in its exit, lingering
    int status;
    su_assert (waitpid (child.pid, &status, WNOHANG) == 0,
               "the helper ended before we read: its exit did not wait (linger) "
               "for the messages that were not in shared memory yet");
    su_expect_shared_memory (0, "the receiver, its exiting peer connected");
    const char *tags [] = { "L" };
    s_expect_streams (pull, tags, 1, S_LIVE_COUNT);
    su_child_reap (&child);
    printf ("swap_czmq exit-live: the helper returned from main with %d messages of "
            "%d bytes sent, exited 0 and all arrived (%d ms); now we return with our "
            "shm:// socket live\n", S_LIVE_COUNT, S_LIVE_SIZE,
            (int) (su_now_ms () - start));
    fflush (stdout);
    su_stage ("exit with a live shm:// socket");
    return 0;                   //  Ours stays live too: exit must cope
}


//  --------------------------------------------------------------------------
//  fork: czmq and shm:// running, fork, the child makes its own sockets

static int
s_fork_child (const char *parent_endpoint)
{
    su_init (S_PROGRAM, "fork child");
    su_stage ("fork child");
    //  What we hold of the parent's segments, if anything
    int inherited = su_counts ().segments;
    char mine [S_ENDPOINT_MAX];
    snprintf (mine, sizeof mine, "shm://@swap_czmq-%d-forked", (int) getpid ());
    zsock_t *pull = s_sock (ZMQ_PULL);
    s_bind (pull, mine);
    zsock_t *dealer = s_sock (ZMQ_DEALER);
    zsock_set_identity (dealer, "child");
    s_connect (dealer, parent_endpoint);
    su_assert (zstr_sendx (dealer, "hello", mine, NULL) == 0, "send hello: %s",
               zmq_strerror (zmq_errno ()));
    char *reply = zstr_recv (dealer);
    su_assert (reply && streq (reply, "welcome"), "the parent answered \"%s\"",
               reply ? reply : "nothing");
    zstr_free (&reply);
    su_expect_shared_memory (inherited, "the forked child, connected to its parent");
    const char *tags [] = { "F" };
    s_expect_streams (pull, tags, 1, S_COUNT);
    zsock_destroy (&dealer);
    zsock_destroy (&pull);
    su_stage ("fork child exit");
    return 0;
}

//  One round trip from dealer through router
static void
s_ping (zsock_t *dealer, zsock_t *router, const char *identity)
{
    su_assert (zstr_send (dealer, "ping") == 0, "send ping: %s", zmq_strerror (zmq_errno ()));
    char *id = NULL, *body = NULL;
    su_assert (zstr_recvx (router, &id, &body, NULL) == 2, "ping: nothing at the router");
    su_assert (streq (id, identity) && streq (body, "ping"), "the router got %s/%s", id, body);
    su_assert (zstr_sendx (router, id, "pong", NULL) == 0, "send pong: %s",
               zmq_strerror (zmq_errno ()));
    zstr_free (&id);
    zstr_free (&body);
    char *pong = zstr_recv (dealer);
    su_assert (pong && streq (pong, "pong"), "no pong");
    zstr_free (&pong);
}

static int
s_case_fork (void)
{
    su_stage ("fork set-up");
    if (su_under_tsan ()) {
        //  Its default die_after_fork ends a forked child that starts a
        //  thread, as czmq's context does
        printf ("swap_czmq fork: skipped: ThreadSanitizer does not run threads "
                "in the child of a multi-threaded fork\n");
        return SU_SKIPPED;
    }
    char endpoint [S_ENDPOINT_MAX];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_czmq-%d-fork", (int) getpid ());
    zsock_t *router = s_sock (ZMQ_ROUTER);
    s_bind (router, endpoint);
    zsock_t *local = s_sock (ZMQ_DEALER);
    zsock_set_identity (local, "local");
    s_connect (local, endpoint);
    s_ping (local, router, "local");
    su_expect_shared_memory (0, "the parent, before fork");
    int inherited = su_counts ().segments;

    su_stage ("fork");
    fflush (NULL);
    pid_t pid = fork ();
    su_assert (pid >= 0, "fork: %s", strerror (errno));
    if (pid == 0)
        exit (s_fork_child (endpoint));
    su_child_t child;
    su_adopt (&child, pid);

    su_stage ("talk to the forked child");
    zmsg_t *hello = zmsg_recv (router);
    su_assert (hello, "nothing from the forked child within %d ms", SU_TIMEOUT_MS);
    char *id = zmsg_popstr (hello), *word = zmsg_popstr (hello);
    char *child_endpoint = zmsg_popstr (hello);
    su_assert (id && word && child_endpoint && streq (id, "child") && streq (word, "hello"),
               "the forked child said %s/%s", id ? id : "-", word ? word : "-");
    zmsg_destroy (&hello);
    su_expect_shared_memory (inherited, "the parent, its forked child connected");
    su_assert (zstr_sendx (router, "child", "welcome", NULL) == 0, "send welcome: %s",
               zmq_strerror (zmq_errno ()));
    zsock_t *push = s_sock (ZMQ_PUSH);
    s_connect (push, child_endpoint);
    for (int seq = 0; seq < S_COUNT; seq++)
        s_send_seq (push, "F", seq, S_SIZE);
    su_child_reap (&child);

    //  We carry on as before
    su_stage ("after the forked child exited");
    s_ping (local, router, "local");
    zsock_destroy (&push);
    zsock_destroy (&local);
    zsock_destroy (&router);
    s_expect_no_segments ("after the parent destroyed its sockets");
    printf ("swap_czmq fork: the forked child bound and connected shm:// sockets, "
            "talked with us both ways and exited 0; we carried on\n");
    zstr_free (&id);
    zstr_free (&word);
    zstr_free (&child_endpoint);
    return 0;
}


//  --------------------------------------------------------------------------

int
main (int argc, char *argv [])
{
    const char *name = argc > 1 ? argv [1] : "";
    su_init (S_PROGRAM, name);
    //  Helper roles
    if (streq (name, "push") && argc == 6)
        return s_role_push (argv [2], argv [3], atoi (argv [4]), (size_t) atol (argv [5]));
    if (streq (name, "workers") && argc == 4)
        return s_role_workers (argv [2], atoi (argv [3]));
    if (streq (name, "exit-live-push") && argc == 5)
        return s_role_exit_live_push (argv [2], atoi (argv [3]), (size_t) atol (argv [4]));
    if (streq (name, "wildcard-child") && argc == 2)
        return s_case_wildcard_child ();
    //  Cases
    if (argc == 2) {
        if (streq (name, "zproxy"))
            return s_case_zproxy ();
        if (streq (name, "actor"))
            return s_case_actor ();
        if (streq (name, "relative"))
            return s_case_relative ();
        if (streq (name, "wildcard"))
            return s_case_wildcard ();
        if (streq (name, "destroy"))
            return s_case_destroy ();
        if (streq (name, "exit-live"))
            return s_case_exit_live ();
        if (streq (name, "fork"))
            return s_case_fork ();
    }
    fprintf (stderr, "usage: swap_czmq zproxy|actor|relative|wildcard|destroy|"
             "exit-live|fork (under shmipc-run)\n");
    return 2;
}
