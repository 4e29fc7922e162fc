/*  =========================================================================
    swap_cpp - an unmodified cppzmq program on shm://, for the launcher test

    The C++ twin of swap_c.c, on Debian's cppzmq (zmq.hpp, 4.9): links
    libzmq only, never libshmipc, and gets shm:// from shmipc-run by
    LD_PRELOAD. The test process is the server of four patterns; for each
    it starts itself (/proc/self/exe) as the client, in a child process:

        PUSH/PULL       100,000 numbered messages    relative path endpoint
        REQ/REP         300 round trips, one 2 MiB   abstract endpoint
        PUB/SUB         filter "A", A and B sent     absolute path endpoint
        ROUTER/DEALER   two DEALERs with routing ids wildcard endpoint (*)

    In each, both processes check that /proc/PID/maps has a shmipc memfd
    while they are connected: the proof that shared memory carried it.

        swap_cpp                            all four (under shmipc-run)
        swap_cpp client PATTERN ENDPOINT... one client role (internal)

    Exits 0 when all pass, 1 with a message on stderr when a check fails
    (a zmq::error_t included), 3 when the watchdog finds a process stuck.
    =========================================================================
*/

#include <zmq.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <climits>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

const int timeout_ms = 10000;       //  any one blocking call
const int watchdog_s = 60;          //  one pattern, start to end
const int push_count = 100000;
const int req_count = 300;
const size_t big_size = 2 * 1024 * 1024;    //  larger than a 1 MiB ring
const int pub_count = 1000;
const int dealer_count = 100;
const char *const shm_mark = "/memfd:shmipc:";
const char *const dealer_ids [] = { "dealer-1", "dealer-2" };

const char *role = "server";
//  What we are doing, for the watchdog's message
const char *volatile stage = "starting";
//  The running client, ended and explained when we fail
pid_t child = 0;
//  The server's temporary directory, removed at the end and when we fail
char temp_dir [] = "/tmp/swap_cpp.XXXXXX";

using clock_type = std::chrono::steady_clock;


//  --------------------------------------------------------------------------
//  Helper layer: fail loudly, never hang

//  libzmq 4.3's ipc:// leaves a bound path's socket file behind, so the
//  launcher may too: remove what is there, quietly
void
remove_dir ()
{
    if (std::strstr (temp_dir, "XXXXXX"))
        return;             //  Not made
    for (const char *name: { "/pushpull.sock", "/pubsub.sock" })
        unlink ((std::string (temp_dir) + name).c_str ());
    if (rmdir (temp_dir))
        std::fprintf (stderr, "swap_cpp: warning: rmdir %s: %s\n", temp_dir,
                      std::strerror (errno));
}

//  Exits at once: unwinding would run ~context_t, which with linger -1
//  can wait for ever on what a dead peer will never read
[[noreturn]] void
fail (const std::string &message)
{
    std::fprintf (stderr, "swap_cpp %s: FAIL: %s: %s\n", role, stage, message.c_str ());
    if (child > 0) {
        int status;
        if (waitpid (child, &status, WNOHANG) == child)
            std::fprintf (stderr, "swap_cpp %s: (the client had ended already, %s %d)\n",
                          role, WIFEXITED (status)? "exit status": "signal",
                          WIFEXITED (status)? WEXITSTATUS (status): WTERMSIG (status));
        else {
            kill (child, SIGKILL);
            waitpid (child, &status, 0);
        }
    }
    if (role == std::string ("server"))
        remove_dir ();
    std::exit (1);
}

//  A zmq::error_t (or any exception) is a failure, reported where it was
//  thrown, without unwinding (see fail)
[[noreturn]] void
on_terminate ()
{
    std::string what = "std::terminate without an exception";
    try {
        if (std::exception_ptr current = std::current_exception ())
            std::rethrow_exception (current);
    }
    catch (const zmq::error_t &error) {
        what = std::string ("zmq::error_t: ") + error.what ();
        if (error.num () == EPROTONOSUPPORT)
            what += " (not run under shmipc-run?)";
    }
    catch (const std::exception &error) {
        what = error.what ();
    }
    catch (...) {
        what = "unknown exception";
    }
    fail (what);
}

//  Only async-signal-safe calls here
void
watchdog (int)
{
    const char *parts [] = { "swap_cpp ", role, ": FAIL: watchdog: stuck in ", stage, "\n" };
    for (const char *part: parts)
        if (write (STDERR_FILENO, part, std::strlen (part)) < 0)
            break;
    _exit (3);
}

