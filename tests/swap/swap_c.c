/*  =========================================================================
    swap_c - an unmodified libzmq C program on shm://, for the launcher test

    Links libzmq only, never libshmipc: it stands for a program compiled
    with no idea of shmipc, to which shmipc-run gives shm:// by LD_PRELOAD.
    The test process is the server of four patterns; for each it starts
    itself (/proc/self/exe) as the client, in a child process:

        PUSH/PULL       100,000 numbered messages    relative path endpoint
        REQ/REP         300 round trips, one 2 MiB   abstract endpoint
        PUB/SUB         filter "A", A and B sent     absolute path endpoint
        ROUTER/DEALER   two DEALERs with routing ids wildcard endpoint (*)

    In each, both processes check that /proc/PID/maps has a shmipc memfd
    while they are connected: the proof that shared memory carried it.

        swap_c                          all four (run it under shmipc-run)
        swap_c --expect-unsupported     shm:// must fail with
                                        EPROTONOSUPPORT (run it without)
        swap_c client PATTERN ENDPOINT...   one client role (internal)

    Exits 0 when all pass, 1 with a message on stderr when a check fails,
    3 when the watchdog finds a process stuck.
    =========================================================================
*/

#include <zmq.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define streq(a, b)     (strcmp ((a), (b)) == 0)
#define S_STRING_(x)    #x
#define S_STRING(x)     S_STRING_ (x)

#define TIMEOUT_MS      10000       //  any one blocking call
#define WATCHDOG_S      60          //  one pattern, start to end
#define PUSH_COUNT      100000
#define REQ_COUNT       300
#define BIG_SIZE        (2 * 1024 * 1024)   //  larger than a 1 MiB ring
#define PUB_COUNT       1000
#define DEALER_COUNT    100
#define SHM_MARK        "/memfd:shmipc:"

static const char *s_role = "server";
//  What we are doing, for the watchdog's message
static const char *volatile s_stage = "starting";
//  The running client, ended and explained when we fail
static pid_t s_child;
//  The server's temporary directory, removed when we fail
static char s_dir [] = "/tmp/swap_c.XXXXXX";


//  --------------------------------------------------------------------------
//  Helper layer: fail loudly, never hang

static void s_fail (const char *format, ...)
    __attribute__ ((format (printf, 1, 2), noreturn));
static void s_remove_dir (const char *dir);

static void
s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "swap_c %s: FAIL: %s: ", s_role, s_stage);
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    if (s_child > 0) {
        int status;
        if (waitpid (s_child, &status, WNOHANG) == s_child)
            fprintf (stderr, "swap_c %s: (the client had ended already, %s %d)\n",
                     s_role, WIFEXITED (status)? "exit status": "signal",
                     WIFEXITED (status)? WEXITSTATUS (status): WTERMSIG (status));
        else {
            kill (s_child, SIGKILL);
            waitpid (s_child, &status, 0);
        }
    }
    if (streq (s_role, "server") && !strstr (s_dir, "XXXXXX"))
        s_remove_dir (s_dir);
    exit (1);
}

//  A hang anywhere (zmq_ctx_term with linger -1 among others) becomes a
//  clear failure. Only async-signal-safe calls here.
static void
s_watchdog (int sig)
{
    const char *parts [] = { "swap_c ", s_role, ": FAIL: watchdog: stuck for ",
                             S_STRING (WATCHDOG_S), " s in ", s_stage, "\n" };
    for (size_t part = 0; part < sizeof parts / sizeof parts [0]; part++)
        if (write (STDERR_FILENO, parts [part], strlen (parts [part])) < 0)
            break;
    _exit (3);
}

static void
s_start_stage (const char *stage)
{
    s_stage = stage;
    alarm (WATCHDOG_S);
}

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return now.tv_sec + now.tv_nsec / 1e9;
}

