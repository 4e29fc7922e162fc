/*  test_hardening_channel - what a peer can make a channel commit before and
    during the handshake. A server commits no segment and no descriptor to a
    peer that has not sent a valid HELLO (it answers the client's HELLO); a
    peer can make us map at most SHMIPC_PEER_CAPACITY_DEFAULT (or our own
    capacity) and must show a fully populated segment, so that our reads
    never allocate its pages in our memory.

    Outcomes come from /proc (memfd descriptors and mappings, RssShmem,
    VmRSS) and from the peer's memfd itself (its allocated blocks).
*/
#include "testutil.h"
#include "shmipc_channel.h"
#include "shmipc_endpoint.h"
#include "shmipc_fdpass.h"
#include "shmipc_segment.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

//  The segment header and kind of a channel (docs/protocol.md, section 1),
//  copied here to forge segments by hand.
#define S_KIND          0x4e414843u     //  "CHAN"
#define S_MAGIC         0x4745534350494d53ULL
#define S_VERSION       1
typedef struct {
    uint64_t magic;             //  S_MAGIC
    uint32_t version;           //  S_VERSION
    uint32_t kind;              //  S_KIND
    uint64_t size;              //  The memfd's size
} s_header_t;

#define S_MIB           (1UL << 20)
#define S_PENDING       200     //  Pending server channels measured together

//  --------------------------------------------------------------------------
//  Measures from /proc

//  Return the number of our descriptors that are memfds.
static int
s_memfd_fds (void)
{
    return tu_fds_linked_to ("/memfd:");
}

//  Return the number of our descriptors that are pipes (a ready channel
//  keeps two: its wake pipe and its description of the peer's).
static int
s_pipe_fds (void)
{
    return tu_fds_linked_to ("pipe:[");
}

//  Return the number of our mappings of memfds.
//  Mappings per segment: its data area is mapped twice (a mirror, so that
//  no record is ever split) where the header is whole pages.
#define S_MAPS  (sysconf (_SC_PAGESIZE) <= 4096 ? 2 : 1)

static int
s_memfd_maps (void)
{
    return tu_maps_with (" /memfd:");
}

//  Return our resident shared memory (our mappings of tmpfs pages) in KiB,
//  from /proc/self/status.
static long
s_rss_shmem_kib (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    assert_non_null (file);
    long value = -1;
    char line [256];
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "RssShmem: %ld kB", &value) == 1)
            break;
    fclose (file);
    assert_true (value >= 0);
    return value;
}

//  --------------------------------------------------------------------------
//  Peers by hand

//  Forge a sealed channel segment for a ring of capacity bytes with a good
//  header and nothing else written: every page but the first is a hole.
static int
s_sparse_segment (size_t capacity)
{
    size_t size = shmipc__segment_bytes (capacity);
    int fd = memfd_create ("shmipc:sparse", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) size), 0);
    s_header_t header = {
        .magic = S_MAGIC, .version = S_VERSION, .kind = S_KIND, .size = size
    };
    assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
    assert_int_equal (fcntl (fd, F_ADD_SEALS, SHMIPC_SEGMENT_SEALS), 0);
    return fd;
}

//  Return the bytes of fd's file that are allocated.
static size_t
s_allocated (int fd)
{
    struct stat st;
    assert_int_equal (fstat (fd, &st), 0);
    return (size_t) st.st_blocks * 512;
}

//  Send a HELLO by hand, role and capacity as given, with fd.
static void
s_send_hello (int sock, int role, size_t capacity, int fd)
{
    uint8_t hello [SHMIPC__HELLO_FIXED + 8];
    size_t size = shmipc__wire_hello (hello, role, capacity, shmipc__segment_bytes (capacity),
                                      "fake", 4);
    assert_int_equal (shmipc_fdpass_send (sock, hello, size, &fd, 1, 0), size);
}

//  A server channel with ring capacity on a fresh socket pair; *peer gets
//  the raw other end.
static shmipc_channel_t *
s_server_new (size_t capacity, int *peer)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    shmipc_channel_t *server = shmipc_channel_new (pair [0], "server", capacity,
                                                   SHMIPC_SERVER);
    assert_non_null (server);
    *peer = pair [1];
    return server;
}