void
start_stage (const char *name)
{
    stage = name;
    alarm (watchdog_s);
}

double
seconds_since (clock_type::time_point start)
{
    return std::chrono::duration<double> (clock_type::now () - start).count ();
}

//  A socket whose every send and receive gives up after timeout_ms. Linger
//  stays libzmq's default (-1), so closing the context waits for what is
//  queued.
zmq::socket_t
make_socket (zmq::context_t &ctx, zmq::socket_type type)
{
    zmq::socket_t sock (ctx, type);
    sock.set (zmq::sockopt::rcvtimeo, timeout_ms);
    sock.set (zmq::sockopt::sndtimeo, timeout_ms);
    return sock;
}

void
send (zmq::socket_t &sock, zmq::const_buffer data,
      zmq::send_flags flags = zmq::send_flags::none)
{
    if (!sock.send (data, flags))
        fail ("send timed out");
}

void
send (zmq::socket_t &sock, const std::string &data,
      zmq::send_flags flags = zmq::send_flags::none)
{
    send (sock, zmq::buffer (data), flags);
}

zmq::message_t
recv_msg (zmq::socket_t &sock)
{
    zmq::message_t msg;
    if (!sock.recv (msg))
        fail ("recv timed out");
    return msg;
}

std::string
recv (zmq::socket_t &sock)
{
    return recv_msg (sock).to_string ();
}

//  Receive one frame; it must be exactly expected, with no more frames
void
recv_expect (zmq::socket_t &sock, const std::string &expected)
{
    std::string got = recv (sock);
    if (got != expected)
        fail ("received \"" + got + "\", expected \"" + expected + "\"");
    if (sock.get (zmq::sockopt::rcvmore))
        fail ("\"" + got + "\" has more frames than expected");
}

//  The proof: a process with a live shm:// connection maps its segments
//  from memfds (pid 0: ourselves)
void
check_maps (pid_t pid, const std::string &who)
{
    std::string path = pid? "/proc/" + std::to_string (pid) + "/maps": "/proc/self/maps";
    std::ifstream maps (path);
    if (!maps)
        fail ("cannot read " + path);
    for (std::string line; std::getline (maps, line); )
        if (line.find (shm_mark) != std::string::npos)
            return;
    fail (std::string ("no \"") + shm_mark + "\" mapping in " + path + " (" + who
          + ") while connected: the messages did not go through shared memory");
}

//  Start ourselves as the client of pattern
void
spawn (const std::vector<std::string> &args)
{
    std::vector<char *> argv { const_cast<char *> ("swap_cpp"), const_cast<char *> ("client") };
    for (const std::string &arg: args)
        argv.push_back (const_cast<char *> (arg.c_str ()));
    argv.push_back (nullptr);
    pid_t parent = getpid ();
    std::fflush (nullptr);
    child = fork ();
    if (child == -1)
        fail (std::string ("fork: ") + std::strerror (errno));
    if (child == 0) {
        //  Never outlive the test; exec at once (other threads exist)
        if (prctl (PR_SET_PDEATHSIG, SIGKILL) || getppid () != parent)
            _exit (1);
        execv ("/proc/self/exe", argv.data ());
        const char *message = "swap_cpp: FAIL: cannot exec /proc/self/exe\n";
        if (write (STDERR_FILENO, message, std::strlen (message)) < 0)
            _exit (127);
        _exit (127);
    }
}

//  The client must end by itself, with status 0, soon
void
reap ()
{
    auto deadline = clock_type::now () + std::chrono::milliseconds (timeout_ms);
    for (;; usleep (10000)) {
        int status;
        pid_t rc = waitpid (child, &status, WNOHANG);
        if (rc == child) {
            child = 0;
            if (!WIFEXITED (status))
                fail ("the client was killed by signal " + std::to_string (WTERMSIG (status)));
            if (WEXITSTATUS (status))
                fail ("the client failed (exit status " + std::to_string (WEXITSTATUS (status))
                      + ", see its message)");
            return;
        }
        if (rc == -1 && errno != EINTR)
            fail (std::string ("waitpid: ") + std::strerror (errno));
        if (clock_type::now () > deadline)
            fail ("the client did not exit in time");
    }
}