//  A socket whose every send and receive gives up after TIMEOUT_MS. Linger
//  stays libzmq's default (-1), so zmq_ctx_term waits for what is queued.
static void *
s_socket (void *ctx, int type)
{
    void *sock = zmq_socket (ctx, type);
    if (!sock)
        s_fail ("zmq_socket: %s", zmq_strerror (errno));
    int timeout = TIMEOUT_MS;
    if (zmq_setsockopt (sock, ZMQ_RCVTIMEO, &timeout, sizeof timeout)
    ||  zmq_setsockopt (sock, ZMQ_SNDTIMEO, &timeout, sizeof timeout))
        s_fail ("zmq_setsockopt: %s", zmq_strerror (errno));
    return sock;
}

static void
s_set_int (void *sock, int option, int value)
{
    if (zmq_setsockopt (sock, option, &value, sizeof value))
        s_fail ("zmq_setsockopt %d: %s", option, zmq_strerror (errno));
}

static void
s_bind (void *sock, const char *endpoint)
{
    if (zmq_bind (sock, endpoint))
        s_fail ("zmq_bind %s: %s%s", endpoint, zmq_strerror (errno),
                errno == EPROTONOSUPPORT? " (not run under shmipc-run?)": "");
}

static void
s_connect (void *sock, const char *endpoint)
{
    if (zmq_connect (sock, endpoint))
        s_fail ("zmq_connect %s: %s", endpoint, zmq_strerror (errno));
}

static void
s_send (void *sock, const void *data, size_t size, int flags)
{
    if (zmq_send (sock, data, size, flags) != (int) size)
        s_fail ("zmq_send: %s%s", zmq_strerror (errno),
                errno == EAGAIN? " (timed out)": "");
}

static void
s_send_str (void *sock, const char *string)
{
    s_send (sock, string, strlen (string), 0);
}

//  Receive one frame into msg, which the caller closes
static void
s_recv_msg (void *sock, zmq_msg_t *msg)
{
    zmq_msg_init (msg);
    if (zmq_msg_recv (msg, sock, 0) == -1)
        s_fail ("zmq_msg_recv: %s%s", zmq_strerror (errno),
                errno == EAGAIN? " (timed out)": "");
}

//  Receive one frame as a string (at most size - 1 bytes kept)
static void
s_recv_str (void *sock, char *buffer, size_t size)
{
    zmq_msg_t msg;
    s_recv_msg (sock, &msg);
    size_t length = zmq_msg_size (&msg);
    if (length >= size)
        s_fail ("a frame of %zu bytes where at most %zu were expected", length, size - 1);
    memcpy (buffer, zmq_msg_data (&msg), length);
    buffer [length] = 0;
    zmq_msg_close (&msg);
}

//  Receive one frame; it must be exactly expected, with no more frames
static void
s_recv_expect (void *sock, const char *expected)
{
    char buffer [256];
    s_recv_str (sock, buffer, sizeof buffer);
    if (!streq (buffer, expected))
        s_fail ("received \"%s\", expected \"%s\"", buffer, expected);
    int more;
    size_t size = sizeof more;
    if (zmq_getsockopt (sock, ZMQ_RCVMORE, &more, &size) || more)
        s_fail ("\"%s\" has more frames than expected", buffer);
}

//  The proof: a process with a live shm:// connection maps its segments
//  from memfds (pid 0: ourselves)
static void
s_check_maps (pid_t pid, const char *who)
{
    char path [64];
    if (pid)
        snprintf (path, sizeof path, "/proc/%d/maps", (int) pid);
    else
        snprintf (path, sizeof path, "/proc/self/maps");
    FILE *file = fopen (path, "r");
    if (!file)
        s_fail ("cannot read %s: %s", path, strerror (errno));
    bool found = false;
    char line [4096];
    while (!found && fgets (line, sizeof line, file))
        found = strstr (line, SHM_MARK) != NULL;
    fclose (file);
    if (!found)
        s_fail ("no \"%s\" mapping in %s (%s) while connected: "
                "the messages did not go through shared memory", SHM_MARK, path, who);
}

