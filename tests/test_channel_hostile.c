/*  test_channel_hostile - peers that break the protocol: bad handshakes,
    lying ring indices and record headers, bad socket records, a control
    window ignored, loans gone wrong (a LOAN before its POOL, a POOL twice or
    with a descriptor we cannot trust, a LOAN outside the pool or malformed),
    and child processes scribbling over their segment while we read. The
    channel must refuse each with EPROTO (or see the peer gone, ECONNRESET),
    never crash, hang, read out of bounds or leak a descriptor.
    A hold table that lies is not refused (nothing tells it from the
    truth): the channel still writes only its free space, and a send that
    finds no place waits (or times out) instead of hanging.

    The fake peer speaks the protocol by hand with the internal pieces:
    shmipc_segment_new, shmipc__wire_hello / shmipc__wire_header and
    shmipc_fdpass_send, and the segment layout channel.c defines.
*/
#include "testutil.h"
#include "channel.h"
#include "shmipc_channel.h"
#include "shmipc_fdpass.h"
#include "shmipc_loans.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"
#include "util.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

//  The segment layout of channel.c: kind, control block words, ring data.
#define S_KIND          0x4e414843u     //  "CHAN"
#define S_HEAD          64              //  Write index of the owner's ring
#define S_TAIL          128             //  Owner's read index into the peer's
#define S_RX_SLEEP      192
#define S_TX_SLEEP      256
#define S_HOLDS         320             //  The owner's hold table (its peer's
                                        //  records it keeps)
#define S_RING          SHMIPC_SEGMENT_HEADER

_Static_assert (S_HOLDS == SHMIPC__CONTROL_OFFSET + offsetof (shmipc__control_t, holds),
                "the hold table where channel.c puts it");

//  In a child: on failure say where and why, and exit with status 1.
#define C_CHECK(cond) do { \
    if (!(cond)) { \
        fprintf (stderr, "child %d: %s:%d: check failed: %s (errno %d %s)\n", \
                 (int) getpid (), __FILE__, __LINE__, #cond, errno, strerror (errno)); \
        return 1; \
    } \
} while (0)

//  --------------------------------------------------------------------------
//  A fake peer in this process

typedef struct {
    int sock;                       //  Its raw end of the socket pair
    shmipc_segment_t *segment;      //  The segment it pretends with
    uint8_t *base;                  //  Its mapping (ours: read-write)
    size_t capacity;                //  The ring capacity it claims
    shmipc_segment_t *victim;       //  The channel's segment, attached
} s_fake_t;

//  Send a HELLO by hand with nfds descriptors (0 to SHMIPC_FDPASS_MAX).
static void
s_send_hello (int sock, int role, uint64_t capacity, uint64_t segment_size,
              const int *fds, size_t nfds)
{
    uint8_t hello [SHMIPC__HELLO_FIXED + 8];
    size_t size = shmipc__wire_hello (hello, role, capacity, segment_size, "fake", 4);
    assert_int_equal (shmipc_fdpass_send (sock, hello, size, fds, nfds, 0), size);
}

//  Make a channel (the victim, ring 4096, server) joined to a fake client
//  with a ring of capacity: the fake sends its HELLO by hand, the victim
//  answers it, and the fake attaches the victim's segment from that answer.
static shmipc_channel_t *
s_fake_new (s_fake_t *fake, size_t capacity)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    shmipc_channel_t *victim = shmipc_channel_new (pair [0], "victim", 4096, SHMIPC_SERVER);
    assert_non_null (victim);
    fake->sock = pair [1];
    fake->capacity = capacity;
    fake->segment = shmipc_segment_new ("fake", shmipc__segment_bytes (capacity), S_KIND);
    assert_non_null (fake->segment);
    fake->base = (uint8_t *) shmipc_segment_data (fake->segment);
    int fd = shmipc_segment_fd (fake->segment);
    s_send_hello (fake->sock, SHMIPC_CLIENT, capacity, shmipc__segment_bytes (capacity), &fd, 1);
    assert_int_equal (shmipc_channel_handshake (victim, 1000), 0);
    uint8_t buffer [SHMIPC__HELLO_FIXED + SHMIPC_NAME_MAX];
    size_t nfds;
    assert_true (shmipc_fdpass_recv (fake->sock, buffer, sizeof buffer, &fd, 1, &nfds, 0) > 0);
    assert_int_equal (nfds, 1);
    fake->victim = shmipc_segment_attach (fd, shmipc__segment_bytes (4096),
                                          shmipc__segment_bytes (4096), S_KIND);
    assert_non_null (fake->victim);
    return victim;
}

static void
s_fake_destroy (s_fake_t *fake)
{
    close (fake->sock);
    shmipc_segment_destroy (&fake->segment);
    shmipc_segment_destroy (&fake->victim);
}

//  Store a word in the fake's control block, as the peer would.
static void
s_fake_store (s_fake_t *fake, size_t offset, uint64_t value)
{
    atomic_store_explicit ((_Atomic uint64_t *) (fake->base + offset), value,
                           memory_order_release);
}

//  Load a word from the victim's control block.
static uint64_t
s_victim_load (s_fake_t *fake, size_t offset)
{
    const uint8_t *base = (const uint8_t *) shmipc_segment_data (fake->victim);
    return atomic_load_explicit ((_Atomic uint64_t *) (base + offset), memory_order_acquire);
}

//  Write a record (header, then payload, wrapping) at ring index at.
static void
s_fake_record (s_fake_t *fake, uint64_t at, uint32_t size, uint32_t flags,
               const void *payload)
{
    uint64_t mask = fake->capacity - 1;
    uint64_t header = (uint64_t) size | ((uint64_t) flags << 32);
    memcpy (fake->base + S_RING + (at & mask), &header, 8);
    for (uint32_t index = 0; index < size && payload; index++)
        fake->base [S_RING + ((at + 8 + index) & mask)] = ((const uint8_t *) payload) [index];
}

//  Send raw bytes on the fake's socket, one record.
static void
s_fake_send (s_fake_t *fake, const void *data, size_t size)
{
    assert_int_equal (send (fake->sock, data, size, MSG_NOSIGNAL), (ssize_t) size);
}

//  Send an 8-byte record of type (POOL, PIPE) by hand: value as given, and
//  nfds descriptors.
static void
s_fake_send_fds (s_fake_t *fake, int type, uint32_t value, const int *fds, size_t nfds)
{
    uint8_t record [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (record, type, value);
    assert_int_equal (shmipc_fdpass_send (fake->sock, record, sizeof record, fds, nfds, 0),
                      sizeof record);
}

//  Assert the victim is closed with EPROTO, says why, and stays closed;
//  the fake sees end of stream.
static void
s_assert_eproto (shmipc_channel_t *victim, s_fake_t *fake)
{
    assert_int_equal (shmipc_channel_error (victim), EPROTO);
    assert_string_not_equal (shmipc_channel_reason (victim), "");
    assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLERR);
    assert_null (shmipc_channel_recv (victim, 0));
    assert_int_equal (errno, EPROTO);
    assert_int_equal (shmipc_channel_send (victim, "x", 1, 0), -1);
    assert_int_equal (errno, EPROTO);
    assert_int_equal (shmipc_channel_flush (victim), -1);
    assert_int_equal (errno, EPROTO);
    if (fake) {
        char byte;
        //  Anything the victim sent before, then end of stream
        while (recv (fake->sock, &byte, 1, MSG_DONTWAIT | MSG_TRUNC) > 0)
            ;
        assert_int_equal (recv (fake->sock, &byte, 1, MSG_DONTWAIT), 0);
    }
}

//  Assert a receive fails with EPROTO now.
static void
s_assert_recv_eproto (shmipc_channel_t *victim)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EPROTO);
    shmipc_msg_destroy (&msg);
}

//  --------------------------------------------------------------------------
//  Handshake refusals

//  A victim waiting for a HELLO on a fresh socket pair; *peer gets the raw
//  other end.
static shmipc_channel_t *
s_victim_new (int *peer)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
    shmipc_channel_t *victim = shmipc_channel_new (pair [0], "victim", 4096, SHMIPC_SERVER);
    assert_non_null (victim);
    *peer = pair [1];
    return victim;
}

//  The handshake must fail with EPROTO, and the victim must hold no
//  descriptor it was sent: after destroy we are back to fds_before.
static void
s_assert_refused (shmipc_channel_t *victim, int peer, int fds_before)
{
    assert_int_equal (shmipc_channel_handshake (victim, 1000), -1);
    assert_int_equal (errno, EPROTO);
    assert_int_equal (shmipc_channel_error (victim), EPROTO);
    assert_false (shmipc_channel_ready (victim));
    assert_null (shmipc_channel_peer_name (victim));
    assert_null (shmipc_channel_recv (victim, SHMIPC_DONTWAIT));
    assert_int_equal (errno, EPROTO);
    shmipc_channel_destroy (&victim);
    close (peer);
    assert_int_equal (tu_fd_count (), fds_before);
}