//  With linger -1, ctx.close () returns only once queued messages are
//  delivered
void
close_and_term (zmq::context_t &ctx, std::initializer_list<zmq::socket_t *> sockets)
{
    for (zmq::socket_t *sock: sockets)
        sock->close ();
    ctx.close ();
}


//  --------------------------------------------------------------------------
//  PUSH/PULL: push_count messages of varied sizes, then "END"; the endpoint
//  is relative, so both processes work in the temporary directory

std::string
push_message (int seq)
{
    return std::to_string (seq) + ":" + std::string (seq % 64, char ('a' + seq % 26));
}

void
client_pushpull (zmq::context_t &ctx, const std::string &endpoint)
{
    zmq::socket_t push = make_socket (ctx, zmq::socket_type::push);
    push.connect (endpoint);
    for (int seq = 0; seq < push_count; seq++)
        send (push, push_message (seq));
    send (push, std::string ("END"));
    //  So many messages cannot all be queued: the connection is up
    check_maps (0, "the PUSH client");
    close_and_term (ctx, { &push });
}

void
server_pushpull (const std::string &dir)
{
    start_stage ("PUSH/PULL");
    const std::string endpoint = "shm://pushpull.sock";
    char cwd [PATH_MAX];
    if (!getcwd (cwd, sizeof cwd) || chdir (dir.c_str ()))
        fail ("cannot work in " + dir);
    auto start = clock_type::now ();
    zmq::context_t ctx;
    zmq::socket_t pull = make_socket (ctx, zmq::socket_type::pull);
    pull.bind (endpoint);
    //  The child inherits dir as its cwd: that is where it connects
    spawn ({ "pushpull", endpoint });
    if (chdir (cwd))
        fail (std::string ("cannot return to ") + cwd);
    //  The relative path was resolved against the cwd at bind time
    struct stat st;
    std::string path = dir + "/pushpull.sock";
    if (stat (path.c_str (), &st) || !S_ISSOCK (st.st_mode))
        fail ("bound " + endpoint + " in " + dir + " but " + path + " is not a socket");

    for (int seq = 0; seq < push_count; seq++) {
        std::string got = recv (pull), expected = push_message (seq);
        if (got != expected)
            fail ("message " + std::to_string (seq) + ": got \"" + got
                  + "\", expected \"" + expected + "\"");
        if (seq == 0) {
            //  The client is still sending: both ends are connected
            check_maps (0, "the PULL server");
            check_maps (child, "the PUSH client");
        }
    }
    //  Exactly push_count: the next one is the end mark
    recv_expect (pull, "END");
    reap ();
    close_and_term (ctx, { &pull });
    std::printf ("swap_cpp: PUSH/PULL over %s (relative): %d messages in order, %.2f s\n",
                 endpoint.c_str (), push_count, seconds_since (start));
}


//  --------------------------------------------------------------------------
//  REQ/REP: req_count round trips, the last one with a 2 MiB request,
//  which streams through the ring in pieces

std::string
big_message ()
{
    std::string big (big_size, 0);
    for (size_t index = 0; index < big_size; index++)
        big [index] = char (index * 7 + index / 4096);
    return big;
}

void
client_reqrep (zmq::context_t &ctx, const std::string &endpoint)
{
    zmq::socket_t req = make_socket (ctx, zmq::socket_type::req);
    req.connect (endpoint);
    for (int seq = 0; seq < req_count - 1; seq++) {
        send (req, "request " + std::to_string (seq));
        recv_expect (req, "reply " + std::to_string (seq));
        if (seq == 0)
            check_maps (0, "the REQ client");
    }
    send (req, big_message ());
    recv_expect (req, "big reply");
    close_and_term (ctx, { &req });
}

void
server_reqrep ()
{
    start_stage ("REQ/REP");
    const std::string endpoint = "shm://@swap_cpp-" + std::to_string (getpid ()) + "-reqrep";
    auto start = clock_type::now ();
    zmq::context_t ctx;
    zmq::socket_t rep = make_socket (ctx, zmq::socket_type::rep);
    rep.bind (endpoint);
    spawn ({ "reqrep", endpoint });

    for (int seq = 0; seq < req_count - 1; seq++) {
        recv_expect (rep, "request " + std::to_string (seq));
        if (seq == 0) {
            //  The client waits for this reply: both ends are connected
            check_maps (0, "the REP server");
            check_maps (child, "the REQ client");
        }
        send (rep, "reply " + std::to_string (seq));
    }
    zmq::message_t big = recv_msg (rep);
    if (big.to_string () != big_message ())
        fail ("the big request (" + std::to_string (big_size) + " bytes) arrived as "
              + std::to_string (big.size ()) + " bytes or changed");
    send (rep, std::string ("big reply"));
    reap ();
    close_and_term (ctx, { &rep });
    std::printf ("swap_cpp: REQ/REP over %s: %d round trips checked, %.2f s\n",
                 endpoint.c_str (), req_count, seconds_since (start));
}