//  Start ourselves as the client of pattern; endpoint2 may be NULL
static void
s_spawn (const char *pattern, const char *endpoint1, const char *endpoint2)
{
    pid_t parent = getpid ();
    fflush (NULL);
    s_child = fork ();
    if (s_child == -1)
        s_fail ("fork: %s", strerror (errno));
    if (s_child == 0) {
        //  Never outlive the test; exec at once (other threads exist)
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) || getppid () != parent)
            _exit (1);
        char *args [] = { "swap_c", "client", (char *) pattern,
                          (char *) endpoint1, (char *) endpoint2, NULL };
        execv ("/proc/self/exe", args);
        const char *message = "swap_c: FAIL: cannot exec /proc/self/exe\n";
        if (write (STDERR_FILENO, message, strlen (message)) < 0)
            _exit (127);
        _exit (127);
    }
}

//  The client must end by itself, with status 0, soon
static void
s_reap (void)
{
    for (double deadline = s_now () + TIMEOUT_MS / 1000.0; ; usleep (10000)) {
        int status;
        pid_t rc = waitpid (s_child, &status, WNOHANG);
        if (rc == s_child) {
            s_child = 0;
            if (!WIFEXITED (status))
                s_fail ("the client was killed by signal %d", WTERMSIG (status));
            if (WEXITSTATUS (status))
                s_fail ("the client failed (exit status %d, see its message)",
                        WEXITSTATUS (status));
            return;
        }
        if (rc == -1 && errno != EINTR)
            s_fail ("waitpid: %s", strerror (errno));
        if (s_now () > deadline)
            s_fail ("the client did not exit within %d ms", TIMEOUT_MS);
    }
}

static void
s_close_and_term (void *ctx, void *sockets [], size_t count)
{
    for (size_t index = 0; index < count; index++)
        if (zmq_close (sockets [index]))
            s_fail ("zmq_close: %s", zmq_strerror (errno));
    //  With linger -1 this returns only once queued messages are delivered
    if (zmq_ctx_term (ctx))
        s_fail ("zmq_ctx_term: %s", zmq_strerror (errno));
}


//  --------------------------------------------------------------------------
//  PUSH/PULL: PUSH_COUNT messages of varied sizes, then "END"; the endpoint
//  is relative, so both processes work in the temporary directory

static size_t
s_push_message (int seq, char *buffer, size_t size)
{
    int length = snprintf (buffer, size, "%d:", seq);
    size_t fill = seq % 64;
    assert (length > 0 && length + fill < size);
    memset (buffer + length, 'a' + seq % 26, fill);
    return length + fill;
}

static void
s_client_pushpull (void *ctx, const char *endpoint)
{
    void *push = s_socket (ctx, ZMQ_PUSH);
    s_connect (push, endpoint);
    char buffer [128];
    for (int seq = 0; seq < PUSH_COUNT; seq++)
        s_send (push, buffer, s_push_message (seq, buffer, sizeof buffer), 0);
    s_send_str (push, "END");
    //  So many messages cannot all be queued: the connection is up
    s_check_maps (0, "the PUSH client");
    s_close_and_term (ctx, &push, 1);
}