//  The channel's handshake must fail with EPROTO for reason.
static void
s_assert_refused (shmipc_channel_t *channel, const char *reason)
{
    assert_int_equal (shmipc_channel_handshake (channel, 1000), -1);
    assert_int_equal (errno, EPROTO);
    assert_int_equal (shmipc_channel_error (channel), EPROTO);
    assert_string_equal (shmipc_channel_reason (channel), reason);
    assert_false (shmipc_channel_ready (channel));
}

//  Return how many bytes wait to be read on sock (0: no record at all).
static int
s_queued (int sock)
{
    int bytes = -1;
    assert_int_equal (ioctl (sock, SIOCINQ, &bytes), 0);
    return bytes;
}

//  --------------------------------------------------------------------------
//  D3: nothing committed before the client's HELLO

//  A connection accepted by a listener, and a server channel over it whose
//  peer (client, a raw socket) has said nothing.
typedef struct {
    int client;                 //  The connecting end; raw, silent
    shmipc_channel_t *server;   //  The accepting end's channel
} s_pending_t;

static void
s_pending_new (s_pending_t *pending, shmipc_listener_t *listener, const char *endpoint)
{
    pending->client = shmipc_endpoint_connect (endpoint, 0);
    assert_true (pending->client >= 0);
    int sock = shmipc_listener_accept (listener);
    assert_true (sock >= 0);
    pending->server = shmipc_channel_new (sock, "pending", 1 << 20, SHMIPC_SERVER);
    assert_non_null (pending->server);
    //  Its handshake runs, as a poll loop would run it, and finds nothing
    assert_int_equal (shmipc_channel_handshake (pending->server, 0), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (shmipc_channel_events (pending->server), 0);
}

static void
s_pending_destroy (s_pending_t *pending)
{
    shmipc_channel_destroy (&pending->server);
    close (pending->client);
}

static void
test_server_channel_creates_no_memfd_before_the_client_hello (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    int fds = s_memfd_fds ();
    int maps = s_memfd_maps ();
    int pipes = s_pipe_fds ();
    s_pending_t pending;
    s_pending_new (&pending, listener, endpoint);
    //  No segment here, no wake pipe (made once the handshake is done), and
    //  no descriptor or record on its way to the peer
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps);
    assert_int_equal (s_pipe_fds (), pipes);
    assert_int_equal (shmipc_channel_wake_fd (pending.server), -1);
    assert_int_equal (s_queued (pending.client), 0);
    assert_true (shmipc_channel_deadline (pending.server) > 0);
    //  At the deadline it is closed, still without ever making one
    shmipc_channel_set_handshake_timeout (pending.server, 0);
    assert_int_equal (shmipc_channel_handshake (pending.server, 0), -1);
    assert_int_equal (errno, ETIMEDOUT);
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps);
    assert_int_equal (s_pipe_fds (), pipes);
    char byte;
    assert_int_equal (recv (pending.client, &byte, 1, MSG_DONTWAIT), 0);
    s_pending_destroy (&pending);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

static void
test_200_pending_server_channels_cost_less_than_one_mib (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    static s_pending_t pending [S_PENDING];
    //  Warm up the allocator and the paths, so that only the channels count
    for (int index = 0; index < 10; index++)
        s_pending_new (&pending [index], listener, endpoint);
    for (int index = 0; index < 10; index++)
        s_pending_destroy (&pending [index]);
    int fds = s_memfd_fds ();
    int maps = s_memfd_maps ();
    int pipes = s_pipe_fds ();
    long rss = tu_rss_kib ();
    long shmem = s_rss_shmem_kib ();
    for (int index = 0; index < S_PENDING; index++)
        s_pending_new (&pending [index], listener, endpoint);
    long rss_cost = tu_rss_kib () - rss;
    long shmem_cost = s_rss_shmem_kib () - shmem;
    print_message ("    %d pending server channels: VmRSS %+ld KiB, RssShmem %+ld KiB "
                   "(%ld bytes each)\n", S_PENDING, rss_cost, shmem_cost,
                   rss_cost * 1024 / S_PENDING);
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps);
    assert_int_equal (s_pipe_fds (), pipes);
    assert_true (shmem_cost < 1024);
    for (int index = 0; index < S_PENDING; index++)
        assert_int_equal (s_queued (pending [index].client), 0);
    //  ThreadSanitizer's and valgrind's own heaps and shadow are part of our
    //  resident memory: under them only shared memory is measured
    if (!tu_under_tsan () && !tu_under_valgrind ())
        assert_true (rss_cost + shmem_cost < 1024);
    for (int index = 0; index < S_PENDING; index++)
        s_pending_destroy (&pending [index]);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