//  --------------------------------------------------------------------------
//  PUB/SUB: the subscriber takes "A" only. Against the slow joiner, the
//  publisher sends "A hello" until the subscriber, having got one, says
//  "ready" on a REQ/REP side channel: its subscription is then in place,
//  and pub_count "A n" and "B n", interleaved, then "A END", must arrive
//  as the A's alone, all, in order. HWM 0 at both ends: nothing dropped.

void
client_pubsub (zmq::context_t &ctx, const std::string &endpoint,
               const std::string &sync_endpoint)
{
    zmq::socket_t sub = make_socket (ctx, zmq::socket_type::sub);
    sub.set (zmq::sockopt::rcvhwm, 0);
    sub.set (zmq::sockopt::subscribe, "A");
    sub.connect (endpoint);
    zmq::socket_t req = make_socket (ctx, zmq::socket_type::req);
    req.connect (sync_endpoint);

    std::string got = recv (sub);
    if (got != "A hello")
        fail ("first message \"" + got + "\", expected \"A hello\"");
    send (req, std::string ("ready"));
    recv_expect (req, "go");
    check_maps (0, "the SUB client");
    //  Hellos sent before "ready" arrived may still come: skip them
    do
        got = recv (sub);
    while (got == "A hello");
    for (int seq = 0; seq <= pub_count; seq++) {
        std::string expected = seq == pub_count? "A END": "A " + std::to_string (seq);
        if (seq > 0)
            got = recv (sub);
        if (got [0] != 'A')
            fail ("got \"" + got + "\" though subscribed to \"A\" only");
        if (got != expected)
            fail ("got \"" + got + "\", expected \"" + expected + "\"");
    }
    close_and_term (ctx, { &sub, &req });
}

void
server_pubsub (const std::string &dir)
{
    start_stage ("PUB/SUB");
    const std::string endpoint = "shm://" + dir + "/pubsub.sock";
    const std::string sync_endpoint = "shm://@swap_cpp-" + std::to_string (getpid ()) + "-sync";
    auto start = clock_type::now ();
    zmq::context_t ctx;
    zmq::socket_t pub = make_socket (ctx, zmq::socket_type::pub);
    pub.set (zmq::sockopt::sndhwm, 0);
    pub.bind (endpoint);
    zmq::socket_t rep = make_socket (ctx, zmq::socket_type::rep);
    rep.bind (sync_endpoint);
    spawn ({ "pubsub", endpoint, sync_endpoint });

    //  Hello every 10 ms until the subscriber is ready, timeout_ms at most
    std::array<zmq::pollitem_t, 1> items = { { { rep.handle (), 0, ZMQ_POLLIN, 0 } } };
    auto deadline = clock_type::now () + std::chrono::milliseconds (timeout_ms);
    while (!items [0].revents) {
        if (clock_type::now () > deadline)
            fail ("the subscriber never said it got a hello");
        send (pub, std::string ("A hello"));
        zmq::poll (items, std::chrono::milliseconds (10));
    }
    recv_expect (rep, "ready");
    //  The client waits for "go": both ends are connected
    check_maps (0, "the PUB server");
    check_maps (child, "the SUB client");
    send (rep, std::string ("go"));
    for (int seq = 0; seq < pub_count; seq++) {
        send (pub, "A " + std::to_string (seq));
        send (pub, "B " + std::to_string (seq));
    }
    send (pub, std::string ("A END"));
    reap ();
    close_and_term (ctx, { &pub, &rep });
    std::printf ("swap_cpp: PUB/SUB over %s: %d A's of %d messages, filter held, %.2f s\n",
                 endpoint.c_str (), pub_count, 2 * pub_count, seconds_since (start));
}


//  --------------------------------------------------------------------------
//  ROUTER/DEALER: the ROUTER binds shm://*, and the client connects to what
//  ZMQ_LAST_ENDPOINT says. Two DEALERs with routing ids send numbered
//  requests; the ROUTER answers each by the id it came with (mandatory
//  routing: an unknown id fails), and each DEALER must get its own replies
//  only, in order.