static void
s_server_pushpull (const char *dir)
{
    s_start_stage ("PUSH/PULL");
    const char *endpoint = "shm://pushpull.sock";
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof cwd) || chdir (dir))
        s_fail ("cannot work in %s: %s", dir, strerror (errno));
    double start = s_now ();
    void *ctx = zmq_ctx_new ();
    void *pull = s_socket (ctx, ZMQ_PULL);
    s_bind (pull, endpoint);
    //  The child inherits dir as its cwd: that is where it connects
    s_spawn ("pushpull", endpoint, NULL);
    if (chdir (cwd))
        s_fail ("cannot return to %s: %s", cwd, strerror (errno));
    //  The relative path was resolved against the cwd at bind time
    char path [PATH_MAX];
    struct stat st;
    snprintf (path, sizeof path, "%s/pushpull.sock", dir);
    if (stat (path, &st) || !S_ISSOCK (st.st_mode))
        s_fail ("bound %s in %s but %s is not a socket", endpoint, dir, path);

    char expected [128];
    for (int seq = 0; seq < PUSH_COUNT; seq++) {
        zmq_msg_t msg;
        s_recv_msg (pull, &msg);
        size_t size = s_push_message (seq, expected, sizeof expected);
        if (zmq_msg_size (&msg) != size || memcmp (zmq_msg_data (&msg), expected, size))
            s_fail ("message %d of %d: got \"%.*s\", expected \"%.*s\"", seq, PUSH_COUNT,
                    (int) zmq_msg_size (&msg), (char *) zmq_msg_data (&msg),
                    (int) size, expected);
        zmq_msg_close (&msg);
        if (seq == 0) {
            //  The client is still sending: both ends are connected
            s_check_maps (0, "the PULL server");
            s_check_maps (s_child, "the PUSH client");
        }
    }
    //  Exactly PUSH_COUNT: the next one is the end mark
    s_recv_expect (pull, "END");
    s_reap ();
    s_close_and_term (ctx, &pull, 1);
    printf ("swap_c: PUSH/PULL over %s (relative): %d messages in order, %.2f s\n",
            endpoint, PUSH_COUNT, s_now () - start);
}


//  --------------------------------------------------------------------------
//  REQ/REP: REQ_COUNT round trips, the last one with a 2 MiB request, which
//  streams through the ring in pieces

static void
s_fill_big (char *buffer)
{
    for (size_t index = 0; index < BIG_SIZE; index++)
        buffer [index] = (char) (index * 7 + index / 4096);
}

static void
s_client_reqrep (void *ctx, const char *endpoint)
{
    void *req = s_socket (ctx, ZMQ_REQ);
    s_connect (req, endpoint);
    char request [64], reply [64];
    for (int seq = 0; seq < REQ_COUNT - 1; seq++) {
        snprintf (request, sizeof request, "request %d", seq);
        snprintf (reply, sizeof reply, "reply %d", seq);
        s_send_str (req, request);
        s_recv_expect (req, reply);
        if (seq == 0)
            s_check_maps (0, "the REQ client");
    }
    char *big = malloc (BIG_SIZE);
    assert (big);
    s_fill_big (big);
    s_send (req, big, BIG_SIZE, 0);
    free (big);
    s_recv_expect (req, "big reply");
    s_close_and_term (ctx, &req, 1);
}

static void
s_server_reqrep (void)
{
    s_start_stage ("REQ/REP");
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "shm://@swap_c-%d-reqrep", (int) getpid ());
    double start = s_now ();
    void *ctx = zmq_ctx_new ();
    void *rep = s_socket (ctx, ZMQ_REP);
    s_bind (rep, endpoint);
    s_spawn ("reqrep", endpoint, NULL);

    char request [64], reply [64];
    for (int seq = 0; seq < REQ_COUNT - 1; seq++) {
        snprintf (request, sizeof request, "request %d", seq);
        snprintf (reply, sizeof reply, "reply %d", seq);
        s_recv_expect (rep, request);
        if (seq == 0) {
            //  The client waits for this reply: both ends are connected
            s_check_maps (0, "the REP server");
            s_check_maps (s_child, "the REQ client");
        }
        s_send_str (rep, reply);
    }
    char *big = malloc (BIG_SIZE);
    assert (big);
    s_fill_big (big);
    zmq_msg_t msg;
    s_recv_msg (rep, &msg);
    if (zmq_msg_size (&msg) != BIG_SIZE || memcmp (zmq_msg_data (&msg), big, BIG_SIZE))
        s_fail ("the big request (%zu bytes) arrived as %zu bytes or changed",
                (size_t) BIG_SIZE, zmq_msg_size (&msg));
    zmq_msg_close (&msg);
    free (big);
    s_send_str (rep, "big reply");
    s_reap ();
    s_close_and_term (ctx, &rep, 1);
    printf ("swap_c: REQ/REP over %s: %d round trips checked, %.2f s\n",
            endpoint, REQ_COUNT, s_now () - start);
}


