"""swap_py - an unmodified pyzmq program on shm://, for the launcher test

The Python twin of swap_c.c, on Debian's python3-zmq, whose extension
modules load the system libzmq when imported: shmipc-run's LD_PRELOAD gives
it shm://. Run it with Debian's /usr/bin/python3 (SHMIPC_PYTHON), never a
python3 from PATH, whose pyzmq may carry its own libzmq. The test process
is the server of four patterns; for each it starts this script (with
sys.executable) as the client, in a child process:

    PUSH/PULL       100,000 numbered messages     relative path endpoint
    REQ/REP         300 round trips, one 2 MiB    abstract endpoint
    PUB/SUB         filter "A", A and B sent      absolute path endpoint
    ROUTER/DEALER   two DEALERs with routing ids  shm://* endpoint

In each, both processes check that /proc/PID/maps has a shmipc memfd while
they are connected: the proof that shared memory carried it.

    swap_py.py                          all four (run it under shmipc-run)
    swap_py.py --expect-unsupported     shm:// must fail with
                                        EPROTONOSUPPORT (run it without)
    swap_py.py client PATTERN ENDPOINT...   one client role (internal)

Exits 0 when all pass, 1 with a message on stderr when a check fails (the
watchdog's included).
"""

import errno
import faulthandler
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import traceback

import zmq

TIMEOUT_MS = 10000          # any one blocking call
WATCHDOG_S = 60             # one pattern, start to end
PUSH_COUNT = 100000
REQ_COUNT = 300
BIG_SIZE = 2 * 1024 * 1024  # larger than a 1 MiB ring
PUB_COUNT = 1000
DEALER_COUNT = 100
DEALER_IDS = (b"dealer-1", b"dealer-2")
SHM_MARK = "/memfd:shmipc:"

role = "server"
stage = "starting"
child = None                # the running client, ended when we fail
temp_dir = None             # the server's temporary directory, removed then too


# ---------------------------------------------------------------------------
# Helper layer: fail loudly, never hang

def fail(message):
    """Report and exit at once: a context collected on the way out would
    wait (linger -1) for what a dead peer will never read."""
    sys.stderr.write(f"swap_py {role}: FAIL: {stage}: {message}\n")
    if child is not None:
        if child.poll() is not None:
            sys.stderr.write(f"swap_py {role}: (the client had ended already, "
                             f"status {child.returncode})\n")
        else:
            child.kill()
            child.wait()
    if temp_dir is not None:
        shutil.rmtree(temp_dir, ignore_errors=True)
    sys.stderr.flush()
    os._exit(1)


def start_stage(name):
    """A hang anywhere (ctx.term with linger -1 among others) ends the
    process with every thread's traceback, from faulthandler's own thread,
    which a call blocked in libzmq does not stop."""
    global stage
    stage = name
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)


def make_socket(ctx, kind):
    """A socket whose every send and receive gives up after TIMEOUT_MS
    (zmq.Again). Linger stays libzmq's default (-1), so ctx.term() waits
    for what is queued."""
    sock = ctx.socket(kind)
    sock.rcvtimeo = TIMEOUT_MS
    sock.sndtimeo = TIMEOUT_MS
    return sock


def recv_expect(sock, expected):
    """One frame, exactly expected, with no more frames."""
    got = sock.recv()
    if got != expected:
        fail(f"received {got!r}, expected {expected!r}")
    if sock.rcvmore:
        fail(f"{got!r} has more frames than expected")


def check_maps(pid, who):
    """The proof: a process with a live shm:// connection maps its segments
    from memfds (pid 0: ourselves)."""
    path = f"/proc/{pid}/maps" if pid else "/proc/self/maps"
    try:
        with open(path) as maps:
            text = maps.read()
    except OSError as error:
        fail(f"cannot read {path}: {error}")
    if SHM_MARK not in text:
        fail(f"no {SHM_MARK!r} mapping in {path} ({who}) while connected: "
             "the messages did not go through shared memory")


def spawn(*args):
    """Start this script as the client; it inherits our cwd and LD_PRELOAD."""
    global child
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "client", *args])