void
client_routerdealer (zmq::context_t &ctx, const std::string &endpoint)
{
    std::array<zmq::socket_t, 2> dealers;
    for (int index = 0; index < 2; index++) {
        dealers [index] = make_socket (ctx, zmq::socket_type::dealer);
        dealers [index].set (zmq::sockopt::routing_id, dealer_ids [index]);
        dealers [index].connect (endpoint);
    }
    for (int seq = 0; seq < dealer_count; seq++) {
        for (int index = 0; index < 2; index++)
            send (dealers [index], dealer_ids [index] + (" " + std::to_string (seq)));
        for (int index = 0; index < 2; index++)
            recv_expect (dealers [index],
                         dealer_ids [index] + (" reply " + std::to_string (seq)));
        if (seq == 0)
            check_maps (0, "the DEALER client");
    }
    close_and_term (ctx, { &dealers [0], &dealers [1] });
}

void
server_routerdealer ()
{
    start_stage ("ROUTER/DEALER");
    auto start = clock_type::now ();
    zmq::context_t ctx;
    zmq::socket_t router = make_socket (ctx, zmq::socket_type::router);
    router.set (zmq::sockopt::router_mandatory, true);
    router.bind ("shm://*");
    const std::string endpoint = router.get (zmq::sockopt::last_endpoint);
    if (endpoint.rfind ("shm://", 0) != 0 || endpoint == "shm://*")
        fail ("ZMQ_LAST_ENDPOINT after binding shm://* is \"" + endpoint
              + "\", expected shm://...");
    spawn ({ "routerdealer", endpoint });

    int next [2] = { 0, 0 };
    for (int count = 0; count < 2 * dealer_count; count++) {
        std::string id = recv (router), request = recv (router);
        int index = id == dealer_ids [0]? 0: id == dealer_ids [1]? 1: -1;
        if (index == -1)
            fail ("a request \"" + request + "\" from routing id \"" + id + "\", not a dealer's");
        std::string expected = id + " " + std::to_string (next [index]);
        if (request != expected)
            fail ("from \"" + id + "\": \"" + request + "\", expected \"" + expected + "\"");
        if (count == 0) {
            //  The client waits for this reply: both ends are connected
            check_maps (0, "the ROUTER server");
            check_maps (child, "the DEALER client");
        }
        send (router, id, zmq::send_flags::sndmore);
        send (router, id + " reply " + std::to_string (next [index]++));
    }
    reap ();
    close_and_term (ctx, { &router });
    std::printf ("swap_cpp: ROUTER/DEALER over shm://* = %s: 2 x %d routed replies, %.2f s\n",
                 endpoint.c_str (), dealer_count, seconds_since (start));
}


//  --------------------------------------------------------------------------

int
run_client (const std::string &pattern, const std::vector<std::string> &endpoints)
{
    role = "client";
    start_stage (pattern == "pushpull"? "PUSH/PULL": pattern == "reqrep"? "REQ/REP":
                 pattern == "pubsub"? "PUB/SUB": "ROUTER/DEALER");
    zmq::context_t ctx;
    if (pattern == "pushpull")
        client_pushpull (ctx, endpoints [0]);
    else
    if (pattern == "reqrep")
        client_reqrep (ctx, endpoints [0]);
    else
    if (pattern == "pubsub" && endpoints.size () == 2)
        client_pubsub (ctx, endpoints [0], endpoints [1]);
    else
    if (pattern == "routerdealer")
        client_routerdealer (ctx, endpoints [0]);
    else
        fail ("no such pattern: " + pattern);
    return 0;
}

}   //  namespace

int
main (int argc, char *argv [])
{
    std::set_terminate (on_terminate);
    signal (SIGALRM, watchdog);
    if (argc >= 4 && std::string (argv [1]) == "client")
        return run_client (argv [2], std::vector<std::string> (argv + 3, argv + argc));
    if (argc != 1) {
        std::fprintf (stderr, "usage: swap_cpp\n");
        return 2;
    }
    if (!mkdtemp (temp_dir))
        fail (std::string ("mkdtemp: ") + std::strerror (errno));
    server_pushpull (temp_dir);
    server_reqrep ();
    server_pubsub (temp_dir);
    server_routerdealer ();
    remove_dir ();
    std::printf ("swap_cpp: all four patterns went through shared memory\n");
    return 0;
}