//  --------------------------------------------------------------------------
//  PUB/SUB: the subscriber takes "A" only. Against the slow joiner, the
//  publisher sends "A hello" until the subscriber, having got one, says
//  "ready" on a REQ/REP side channel: its subscription is then in place,
//  and PUB_COUNT "A n" and "B n", interleaved, then "A END", must arrive
//  as the A's alone, all, in order. HWM 0 at both ends: nothing dropped.

static void
s_client_pubsub (void *ctx, const char *endpoint, const char *sync_endpoint)
{
    void *sub = s_socket (ctx, ZMQ_SUB);
    s_set_int (sub, ZMQ_RCVHWM, 0);
    if (zmq_setsockopt (sub, ZMQ_SUBSCRIBE, "A", 1))
        s_fail ("ZMQ_SUBSCRIBE: %s", zmq_strerror (errno));
    s_connect (sub, endpoint);
    void *req = s_socket (ctx, ZMQ_REQ);
    s_connect (req, sync_endpoint);

    char buffer [64];
    s_recv_str (sub, buffer, sizeof buffer);
    if (!streq (buffer, "A hello"))
        s_fail ("first message \"%s\", expected \"A hello\"", buffer);
    s_send_str (req, "ready");
    s_recv_expect (req, "go");
    s_check_maps (0, "the SUB client");
    //  Hellos sent before "ready" arrived may still come: skip them
    do
        s_recv_str (sub, buffer, sizeof buffer);
    while (streq (buffer, "A hello"));
    for (int seq = 0; seq <= PUB_COUNT; seq++) {
        char expected [64];
        if (seq == PUB_COUNT)
            snprintf (expected, sizeof expected, "A END");
        else
            snprintf (expected, sizeof expected, "A %d", seq);
        if (seq > 0)
            s_recv_str (sub, buffer, sizeof buffer);
        if (buffer [0] != 'A')
            s_fail ("got \"%s\" though subscribed to \"A\" only", buffer);
        if (!streq (buffer, expected))
            s_fail ("got \"%s\", expected \"%s\"", buffer, expected);
    }
    void *sockets [] = { sub, req };
    s_close_and_term (ctx, sockets, 2);
}

static void
s_server_pubsub (const char *dir)
{
    s_start_stage ("PUB/SUB");
    char endpoint [PATH_MAX + 16], sync_endpoint [64];
    snprintf (endpoint, sizeof endpoint, "shm://%s/pubsub.sock", dir);
    snprintf (sync_endpoint, sizeof sync_endpoint, "shm://@swap_c-%d-sync", (int) getpid ());
    double start = s_now ();
    void *ctx = zmq_ctx_new ();
    void *pub = s_socket (ctx, ZMQ_PUB);
    s_set_int (pub, ZMQ_SNDHWM, 0);
    s_bind (pub, endpoint);
    void *rep = s_socket (ctx, ZMQ_REP);
    s_bind (rep, sync_endpoint);
    s_spawn ("pubsub", endpoint, sync_endpoint);

    //  Hello every 10 ms until the subscriber is ready, TIMEOUT_MS at most
    zmq_pollitem_t items [] = { { rep, 0, ZMQ_POLLIN, 0 } };
    for (double deadline = s_now () + TIMEOUT_MS / 1000.0; !items [0].revents; ) {
        if (s_now () > deadline)
            s_fail ("the subscriber never said it got a hello");
        s_send_str (pub, "A hello");
        if (zmq_poll (items, 1, 10) == -1)
            s_fail ("zmq_poll: %s", zmq_strerror (errno));
    }
    s_recv_expect (rep, "ready");
    //  The client waits for "go": both ends are connected
    s_check_maps (0, "the PUB server");
    s_check_maps (s_child, "the SUB client");
    s_send_str (rep, "go");
    char message [64];
    for (int seq = 0; seq < PUB_COUNT; seq++) {
        snprintf (message, sizeof message, "A %d", seq);
        s_send_str (pub, message);
        snprintf (message, sizeof message, "B %d", seq);
        s_send_str (pub, message);
    }
    s_send_str (pub, "A END");
    s_reap ();
    void *sockets [] = { pub, rep };
    s_close_and_term (ctx, sockets, 2);
    printf ("swap_c: PUB/SUB over %s: %d A's of %d messages, filter held, %.2f s\n",
            endpoint, PUB_COUNT, 2 * PUB_COUNT, s_now () - start);
}