def reap():
    """The client must end by itself, with status 0, soon."""
    global child
    try:
        status = child.wait(timeout=TIMEOUT_MS / 1000)
    except subprocess.TimeoutExpired:
        fail("the client did not exit in time")
    if status:
        fail(f"the client failed (status {status}, see its message)")
    child = None


def close_and_term(ctx, *sockets):
    """With linger -1, ctx.term() returns only once queued messages are
    delivered."""
    for sock in sockets:
        sock.close()
    ctx.term()


# ---------------------------------------------------------------------------
# PUSH/PULL: PUSH_COUNT messages of varied sizes, then "END"; the endpoint is
# relative, so both processes work in the temporary directory

def push_message(seq):
    return b"%d:" % seq + bytes([ord("a") + seq % 26]) * (seq % 64)


def client_pushpull(ctx, endpoint):
    push = make_socket(ctx, zmq.PUSH)
    push.connect(endpoint)
    for seq in range(PUSH_COUNT):
        push.send(push_message(seq))
    push.send(b"END")
    # So many messages cannot all be queued: the connection is up
    check_maps(0, "the PUSH client")
    close_and_term(ctx, push)


def server_pushpull(tmpdir):
    start_stage("PUSH/PULL")
    endpoint = "shm://pushpull.sock"
    cwd = os.getcwd()
    os.chdir(tmpdir)
    start = time.monotonic()
    ctx = zmq.Context()
    pull = make_socket(ctx, zmq.PULL)
    pull.bind(endpoint)
    # The child inherits tmpdir as its cwd: that is where it connects
    spawn("pushpull", endpoint)
    os.chdir(cwd)
    # The relative path was resolved against the cwd at bind time
    path = os.path.join(tmpdir, "pushpull.sock")
    if not os.path.exists(path) or not stat.S_ISSOCK(os.stat(path).st_mode):
        fail(f"bound {endpoint} in {tmpdir} but {path} is not a socket")

    for seq in range(PUSH_COUNT):
        got = pull.recv()
        if got != push_message(seq):
            fail(f"message {seq}: got {got!r}, expected {push_message(seq)!r}")
        if seq == 0:
            # The client is still sending: both ends are connected
            check_maps(0, "the PULL server")
            check_maps(child.pid, "the PUSH client")
    # Exactly PUSH_COUNT: the next one is the end mark
    recv_expect(pull, b"END")
    reap()
    close_and_term(ctx, pull)
    print(f"swap_py: PUSH/PULL over {endpoint} (relative): {PUSH_COUNT} messages "
          f"in order, {time.monotonic() - start:.2f} s", flush=True)


# ---------------------------------------------------------------------------
# REQ/REP: REQ_COUNT round trips, the last one with a 2 MiB request, which
# streams through the ring in pieces

