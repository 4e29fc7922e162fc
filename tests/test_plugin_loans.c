/*  =========================================================================
    test_plugin_loans - loaned frames (shmipc_frame_new, shmipc_msg_init_loan):
    their data lies in the sending socket's loan pool (a "shmipc:loans"
    memfd, mapped read-write by its owner); to a shm:// peer only their
    place travels and the peer reads them in its read-only mapping of the
    pool, copied out or, with zero-copy receive, in place. Small frames and
    a pool with no room give ordinary frames, never NULL; fan-out to several
    peers and peers of other transports get the same bytes; blocks come
    back; nothing outlives the sockets and frames.

    Owns the sockets and frames of each test; every test ends with its
    descriptors, mappings and threads back to where they were. Where bytes
    lie is read from /proc/self/maps.
    =========================================================================
*/

#include "testutil_plugin.h"

#define S_KIB           1024
#define S_MIB           (1024 * 1024)
#define S_LOAN_MIN      4096            //  Smallest frame loaned (plugin/loan.c)
#define S_POOL_BYTES    (4 * S_MIB)     //  The pool of a socket with the
                                        //  default 1 MiB rings
#define S_POOL_NAME     "/memfd:shmipc:loans"

//  --------------------------------------------------------------------------
//  Where bytes lie

//  True if [data, data + size) lies in mappings of a loan pool with these
//  permissions: "rw-s" for the owner's, "r--s" for a peer's.
static bool
s_in_pool (const void *data, size_t size, const char *perms)
{
    return tu_in_mapping (data, size, S_POOL_NAME, perms);
}

//  True if frame is a loan of its socket's pool (its owner's mapping).
static bool
s_loaned (zframe_t *frame)
{
    return s_in_pool (zframe_data (frame), zframe_size (frame), "rw-s");
}

//  --------------------------------------------------------------------------
//  Sockets

//  A PUSH -> PULL pair over shm:// (abstract), the PULL with zero-copy
//  receive or not.
typedef struct {
    zsock_t *push;
    zsock_t *pull;
} s_pair_t;

static s_pair_t
s_pair_new (bool zerocopy)
{
    s_pair_t pair;
    pair.pull = pt_sock (ZMQ_PULL);
    assert_int_equal (shmipc_set_zerocopy (pair.pull, zerocopy), 0);
    zsock_set_rcvhwm (pair.pull, 10000);
    char endpoint [128];
    pt_bind (pair.pull, &pt_shm, endpoint, sizeof endpoint);
    pair.push = pt_sock (ZMQ_PUSH);
    zsock_set_sndhwm (pair.push, 10000);
    pt_connect (pair.push, endpoint);
    pt_wait_peers (pair.push, 1);
    pt_wait_peers (pair.pull, 1);
    return pair;
}

static void
s_pair_destroy (s_pair_t *pair)
{
    shmipc_sock_destroy (&pair->push);
    shmipc_sock_destroy (&pair->pull);
}

//  A loaned frame of size bytes from sock, filled from seed.
static zframe_t *
s_loan (zsock_t *sock, size_t size, uint64_t seed)
{
    zframe_t *frame = shmipc_frame_new (sock, size);
    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), size);
    tu_fill (zframe_data (frame), size, seed);
    return frame;
}

//  Receive one frame from sock and check it: size bytes from seed.
static zframe_t *
s_expect (zsock_t *sock, size_t size, uint64_t seed)
{
    zframe_t *frame = zframe_recv (sock);
    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), size);
    assert_true (tu_check (zframe_data (frame), size, seed));
    return frame;
}

//  Wait until sock's whole pool can be loaned again: while it cannot, send
//  a small message on sock (each of its channels then collects the loans
//  that came back), receive it on every one of receivers (count of them),
//  and try again. Fails the test after PT_PATIENCE_MS.
static void
s_wait_pool_free (zsock_t *sock, zsock_t **receivers, size_t count)
{
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    for (int round = 0; ; round++) {
        zframe_t *all = shmipc_frame_new (sock, S_POOL_BYTES);
        assert_non_null (all);
        bool loaned = s_loaned (all);
        zframe_destroy (&all);
        if (loaned)
            return;
        assert_true (zclock_mono () < deadline);
        zclock_sleep (round < 10 ? 1 : 10);
        assert_int_equal (zstr_send (sock, "tick"), 0);
        for (size_t index = 0; index < count; index++) {
            char *tick = zstr_recv (receivers [index]);
            assert_non_null (tick);
            assert_string_equal (tick, "tick");
            free (tick);
        }
    }
}