//  --------------------------------------------------------------------------
//  ROUTER/DEALER: the ROUTER binds shm://*, and the client connects to what
//  ZMQ_LAST_ENDPOINT says. Two DEALERs with routing ids send numbered
//  requests; the ROUTER answers each by the id it came with (mandatory
//  routing: an unknown id fails), and each DEALER must get its own replies
//  only, in order.

static const char *s_dealer_ids [] = { "dealer-1", "dealer-2" };

static void
s_client_routerdealer (void *ctx, const char *endpoint)
{
    void *dealers [2];
    for (int index = 0; index < 2; index++) {
        dealers [index] = s_socket (ctx, ZMQ_DEALER);
        const char *id = s_dealer_ids [index];
        if (zmq_setsockopt (dealers [index], ZMQ_ROUTING_ID, id, strlen (id)))
            s_fail ("ZMQ_ROUTING_ID: %s", zmq_strerror (errno));
        s_connect (dealers [index], endpoint);
    }
    char message [64];
    for (int seq = 0; seq < DEALER_COUNT; seq++) {
        for (int index = 0; index < 2; index++) {
            snprintf (message, sizeof message, "%s %d", s_dealer_ids [index], seq);
            s_send_str (dealers [index], message);
        }
        for (int index = 0; index < 2; index++) {
            snprintf (message, sizeof message, "%s reply %d", s_dealer_ids [index], seq);
            s_recv_expect (dealers [index], message);
        }
        if (seq == 0)
            s_check_maps (0, "the DEALER client");
    }
    s_close_and_term (ctx, dealers, 2);
}

static void
s_server_routerdealer (void)
{
    s_start_stage ("ROUTER/DEALER");
    double start = s_now ();
    void *ctx = zmq_ctx_new ();
    void *router = s_socket (ctx, ZMQ_ROUTER);
    s_set_int (router, ZMQ_ROUTER_MANDATORY, 1);
    s_bind (router, "shm://*");
    char endpoint [256];
    size_t size = sizeof endpoint;
    if (zmq_getsockopt (router, ZMQ_LAST_ENDPOINT, endpoint, &size))
        s_fail ("ZMQ_LAST_ENDPOINT: %s", zmq_strerror (errno));
    if (strncmp (endpoint, "shm://", 6) || streq (endpoint, "shm://*"))
        s_fail ("ZMQ_LAST_ENDPOINT after binding shm://* is \"%s\", expected shm://...",
                endpoint);
    s_spawn ("routerdealer", endpoint, NULL);

    int next [2] = { 0, 0 };
    for (int count = 0; count < 2 * DEALER_COUNT; count++) {
        char id [64], request [64], expected [128], reply [128];
        s_recv_str (router, id, sizeof id);
        s_recv_str (router, request, sizeof request);
        int index = streq (id, s_dealer_ids [0])? 0: streq (id, s_dealer_ids [1])? 1: -1;
        if (index == -1)
            s_fail ("a request \"%s\" from routing id \"%s\", not a dealer's", request, id);
        snprintf (expected, sizeof expected, "%s %d", id, next [index]);
        if (!streq (request, expected))
            s_fail ("from \"%s\": \"%s\", expected \"%s\"", id, request, expected);
        if (count == 0) {
            //  The client waits for this reply: both ends are connected
            s_check_maps (0, "the ROUTER server");
            s_check_maps (s_child, "the DEALER client");
        }
        snprintf (reply, sizeof reply, "%s reply %d", id, next [index]++);
        s_send (router, id, strlen (id), ZMQ_SNDMORE);
        s_send_str (router, reply);
    }
    s_reap ();
    s_close_and_term (ctx, &router, 1);
    printf ("swap_c: ROUTER/DEALER over shm://* = %s: 2 x %d routed replies, %.2f s\n",
            endpoint, DEALER_COUNT, s_now () - start);
}