static void
test_server_creates_its_segment_on_client_hello_and_both_complete (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    shmipc_listener_t *listener = shmipc_listener_new (endpoint);
    assert_non_null (listener);
    int fds = s_memfd_fds ();
    int maps = s_memfd_maps ();
    int pipes = s_pipe_fds ();
    int sock = shmipc_endpoint_connect (endpoint, 0);
    assert_true (sock >= 0);
    shmipc_channel_t *client = shmipc_channel_new (sock, "client", 4096, SHMIPC_CLIENT);
    assert_non_null (client);
    //  The client made its segment and sent it at once
    assert_int_equal (s_memfd_fds (), fds + 1);
    assert_int_equal (s_memfd_maps (), maps + S_MAPS);
    sock = shmipc_listener_accept (listener);
    assert_true (sock >= 0);
    shmipc_channel_t *server = shmipc_channel_new (sock, "server", 8192, SHMIPC_SERVER);
    assert_non_null (server);
    assert_int_equal (s_memfd_fds (), fds + 1);
    //  The client cannot complete before the server has answered
    assert_int_equal (shmipc_channel_handshake (client, 0), -1);
    assert_int_equal (errno, EAGAIN);
    //  The server takes the client's HELLO: it attaches the client's segment,
    //  makes its own and answers. Both segments' memfds have then done
    //  their work (our HELLO carried ours, the peer's came with its HELLO),
    //  so a ready channel closes them and keeps only the mappings: of the
    //  memfds only the client's own stays open, until its handshake ends
    assert_int_equal (shmipc_channel_handshake (server, 0), 0);
    assert_true (shmipc_channel_ready (server));
    assert_string_equal (shmipc_channel_peer_name (server), "client");
    assert_int_equal (shmipc_channel_peer_capacity (server), 4096);
    assert_int_equal (s_memfd_fds (), fds + 1);
    assert_int_equal (s_memfd_maps (), maps + 3 * S_MAPS);
    //  And it has made the pipe the client will wake it through
    assert_int_equal (s_pipe_fds (), pipes + 1);
    assert_true (shmipc_channel_wake_fd (server) >= 0);
    assert_int_equal (shmipc_channel_wake_fd (client), -1);
    //  The client attaches the server's segment and closes both memfds too:
    //  four mappings, no memfd descriptor left
    assert_int_equal (shmipc_channel_handshake (client, 0), 0);
    assert_string_equal (shmipc_channel_peer_name (client), "server");
    assert_int_equal (shmipc_channel_peer_capacity (client), 8192);
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps + 4 * S_MAPS);
    assert_int_equal (s_pipe_fds (), pipes + 2);
    assert_true (shmipc_channel_wake_fd (client) >= 0);
    //  And messages go both ways
    assert_int_equal (shmipc_channel_send (client, "ping", 4, 0), 0);
    shmipc_msg_t *msg = shmipc_channel_recv (server, 0);
    assert_non_null (msg);
    assert_memory_equal (shmipc_msg_data (msg, 0), "ping", 4);
    assert_int_equal (shmipc_channel_send_msg (server, msg, 0), 0);
    shmipc_msg_destroy (&msg);
    msg = shmipc_channel_recv (client, 0);
    assert_non_null (msg);
    assert_memory_equal (shmipc_msg_data (msg, 0), "ping", 4);
    shmipc_msg_destroy (&msg);
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps + 4 * S_MAPS);
    shmipc_channel_destroy (&client);
    shmipc_channel_destroy (&server);
    assert_int_equal (s_memfd_fds (), fds);
    assert_int_equal (s_memfd_maps (), maps);
    assert_int_equal (s_pipe_fds (), pipes);
    shmipc_listener_destroy (&listener);
    tu_assert_baseline (baseline);
}