//  The same for raw libzmq sockets: push lends, pull receives.
static void
s_wait_raw_pool_free (void *push, void *pull)
{
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    for (int round = 0; ; round++) {
        zmq_msg_t all;
        assert_int_equal (shmipc_msg_init_loan (&all, push, S_POOL_BYTES), 0);
        bool loaned = s_in_pool (zmq_msg_data (&all), S_POOL_BYTES, "rw-s");
        zmq_msg_close (&all);
        if (loaned)
            return;
        assert_true (zclock_mono () < deadline);
        zclock_sleep (round < 10 ? 1 : 10);
        assert_int_equal (zmq_send (push, "tick", 4, 0), 4);
        char tick [8];
        assert_int_equal (zmq_recv (pull, tick, sizeof tick, 0), 4);
    }
}

//  Subscriptions travel too: send "hello" on pub until every one of subs
//  (count of them, at most 8) has heard it, draining them as it goes.
//  Fails the test after PT_PATIENCE_MS.
static void
s_wait_subscribed (zsock_t *pub, zsock_t **subs, size_t count)
{
    bool heard [8] = { false };
    assert_true (count <= 8);
    size_t nheard = 0;
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    while (nheard < count) {
        assert_true (zclock_mono () < deadline);
        assert_int_equal (zstr_send (pub, "hello"), 0);
        zclock_sleep (5);
        for (size_t index = 0; index < count; index++) {
            zsock_set_rcvtimeo (subs [index], 0);
            char *hello;
            while ((hello = zstr_recv (subs [index]))) {
                nheard += !heard [index];
                heard [index] = true;
                free (hello);
            }
            zsock_set_rcvtimeo (subs [index], PT_PATIENCE_MS);
        }
    }
}

//  --------------------------------------------------------------------------
//  Tests