//  --------------------------------------------------------------------------
//  Without the launcher, libzmq itself answers: no such transport

static int
s_expect_unsupported (void)
{
    s_start_stage ("--expect-unsupported");
    char abstract [64];
    snprintf (abstract, sizeof abstract, "shm://@swap_c-%d-unsupported", (int) getpid ());
    const char *endpoints [] = { abstract, "shm:///tmp/swap_c-unsupported.sock",
                                 "shm://relative.sock", "shm://*" };
    void *ctx = zmq_ctx_new ();
    void *sock = s_socket (ctx, ZMQ_PULL);
    for (size_t index = 0; index < sizeof endpoints / sizeof endpoints [0]; index++) {
        const char *endpoint = endpoints [index];
        int rc = zmq_bind (sock, endpoint);
        if (rc == 0 || errno != EPROTONOSUPPORT)
            s_fail ("zmq_bind %s: %s, expected EPROTONOSUPPORT (LD_PRELOAD=%s)", endpoint,
                    rc == 0? "succeeded": zmq_strerror (errno),
                    getenv ("LD_PRELOAD")? getenv ("LD_PRELOAD"): "");
        if (!streq (endpoint, "shm://*")) {
            rc = zmq_connect (sock, endpoint);
            if (rc == 0 || errno != EPROTONOSUPPORT)
                s_fail ("zmq_connect %s: %s, expected EPROTONOSUPPORT", endpoint,
                        rc == 0? "succeeded": zmq_strerror (errno));
        }
    }
    s_close_and_term (ctx, &sock, 1);
    printf ("swap_c: without the launcher, shm:// fails with EPROTONOSUPPORT\n");
    return 0;
}


//  --------------------------------------------------------------------------

static int
s_client (const char *pattern, const char *endpoint1, const char *endpoint2)
{
    s_role = "client";
    s_start_stage (pattern);
    void *ctx = zmq_ctx_new ();
    if (streq (pattern, "pushpull"))
        s_client_pushpull (ctx, endpoint1);
    else
    if (streq (pattern, "reqrep"))
        s_client_reqrep (ctx, endpoint1);
    else
    if (streq (pattern, "pubsub") && endpoint2)
        s_client_pubsub (ctx, endpoint1, endpoint2);
    else
    if (streq (pattern, "routerdealer"))
        s_client_routerdealer (ctx, endpoint1);
    else
        s_fail ("no such pattern");
    return 0;
}

//  libzmq 4.3's ipc:// leaves a bound path's socket file behind, so the
//  launcher may too: remove what is there, quietly
static void
s_remove_dir (const char *dir)
{
    DIR *handle = opendir (dir);
    struct dirent *entry;
    char path [PATH_MAX];
    while (handle && (entry = readdir (handle)))
        if (!streq (entry->d_name, ".") && !streq (entry->d_name, "..")) {
            snprintf (path, sizeof path, "%s/%s", dir, entry->d_name);
            unlink (path);
        }
    if (handle)
        closedir (handle);
    if (rmdir (dir))
        fprintf (stderr, "swap_c: warning: rmdir %s: %s\n", dir, strerror (errno));
}

int
main (int argc, char *argv [])
{
    signal (SIGALRM, s_watchdog);
    if (argc == 2 && streq (argv [1], "--expect-unsupported"))
        return s_expect_unsupported ();
    if (argc >= 4 && streq (argv [1], "client"))
        return s_client (argv [2], argv [3], argc > 4? argv [4]: NULL);
    if (argc != 1) {
        fprintf (stderr, "usage: swap_c [--expect-unsupported]\n");
        return 2;
    }
    if (!mkdtemp (s_dir))
        s_fail ("mkdtemp: %s", strerror (errno));
    s_server_pushpull (s_dir);
    s_server_reqrep ();
    s_server_pubsub (s_dir);
    s_server_routerdealer ();
    s_remove_dir (s_dir);
    printf ("swap_c: all four patterns went through shared memory\n");
    return 0;
}