static void
test_channel_refuses_hello_with_wrong_descriptors (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    size_t good_size = shmipc__segment_bytes (4096);
    for (int kind = 0; kind < 8; kind++) {
        int peer;
        shmipc_channel_t *victim = s_victim_new (&peer);
        int fds [SHMIPC_FDPASS_MAX];
        size_t nfds = 1;
        shmipc_segment_t *segment = NULL;
        uint64_t claim = 4096;          //  The capacity the HELLO claims
        if (kind == 0) {                //  A pipe
            int pipe_fds [2];
            assert_int_equal (pipe (pipe_fds), 0);
            close (pipe_fds [1]);
            fds [0] = pipe_fds [0];
        }
        else
        if (kind == 1) {                //  A regular file of the right size
            char path [] = "/tmp/shmipc-hostile-XXXXXX";
            fds [0] = mkstemp (path);
            assert_true (fds [0] >= 0);
            unlink (path);
            assert_int_equal (ftruncate (fds [0], (off_t) good_size), 0);
        }
        else
        if (kind == 2) {                //  An unsealed memfd
            fds [0] = memfd_create ("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
            assert_true (fds [0] >= 0);
            assert_int_equal (ftruncate (fds [0], (off_t) good_size), 0);
        }
        else
        if (kind == 3) {                //  A sealed segment too small for
            segment = shmipc_segment_new ("small", good_size, S_KIND);
            fds [0] = dup (shmipc_segment_fd (segment));
            claim = 65536;              //  the capacity claimed
        }
        else
        if (kind == 4) {                //  A sealed segment of another kind
            segment = shmipc_segment_new ("other", good_size, 0x12345678);
            fds [0] = dup (shmipc_segment_fd (segment));
        }
        else
        if (kind == 5 || kind == 6) {   //  Several descriptors, or the most
            segment = shmipc_segment_new ("many", good_size, S_KIND);
            nfds = kind == 5 ? 3 : SHMIPC_FDPASS_MAX;
            for (size_t index = 0; index < nfds; index++)
                fds [index] = dup (shmipc_segment_fd (segment));
        }
        else
            nfds = 0;                   //  No descriptor at all
        s_send_hello (peer, SHMIPC_CLIENT, claim, shmipc__segment_bytes (claim), fds, nfds);
        for (size_t index = 0; index < nfds; index++)
            close (fds [index]);
        shmipc_segment_destroy (&segment);
        s_assert_refused (victim, peer, fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_hello_flooded_with_descriptors (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    int peer;
    shmipc_channel_t *victim = s_victim_new (&peer);
    //  Sixty descriptors in one record, far past what fdpass takes
    int null_fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true (null_fd >= 0);
    int many [60];
    for (int index = 0; index < 60; index++)
        many [index] = null_fd;
    uint8_t hello [SHMIPC__HELLO_FIXED + 8];
    size_t size = shmipc__wire_hello (hello, SHMIPC_CLIENT, 4096,
                                      shmipc__segment_bytes (4096), "fake", 4);
    union {
        char buffer [CMSG_SPACE (sizeof many)];
        struct cmsghdr align;
    } control;
    memset (&control, 0, sizeof control);
    struct iovec iov = { .iov_base = hello, .iov_len = size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buffer,
                          .msg_controllen = sizeof control.buffer };
    struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN (sizeof many);
    memcpy (CMSG_DATA (cmsg), many, sizeof many);
    assert_int_equal (sendmsg (peer, &msg, 0), (ssize_t) size);
    close (null_fd);
    s_assert_refused (victim, peer, fds_before);
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_malformed_hello (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    for (int kind = 0; kind < 11; kind++) {
        int peer;
        shmipc_channel_t *victim = s_victim_new (&peer);
        shmipc_segment_t *segment = shmipc_segment_new ("fake", shmipc__segment_bytes (4096), S_KIND);
        assert_non_null (segment);
        int fd = shmipc_segment_fd (segment);
        uint8_t hello [SHMIPC__HELLO_FIXED + 300];
        size_t size = shmipc__wire_hello (hello, SHMIPC_CLIENT, 4096,
                                          shmipc__segment_bytes (4096), "fake", 4);
        switch (kind) {
            case 0: hello [4] ^= 1; break;                  //  Bad magic
            case 1: hello [2] = 1; break;                   //  Version 1: no holds
            case 2: hello [1] = 7; break;                   //  Unknown role
            case 3: hello [24] = 5; break;                  //  Name size lies
            case 4: size = SHMIPC__HELLO_FIXED - 1; break;  //  Truncated
            case 5: hello [SHMIPC__HELLO_FIXED] = '\n'; break;
            case 6:                                         //  A WAKE first
                shmipc__wire_header (hello, SHMIPC__WIRE_WAKE, 0);
                size = SHMIPC__RECORD_HEAD;
                break;
            case 7:                                         //  Too long a record
                memset (hello + size, 'x', sizeof hello - size);
                hello [24] = (uint8_t) (sizeof hello - SHMIPC__HELLO_FIXED);
                hello [25] = (uint8_t) ((sizeof hello - SHMIPC__HELLO_FIXED) >> 8);
                size = sizeof hello;
                break;
            case 8:                                         //  Not a power of two
                size = shmipc__wire_hello (hello, SHMIPC_CLIENT, 3000,
                                           shmipc__segment_bytes (3000), "fake", 4);
                break;
            case 9:                                         //  Below the minimum
                size = shmipc__wire_hello (hello, SHMIPC_CLIENT, 32,
                                           shmipc__segment_bytes (32), "fake", 4);
                break;
            default:                                        //  Size not what the
                size = shmipc__wire_hello (hello, SHMIPC_CLIENT, 4096,  //  capacity implies
                                           shmipc__segment_bytes (8192), "fake", 4);
                break;
        }
        assert_int_equal (shmipc_fdpass_send (peer, hello, size, &fd, 1, 0), size);
        shmipc_segment_destroy (&segment);
        s_assert_refused (victim, peer, fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_same_role_on_both_sides (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    //  Two clients: each refuses the other's HELLO
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
    shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_CLIENT);
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (shmipc_channel_handshake (a, 1000), -1);
    assert_int_equal (errno, EPROTO);
    assert_int_equal (shmipc_channel_handshake (b, 1000), -1);
    assert_int_equal (errno, EPROTO);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    //  A server refuses a HELLO that says server
    int peer;
    shmipc_channel_t *victim = s_victim_new (&peer);
    shmipc_segment_t *segment = shmipc_segment_new ("fake", shmipc__segment_bytes (4096), S_KIND);
    assert_non_null (segment);
    int fd = shmipc_segment_fd (segment);
    s_send_hello (peer, SHMIPC_SERVER, 4096, shmipc__segment_bytes (4096), &fd, 1);
    shmipc_segment_destroy (&segment);
    s_assert_refused (victim, peer, fds_before);
    //  Two servers: neither speaks first, so a waits out its deadline;
    //  then b sees a hang up
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_SERVER);
    b = shmipc_channel_new (pair [1], "b", 4096, SHMIPC_SERVER);
    assert_non_null (a);
    assert_non_null (b);
    shmipc_channel_set_handshake_timeout (a, 0);
    assert_int_equal (shmipc_channel_handshake (a, 1000), -1);
    assert_int_equal (errno, ETIMEDOUT);
    assert_int_equal (shmipc_channel_handshake (b, 1000), -1);
    assert_int_equal (errno, ECONNRESET);
    shmipc_channel_destroy (&a);
    shmipc_channel_destroy (&b);
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_peer_capacity_beyond_its_limit (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    for (int round = 0; round < 2; round++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
        shmipc_channel_t *a = shmipc_channel_new (pair [0], "a", 4096, SHMIPC_CLIENT);
        shmipc_channel_t *b = shmipc_channel_new (pair [1], "b", round ? 65536 : 8192,
                                                  SHMIPC_SERVER);
        assert_non_null (a);
        assert_non_null (b);
        shmipc_channel_set_max_peer_capacity (a, 8192);
        //  b, the server, accepts a's HELLO and answers
        assert_int_equal (shmipc_channel_handshake (b, 1000), 0);
        if (round == 0)
            assert_int_equal (shmipc_channel_handshake (a, 1000), 0);
        else {
            assert_int_equal (shmipc_channel_handshake (a, 1000), -1);
            assert_int_equal (errno, EPROTO);
            assert_string_equal (shmipc_channel_reason (a), "peer capacity out of range");
            //  a closed: b sees it gone
            assert_null (shmipc_channel_recv (b, 0));
            assert_int_equal (errno, ECONNRESET);
        }
        shmipc_channel_destroy (&a);
        shmipc_channel_destroy (&b);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Lies in the ring

static void
test_channel_refuses_impossible_write_index (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t lies [] = { 4096 + 8, UINT64_MAX - 7, 1ULL << 40, 4 };
    for (size_t index = 0; index < 4; index++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        s_fake_store (&fake, S_HEAD, lies [index]);
        s_assert_recv_eproto (victim);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_write_index_moving_backwards (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    //  Two honest records first
    s_fake_record (&fake, 0, 5, 0, "hello");
    s_fake_record (&fake, 16, 3, 0, "abc");
    s_fake_store (&fake, S_HEAD, 32);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_memory_equal (shmipc_msg_data (msg, 0), "hello", 5);
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_memory_equal (shmipc_msg_data (msg, 0), "abc", 3);
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  The victim returned the space
    assert_int_equal (s_victim_load (&fake, S_TAIL), 32);
    s_fake_store (&fake, S_HEAD, 16);
    s_assert_recv_eproto (victim);
    s_assert_eproto (victim, &fake);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&victim);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_record_larger_than_published (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint32_t sizes [] = { 9, 100, 4096, UINT32_MAX };
    for (size_t index = 0; index < 4; index++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        s_fake_record (&fake, 0, sizes [index], 0, NULL);
        s_fake_store (&fake, S_HEAD, 16);   //  Room for 8 bytes of payload
        s_assert_recv_eproto (victim);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_record_with_unknown_or_conflicting_flags (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  Unknown bits, MORE with CHUNK, and PAD with anything else (PAD is
    //  filler, alone)
    uint32_t flags [] = { 0x10, 0x80000000u, SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK,
                          0xffffffffu, SHMIPC_RECORD_PAD | SHMIPC_RECORD_MORE,
                          SHMIPC_RECORD_PAD | SHMIPC_RECORD_CHUNK,
                          SHMIPC_RECORD_PAD | SHMIPC_RECORD_LOAN,
                          SHMIPC_RECORD_PAD | 0x10 };
    for (size_t index = 0; index < sizeof flags / sizeof flags [0]; index++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        s_fake_record (&fake, 0, 1, flags [index], "x");
        s_fake_store (&fake, S_HEAD, 16);
        s_assert_recv_eproto (victim);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_read_index_past_what_it_was_sent (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    for (int kind = 0; kind < 3; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        assert_int_equal (shmipc_channel_send (victim, "abc", 3, 0), 0);
        assert_int_equal (s_victim_load (&fake, S_HEAD), 16);
        if (kind == 0)
            s_fake_store (&fake, S_TAIL, 24);       //  Read more than was sent
        else
        if (kind == 1)
            s_fake_store (&fake, S_TAIL, 4);        //  Not on a record boundary
        else {
            s_fake_store (&fake, S_TAIL, 16);       //  Honest...
            assert_int_equal (shmipc_channel_send (victim, "d", 1, 0), 0);
            s_fake_store (&fake, S_TAIL, 8);        //  ...then backwards
        }
        assert_int_equal (shmipc_channel_send (victim, "e", 1, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EPROTO);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Holds: PAD records from the peer, and a peer whose hold table lies

static void
test_channel_skips_pad_records_from_its_peer (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    //  PAD, frame, PAD, frame (a message of two); PAD, a chunk, PAD, the
    //  rest of that frame (a message of one); a PAD last
    s_fake_record (&fake, 0, 16, SHMIPC_RECORD_PAD, NULL);
    s_fake_record (&fake, 24, 5, SHMIPC_RECORD_MORE, "hello");
    s_fake_record (&fake, 40, 0, SHMIPC_RECORD_PAD, NULL);
    s_fake_record (&fake, 48, 3, 0, "abc");
    s_fake_record (&fake, 64, 100, SHMIPC_RECORD_PAD, NULL);
    s_fake_record (&fake, 176, 2, SHMIPC_RECORD_CHUNK, "xy");
    s_fake_record (&fake, 192, 8, SHMIPC_RECORD_PAD, NULL);
    s_fake_record (&fake, 208, 1, 0, "z");
    s_fake_record (&fake, 224, 0, SHMIPC_RECORD_PAD, NULL);
    s_fake_store (&fake, S_HEAD, 232);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_msg_frames (msg), 2);
    assert_int_equal (shmipc_msg_size (msg, 0), 5);
    assert_memory_equal (shmipc_msg_data (msg, 0), "hello", 5);
    assert_int_equal (shmipc_msg_size (msg, 1), 3);
    assert_memory_equal (shmipc_msg_data (msg, 1), "abc", 3);
    //  A frame in chunks with a PAD between them is one frame
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), 3);
    assert_memory_equal (shmipc_msg_data (msg, 0), "xyz", 3);
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  The filler's space came back with the rest
    assert_int_equal (s_victim_load (&fake, S_TAIL), 232);
    assert_int_equal (shmipc_channel_error (victim), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&victim);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

//  The fake as an honest reader of the victim's ring: where it stands, and
//  the message it is putting together.
typedef struct {
    uint64_t r;                     //  Next index to read
    uint8_t *partial;               //  The message so far
    size_t partial_size;
    uint64_t delivered;             //  Messages read whole
    uint64_t pads;                  //  PAD records stepped over
} s_reader_t;

//  The size of message number index the victim sends in the lying-table test.
static size_t
s_lying_size (uint64_t index)
{
    static const size_t sizes [] = { 10, 100, 1000, 3000, 5000, 24, 9000, 1500 };
    return sizes [index % (sizeof sizes / sizeof sizes [0])];
}

//  Read the victim's ring up to its write index: every record well-formed,
//  PADs stepped over, chunks joined, each message the next one sent, byte
//  for byte. Then give the space back if release.
static void
s_fake_read (s_fake_t *fake, s_reader_t *reader, uint64_t sent, bool release)
{
    const uint8_t *ring = (const uint8_t *) shmipc_segment_data (fake->victim) + S_RING;
    uint64_t mask = 4096 - 1;
    uint64_t head = s_victim_load (fake, S_HEAD);
    assert_true (head - reader->r <= 4096);
    while (reader->r != head) {
        uint64_t header;
        memcpy (&header, ring + (reader->r & mask), 8);
        uint32_t size = (uint32_t) header, flags = (uint32_t) (header >> 32);
        uint64_t need = shmipc_ring_record_size (size);
        assert_true (need <= head - reader->r);
        assert_true (flags == 0 || flags == SHMIPC_RECORD_CHUNK || flags == SHMIPC_RECORD_PAD);
        if (flags == SHMIPC_RECORD_PAD) {
            reader->pads++;
            reader->r += need;
            continue;
        }
        reader->partial = (uint8_t *) realloc (reader->partial, reader->partial_size + size + 1);
        assert_non_null (reader->partial);
        for (uint32_t index = 0; index < size; index++)
            reader->partial [reader->partial_size + index] = ring [(reader->r + 8 + index) & mask];
        reader->partial_size += size;
        reader->r += need;
        if (flags == 0) {
            assert_true (reader->delivered < sent);
            assert_int_equal (reader->partial_size, s_lying_size (reader->delivered));
            assert_true (tu_check (reader->partial, reader->partial_size, reader->delivered));
            reader->delivered++;
            reader->partial_size = 0;
        }
    }
    if (release)
        s_fake_store (fake, S_TAIL, reader->r);
}

//  Fill the fake's hold table with a lie of the given kind, the victim's
//  write index being head and our read index tail.
static void
s_fake_lie (shmipc_holds_table_t *table, int kind, uint64_t head, uint64_t tail,
            uint64_t *random)
{
    uint64_t mask = 4096 - 1;
    table->mask = 0;
    switch (kind) {
        case 0:                     //  Every slot, garbage
            for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
                table->slots [slot] = tu_random (random);
            table->mask = UINT64_MAX;
            break;
        case 1:                     //  Every slot, records anywhere, overlapping
            for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
                table->slots [slot] = SHMIPC_HOLD_SLOT (
                    tu_random (random) & mask & ~(uint64_t) 7,
                    8 * (2 + tu_random (random) % 510));
            table->mask = UINT64_MAX;
            break;
        case 2:                     //  Two halves: the whole ring
            table->slots [7] = SHMIPC_HOLD_SLOT (0, 2048);
            table->slots [40] = SHMIPC_HOLD_SLOT (2048, 2048);
            table->mask = (uint64_t) 1 << 7 | (uint64_t) 1 << 40;
            break;
        case 3:                     //  What we have not read yet
            if (head - tail >= 16)
                table->slots [0] = SHMIPC_HOLD_SLOT (tail & mask,
                                                     head - tail < 4096 ? head - tail : 4088);
            table->mask = 1;
            break;
        case 4:                     //  A record the victim's cursor is inside
            table->slots [63] = SHMIPC_HOLD_SLOT ((head - 64) & mask, 128);
            table->mask = (uint64_t) 1 << 63;
            break;
        case 5:                     //  Small records every 64 bytes
            for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
                table->slots [slot] = SHMIPC_HOLD_SLOT (64 * slot, 16);
            table->mask = UINT64_MAX;
            break;
        default:                    //  The truth: nothing held
            break;
    }
}

//  A victim and the fake that reads its ring, for the lying-table tests.
typedef struct {
    s_fake_t fake;
    shmipc_channel_t *victim;
    shmipc_holds_table_t *table;    //  The fake's hold table
    const uint8_t *ring;            //  The victim's ring, as the fake maps it
    s_reader_t reader;
    uint64_t sent;                  //  Messages the victim sent
} s_liar_t;

static void
s_liar_open (s_liar_t *liar)
{
    memset (liar, 0, sizeof *liar);
    liar->victim = s_fake_new (&liar->fake, 4096);
    shmipc_channel_set_sndtimeo (liar->victim, 10);
    liar->table = (shmipc_holds_table_t *) (liar->fake.base + S_HOLDS);
    liar->ring = (const uint8_t *) shmipc_segment_data (liar->fake.victim) + S_RING;
}

static void
s_liar_close (s_liar_t *liar)
{
    free (liar->reader.partial);
    shmipc_channel_destroy (&liar->victim);
    s_fake_destroy (&liar->fake);
}

//  The fake's read index: what it gave back of the victim's ring.
static uint64_t
s_liar_tail (s_liar_t *liar)
{
    return atomic_load_explicit ((_Atomic uint64_t *) (liar->fake.base + S_TAIL),
                                 memory_order_acquire);
}

//  The victim sends its next message (buffer is room for the biggest),
//  without waiting or waiting up to its 10 ms send timeout. Asserts that
//  the call comes back at once or at the timeout, and that it changed no
//  byte outside its free space (what the fake has not given back, read or
//  not, is as it was). Returns the send's result.
static int
s_liar_send (s_liar_t *liar, uint8_t *buffer, bool wait)
{
    size_t size = s_lying_size (liar->sent);
    tu_fill (buffer, size, liar->sent);
    uint64_t head = s_victim_load (&liar->fake, S_HEAD);
    uint64_t tail = s_liar_tail (liar);
    uint8_t before [4096];
    memcpy (before, liar->ring, sizeof before);
    int64_t started = shmipc__now_ms ();
    int rc = shmipc_channel_send (liar->victim, buffer, size, wait ? 0 : SHMIPC_DONTWAIT);
    int code = errno;
    assert_true (shmipc__now_ms () - started < 2000);
    for (uint64_t at = 0; at < 4096; at++)
        if (liar->ring [at] != before [at])
            assert_true (((at - head) & 4095) < tail + 4096 - head);
    if (rc == 0)
        liar->sent++;
    errno = code;
    return rc;
}

static void
test_channel_writes_only_free_space_whatever_the_peer_hold_table_says (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t *buffer = (uint8_t *) malloc (9000);
    assert_non_null (buffer);
    s_liar_t liar;
    s_liar_open (&liar);
    uint64_t random = 0x853c49e6748fea9bULL;
    uint64_t sent = 0, refused = 0, timed_out = 0, cut_off = 0, pads = 0;
    long rounds = tu_scaled (600, 60);
    for (long round = 0; round < rounds; round++) {
        int kind = (int) (tu_random (&random) % 8);
        s_fake_lie (liar.table, kind, s_victim_load (&liar.fake, S_HEAD),
                    s_liar_tail (&liar), &random);
        for (int attempt = 0; attempt < 4; attempt++) {
            //  The next message (or the one that went part-way: the same)
            bool wait = attempt == 0 && tu_random (&random) % 4 == 0;
            int rc = s_liar_send (&liar, buffer, wait);
            if (rc == 0)
                continue;
            if (errno == EAGAIN) {
                refused++;
                timed_out += wait;
                break;
            }
            //  Only a table that leaves no room in a ring the reader gave
            //  back whole is a lie it is cut off for
            assert_int_equal (errno, EPROTO);
            assert_string_equal (shmipc_channel_reason (liar.victim),
                                 "peer hold table leaves no room");
            assert_true (s_liar_tail (&liar) == s_victim_load (&liar.fake, S_HEAD));
            cut_off++;
            break;
        }
        if (shmipc_channel_error (liar.victim)) {
            s_fake_read (&liar.fake, &liar.reader, liar.sent, true);
            sent += liar.sent;
            pads += liar.reader.pads;
            s_liar_close (&liar);
            s_liar_open (&liar);
            continue;
        }
        s_fake_read (&liar.fake, &liar.reader, liar.sent, tu_random (&random) % 4 != 0);
    }
    //  The truth at last: everything goes, and arrives intact and in order
    liar.table->mask = 0;
    for (int round = 0; round < 1000 && liar.reader.delivered < liar.sent + 3; round++) {
        if (liar.sent < liar.reader.delivered + 3)
            s_liar_send (&liar, buffer, false);
        s_fake_read (&liar.fake, &liar.reader, liar.sent, true);
    }
    assert_true (liar.reader.delivered >= 3 && liar.reader.delivered == liar.sent);
    assert_int_equal (shmipc_channel_error (liar.victim), 0);
    sent += liar.sent;
    pads += liar.reader.pads;
    print_message ("    %llu messages, %llu sends refused (%llu timed out), %llu cut off,"
                   " %llu PAD records\n", (unsigned long long) sent,
                   (unsigned long long) refused, (unsigned long long) timed_out,
                   (unsigned long long) cut_off, (unsigned long long) pads);
    assert_true (timed_out > 0);
    assert_true (pads > 0);
    s_liar_close (&liar);
    free (buffer);
    tu_assert_baseline (baseline);
}

static void
test_channel_cuts_off_a_peer_whose_hold_table_leaves_no_room (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint8_t *buffer = (uint8_t *) malloc (9000);
    assert_non_null (buffer);
    s_liar_t liar;
    s_liar_open (&liar);
    //  Three messages; the fake reads them and gives back only the first
    for (int index = 0; index < 3; index++)
        assert_int_equal (s_liar_send (&liar, buffer, false), 0);
    s_fake_read (&liar.fake, &liar.reader, liar.sent, false);
    s_fake_store (&liar.fake, S_TAIL, shmipc_ring_record_size (s_lying_size (0)));
    //  Then says it holds the whole ring, in two halves: no place for
    //  anything, which could be so while part of the ring is not back
    uint64_t random = 1;
    s_fake_lie (liar.table, 2, 0, 0, &random);
    assert_int_equal (s_liar_send (&liar, buffer, false), -1);
    assert_int_equal (errno, EAGAIN);
    int64_t started = shmipc__now_ms ();
    assert_int_equal (s_liar_send (&liar, buffer, true), -1);
    assert_int_equal (errno, EAGAIN);
    assert_true (shmipc__now_ms () - started >= 5);
    assert_int_equal (shmipc_channel_error (liar.victim), 0);
    //  All of it given back, and still no place: a lie
    s_fake_store (&liar.fake, S_TAIL, liar.reader.r);
    assert_int_equal (s_liar_send (&liar, buffer, false), -1);
    assert_int_equal (errno, EPROTO);
    assert_string_equal (shmipc_channel_reason (liar.victim), "peer hold table leaves no room");
    s_assert_eproto (liar.victim, &liar.fake);
    assert_int_equal (liar.reader.delivered, 3);
    s_liar_close (&liar);
    free (buffer);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Lies on the socket

static void
test_channel_refuses_bad_socket_records_after_handshake (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    for (int kind = 0; kind < 9; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        uint8_t record [SHMIPC__WIRE_MAX + 16];
        memset (record, 0, sizeof record);
        size_t size = SHMIPC__RECORD_HEAD;
        switch (kind) {
            case 0: shmipc__wire_header (record, SHMIPC__WIRE_WAKE, 5); break;
            case 1: shmipc__wire_header (record, 9, 0); break;
            case 2: shmipc__wire_header (record, SHMIPC__WIRE_ACK, 1); break;
            case 3:
                shmipc__wire_header (record, SHMIPC__WIRE_CTRL, 10);
                size += 5;                          //  Shorter than it says
                break;
            case 4:
                shmipc__wire_header (record, SHMIPC__WIRE_WAKE, 0);
                record [2] = 1;                     //  Reserved bits
                break;
            case 5:
                size = shmipc__wire_hello (record, SHMIPC_CLIENT, 4096,
                                           shmipc__segment_bytes (4096), "again", 5);
                break;
            case 6:                                 //  Longer than any record
                shmipc__wire_header (record, SHMIPC__WIRE_CTRL, SHMIPC_CTRL_MAX + 8);
                size = sizeof record;
                break;
            case 7:                                 //  A descriptor riding along
                shmipc__wire_header (record, SHMIPC__WIRE_WAKE, 0);
                break;
            default:                                //  ACK going backwards
                shmipc__wire_header (record, SHMIPC__WIRE_ACK, 0);
                break;
        }
        if (kind == 7) {
            int fd = dup (shmipc_segment_fd (fake.segment));
            assert_int_equal (shmipc_fdpass_send (fake.sock, record, size, &fd, 1, 0), size);
            close (fd);
        }
        else
        if (kind == 8) {
            assert_int_equal (shmipc_channel_send_ctrl (victim, "1", 1), 0);
            assert_int_equal (shmipc_channel_send_ctrl (victim, "2", 1), 0);
            uint8_t ack [SHMIPC__RECORD_HEAD];
            shmipc__wire_header (ack, SHMIPC__WIRE_ACK, 2);
            s_fake_send (&fake, ack, sizeof ack);
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
            s_fake_send (&fake, record, size);
        }
        else
            s_fake_send (&fake, record, size);
        assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLERR);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_peer_that_ignores_ctrl_window (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    for (int round = 0; round < 2; round++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        uint8_t record [SHMIPC__RECORD_HEAD + 4];
        shmipc__wire_header (record, SHMIPC__WIRE_CTRL, 4);
        for (uint32_t index = 0; index < SHMIPC_CTRL_WINDOW; index++) {
            memcpy (record + SHMIPC__RECORD_HEAD, &index, 4);
            s_fake_send (&fake, record, sizeof record);
        }
        assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLCTRL | SHMIPC_POLLOUT);
        if (round == 1) {
            //  Reading one opens one slot: one more is fine, two are not
            uint32_t value;
            assert_int_equal (shmipc_channel_recv_ctrl (victim, &value, 4), 4);
            assert_int_equal (value, 0);
            s_fake_send (&fake, record, sizeof record);
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLCTRL | SHMIPC_POLLOUT);
        }
        s_fake_send (&fake, record, sizeof record);
        assert_true (shmipc_channel_events (victim) & SHMIPC_POLLERR);
        assert_int_equal (shmipc_channel_error (victim), EPROTO);
        s_assert_eproto (victim, &fake);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_resends_ack_that_found_the_socket_full (void **state)
{
    //  Not hostile, only slow: the fake never reads its socket, so the
    //  ACKs the channel sends for each control message read fill it; the
    //  running count in a later ACK must make up for those that could not go
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    uint8_t record [SHMIPC__RECORD_HEAD + 1] = { 0 };
    shmipc__wire_header (record, SHMIPC__WIRE_CTRL, 1);
    //  Far more ACKs than a socket buffer holds
    uint32_t count = 0;
    while (count < 3000) {
        s_fake_send (&fake, record, sizeof record);
        char byte;
        assert_int_equal (shmipc_channel_recv_ctrl (victim, &byte, 1), 1);
        count++;
    }
    //  The fake reads everything: the last ACK that went is behind
    uint8_t buffer [SHMIPC__WIRE_MAX];
    uint32_t last = 0;
    ssize_t rc;
    while ((rc = recv (fake.sock, buffer, sizeof buffer, MSG_DONTWAIT)) > 0) {
        shmipc__wire_t decoded;
        const char *reason;
        if (shmipc__wire_decode (buffer, (size_t) rc, &decoded, &reason) == 0
        &&  decoded.type == SHMIPC__WIRE_ACK)
            last = decoded.value;
    }
    assert_true (last > 0);
    assert_true (last < count);
    //  The next time the channel reads its socket it sends the count
    shmipc_channel_events (victim);
    last = 0;
    while ((rc = recv (fake.sock, buffer, sizeof buffer, MSG_DONTWAIT)) > 0) {
        shmipc__wire_t decoded;
        const char *reason;
        if (shmipc__wire_decode (buffer, (size_t) rc, &decoded, &reason) == 0
        &&  decoded.type == SHMIPC__WIRE_ACK)
            last = decoded.value;
    }
    assert_int_equal (last, count);
    assert_int_equal (shmipc_channel_error (victim), 0);
    shmipc_channel_destroy (&victim);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Wake pipes: PIPE records on the socket, bytes in the pipes

//  Take the victim's PIPE record, which follows its HELLO: return the write
//  end of its wake pipe.
static int
s_fake_take_pipe (s_fake_t *fake)
{
    uint8_t buffer [SHMIPC__WIRE_MAX];
    int fd = -1;
    size_t nfds = 0;
    ssize_t rc = shmipc_fdpass_recv (fake->sock, buffer, sizeof buffer, &fd, 1, &nfds, 0);
    assert_int_equal (rc, SHMIPC__RECORD_HEAD);
    shmipc__wire_t record;
    const char *reason;
    assert_int_equal (shmipc__wire_decode (buffer, (size_t) rc, &record, &reason), 0);
    assert_int_equal (record.type, SHMIPC__WIRE_PIPE);
    assert_int_equal (nfds, 1);
    return fd;
}

//  Count WAKE records waiting on the fake's socket, reading them all.
static int
s_fake_count_wakes (s_fake_t *fake)
{
    uint8_t buffer [SHMIPC__WIRE_MAX];
    int wakes = 0;
    ssize_t rc;
    while ((rc = recv (fake->sock, buffer, sizeof buffer, MSG_DONTWAIT)) > 0)
        if (buffer [0] == SHMIPC__WIRE_WAKE)
            wakes++;
    return wakes;
}

static void
test_channel_refuses_pipe_records_that_break_the_rules (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    char fifo [256];
    snprintf (fifo, sizeof fifo, "/tmp/shmipc-test-fifo-%d", (int) getpid ());
    static const char *reasons [] = {
        "PIPE twice or without a descriptor",               //  0: no descriptor
        "PIPE twice or without a descriptor",               //  1: twice
        "bad PIPE",                                         //  2: value 1
        "bad PIPE",                                         //  3: a payload
        "descriptors or oversize record on the socket",     //  4: two descriptors
        "PIPE descriptor is not a pipe",                    //  5: a memfd
        "PIPE descriptor is not a pipe",                    //  6: a socket
        "PIPE descriptor is not a pipe",                    //  7: /dev/null
        "PIPE descriptor is not a pipe",                    //  8: a named FIFO
        "PIPE descriptor is not a pipe",                    //  9: an eventfd
    };
    for (int kind = 0; kind < 10; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        int fds_open = tu_fd_count ();
        int kept = 0;                   //  Descriptors the victim keeps till destroyed
        int ends [2];
        assert_int_equal (pipe2 (ends, O_CLOEXEC), 0);
        int fds [2] = { ends [1], ends [1] };
        int other = -1;
        if (kind == 0)
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, NULL, 0);
        else
        if (kind == 1) {
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, fds, 1);
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
            assert_int_equal (tu_fd_count (), fds_open + 2 + 1);
            kept = 1;                   //  Its own description of our pipe
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, fds, 1);
        }
        else
        if (kind == 2)
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 1, fds, 1);
        else
        if (kind == 3) {
            uint8_t record [SHMIPC__RECORD_HEAD + 8] = { 0 };
            shmipc__wire_header (record, SHMIPC__WIRE_PIPE, 0);
            assert_int_equal (shmipc_fdpass_send (fake.sock, record, sizeof record, fds, 1, 0),
                              sizeof record);
        }
        else
        if (kind == 4)
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, fds, 2);
        else {
            if (kind == 5)
                other = memfd_create ("shmipc:notapipe", MFD_CLOEXEC);
            else
            if (kind == 6) {
                int pair [2];
                assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
                close (pair [1]);
                other = pair [0];
            }
            else
            if (kind == 7)
                other = open ("/dev/null", O_WRONLY | O_CLOEXEC);
            else
            if (kind == 8) {
                assert_int_equal (mkfifo (fifo, 0600), 0);
                other = open (fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            }
            else
                other = eventfd (0, EFD_CLOEXEC);
            assert_true (other >= 0);
            s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, &other, 1);
        }
        assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLERR);
        assert_string_equal (shmipc_channel_reason (victim), reasons [kind]);
        s_assert_eproto (victim, &fake);
        //  What came with the record is closed at once
        assert_int_equal (tu_fd_count (), fds_open + 2 + (other >= 0) + kept);
        shmipc_channel_destroy (&victim);
        close (ends [0]);
        close (ends [1]);
        if (other >= 0)
            close (other);
        if (kind == 8)
            unlink (fifo);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

//  The fake makes the victim's wake pipe blocking (the description it sent
//  is shared with the one it kept), fills it, and closes its read end: the
//  victim's wakes must neither block nor raise SIGPIPE, since it writes
//  through a description of its own that also reads.
static void
test_channel_wakes_through_the_peer_pipe_and_never_blocks_on_it (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    int ends [2];
    assert_int_equal (pipe2 (ends, O_CLOEXEC | O_NONBLOCK), 0);
    s_fake_send_fds (&fake, SHMIPC__WIRE_PIPE, 0, &ends [1], 1);
    assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
    (void) s_fake_count_wakes (&fake);

    //  An honest wake: the fake says it sleeps, the victim sends one byte
    //  into the pipe, not a WAKE record
    s_fake_store (&fake, S_RX_SLEEP, 1);
    assert_int_equal (shmipc_channel_send (victim, "a", 1, 0), 0);
    uint8_t bytes [8];
    assert_int_equal (read (ends [0], bytes, sizeof bytes), 1);
    assert_int_equal (s_fake_count_wakes (&fake), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (victim, &stats);
    assert_int_equal (stats.wakeups_sent, 1);

    //  Fill the pipe, then make the shared description blocking
    size_t filled = 0;
    while (write (ends [1], "x", 1) == 1)
        filled++;
    assert_int_equal (errno, EAGAIN);
    assert_true (filled > 0);
    int flags = fcntl (ends [1], F_GETFL);
    assert_int_equal (fcntl (ends [1], F_SETFL, flags & ~O_NONBLOCK), 0);
    //  A blocked write would stop this test: let the alarm fail it instead
    alarm (20);
    s_fake_store (&fake, S_RX_SLEEP, 3);
    assert_int_equal (shmipc_channel_send (victim, "b", 1, 0), 0);
    shmipc_channel_stats (victim, &stats);
    assert_int_equal (stats.wakeups_sent, 1);       //  Dropped: the pipe has some

    //  No reader left but the victim's own description: no SIGPIPE, no EPIPE
    close (ends [0]);
    close (ends [1]);
    s_fake_store (&fake, S_RX_SLEEP, 5);
    assert_int_equal (shmipc_channel_send (victim, "c", 1, 0), 0);
    alarm (0);
    assert_int_equal (shmipc_channel_error (victim), 0);
    assert_true (shmipc_channel_events (victim) & SHMIPC_POLLOUT);
    shmipc_channel_destroy (&victim);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

//  The fake fills the victim's wake pipe and closes its write end: the
//  victim reads what a wake may have left once it has armed (a bounded
//  number of reads), its wake descriptor then rests, and never hangs up.
static void
test_channel_drains_a_flooded_wake_pipe_and_it_never_hangs_up (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    int give = s_fake_take_pipe (&fake);
    int wake = shmipc_channel_wake_fd (victim);
    assert_true (wake >= 0);
    //  One page: all a peer can make the kernel hold for our wake-ups
    assert_int_equal (fcntl (give, F_GETPIPE_SZ), 4096);
    assert_int_equal (fcntl (give, F_SETFL, O_NONBLOCK), 0);
    size_t filled = 0;
    while (write (give, "x", 1) == 1)
        filled++;
    assert_int_equal (filled, 4096);
    close (give);
    assert_int_equal (shmipc__poll_fd (wake, POLLIN, 0), POLLIN);
    //  The first events arms (it reads the pipe only once a flag was armed
    //  since the last read: until then an honest peer writes nothing)
    assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
    assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
    //  Drained; the write end is gone, and still no hang-up (poll says
    //  nothing at all): nothing to spin on
    assert_int_equal (shmipc__poll_fd (wake, POLLIN, 0), 0);
    shmipc_channel_stats_t stats;
    shmipc_channel_stats (victim, &stats);
    assert_int_equal (stats.wakeups_received, 4096);
    assert_int_equal (shmipc_channel_error (victim), 0);
    shmipc_channel_destroy (&victim);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  Loans: POOL records on the socket, LOAN records in the ring

//  The data area of the fake's pool (two units, after the segment header).
#define S_POOL_AREA     (2 * SHMIPC_LOANS_UNIT)

//  The segment header as segment.c writes it, for pools made by hand.
#define S_SEGMENT_MAGIC 0x4745534350494d53ULL   //  "SMIPCSEG"
typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t kind;
    uint64_t size;
} s_segment_header_t;

//  The data area of a pool (the fake's read-write mapping).
static uint8_t *
s_pool_area (shmipc_segment_t *pool)
{
    return (uint8_t *) shmipc_segment_data (pool) + SHMIPC_SEGMENT_HEADER;
}

//  A pool as an honest peer makes it (a sealed segment of kind LOAN, every
//  page allocated), its area S_POOL_AREA bytes filled with tu_fill seed 7.
static shmipc_segment_t *
s_pool_new (void)
{
    shmipc_segment_t *pool = shmipc_segment_new ("fakepool",
                                                 SHMIPC_SEGMENT_HEADER + S_POOL_AREA,
                                                 SHMIPC_LOANS_KIND);
    assert_non_null (pool);
    assert_int_equal (shmipc_segment_size (pool), SHMIPC_SEGMENT_HEADER + S_POOL_AREA);
    tu_fill (s_pool_area (pool), S_POOL_AREA, 7);
    return pool;
}

//  Make the fake's pool and send it in a POOL record.
static shmipc_segment_t *
s_fake_pool (s_fake_t *fake)
{
    shmipc_segment_t *pool = s_pool_new ();
    int fd = shmipc_segment_fd (pool);
    s_fake_send_fds (fake, SHMIPC__WIRE_POOL, 0, &fd, 1);
    return pool;
}

//  Write a LOAN record at ring index at: flags (LOAN added), the payload
//  offset and size in little-endian, payload_size bytes of it (16 is
//  honest; past 16, zeros). Returns the index after the record.
static uint64_t
s_fake_loan (s_fake_t *fake, uint64_t at, uint32_t flags, uint64_t offset,
             uint64_t size, uint32_t payload_size)
{
    uint8_t payload [32] = { 0 };
    assert_true (payload_size <= sizeof payload);
    for (int index = 0; index < 8; index++) {
        payload [index] = (uint8_t) (offset >> (8 * index));
        payload [8 + index] = (uint8_t) (size >> (8 * index));
    }
    s_fake_record (fake, at, payload_size, flags | SHMIPC_RECORD_LOAN, payload);
    return at + shmipc_ring_record_size (payload_size);
}

//  Assert that a receive breaks the victim with EPROTO for reason, and that
//  it stays closed.
static void
s_assert_broken_for (shmipc_channel_t *victim, s_fake_t *fake, const char *reason)
{
    s_assert_recv_eproto (victim);
    assert_string_equal (shmipc_channel_reason (victim), reason);
    s_assert_eproto (victim, fake);
}

static void
test_channel_refuses_loan_record_before_any_pool (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    for (int kind = 0; kind < 3; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        uint64_t head = 0;
        if (kind == 2) {                //  A frame first: the LOAN is the second
            s_fake_record (&fake, 0, 3, SHMIPC_RECORD_MORE, "abc");
            head = 16;
        }
        head = s_fake_loan (&fake, head, 0, 0, 16, 16);
        s_fake_store (&fake, S_HEAD, head);
        //  Something else on the socket, read with the look for a POOL
        uint8_t wake [SHMIPC__RECORD_HEAD];
        shmipc__wire_header (wake, SHMIPC__WIRE_WAKE, 0);
        s_fake_send (&fake, wake, sizeof wake);
        if (kind == 1) {                //  Found by events (), not a receive
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLERR);
            assert_string_equal (shmipc_channel_reason (victim), "LOAN record before POOL");
            s_assert_eproto (victim, &fake);
        }
        else
            s_assert_broken_for (victim, &fake, "LOAN record before POOL");
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_takes_pool_still_queued_on_its_socket_at_first_loan (void **state)
{
    //  The POOL is sent before the LOAN is published, but the victim reads
    //  its socket only when it meets the LOAN: still in time, behind others
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    uint8_t ctrl [SHMIPC__RECORD_HEAD + 2];
    shmipc__wire_header (ctrl, SHMIPC__WIRE_CTRL, 2);
    memcpy (ctrl + SHMIPC__RECORD_HEAD, "hi", 2);
    s_fake_send (&fake, ctrl, sizeof ctrl);
    int fds_open = tu_fd_count ();
    int maps_open = tu_maps_with ("fakepool");
    shmipc_segment_t *pool = s_fake_pool (&fake);
    int maps_fake = tu_maps_with ("fakepool");
    assert_true (maps_fake > maps_open);
    uint64_t head = s_fake_loan (&fake, 0, 0, 100, 200, 16);
    s_fake_store (&fake, S_HEAD, head);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_msg_frames (msg), 1);
    assert_int_equal (shmipc_msg_size (msg, 0), 200);
    assert_memory_equal (shmipc_msg_data (msg, 0), s_pool_area (pool) + 100, 200);
    //  Now mapped, read-only, its descriptor kept (ours plus the victim's)
    assert_true (tu_maps_with ("fakepool") > maps_fake);
    assert_int_equal (tu_fd_count (), fds_open + 2);
    //  The control message that came before it is there too
    char text [2];
    assert_int_equal (shmipc_channel_recv_ctrl (victim, text, 2), 2);
    assert_memory_equal (text, "hi", 2);
    assert_int_equal (shmipc_channel_error (victim), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&victim);
    shmipc_segment_destroy (&pool);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_pool_records_that_break_the_rules (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    static const char *reasons [] = {
        "POOL twice or without a descriptor",               //  0: no descriptor
        "POOL twice or without a descriptor",               //  1: twice, unmapped
        "POOL twice or without a descriptor",               //  2: twice, mapped
        "bad POOL",                                         //  3: value 1
        "bad POOL",                                         //  4: a payload
        "reserved bits set",                                //  5
        "descriptors or oversize record on the socket",     //  6: two descriptors
        "descriptors or oversize record on the socket",     //  7: WAKE with one
        "descriptors or oversize record on the socket",     //  8: ACK with one
        "descriptors or oversize record on the socket",     //  9: CTRL with one
    };
    for (int kind = 0; kind < 10; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        shmipc_segment_t *pool = s_pool_new ();
        int fd = shmipc_segment_fd (pool);
        int fds [2] = { fd, fd };
        int fds_open = tu_fd_count ();
        int kept = 0;                   //  Descriptors the victim keeps till destroyed
        uint8_t record [SHMIPC__RECORD_HEAD + 8] = { 0 };
        size_t size = SHMIPC__RECORD_HEAD;
        if (kind == 0)
            s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 0, NULL, 0);
        else
        if (kind == 1 || kind == 2) {
            s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 0, &fd, 1);
            if (kind == 2) {            //  Mapped at a first LOAN, read
                s_fake_store (&fake, S_HEAD, s_fake_loan (&fake, 0, 0, 0, 8, 16));
                shmipc_msg_t *msg = shmipc_msg_new ();
                assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
                assert_memory_equal (shmipc_msg_data (msg, 0), s_pool_area (pool), 8);
                shmipc_msg_destroy (&msg);
            }
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
            assert_int_equal (tu_fd_count (), fds_open + 1);
            kept = 1;
            s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 0, &fd, 1);
        }
        else
        if (kind == 3)
            s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 1, &fd, 1);
        else
        if (kind == 6)
            s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 0, fds, 2);
        else {
            int type = kind == 7 ? SHMIPC__WIRE_WAKE
                     : kind == 8 ? SHMIPC__WIRE_ACK
                     : kind == 9 ? SHMIPC__WIRE_CTRL : SHMIPC__WIRE_POOL;
            shmipc__wire_header (record, type, kind == 9 ? 8 : 0);
            if (kind == 4 || kind == 9)
                size += 8;
            if (kind == 5)
                record [3] = 1;
            assert_int_equal (shmipc_fdpass_send (fake.sock, record, size, &fd, 1, 0), size);
        }
        assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLERR);
        assert_string_equal (shmipc_channel_reason (victim), reasons [kind]);
        s_assert_eproto (victim, &fake);
        //  What came with the record is closed at once
        assert_int_equal (tu_fd_count (), fds_open + kept);
        shmipc_channel_destroy (&victim);
        shmipc_segment_destroy (&pool);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

//  A memfd of size bytes for a pool made by hand: populated (every byte
//  written) or left with holes (only the first page written), a segment
//  header at the start (with magic, kind and size as given, if size holds
//  one), and seals as given (0: unsealed).
static int
s_pool_fd (size_t size, bool populated, uint64_t magic, uint32_t kind,
           uint64_t header_size, int seals)
{
    int fd = memfd_create ("shmipc:badpool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) size), 0);
    static uint8_t zeros [4096];
    size_t written = populated ? size : (size < sizeof zeros ? size : sizeof zeros);
    for (size_t at = 0; at < written; at += sizeof zeros) {
        size_t chunk = written - at < sizeof zeros ? written - at : sizeof zeros;
        assert_int_equal (pwrite (fd, zeros, chunk, (off_t) at), (ssize_t) chunk);
    }
    s_segment_header_t header = { .magic = magic, .version = 1, .kind = kind,
                                  .size = header_size };
    if (size >= sizeof header)
        assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
    if (seals)
        assert_int_equal (fcntl (fd, F_ADD_SEALS, seals), 0);
    return fd;
}

static void
test_channel_refuses_peer_loan_pool_it_cannot_trust (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    const size_t good = SHMIPC_SEGMENT_HEADER + S_POOL_AREA;
    const size_t beyond = SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_MAX + 4096;
    const int seals = SHMIPC_SEGMENT_SEALS;
    for (int kind = 0; kind < 19; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        int fds_open = tu_fd_count ();
        int fd = -1;
        int code = 0;                   //  What shmipc_segment_attach says
        shmipc_segment_t *segment = NULL;
        switch (kind) {
            case 0: {                   //  A pipe
                int pipe_fds [2];
                assert_int_equal (pipe2 (pipe_fds, O_CLOEXEC), 0);
                close (pipe_fds [1]);
                fd = pipe_fds [0];
                code = EBADF;
                break;
            }
            case 1: {                   //  A regular file, populated, with a
                char path [] = "/tmp/shmipc-hostile-XXXXXX";   //  good header
                fd = mkostemp (path, O_CLOEXEC);
                assert_true (fd >= 0);
                unlink (path);
                static uint8_t page [4096];
                for (size_t at = 0; at < good; at += sizeof page)
                    assert_int_equal (pwrite (fd, page, sizeof page, (off_t) at), sizeof page);
                s_segment_header_t header = { S_SEGMENT_MAGIC, 1, SHMIPC_LOANS_KIND, good };
                assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
                code = -1;              //  Not tmpfs (EBADF) or tmpfs, unsealed (EPERM)
                break;
            }
            case 2:                     //  A character device
                fd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
                assert_true (fd >= 0);
                code = EBADF;
                break;
            case 3: {                   //  A socket
                int pair [2];
                assert_int_equal (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
                close (pair [1]);
                fd = pair [0];
                code = EBADF;
                break;
            }
            case 4:                     //  Unsealed
                fd = s_pool_fd (good, true, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good, 0);
                code = EPERM;
                break;
            case 5:                     //  Cannot be sealed (F_SEAL_SEAL only)
                fd = memfd_create ("shmipc:badpool", MFD_CLOEXEC);
                assert_true (fd >= 0);
                assert_int_equal (ftruncate (fd, (off_t) good), 0);
                code = EPERM;
                break;
            case 6:                     //  Sealed for writes too (more seals)
                fd = s_pool_fd (good, true, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good,
                                seals | F_SEAL_WRITE);
                code = EPERM;
                break;
            case 7:                     //  Writes not sealed (fewer seals)
                fd = s_pool_fd (good, true, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good,
                                seals & ~F_SEAL_FUTURE_WRITE);
                code = EPERM;
                break;
            case 8:                     //  A channel segment ("CHAN"), not a pool
                segment = shmipc_segment_new ("badpool", good, S_KIND);
                assert_non_null (segment);
                fd = dup (shmipc_segment_fd (segment));
                code = EPROTO;
                break;
            case 9:                     //  Bad magic
                fd = s_pool_fd (good, true, S_SEGMENT_MAGIC ^ 1, SHMIPC_LOANS_KIND, good, seals);
                code = EPROTO;
                break;
            case 10:                    //  A header size that is not the file's
                fd = s_pool_fd (good, true, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good + 4096,
                                seals);
                code = EPROTO;
                break;
            case 11:                    //  Holes: only the header page written
                fd = s_pool_fd (good, false, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good, seals);
                code = ENODATA;
                break;
            case 12:                    //  Fallocated but never written
                fd = s_pool_fd (good, false, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, good, 0);
                assert_int_equal (fallocate (fd, 0, 0, (off_t) good), 0);
                assert_int_equal (fcntl (fd, F_ADD_SEALS, seals), 0);
                code = ENODATA;
                break;
            case 13:                    //  A header and no data area
                segment = shmipc_segment_new ("badpool", SHMIPC_SEGMENT_HEADER,
                                              SHMIPC_LOANS_KIND);
                assert_non_null (segment);
                fd = dup (shmipc_segment_fd (segment));
                code = EMSGSIZE;
                break;
            case 14:                    //  Not whole pages
                fd = s_pool_fd (good + 100, true, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND,
                                good + 100, seals);
                code = EMSGSIZE;
                break;
            case 15:                    //  A page past the largest pool (sparse:
                                        //  the size is checked before holes)
                fd = s_pool_fd (beyond, false, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND, beyond,
                                seals);
                code = EMSGSIZE;
                break;
            case 16:                    //  The largest pool, sparse: the size
                                        //  passes, the holes do not
                fd = s_pool_fd (beyond - 4096, false, S_SEGMENT_MAGIC, SHMIPC_LOANS_KIND,
                                beyond - 4096, seals);
                code = ENODATA;
                break;
            case 17: {                  //  A good pool, opened write-only: it
                                        //  cannot be mapped for reading
                segment = s_pool_new ();
                char path [64];
                snprintf (path, sizeof path, "/proc/self/fd/%d", shmipc_segment_fd (segment));
                fd = open (path, O_WRONLY | O_CLOEXEC);
                assert_true (fd >= 0);
                code = EACCES;
                break;
            }
            default: {                  //  A good pool, as an O_PATH descriptor
                segment = s_pool_new ();
                char path [64];
                snprintf (path, sizeof path, "/proc/self/fd/%d", shmipc_segment_fd (segment));
                fd = open (path, O_PATH | O_CLOEXEC);
                assert_true (fd >= 0);
                code = EBADF;
                break;
            }
        }
        //  The descriptor fails the check it was made for
        errno = 0;
        assert_null (shmipc_segment_attach (dup (fd), SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_UNIT,
                                            SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_MAX,
                                            SHMIPC_LOANS_KIND));
        if (code > 0)
            assert_int_equal (errno, code);
        else
            assert_true (errno == EBADF || errno == EPERM);
        int fds_made = tu_fd_count ();
        s_fake_send_fds (&fake, SHMIPC__WIRE_POOL, 0, &fd, 1);
        close (fd);
        shmipc_segment_destroy (&segment);
        //  Kept, unchecked, until the first LOAN
        assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
        assert_int_equal (tu_fd_count (), fds_open + 1);
        assert_true (fds_made >= fds_open + 1);
        s_fake_store (&fake, S_HEAD, s_fake_loan (&fake, 0, 0, 0, 0, 16));
        s_assert_broken_for (victim, &fake, "peer loan pool refused");
        //  Closed and unmapped at the refusal, not at destroy
        assert_int_equal (tu_fd_count (), fds_open);
        assert_int_equal (tu_maps_with ("badpool"), 0);
        shmipc_channel_destroy (&victim);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_refuses_loan_records_outside_the_pool_or_malformed (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    int fds_before = tu_fd_count ();
    const char *outside = "LOAN outside the peer's pool";
    const char *bad = "bad LOAN record";
    const char *ring = "peer ring index or record header out of range";
    const uint64_t area = S_POOL_AREA;
    const struct {
        int before;                 //  0: the LOAN alone; 1: after a frame in
                                    //  the ring; 2: after a chunked frame
                                    //  (the copy path); 3: no POOL sent;
                                    //  4: after a CHUNK (the LOAN would
                                    //  end its frame); 5: CHUNK, PAD
        uint32_t flags;             //  Besides LOAN
        uint64_t offset, size;
        uint32_t payload_size;
        const char *reason;
    } cases [] = {
        { 0, 0, area + 1, 0, 16, outside },                 //  Starts beyond the area
        { 0, 0, area + 4096, 8, 16, outside },
        { 0, 0, 4096, area - 4096 + 1, 16, outside },       //  Ends one byte beyond
        { 0, 0, 0, area + 1, 16, outside },
        { 0, 0, UINT64_MAX - 7, 16, 16, outside },          //  offset + size wraps
        { 0, 0, 8, UINT64_MAX - 7, 16, outside },
        { 0, 0, UINT64_MAX, UINT64_MAX, 16, outside },
        { 0, 0, 0, (uint64_t) UINT32_MAX + 1, 16, outside },    //  Past 32 bits
        { 0, 0, 0, UINT64_MAX, 16, outside },
        { 1, SHMIPC_RECORD_MORE, area, 1, 16, outside },    //  As a second frame
        { 2, 0, 1, area, 16, outside },                     //  After a copied frame
        { 0, 0, 0, 8, 15, bad },                            //  Payload not 16 bytes
        { 0, 0, 0, 8, 17, bad },
        { 0, 0, 0, 8, 0, bad },
        { 0, 0, 0, 8, 8, bad },
        { 0, 0, 0, 8, 24, bad },
        { 3, 0, 0, 8, 12, bad },                            //  Bad before no POOL
        { 0, SHMIPC_RECORD_CHUNK, 0, 8, 16, bad },          //  Split
        { 0, SHMIPC_RECORD_CHUNK | SHMIPC_RECORD_MORE, 0, 8, 16, bad },
        { 2, SHMIPC_RECORD_CHUNK, 0, 8, 16, bad },
        { 3, SHMIPC_RECORD_CHUNK, 0, 8, 16, bad },
        { 4, 0, 0, 8, 16, bad },                            //  Ends a chunked frame
        { 5, SHMIPC_RECORD_MORE, 0, 8, 16, bad },           //  The same, a PAD between
        { 0, SHMIPC_RECORD_PAD, 0, 8, 16, ring },           //  The ring's flag check
        { 0, SHMIPC_RECORD_PAD | SHMIPC_RECORD_MORE, 0, 8, 16, ring },
        { 0, 0x10, 0, 8, 16, ring },
        { 1, 0x80000000u, 0, 8, 16, ring },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        shmipc_segment_t *pool = cases [index].before == 3 ? NULL : s_fake_pool (&fake);
        uint64_t head = 0;
        if (cases [index].before == 1) {
            s_fake_record (&fake, 0, 3, SHMIPC_RECORD_MORE, "abc");
            head = 16;
        }
        else
        if (cases [index].before == 2) {
            s_fake_record (&fake, 0, 2, SHMIPC_RECORD_CHUNK, "ab");
            s_fake_record (&fake, 16, 1, SHMIPC_RECORD_MORE, "c");
            head = 32;
        }
        else
        if (cases [index].before == 4 || cases [index].before == 5) {
            s_fake_record (&fake, 0, 2, SHMIPC_RECORD_CHUNK, "ab");
            head = 16;
            if (cases [index].before == 5) {
                s_fake_record (&fake, 16, 0, SHMIPC_RECORD_PAD, NULL);
                head = 24;
            }
        }
        head = s_fake_loan (&fake, head, cases [index].flags, cases [index].offset,
                            cases [index].size, cases [index].payload_size);
        s_fake_store (&fake, S_HEAD, head);
        s_assert_broken_for (victim, &fake, cases [index].reason);
        shmipc_channel_destroy (&victim);
        shmipc_segment_destroy (&pool);
        s_fake_destroy (&fake);
        assert_int_equal (tu_fd_count (), fds_before);
    }
    tu_assert_baseline (baseline);
}

static void
test_channel_counts_loaned_bytes_against_maxmsgsize (void **state)
{
    //  Sixteen bytes in the ring, eight thousand in the pool: the limit
    //  sees the eight thousand
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    shmipc_channel_set_maxmsgsize (victim, 4096);
    shmipc_segment_t *pool = s_fake_pool (&fake);
    uint64_t head = s_fake_loan (&fake, 0, 0, 0, 1000, 16);
    head = s_fake_loan (&fake, head, 0, 0, S_POOL_AREA, 16);
    s_fake_store (&fake, S_HEAD, head);
    shmipc_msg_t *msg = shmipc_msg_new ();
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
    assert_int_equal (shmipc_msg_size (msg, 0), 1000);
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (shmipc_channel_error (victim), EMSGSIZE);
    assert_string_equal (shmipc_channel_reason (victim), "message larger than the maximum size");
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&victim);
    shmipc_segment_destroy (&pool);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

static void
test_channel_delivers_loans_anywhere_in_the_pool_up_to_its_end (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_fake_t fake;
    shmipc_channel_t *victim = s_fake_new (&fake, 4096);
    shmipc_segment_t *pool = s_fake_pool (&fake);
    const uint8_t *area = s_pool_area (pool);
    const uint64_t end = S_POOL_AREA;
    //  One frame each: empty at the start and at the very end, the last
    //  byte, the last 100 bytes, the whole area, an odd place
    const struct { uint64_t offset, size; } loans [] = {
        { 0, 0 }, { end, 0 }, { end - 1, 1 }, { end - 100, 100 }, { 0, end },
        { 4097, 1234 },
    };
    size_t count = sizeof loans / sizeof loans [0];
    uint64_t head = 0;
    for (size_t index = 0; index < count; index++)
        head = s_fake_loan (&fake, head, 0, loans [index].offset, loans [index].size, 16);
    //  Then one message of three: a loan, bytes in the ring, a loan ending
    //  at the end
    head = s_fake_loan (&fake, head, SHMIPC_RECORD_MORE, 10, 20, 16);
    s_fake_record (&fake, head, 3, SHMIPC_RECORD_MORE, "xyz");
    head += 16;
    head = s_fake_loan (&fake, head, 0, end - 4096, 4096, 16);
    s_fake_store (&fake, S_HEAD, head);
    shmipc_msg_t *msg = shmipc_msg_new ();
    for (size_t index = 0; index < count; index++) {
        //  Half as copies, half in place (in the read-only pool mapping)
        if (index % 2 == 0) {
            assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
            assert_int_equal (shmipc_msg_frames (msg), 1);
            assert_int_equal (shmipc_msg_size (msg, 0), loans [index].size);
            if (loans [index].size)
                assert_memory_equal (shmipc_msg_data (msg, 0), area + loans [index].offset,
                                     loans [index].size);
        }
        else {
            const shmipc_frame_t *frames;
            size_t nframes;
            assert_int_equal (shmipc_channel_recv_view (victim, &frames, &nframes,
                                                        SHMIPC_DONTWAIT), 0);
            assert_int_equal (nframes, 1);
            assert_int_equal (frames [0].size, loans [index].size);
            if (loans [index].size) {
                assert_true (tu_in_mapping (frames [0].data, frames [0].size, "fakepool",
                                            "r--s"));
                assert_memory_equal (frames [0].data, area + loans [index].offset,
                                     loans [index].size);
            }
            else
                assert_null (frames [0].data);
            shmipc_channel_recv_done (victim);
        }
    }
    const shmipc_frame_t *frames;
    size_t nframes;
    assert_int_equal (shmipc_channel_recv_view (victim, &frames, &nframes, SHMIPC_DONTWAIT), 0);
    assert_int_equal (nframes, 3);
    assert_int_equal (frames [0].size, 20);
    assert_memory_equal (frames [0].data, area + 10, 20);
    assert_int_equal (frames [1].size, 3);
    assert_memory_equal (frames [1].data, "xyz", 3);
    assert_int_equal (frames [2].size, 4096);
    assert_memory_equal (frames [2].data, area + end - 4096, 4096);
    assert_true (tu_in_mapping (frames [2].data, 4096, "fakepool", "r--s"));
    shmipc_channel_recv_done (victim);
    assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    //  LOAN records go back at once: the writer's blocks wait for them
    assert_int_equal (s_victim_load (&fake, S_TAIL), head);
    assert_int_equal (shmipc_channel_error (victim), 0);
    shmipc_msg_destroy (&msg);
    shmipc_channel_destroy (&victim);
    shmipc_segment_destroy (&pool);
    s_fake_destroy (&fake);
    tu_assert_baseline (baseline);
}

static void
test_channel_reads_loan_payload_that_wraps_the_ring_end (void **state)
{
    //  A LOAN record whose header ends the ring: its offset is in the last
    //  8 bytes, its size at the start (or the whole payload at the start).
    //  The size across the end is the one checked and used
    tu_baseline_t baseline = tu_baseline ();
    for (int kind = 0; kind < 3; kind++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        shmipc_segment_t *pool = s_fake_pool (&fake);
        //  A frame up to the LOAN's place, read and given back
        uint64_t at = kind == 1 ? 4088 : 4080;
        s_fake_record (&fake, 0, (uint32_t) (at - 8), 0, NULL);
        s_fake_store (&fake, S_HEAD, at);
        shmipc_msg_t *msg = shmipc_msg_new ();
        assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
        assert_int_equal (shmipc_msg_size (msg, 0), at - 8);
        assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), -1);
        assert_int_equal (errno, EAGAIN);
        assert_int_equal (s_victim_load (&fake, S_TAIL), at);
        uint64_t head = s_fake_loan (&fake, at, 0, 10, kind == 2 ? S_POOL_AREA : 5000, 16);
        s_fake_store (&fake, S_HEAD, head);
        if (kind == 2)
            s_assert_broken_for (victim, &fake, "LOAN outside the peer's pool");
        else {
            assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
            assert_int_equal (shmipc_msg_frames (msg), 1);
            assert_int_equal (shmipc_msg_size (msg, 0), 5000);
            assert_memory_equal (shmipc_msg_data (msg, 0), s_pool_area (pool) + 10, 5000);
            assert_int_equal (s_victim_load (&fake, S_TAIL), head);
            assert_int_equal (shmipc_channel_error (victim), 0);
        }
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&victim);
        shmipc_segment_destroy (&pool);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

//  Rewrite the 16-byte payload of the LOAN record at ring index at.
static void
s_fake_rewrite_loan (s_fake_t *fake, uint64_t at, uint64_t offset, uint64_t size)
{
    uint8_t payload [16];
    for (int index = 0; index < 8; index++) {
        payload [index] = (uint8_t) (offset >> (8 * index));
        payload [8 + index] = (uint8_t) (size >> (8 * index));
    }
    for (int index = 0; index < 16; index++)
        fake->base [S_RING + ((at + 8 + index) & (fake->capacity - 1))] = payload [index];
}

static void
test_channel_keeps_the_loan_it_resolved_when_the_peer_rewrites_it (void **state)
{
    //  Once the victim has read a LOAN record, what the peer writes over it
    //  changes nothing: each stage below is a point the victim has passed
    //  (message found by events (), viewed, partly read while the rest is
    //  not yet published), and the rewrite says "outside the pool"
    tu_baseline_t baseline = tu_baseline ();
    for (int stage = 0; stage < 3; stage++) {
        s_fake_t fake;
        shmipc_channel_t *victim = s_fake_new (&fake, 4096);
        shmipc_segment_t *pool = s_fake_pool (&fake);
        const uint8_t *area = s_pool_area (pool);
        uint64_t head = s_fake_loan (&fake, 0, stage == 2 ? SHMIPC_RECORD_MORE : 0,
                                     100, 3000, 16);
        s_fake_store (&fake, S_HEAD, head);
        const shmipc_frame_t *frames = NULL;
        size_t nframes = 0;
        if (stage == 0) {
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLIN | SHMIPC_POLLOUT);
            s_fake_rewrite_loan (&fake, 0, UINT64_MAX, S_POOL_AREA);
        }
        else
        if (stage == 1) {
            assert_int_equal (shmipc_channel_recv_view (victim, &frames, &nframes,
                                                        SHMIPC_DONTWAIT), 0);
            s_fake_rewrite_loan (&fake, 0, UINT64_MAX, S_POOL_AREA);
        }
        else {
            //  The first frame is read (and copied) before the second is there
            assert_int_equal (shmipc_channel_events (victim), SHMIPC_POLLOUT);
            s_fake_rewrite_loan (&fake, 0, UINT64_MAX, S_POOL_AREA);
            s_fake_record (&fake, head, 3, 0, "end");
            head += 16;
            s_fake_store (&fake, S_HEAD, head);
        }
        if (stage != 1)
            assert_int_equal (shmipc_channel_recv_view (victim, &frames, &nframes,
                                                        SHMIPC_DONTWAIT), 0);
        assert_int_equal (nframes, stage == 2 ? 2 : 1);
        assert_int_equal (frames [0].size, 3000);
        assert_memory_equal (frames [0].data, area + 100, 3000);
        //  In place: the range first resolved, in the victim's own mapping
        //  of the pool; else a copy of it
        const uint8_t *mapped = (const uint8_t *) shmipc_segment_data (victim->rx.pool)
                              + SHMIPC_SEGMENT_HEADER;
        if (stage == 2)
            assert_false (tu_in_mapping (frames [0].data, 3000, "fakepool", NULL));
        else
            assert_ptr_equal (frames [0].data, mapped + 100);
        if (stage == 2)
            assert_memory_equal (frames [1].data, "end", 3);
        shmipc_channel_recv_done (victim);
        assert_int_equal (shmipc_channel_error (victim), 0);
        //  The LOAN record went back at once (a frame after it, lazily)
        assert_true (s_victim_load (&fake, S_TAIL) >= 24);
        //  And the channel goes on
        s_fake_record (&fake, head, 2, 0, "ok");
        s_fake_store (&fake, S_HEAD, head + 16);
        shmipc_msg_t *msg = shmipc_msg_new ();
        assert_int_equal (shmipc_channel_recv_into (victim, msg, SHMIPC_DONTWAIT), 0);
        assert_memory_equal (shmipc_msg_data (msg, 0), "ok", 2);
        shmipc_msg_destroy (&msg);
        shmipc_channel_destroy (&victim);
        shmipc_segment_destroy (&pool);
        s_fake_destroy (&fake);
    }
    tu_assert_baseline (baseline);
}

//  --------------------------------------------------------------------------
//  A hostile process scribbling while we read

typedef struct {
    int sock;                   //  The child's end of the socket pair
    int other;                  //  The parent's end, closed in the child
    size_t capacity;            //  The ring capacity the child claims
    uint64_t seed;              //  Its random stream
    bool plausible;             //  Chains of believable records, or noise
    long rounds;                //  How long to keep at it
} s_hostile_t;

//  Speak the handshake by hand, then rewrite our segment at random until
//  the victim hangs up (or rounds run out). In plausible mode, write chains
//  of mostly well-formed records from the victim's read index and publish
//  them, so that the victim gets deep into its record parsing first.
static int
s_scribble (void *arg)
{
    s_hostile_t *job = (s_hostile_t *) arg;
    alarm (600);
    close (job->other);
    size_t size = shmipc__segment_bytes (job->capacity);
    shmipc_segment_t *segment = shmipc_segment_new ("hostile", size, S_KIND);
    C_CHECK (segment);
    uint8_t *base = (uint8_t *) shmipc_segment_data (segment);
    int fd = shmipc_segment_fd (segment);
    uint8_t hello [SHMIPC__HELLO_FIXED + 8];
    size_t hello_size = shmipc__wire_hello (hello, SHMIPC_CLIENT, job->capacity,
                                            size, "hostile", 7);
    C_CHECK (shmipc_fdpass_send (job->sock, hello, hello_size, &fd, 1, 0)
             == (ssize_t) hello_size);
    //  The victim's segment, to follow its read index
    uint8_t buffer [SHMIPC__WIRE_MAX];
    size_t nfds;
    int victim_fd;
    C_CHECK (shmipc_fdpass_recv (job->sock, buffer, sizeof buffer, &victim_fd, 1,
                                 &nfds, 0) > 0 && nfds == 1);
    shmipc_segment_t *victim = shmipc_segment_attach (victim_fd, shmipc__segment_bytes (4096),
                                                      shmipc__segment_bytes (4096), S_KIND);
    C_CHECK (victim);
    const uint8_t *victim_base = (const uint8_t *) shmipc_segment_data (victim);
    uint64_t state = job->seed;
    uint64_t mask = job->capacity - 1;
    uint64_t head = 0;
    for (long round = 0; round < job->rounds; round++) {
        if (!job->plausible) {
            for (size_t at = 0; at + 8 <= size; at += 8) {
                uint64_t value = tu_random (&state);
                memcpy (base + at, &value, 8);
            }
        }
        else {
            //  Carry on from our own write index while the victim's read
            //  index leaves room, junk now and then
            uint64_t tail = atomic_load_explicit (
                (_Atomic uint64_t *) (victim_base + S_TAIL), memory_order_acquire);
            uint64_t end = tail + job->capacity;
            while (head + 16 <= end && tu_random (&state) % 8) {
                uint64_t roll = tu_random (&state);
                uint32_t record_size = (uint32_t) (roll % 48);
                uint32_t flags = (uint32_t) ((roll >> 8) % 3);   //  0, MORE, CHUNK
                if ((roll >> 16) % 512 == 0)
                    flags = (uint32_t) (roll >> 32);             //  Junk flags
                size_t need = shmipc_ring_record_size (record_size);
                if (head + need > end)
                    break;
                if ((roll >> 28) % 512 == 0)
                    record_size = (uint32_t) (roll >> 36);       //  A size that lies
                uint64_t header = (uint64_t) record_size | ((uint64_t) flags << 32);
                memcpy (base + S_RING + (head & mask), &header, 8);
                for (size_t index = 0; index + 8 < need; index++)
                    base [S_RING + ((head + 8 + index) & mask)] = (uint8_t) tu_random (&state);
                head += need;
            }
            uint64_t publish = head;
            if (tu_random (&state) % 1024 == 0)
                publish = tu_random (&state);                     //  A wild index
            atomic_store_explicit ((_Atomic uint64_t *) (base + S_HEAD), publish,
                                   memory_order_release);
            uint32_t sleep_flag = (uint32_t) tu_random (&state);
            memcpy (base + S_RX_SLEEP, &sleep_flag, 4);
        }
        //  Read what the victim sends; stop when it hangs up
        ssize_t rc = recv (job->sock, buffer, sizeof buffer, MSG_DONTWAIT);
        if (rc == 0 || (rc < 0 && errno != EAGAIN && errno != EINTR))
            break;
    }
    shmipc_segment_destroy (&victim);
    shmipc_segment_destroy (&segment);
    close (job->sock);
    return 0;
}

static void
s_survive_scribbler (bool plausible, long rounds)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t caps [] = { 64, 256, 4096, 65536 };
    shmipc_msg_t *msg = shmipc_msg_new ();
    long protos = 0, resets = 0, delivered = 0;
    for (long round = 0; round < rounds; round++) {
        int pair [2];
        assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
        s_hostile_t job = { .sock = pair [1], .other = pair [0],
                            .capacity = caps [round % 4], .seed = 12345 + round,
                            .plausible = plausible, .rounds = tu_scaled (200000, 5000) };
        pid_t pid = tu_fork (s_scribble, &job);
        close (pair [1]);
        shmipc_channel_t *victim = shmipc_channel_new (pair [0], "victim", 4096,
                                                       SHMIPC_SERVER);
        assert_non_null (victim);
        shmipc_channel_set_maxmsgsize (victim, 1 << 20);
        shmipc_channel_set_rcvtimeo (victim, 5);
        int rc = shmipc_channel_handshake (victim, 10000);
        //  The segment header may be scribbled over before we attach
        //  Until the child hangs up after its rounds, however slowly it
        //  gets through them (a count of tries ran out first under load)
        int64_t give_up = shmipc__now_ms () + 120000;
        if (rc == 0) {
            while (shmipc__now_ms () < give_up) {
                rc = shmipc_channel_recv_into (victim, msg, round % 2 ? 0 : SHMIPC_DONTWAIT);
                if (rc == 0) {
                    delivered++;
                    continue;
                }
                if (errno != EAGAIN)
                    break;
                //  Our sends meet whatever its read index says
                if (shmipc_channel_send (victim, "ping", 4, SHMIPC_DONTWAIT)
                &&  errno != EAGAIN)
                    break;
                shmipc_channel_events (victim);
            }
        }
        assert_int_equal (rc, -1);
        if (errno == ECONNRESET || errno == EPIPE)
            resets++;
        else {
            assert_int_equal (errno, EPROTO);
            protos++;
        }
        kill (pid, SIGKILL);
        int status = tu_wait (pid);
        assert_true (status == 0 || status == 128 + SIGKILL);
        shmipc_channel_destroy (&victim);
    }
    print_message ("    %ld rounds: %ld EPROTO, %ld ECONNRESET, %ld messages delivered\n",
                   rounds, protos, resets, delivered);
    shmipc_msg_destroy (&msg);
    tu_assert_baseline (baseline);
}

static void
test_channel_survives_peer_scribbling_noise_over_its_segment (void **state)
{
    s_survive_scribbler (false, tu_scaled (40, 4));
}

static void
test_channel_survives_peer_publishing_plausible_garbage (void **state)
{
    s_survive_scribbler (true, tu_scaled (40, 4));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_channel_refuses_hello_with_wrong_descriptors),
        cmocka_unit_test (test_channel_refuses_hello_flooded_with_descriptors),
        cmocka_unit_test (test_channel_refuses_malformed_hello),
        cmocka_unit_test (test_channel_refuses_same_role_on_both_sides),
        cmocka_unit_test (test_channel_refuses_peer_capacity_beyond_its_limit),
        cmocka_unit_test (test_channel_refuses_impossible_write_index),
        cmocka_unit_test (test_channel_refuses_write_index_moving_backwards),
        cmocka_unit_test (test_channel_refuses_record_larger_than_published),
        cmocka_unit_test (test_channel_refuses_record_with_unknown_or_conflicting_flags),
        cmocka_unit_test (test_channel_refuses_read_index_past_what_it_was_sent),
        cmocka_unit_test (test_channel_skips_pad_records_from_its_peer),
        cmocka_unit_test (test_channel_writes_only_free_space_whatever_the_peer_hold_table_says),
        cmocka_unit_test (test_channel_cuts_off_a_peer_whose_hold_table_leaves_no_room),
        cmocka_unit_test (test_channel_refuses_bad_socket_records_after_handshake),
        cmocka_unit_test (test_channel_refuses_peer_that_ignores_ctrl_window),
        cmocka_unit_test (test_channel_resends_ack_that_found_the_socket_full),
        cmocka_unit_test (test_channel_refuses_pipe_records_that_break_the_rules),
        cmocka_unit_test (test_channel_wakes_through_the_peer_pipe_and_never_blocks_on_it),
        cmocka_unit_test (test_channel_drains_a_flooded_wake_pipe_and_it_never_hangs_up),
        cmocka_unit_test (test_channel_refuses_loan_record_before_any_pool),
        cmocka_unit_test (test_channel_takes_pool_still_queued_on_its_socket_at_first_loan),
        cmocka_unit_test (test_channel_refuses_pool_records_that_break_the_rules),
        cmocka_unit_test (test_channel_refuses_peer_loan_pool_it_cannot_trust),
        cmocka_unit_test (test_channel_refuses_loan_records_outside_the_pool_or_malformed),
        cmocka_unit_test (test_channel_counts_loaned_bytes_against_maxmsgsize),
        cmocka_unit_test (test_channel_delivers_loans_anywhere_in_the_pool_up_to_its_end),
        cmocka_unit_test (test_channel_reads_loan_payload_that_wraps_the_ring_end),
        cmocka_unit_test (test_channel_keeps_the_loan_it_resolved_when_the_peer_rewrites_it),
        cmocka_unit_test (test_channel_survives_peer_scribbling_noise_over_its_segment),
        cmocka_unit_test (test_channel_survives_peer_publishing_plausible_garbage),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