static void
test_frame_new_gives_frames_in_the_senders_pool_that_arrive_intact (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (false);
    uint64_t seed = 1;
    for (size_t size = 64 * S_KIB; size <= S_MIB; size *= 2, seed++) {
        for (int round = 0; round < 3; round++) {
            zframe_t *frame = s_loan (pair.push, size + (size_t) round, seed + (uint64_t) round);
            assert_true (s_loaned (frame));
            assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
            assert_null (frame);
            zframe_t *got = s_expect (pair.pull, size + (size_t) round,
                                      seed + (uint64_t) round);
            //  Copied out of the pool: ordinary memory
            assert_false (tu_in_segment (zframe_data (got)));
            zframe_destroy (&got);
        }
    }
    assert_int_equal (pt_frames_lent (pair.pull), 0);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_zerocopy_receiver_gets_loaned_frames_in_its_read_only_map_of_the_pool (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    zframe_t *held [8];
    uint64_t seed = 100;
    int count = 0;
    for (size_t size = 64 * S_KIB; size <= S_MIB; size *= 2, seed++) {
        zframe_t *frame = s_loan (pair.push, size, seed);
        assert_true (s_loaned (frame));
        const void *sent_at = zframe_data (frame);
        assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
        zframe_t *got = s_expect (pair.pull, size, seed);
        //  The peer's view of the same pages: another mapping, read-only
        assert_true (s_in_pool (zframe_data (got), size, "r--s"));
        assert_ptr_not_equal (zframe_data (got), sent_at);
        held [count++] = got;
    }
    assert_int_equal (pt_frames_lent (pair.pull), (uint64_t) count);
    //  Held frames stay intact while more loans go by
    for (int round = 0; round < 10; round++) {
        zframe_t *frame = s_loan (pair.push, 100 * S_KIB, 1000 + (uint64_t) round);
        assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
        zframe_t *got = s_expect (pair.pull, 100 * S_KIB, 1000 + (uint64_t) round);
        zframe_destroy (&got);
    }
    seed = 100;
    for (int index = 0; index < count; index++, seed++)
        assert_true (tu_check (zframe_data (held [index]), zframe_size (held [index]), seed));
    for (int index = 0; index < count; index++)
        zframe_destroy (&held [index]);
    zsock_t *receivers [] = { pair.pull };
    s_wait_pool_free (pair.push, receivers, 1);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_an_exhausted_pool_gives_ordinary_frames_and_everything_arrives (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    //  Hold every frame received (in place, while holds last): the blocks
    //  stay out, the pool runs dry, frame_new carries on with ordinary ones
    enum { COUNT = 40 };
    size_t size = 256 * S_KIB;
    zframe_t *held [COUNT];
    int loaned = 0, ordinary = 0;
    for (int index = 0; index < COUNT; index++) {
        zframe_t *frame = shmipc_frame_new (pair.push, size);
        assert_non_null (frame);
        assert_int_equal (zframe_size (frame), size);
        if (s_loaned (frame))
            loaned++;
        else {
            ordinary++;
            assert_false (tu_in_segment (zframe_data (frame)));
        }
        tu_fill (zframe_data (frame), size, (uint64_t) index);
        assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
        held [index] = s_expect (pair.pull, size, (uint64_t) index);
    }
    //  The pool holds 16 such blocks
    assert_true (loaned >= 1);
    assert_true (loaned <= (int) (S_POOL_BYTES / size));
    assert_true (ordinary >= COUNT - (int) (S_POOL_BYTES / size));
    for (int index = 0; index < COUNT; index++)
        assert_true (tu_check (zframe_data (held [index]), size, (uint64_t) index));
    for (int index = 0; index < COUNT; index++)
        zframe_destroy (&held [index]);
    //  Given back, the pool lends again
    zsock_t *receivers [] = { pair.pull };
    s_wait_pool_free (pair.push, receivers, 1);
    zframe_t *frame = s_loan (pair.push, size, 77);
    assert_true (s_loaned (frame));
    assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
    zframe_t *got = s_expect (pair.pull, size, 77);
    zframe_destroy (&got);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_frames_under_4_kib_are_ordinary_and_from_4_kib_loaned (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    const size_t sizes [] = { 0, 1, 100, S_LOAN_MIN - 1, S_LOAN_MIN, S_LOAN_MIN + 1 };
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++) {
        size_t size = sizes [index];
        zframe_t *frame = shmipc_frame_new (pair.push, size);
        assert_non_null (frame);
        assert_int_equal (zframe_size (frame), size);
        assert_int_equal (s_loaned (frame), size >= S_LOAN_MIN);
        if (size < S_LOAN_MIN)
            assert_false (tu_in_segment (zframe_data (frame)));
        tu_fill (zframe_data (frame), size, index);
        assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
        zframe_t *got = s_expect (pair.pull, size, index);
        //  Under 64 KiB the receiver copies, zero-copy or not
        assert_false (tu_in_segment (zframe_data (got)));
        zframe_destroy (&got);
    }
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_msg_init_loan_with_raw_zmq_msg_send_and_recv (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  Raw libzmq sockets of czmq's context
    void *context = zsys_init ();
    void *pull = shmipc_zmq_socket (context, ZMQ_PULL);
    void *push = shmipc_zmq_socket (context, ZMQ_PUSH);
    assert_non_null (pull);
    assert_non_null (push);
    int timeout = PT_PATIENCE_MS;
    assert_int_equal (zmq_setsockopt (pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal (zmq_setsockopt (push, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    assert_int_equal (shmipc_zmq_bind (pull, endpoint), 0);
    assert_int_equal (shmipc_zmq_connect (push, endpoint), 0);

    //  A loaned message never sent: closing it gives its block back at once
    for (int round = 0; round < 3; round++) {
        zmq_msg_t unsent;
        assert_int_equal (shmipc_msg_init_loan (&unsent, push, S_POOL_BYTES), 0);
        assert_true (s_in_pool (zmq_msg_data (&unsent), S_POOL_BYTES, "rw-s"));
        zmq_msg_close (&unsent);
    }

    const size_t sizes [] = { 100, 8 * S_KIB, 300 * S_KIB + 5, S_MIB };
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++) {
        size_t size = sizes [index];
        zmq_msg_t msg;
        assert_int_equal (shmipc_msg_init_loan (&msg, push, size), 0);
        assert_int_equal (zmq_msg_size (&msg), size);
        assert_int_equal (s_in_pool (zmq_msg_data (&msg), size, "rw-s"), size >= S_LOAN_MIN);
        tu_fill (zmq_msg_data (&msg), size, 50 + index);
        assert_int_equal (zmq_msg_send (&msg, push, 0), (int) size);
        zmq_msg_close (&msg);

        zmq_msg_t got;
        zmq_msg_init (&got);
        assert_int_equal (zmq_msg_recv (&got, pull, 0), (int) size);
        assert_true (tu_check (zmq_msg_data (&got), size, 50 + index));
        //  Zero-copy from 64 KiB: in the receiver's view of the pool
        assert_int_equal (s_in_pool (zmq_msg_data (&got), size, "r--s"),
                          size >= 64 * S_KIB);
        zmq_msg_close (&got);
    }
    //  Every block back, at the latest after more sends
    s_wait_raw_pool_free (push, pull);
    assert_int_equal (shmipc_zmq_close (push), 0);
    assert_int_equal (shmipc_zmq_close (pull), 0);
    pt_assert_baseline (baseline);
}

static void
test_pub_fans_one_loaned_frame_out_to_three_subs_and_its_block_comes_back (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pub = pt_sock (ZMQ_PUB);
    zsock_set_sndhwm (pub, 10000);
    char endpoint [128];
    pt_bind (pub, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *subs [3];
    for (int index = 0; index < 3; index++) {
        subs [index] = pt_sock (ZMQ_SUB);
        //  One of them in place, the others copied
        assert_int_equal (shmipc_set_zerocopy (subs [index], index == 0), 0);
        zsock_set_subscribe (subs [index], "");
        pt_connect (subs [index], endpoint);
    }
    pt_wait_peers (pub, 3);
    s_wait_subscribed (pub, subs, 3);

    size_t size = S_MIB;
    for (int round = 0; round < 3; round++) {
        zframe_t *frame = s_loan (pub, size, 300 + (uint64_t) round);
        assert_true (s_loaned (frame));
        assert_int_equal (zframe_send (&frame, pub, 0), 0);
        for (int index = 0; index < 3; index++) {
            zframe_t *got = s_expect (subs [index], size, 300 + (uint64_t) round);
            assert_int_equal (s_in_pool (zframe_data (got), size, "r--s"), index == 0);
            zframe_destroy (&got);
        }
    }
    //  Every SUB is done with them: the whole pool can be loaned again
    s_wait_pool_free (pub, subs, 3);

    for (int index = 0; index < 3; index++)
        shmipc_sock_destroy (&subs [index]);
    shmipc_sock_destroy (&pub);
    pt_assert_baseline (baseline);
}

static void
test_a_loaned_frame_reaches_shm_and_ipc_peers_of_one_socket_intact (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pub = pt_sock (ZMQ_PUB);
    char shm_endpoint [128], ipc_endpoint [128];
    pt_bind (pub, &pt_shm, shm_endpoint, sizeof shm_endpoint);
    pt_bind (pub, &pt_ipc, ipc_endpoint, sizeof ipc_endpoint);
    zsock_t *subs [2];
    const char *endpoints [2] = { shm_endpoint, ipc_endpoint };
    for (int index = 0; index < 2; index++) {
        subs [index] = pt_sock (ZMQ_SUB);
        assert_int_equal (shmipc_set_zerocopy (subs [index], true), 0);
        zsock_set_subscribe (subs [index], "");
        pt_connect (subs [index], endpoints [index]);
    }
    pt_wait_peers (pub, 1);
    s_wait_subscribed (pub, subs, 2);

    for (int round = 0; round < 4; round++) {
        size_t size = 200 * S_KIB + (size_t) round * 3;
        zframe_t *frame = s_loan (pub, size, 400 + (uint64_t) round);
        assert_true (s_loaned (frame));
        //  Two frames, the loan last: a message of ordinary and loaned
        zmsg_t *msg = zmsg_new ();
        zmsg_addstr (msg, "head");
        zmsg_append (msg, &frame);
        assert_int_equal (zmsg_send (&msg, pub), 0);
        for (int index = 0; index < 2; index++) {
            zmsg_t *got = zmsg_recv (subs [index]);
            assert_non_null (got);
            assert_int_equal (zmsg_size (got), 2);
            char *head = zmsg_popstr (got);
            assert_string_equal (head, "head");
            free (head);
            zframe_t *body = zmsg_first (got);
            assert_int_equal (zframe_size (body), size);
            assert_true (tu_check (zframe_data (body), size, 400 + (uint64_t) round));
            //  shm://: in place, in the pool; ipc://: libzmq's copy
            assert_int_equal (s_in_pool (zframe_data (body), size, "r--s"), index == 0);
            zmsg_destroy (&got);
        }
    }
    s_wait_pool_free (pub, subs, 2);
    for (int index = 0; index < 2; index++)
        shmipc_sock_destroy (&subs [index]);
    shmipc_sock_destroy (&pub);
    pt_assert_baseline (baseline);
}

static void
test_loaned_frames_outlive_their_sockets (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    //  One unsent loan, one received in place
    zframe_t *unsent = s_loan (pair.push, 128 * S_KIB, 1);
    assert_true (s_loaned (unsent));
    zframe_t *frame = s_loan (pair.push, 128 * S_KIB, 2);
    assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
    zframe_t *got = s_expect (pair.pull, 128 * S_KIB, 2);
    assert_true (s_in_pool (zframe_data (got), 128 * S_KIB, "r--s"));
    s_pair_destroy (&pair);
    //  Both still the application's, intact, the unsent one writable
    assert_true (tu_check (zframe_data (unsent), 128 * S_KIB, 1));
    assert_true (tu_check (zframe_data (got), 128 * S_KIB, 2));
    memset (zframe_data (unsent), 0, 128 * S_KIB);
    zframe_destroy (&unsent);
    zframe_destroy (&got);
    pt_assert_baseline (baseline);
}

static void
test_frame_new_on_a_socket_without_shm_endpoints_gives_a_usable_frame (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *sock = pt_sock (ZMQ_PUSH);
    zframe_t *frame = shmipc_frame_new (sock, 64 * S_KIB);
    assert_non_null (frame);
    assert_int_equal (zframe_size (frame), 64 * S_KIB);
    memset (zframe_data (frame), 0x3c, 64 * S_KIB);
    zframe_destroy (&frame);
    zmq_msg_t msg;
    assert_int_equal (shmipc_msg_init_loan (&msg, sock, 64 * S_KIB), 0);
    assert_int_equal (zmq_msg_size (&msg), 64 * S_KIB);
    memset (zmq_msg_data (&msg), 0x3c, 64 * S_KIB);
    zmq_msg_close (&msg);
    shmipc_sock_destroy (&sock);
    pt_assert_baseline (baseline);
}

static void
test_frames_before_the_first_shm_endpoint_are_ordinary (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *sock = pt_sock (ZMQ_PUSH);
    zframe_t *frame = shmipc_frame_new (sock, 64 * S_KIB);
    assert_non_null (frame);
    assert_false (s_loaned (frame));
    zframe_destroy (&frame);
    //  No pool was made for it
    assert_int_equal (pt_segment_count (), 0);
    shmipc_sock_destroy (&sock);
    pt_assert_baseline (baseline);
}

static void
test_set_loan_pool_sizes_the_pool_before_the_first_loan (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (false);
    assert_int_equal (shmipc_set_loan_pool (pair.push, 0), -1);
    assert_int_equal (errno, EINVAL);
    //  Room for exactly four 64 KiB blocks
    assert_int_equal (shmipc_set_loan_pool (pair.push, 256 * S_KIB), 0);
    zframe_t *frames [5];
    for (int index = 0; index < 5; index++)
        frames [index] = s_loan (pair.push, 64 * S_KIB, (uint64_t) index);
    for (int index = 0; index < 4; index++)
        assert_true (s_loaned (frames [index]));
    assert_false (s_loaned (frames [4]));
    //  The pool exists now: its size is set
    assert_int_equal (shmipc_set_loan_pool (pair.push, 1 << 20), -1);
    assert_int_equal (errno, EBUSY);
    for (int index = 0; index < 5; index++)
        zframe_send (&frames [index], pair.push, 0);
    for (int index = 0; index < 5; index++) {
        zframe_t *frame = s_expect (pair.pull, 64 * S_KIB, (uint64_t) index);
        zframe_destroy (&frame);
    }
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_the_pool_is_four_rings_and_at_least_4_mib (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  Rings of 2 MiB: an 8 MiB pool; of 64 KiB: the 4 MiB floor
    const size_t capacities [] = { 2 * S_MIB, 64 * S_KIB };
    const size_t pools [] = { 8 * S_MIB, 4 * S_MIB };
    for (int index = 0; index < 2; index++) {
        zsock_t *sock = pt_sock (ZMQ_PUSH);
        assert_int_equal (shmipc_set_capacity (sock, capacities [index]), 0);
        char endpoint [128];
        pt_bind (sock, &pt_shm, endpoint, sizeof endpoint);
        zframe_t *all = shmipc_frame_new (sock, pools [index]);
        assert_non_null (all);
        assert_true (s_loaned (all));
        //  Nothing left beside it
        zframe_t *more = shmipc_frame_new (sock, S_LOAN_MIN);
        assert_non_null (more);
        assert_false (s_loaned (more));
        zframe_destroy (&more);
        zframe_destroy (&all);
        //  And never more than the pool
        zframe_t *over = shmipc_frame_new (sock, pools [index] + 1);
        assert_non_null (over);
        assert_int_equal (zframe_size (over), pools [index] + 1);
        assert_false (s_loaned (over));
        zframe_destroy (&over);
        shmipc_sock_destroy (&sock);
    }
    pt_assert_baseline (baseline);
}

static void
test_connections_made_after_the_first_loan_lend_too (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    //  The pool exists before any connection does
    zsock_t *push = pt_sock (ZMQ_PUSH);
    zsock_set_reconnect_ivl (push, 20);
    char endpoint [128];
    tu_endpoint (endpoint, sizeof endpoint, 'a');
    pt_connect (push, endpoint);
    zframe_t *early = s_loan (push, 128 * S_KIB, 1);
    assert_true (s_loaned (early));

    //  The first peer, and then a second one at the same endpoint after
    //  the first has gone: each connection gets the pool and lends
    for (int peer = 0; peer < 2; peer++) {
        zsock_t *pull = pt_sock (ZMQ_PULL);
        assert_int_equal (shmipc_set_zerocopy (pull, true), 0);
        assert_int_equal (shmipc_bind (pull, "%s", endpoint), 0);
        pt_wait_peers (push, 1);
        for (int round = 0; round < 3; round++) {
            zframe_t *frame = early ? early : s_loan (push, 128 * S_KIB, 1);
            early = NULL;
            assert_true (s_loaned (frame));
            assert_int_equal (zframe_send (&frame, push, 0), 0);
            zframe_t *got = s_expect (pull, 128 * S_KIB, 1);
            assert_true (s_in_pool (zframe_data (got), 128 * S_KIB, "r--s"));
            zframe_destroy (&got);
        }
        shmipc_sock_destroy (&pull);
        pt_wait_peers (push, 0);
    }
    //  The connections that lent are gone: every block is back
    zframe_t *all = shmipc_frame_new (push, S_POOL_BYTES);
    assert_non_null (all);
    assert_true (s_loaned (all));
    zframe_destroy (&all);
    shmipc_sock_destroy (&push);
    pt_assert_baseline (baseline);
}

static void
test_messages_with_loans_anywhere_among_their_frames_arrive_whole (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    for (int round = 0; round < 5; round++) {
        //  loan, small, the same loan again, empty, ordinary, loan
        zframe_t *first = s_loan (pair.push, 70 * S_KIB, 10 + (uint64_t) round);
        zframe_t *last = s_loan (pair.push, 5 * S_KIB, 20 + (uint64_t) round);
        zframe_t *big = zframe_new (NULL, 100 * S_KIB);
        assert_non_null (big);
        tu_fill (zframe_data (big), 100 * S_KIB, 30 + (uint64_t) round);
        zframe_t *small = zframe_from ("small");
        zframe_t *empty = zframe_new_empty ();
        assert_int_equal (zframe_send (&first, pair.push, ZFRAME_MORE | ZFRAME_REUSE), 0);
        assert_int_equal (zframe_send (&small, pair.push, ZFRAME_MORE), 0);
        assert_int_equal (zframe_send (&first, pair.push, ZFRAME_MORE), 0);
        assert_int_equal (zframe_send (&empty, pair.push, ZFRAME_MORE), 0);
        assert_int_equal (zframe_send (&big, pair.push, ZFRAME_MORE), 0);
        assert_int_equal (zframe_send (&last, pair.push, 0), 0);

        zmsg_t *got = zmsg_recv (pair.pull);
        assert_non_null (got);
        assert_int_equal (zmsg_size (got), 6);
        zframe_t *frame = zmsg_first (got);
        assert_int_equal (zframe_size (frame), 70 * S_KIB);
        assert_true (tu_check (zframe_data (frame), 70 * S_KIB, 10 + (uint64_t) round));
        //  The same block twice: lent in place, both at one address
        const void *lent = zframe_data (frame);
        assert_true (s_in_pool (lent, 70 * S_KIB, "r--s"));
        frame = zmsg_next (got);
        assert_true (zframe_streq (frame, "small"));
        frame = zmsg_next (got);
        assert_int_equal (zframe_size (frame), 70 * S_KIB);
        assert_ptr_equal (zframe_data (frame), lent);
        frame = zmsg_next (got);
        assert_int_equal (zframe_size (frame), 0);
        frame = zmsg_next (got);
        assert_int_equal (zframe_size (frame), 100 * S_KIB);
        assert_true (tu_check (zframe_data (frame), 100 * S_KIB, 30 + (uint64_t) round));
        frame = zmsg_next (got);
        assert_int_equal (zframe_size (frame), 5 * S_KIB);
        assert_true (tu_check (zframe_data (frame), 5 * S_KIB, 20 + (uint64_t) round));
        zmsg_destroy (&got);
    }
    zsock_t *receivers [] = { pair.pull };
    s_wait_pool_free (pair.push, receivers, 1);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_a_zerocopy_loan_held_past_its_socket_keeps_its_bytes_while_the_sender_lends_on (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    s_pair_t pair = s_pair_new (true);
    //  The whole pool, received in place and kept past the receiving socket
    zframe_t *frame = s_loan (pair.push, S_POOL_BYTES, 5);
    assert_int_equal (zframe_send (&frame, pair.push, 0), 0);
    zframe_t *held = s_expect (pair.pull, S_POOL_BYTES, 5);
    assert_true (s_in_pool (zframe_data (held), S_POOL_BYTES, "r--s"));
    shmipc_sock_destroy (&pair.pull);
    pt_wait_peers (pair.push, 0);
    //  The sender lends on: never the block the held frame shows
    for (int round = 0; round < 3; round++) {
        zframe_t *again = shmipc_frame_new (pair.push, S_POOL_BYTES);
        assert_non_null (again);
        memset (zframe_data (again), 0xee, S_POOL_BYTES);
        zframe_destroy (&again);
        assert_true (tu_check (zframe_data (held), S_POOL_BYTES, 5));
    }
    zframe_destroy (&held);
    s_pair_destroy (&pair);
    pt_assert_baseline (baseline);
}

static void
test_loans_still_in_the_ring_when_the_sender_disconnects_arrive_as_sent (void **state)
{
    tu_baseline_t baseline = pt_baseline ();
    zsock_t *pull = pt_sock (ZMQ_PULL);
    //  One message in the socket: the rest wait in the ring, unread
    zsock_set_rcvhwm (pull, 1);
    char endpoint [128];
    pt_bind (pull, &pt_shm, endpoint, sizeof endpoint);
    zsock_t *push = pt_sock (ZMQ_PUSH);
    pt_connect (push, endpoint);
    pt_wait_peers (push, 1);
    enum { COUNT = 10 };
    size_t size = 256 * S_KIB;
    for (int index = 0; index < COUNT; index++) {
        zframe_t *frame = s_loan (push, size, 600 + (uint64_t) index);
        assert_true (s_loaned (frame));
        assert_int_equal (zframe_send (&frame, push, 0), 0);
    }
    //  Every message is in the ring (the peer's counters say so)
    int64_t deadline = zclock_mono () + PT_PATIENCE_MS;
    shmipc_stats_t stats;
    do {
        assert_true (zclock_mono () < deadline);
        zclock_sleep (5);
        assert_int_equal (shmipc_sock_stats (push, &stats), 0);
    } while (stats.msgs_out < COUNT);
    //  The sender disconnects, and its application lends on, writing over
    //  every block it gets
    assert_int_equal (shmipc_disconnect (push, "%s", endpoint), 0);
    pt_wait_peers (push, 0);
    zframe_t *mine [S_POOL_BYTES / (256 * S_KIB)];
    for (size_t index = 0; index < sizeof mine / sizeof mine [0]; index++) {
        mine [index] = shmipc_frame_new (push, size);
        assert_non_null (mine [index]);
        memset (zframe_data (mine [index]), 0xee, size);
    }
    //  What was sent arrives as it was sent
    for (int index = 0; index < COUNT; index++) {
        zframe_t *got = s_expect (pull, size, 600 + (uint64_t) index);
        zframe_destroy (&got);
    }
    for (size_t index = 0; index < sizeof mine / sizeof mine [0]; index++)
        zframe_destroy (&mine [index]);
    shmipc_sock_destroy (&push);
    shmipc_sock_destroy (&pull);
    pt_assert_baseline (baseline);
}

int
main (void)
{
    pt_warm_up ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_frame_new_gives_frames_in_the_senders_pool_that_arrive_intact),
        cmocka_unit_test (test_frames_before_the_first_shm_endpoint_are_ordinary),
        cmocka_unit_test (test_set_loan_pool_sizes_the_pool_before_the_first_loan),
        cmocka_unit_test (test_zerocopy_receiver_gets_loaned_frames_in_its_read_only_map_of_the_pool),
        cmocka_unit_test (test_an_exhausted_pool_gives_ordinary_frames_and_everything_arrives),
        cmocka_unit_test (test_frames_under_4_kib_are_ordinary_and_from_4_kib_loaned),
        cmocka_unit_test (test_msg_init_loan_with_raw_zmq_msg_send_and_recv),
        cmocka_unit_test (test_pub_fans_one_loaned_frame_out_to_three_subs_and_its_block_comes_back),
        cmocka_unit_test (test_a_loaned_frame_reaches_shm_and_ipc_peers_of_one_socket_intact),
        cmocka_unit_test (test_loaned_frames_outlive_their_sockets),
        cmocka_unit_test (test_frame_new_on_a_socket_without_shm_endpoints_gives_a_usable_frame),
        cmocka_unit_test (test_the_pool_is_four_rings_and_at_least_4_mib),
        cmocka_unit_test (test_connections_made_after_the_first_loan_lend_too),
        cmocka_unit_test (test_messages_with_loans_anywhere_among_their_frames_arrive_whole),
        cmocka_unit_test (test_a_zerocopy_loan_held_past_its_socket_keeps_its_bytes_while_the_sender_lends_on),
        cmocka_unit_test (test_loans_still_in_the_ring_when_the_sender_disconnects_arrive_as_sent),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    pt_remove_socket_files ();
    return rc;
}