//  In a child: a server whose first call is a blocking receive, which
//  completes the handshake on its way; then echo the message. Exit 0 if
//  all went well.
static int
s_blocking_server (void *arg)
{
    int *pair = (int *) arg;
    alarm (60);
    close (pair [0]);                   //  The parent's end
    int sock = pair [1];
    shmipc_channel_t *server = shmipc_channel_new (sock, "server", 4096, SHMIPC_SERVER);
    if (!server)
        return 1;
    shmipc_channel_set_rcvtimeo (server, 30000);
    shmipc_channel_set_sndtimeo (server, 30000);
    shmipc_msg_t *msg = shmipc_channel_recv (server, 0);
    int rc = msg && shmipc_channel_send_msg (server, msg, 0) == 0 ? 0 : 2;
    shmipc_msg_destroy (&msg);
    //  Wait for the client to hang up, so that it reads the echo first
    if (rc == 0) {
        msg = shmipc_channel_recv (server, 0);
        if (msg || errno != ECONNRESET)
            rc = 3;
        shmipc_msg_destroy (&msg);
    }
    shmipc_channel_destroy (&server);
    return rc;
}

static void
test_blocking_first_calls_complete_the_handshake_in_both_roles (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    for (int round = 0; round < 2; round++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        pid_t pid = tu_fork (s_blocking_server, pair);
        close (pair [1]);
        shmipc_channel_t *client = shmipc_channel_new (pair [0], "client", 4096,
                                                       SHMIPC_CLIENT);
        assert_non_null (client);
        shmipc_channel_set_rcvtimeo (client, 30000);
        shmipc_channel_set_sndtimeo (client, 30000);
        //  A blocking send, or a blocking handshake, waits for the answer
        if (round == 0)
            assert_int_equal (shmipc_channel_send (client, "echo", 4, 0), 0);
        else {
            assert_int_equal (shmipc_channel_handshake (client, 30000), 0);
            assert_int_equal (shmipc_channel_send (client, "echo", 4, 0), 0);
        }
        shmipc_msg_t *msg = shmipc_channel_recv (client, 0);
        assert_non_null (msg);
        assert_memory_equal (shmipc_msg_data (msg, 0), "echo", 4);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&client);
        assert_int_equal (tu_wait (pid), 0);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  D4: what a peer can make us touch

static void
test_peer_capacity_above_the_default_limit_is_refused_with_eproto (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    assert_int_equal (SHMIPC_PEER_CAPACITY_DEFAULT, 64 * S_MIB);
    //  The attack: 256 MiB it never touched. Refused on the number, before
    //  its descriptor is even looked at
    size_t claims [] = { 128 * S_MIB, 256 * S_MIB };
    for (size_t index = 0; index < 2; index++) {
        int peer;
        shmipc_channel_t *server = s_server_new (4096, &peer);
        int fd = s_sparse_segment (claims [index]);
        size_t allocated = s_allocated (fd);
        s_send_hello (peer, SHMIPC_CLIENT, claims [index], fd);
        s_assert_refused (server, "peer capacity out of range");
        assert_int_equal (s_allocated (fd), allocated);
        close (fd);
        shmipc_channel_destroy (&server);
        close (peer);
    }
    //  A hand-made peer with a real (populated) segment over a limit we set
    int peer;
    shmipc_channel_t *server = s_server_new (4096, &peer);
    shmipc_channel_set_max_peer_capacity (server, 8192);
    shmipc_segment_t *segment = shmipc_segment_new ("fake", shmipc__segment_bytes (16384), S_KIND);
    assert_non_null (segment);
    s_send_hello (peer, SHMIPC_CLIENT, 16384, shmipc_segment_fd (segment));
    shmipc_segment_destroy (&segment);
    s_assert_refused (server, "peer capacity out of range");
    shmipc_channel_destroy (&server);
    close (peer);
    tu_assert_baseline (baseline);
}

static void
test_peer_capacity_limit_is_64_mib_or_our_own_capacity (void **state)
{
    //  Which limit applies shows in the reason: a sparse segment within
    //  the limit gets as far as the population check. No real memory is
    //  needed: a server makes its segment only after accepting the HELLO
    tu_baseline_t baseline = tu_baseline ();
    struct {
        size_t ours;                //  Our capacity
        size_t max;                 //  What we set (0: the default)
        size_t claim;               //  What the peer claims
        const char *reason;         //  Why we refuse it
    } cases [] = {
        { 4096, 0, 64 * S_MIB, "peer segment not populated" },
        { 4096, 0, 128 * S_MIB, "peer capacity out of range" },
        { 128 * S_MIB, 0, 128 * S_MIB, "peer segment not populated" },
        { 128 * S_MIB, 0, 256 * S_MIB, "peer capacity out of range" },
        { 4096, 256 * S_MIB, 256 * S_MIB, "peer segment not populated" },
        { 4096, 32 * S_MIB, 64 * S_MIB, "peer capacity out of range" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        int peer;
        shmipc_channel_t *server = s_server_new (cases [index].ours, &peer);
        if (cases [index].max)
            shmipc_channel_set_max_peer_capacity (server, cases [index].max);
        int fd = s_sparse_segment (cases [index].claim);
        s_send_hello (peer, SHMIPC_CLIENT, cases [index].claim, fd);
        close (fd);
        s_assert_refused (server, cases [index].reason);
        shmipc_channel_destroy (&server);
        close (peer);
    }
    tu_assert_baseline (baseline);
}

static void
test_sparse_peer_segment_is_refused_and_never_faulted_in (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t capacity = 64 * S_MIB;
    for (int role = SHMIPC_CLIENT; role <= SHMIPC_SERVER; role++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        int fds = s_memfd_fds ();
        long shmem = s_rss_shmem_kib ();
        //  The victim in either role; the fake peer sends a segment of the
        //  right size with nothing but its header page written
        shmipc_channel_t *victim = shmipc_channel_new (pair [0], "victim", 4096, role);
        assert_non_null (victim);
        int fd = s_sparse_segment (capacity);
        size_t allocated = s_allocated (fd);
        assert_true (allocated < capacity / 2);
        s_send_hello (pair [1], role == SHMIPC_SERVER ? SHMIPC_CLIENT : SHMIPC_SERVER,
                      capacity, fd);
        s_assert_refused (victim, "peer segment not populated");
        //  Nothing of it was allocated by us: the file holds what it held
        assert_int_equal (s_allocated (fd), allocated);
        long shmem_cost = s_rss_shmem_kib () - shmem;
        print_message ("    %s refused a sparse %zu MiB segment: RssShmem %+ld KiB, "
                       "peer memfd %zu KiB allocated\n",
                       role == SHMIPC_SERVER ? "server" : "client", capacity / S_MIB,
                       shmem_cost, s_allocated (fd) / 1024);
        assert_true (shmem_cost < (long) (capacity / 1024 / 2));
        //  Refused and closed: the descriptor it sent us is gone
        shmipc_channel_destroy (&victim);
        assert_int_equal (s_memfd_fds (), fds + 1);
        close (fd);
        close (pair [1]);
    }
    tu_assert_baseline (baseline);
}

static void
test_real_peers_with_64_mib_rings_on_both_sides_work (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_channel_t *a, *b;
    tu_channel_pair (64 * S_MIB, 64 * S_MIB, &a, &b);
    assert_int_equal (shmipc_channel_peer_capacity (a), 64 * S_MIB);
    assert_int_equal (shmipc_channel_peer_capacity (b), 64 * S_MIB);
    size_t size = tu_scaled (8, 1) * S_MIB;
    uint8_t *buffer = (uint8_t *) malloc (size);
    assert_non_null (buffer);
    tu_fill (buffer, size, 64);
    assert_int_equal (shmipc_channel_send (a, buffer, size, 0), 0);
    shmipc_msg_t *msg = shmipc_channel_recv (b, 0);
    assert_non_null (msg);
    assert_int_equal (shmipc_msg_size (msg, 0), size);
    assert_true (tu_check (shmipc_msg_data (msg, 0), size, 64));
    assert_int_equal (shmipc_channel_send_msg (b, msg, 0), 0);
    shmipc_msg_destroy (&msg);
    msg = shmipc_channel_recv (a, 0);
    assert_non_null (msg);
    assert_true (tu_check (shmipc_msg_data (msg, 0), size, 64));
    shmipc_msg_destroy (&msg);
    free (buffer);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_server_channel_creates_no_memfd_before_the_client_hello),
        cmocka_unit_test (test_200_pending_server_channels_cost_less_than_one_mib),
        cmocka_unit_test (test_server_creates_its_segment_on_client_hello_and_both_complete),
        cmocka_unit_test (test_blocking_first_calls_complete_the_handshake_in_both_roles),
        cmocka_unit_test (test_peer_capacity_above_the_default_limit_is_refused_with_eproto),
        cmocka_unit_test (test_peer_capacity_limit_is_64_mib_or_our_own_capacity),
        cmocka_unit_test (test_sparse_peer_segment_is_refused_and_never_faulted_in),
        cmocka_unit_test (test_real_peers_with_64_mib_rings_on_both_sides_work),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