def big_message():
    return bytes((index * 7 + index // 4096) & 0xff for index in range(BIG_SIZE))


def client_reqrep(ctx, endpoint):
    req = make_socket(ctx, zmq.REQ)
    req.connect(endpoint)
    for seq in range(REQ_COUNT - 1):
        req.send(b"request %d" % seq)
        recv_expect(req, b"reply %d" % seq)
        if seq == 0:
            check_maps(0, "the REQ client")
    req.send(big_message())
    recv_expect(req, b"big reply")
    close_and_term(ctx, req)


def server_reqrep():
    start_stage("REQ/REP")
    endpoint = f"shm://@swap_py-{os.getpid()}-reqrep"
    start = time.monotonic()
    ctx = zmq.Context()
    rep = make_socket(ctx, zmq.REP)
    rep.bind(endpoint)
    spawn("reqrep", endpoint)

    for seq in range(REQ_COUNT - 1):
        recv_expect(rep, b"request %d" % seq)
        if seq == 0:
            # The client waits for this reply: both ends are connected
            check_maps(0, "the REP server")
            check_maps(child.pid, "the REQ client")
        rep.send(b"reply %d" % seq)
    big = rep.recv()
    if big != big_message():
        fail(f"the big request ({BIG_SIZE} bytes) arrived as {len(big)} bytes or changed")
    rep.send(b"big reply")
    reap()
    close_and_term(ctx, rep)
    print(f"swap_py: REQ/REP over {endpoint}: {REQ_COUNT} round trips checked, "
          f"{time.monotonic() - start:.2f} s", flush=True)


# ---------------------------------------------------------------------------
# PUB/SUB: the subscriber takes "A" only. Against the slow joiner, the
# publisher sends "A hello" until the subscriber, having got one, says
# "ready" on a REQ/REP side channel: its subscription is then in place, and
# PUB_COUNT "A n" and "B n", interleaved, then "A END", must arrive as the
# A's alone, all, in order. HWM 0 at both ends: nothing dropped.

def client_pubsub(ctx, endpoint, sync_endpoint):
    sub = make_socket(ctx, zmq.SUB)
    sub.rcvhwm = 0
    sub.setsockopt(zmq.SUBSCRIBE, b"A")
    sub.connect(endpoint)
    req = make_socket(ctx, zmq.REQ)
    req.connect(sync_endpoint)

    got = sub.recv()
    if got != b"A hello":
        fail(f"first message {got!r}, expected b'A hello'")
    req.send(b"ready")
    recv_expect(req, b"go")
    check_maps(0, "the SUB client")
    # Hellos sent before "ready" arrived may still come: skip them
    while got == b"A hello":
        got = sub.recv()
    for seq in range(PUB_COUNT + 1):
        expected = b"A END" if seq == PUB_COUNT else b"A %d" % seq
        if seq > 0:
            got = sub.recv()
        if not got.startswith(b"A"):
            fail(f"got {got!r} though subscribed to b'A' only")
        if got != expected:
            fail(f"got {got!r}, expected {expected!r}")
    close_and_term(ctx, sub, req)


def server_pubsub(tmpdir):
    start_stage("PUB/SUB")
    endpoint = f"shm://{tmpdir}/pubsub.sock"
    sync_endpoint = f"shm://@swap_py-{os.getpid()}-sync"
    start = time.monotonic()
    ctx = zmq.Context()
    pub = make_socket(ctx, zmq.PUB)
    pub.sndhwm = 0
    pub.bind(endpoint)
    rep = make_socket(ctx, zmq.REP)
    rep.bind(sync_endpoint)
    spawn("pubsub", endpoint, sync_endpoint)

    # Hello every 10 ms until the subscriber is ready, TIMEOUT_MS at most
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        if time.monotonic() > deadline:
            fail("the subscriber never said it got a hello")
        pub.send(b"A hello")
        if poller.poll(10):
            break
    recv_expect(rep, b"ready")
    # The client waits for "go": both ends are connected
    check_maps(0, "the PUB server")
    check_maps(child.pid, "the SUB client")
    rep.send(b"go")
    for seq in range(PUB_COUNT):
        pub.send(b"A %d" % seq)
        pub.send(b"B %d" % seq)
    pub.send(b"A END")
    reap()
    close_and_term(ctx, pub, rep)
    print(f"swap_py: PUB/SUB over {endpoint}: {PUB_COUNT} A's of {2 * PUB_COUNT} "
          f"messages, filter held, {time.monotonic() - start:.2f} s", flush=True)


# ---------------------------------------------------------------------------
# ROUTER/DEALER: the ROUTER binds shm://*, and the client connects to what
# ZMQ_LAST_ENDPOINT says. Two DEALERs with routing ids send numbered
# requests; the ROUTER answers each by the id it came with (mandatory
# routing: an unknown id fails), and each DEALER must get its own replies
# only, in order.

def client_routerdealer(ctx, endpoint):
    dealers = []
    for routing_id in DEALER_IDS:
        dealer = make_socket(ctx, zmq.DEALER)
        dealer.setsockopt(zmq.ROUTING_ID, routing_id)
        dealer.connect(endpoint)
        dealers.append(dealer)
    for seq in range(DEALER_COUNT):
        for routing_id, dealer in zip(DEALER_IDS, dealers):
            dealer.send(b"%s %d" % (routing_id, seq))
        for routing_id, dealer in zip(DEALER_IDS, dealers):
            recv_expect(dealer, b"%s reply %d" % (routing_id, seq))
        if seq == 0:
            check_maps(0, "the DEALER client")
    close_and_term(ctx, *dealers)


def server_routerdealer():
    start_stage("ROUTER/DEALER")
    start = time.monotonic()
    ctx = zmq.Context()
    router = make_socket(ctx, zmq.ROUTER)
    router.router_mandatory = 1
    router.bind("shm://*")
    endpoint = router.getsockopt(zmq.LAST_ENDPOINT).decode()
    if not endpoint.startswith("shm://") or endpoint == "shm://*":
        fail(f"ZMQ_LAST_ENDPOINT after binding shm://* is {endpoint!r}, expected shm://...")
    spawn("routerdealer", endpoint)

    following = {routing_id: 0 for routing_id in DEALER_IDS}
    for count in range(2 * DEALER_COUNT):
        routing_id, request = router.recv_multipart()
        if routing_id not in following:
            fail(f"a request {request!r} from routing id {routing_id!r}, not a dealer's")
        expected = b"%s %d" % (routing_id, following[routing_id])
        if request != expected:
            fail(f"from {routing_id!r}: {request!r}, expected {expected!r}")
        if count == 0:
            # The client waits for this reply: both ends are connected
            check_maps(0, "the ROUTER server")
            check_maps(child.pid, "the DEALER client")
        router.send_multipart([routing_id, b"%s reply %d" % (routing_id, following[routing_id])])
        following[routing_id] += 1
    reap()
    close_and_term(ctx, router)
    print(f"swap_py: ROUTER/DEALER over shm://* = {endpoint}: 2 x {DEALER_COUNT} "
          f"routed replies, {time.monotonic() - start:.2f} s", flush=True)


# ---------------------------------------------------------------------------
# Without the launcher, libzmq itself answers: no such transport

def expect_unsupported():
    start_stage("--expect-unsupported")
    ctx = zmq.Context()
    sock = make_socket(ctx, zmq.PULL)
    for endpoint in (f"shm://@swap_py-{os.getpid()}-unsupported",
                     "shm:///tmp/swap_py-unsupported.sock", "shm://relative.sock", "shm://*"):
        calls = (sock.bind,) if endpoint == "shm://*" else (sock.bind, sock.connect)
        for call in calls:
            try:
                call(endpoint)
            except zmq.ZMQError as error:
                if error.errno != errno.EPROTONOSUPPORT:
                    fail(f"{call.__name__} {endpoint}: {error} (errno {error.errno}), "
                         "expected EPROTONOSUPPORT")
            else:
                fail(f"{call.__name__} {endpoint} succeeded, expected EPROTONOSUPPORT "
                     f"(LD_PRELOAD={os.environ.get('LD_PRELOAD', '')!r})")
    close_and_term(ctx, sock)
    print("swap_py: without the launcher, shm:// fails with EPROTONOSUPPORT", flush=True)


# ---------------------------------------------------------------------------

CLIENTS = {
    "pushpull": ("PUSH/PULL", client_pushpull),
    "reqrep": ("REQ/REP", client_reqrep),
    "pubsub": ("PUB/SUB", client_pubsub),
    "routerdealer": ("ROUTER/DEALER", client_routerdealer),
}


def server():
    global temp_dir
    temp_dir = tempfile.mkdtemp(prefix="swap_py.")
    server_pushpull(temp_dir)
    server_reqrep()
    server_pubsub(temp_dir)
    server_routerdealer()
    shutil.rmtree(temp_dir)
    print("swap_py: all four patterns went through shared memory", flush=True)


def main(argv):
    global role
    if argv == ["--expect-unsupported"]:
        expect_unsupported()
    elif len(argv) >= 3 and argv[0] == "client" and argv[1] in CLIENTS:
        role = "client"
        name, client = CLIENTS[argv[1]]
        start_stage(name)
        client(zmq.Context(), *argv[2:])
    elif not argv:
        server()
    else:
        sys.stderr.write("usage: swap_py.py [--expect-unsupported]\n")
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as error:
        # zmq.Again is a timed-out send or receive. The traceback keeps
        # every frame's sockets and context alive until fail() exits.
        hint = " (not run under shmipc-run?)" if (
            isinstance(error, zmq.ZMQError) and error.errno == errno.EPROTONOSUPPORT) else ""
        fail(f"{type(error).__name__}: {error}{hint} (pyzmq {zmq.__version__} at "
             f"{os.path.dirname(zmq.__file__)}, libzmq {zmq.zmq_version()})\n"
             + traceback.format_exc())
