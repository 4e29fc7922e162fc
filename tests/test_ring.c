/*  test_ring - the SPSC record ring over a plain buffer: round trips,
    wrap-around at every offset, and refusal of every index or header a
    hostile peer could publish.
*/
#include "testutil.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  A ring over heap memory: data, and the two index words apart from it
//  (each side's index lives in its own segment). Heap blocks of the exact
//  size, so that AddressSanitizer sees any access past them.
typedef struct {
    uint8_t *data;              //  size bytes
    size_t size;
    uint64_t *head;             //  Writer's index
    uint64_t *tail;             //  Reader's index
    shmipc_ring_t *writer;
    shmipc_ring_t *reader;
} s_rig_t;

static void
s_rig_open (s_rig_t *rig, size_t size, uint64_t start)
{
    rig->size = size;
    rig->data = (uint8_t *) calloc (1, size);
    rig->head = (uint64_t *) malloc (sizeof (uint64_t));
    rig->tail = (uint64_t *) malloc (sizeof (uint64_t));
    assert_non_null (rig->data);
    assert_non_null (rig->head);
    assert_non_null (rig->tail);
    *rig->head = *rig->tail = start;
    rig->writer = shmipc_ring_new_writer (rig->data, size, rig->head, rig->tail);
    rig->reader = shmipc_ring_new_reader (rig->data, size, rig->head, rig->tail);
    assert_non_null (rig->writer);
    assert_non_null (rig->reader);
}

static void
s_rig_close (s_rig_t *rig)
{
    shmipc_ring_destroy (&rig->writer);
    shmipc_ring_destroy (&rig->reader);
    assert_null (rig->writer);
    assert_null (rig->reader);
    free (rig->data);
    free (rig->head);
    free (rig->tail);
}

//  Store a raw record header at ring offset offset.
static void
s_poke_header (s_rig_t *rig, size_t offset, uint32_t size, uint32_t flags)
{
    uint64_t header = (uint64_t) size | (uint64_t) flags << 32;
    memcpy (rig->data + offset, &header, sizeof header);
}

//  Peek expecting failure with errno code.
static void
s_assert_peek_fails (shmipc_ring_t *reader, int code)
{
    shmipc_record_t record;
    errno = 0;
    assert_int_equal (shmipc_ring_peek (reader, &record), -1);
    assert_int_equal (errno, code);
}

//  Read the next record, check it holds size bytes of pattern seed and
//  flags, consume it.
static void
s_read_record (shmipc_ring_t *reader, size_t size, uint64_t seed, uint32_t flags)
{
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (reader, &record), 0);
    assert_int_equal (record.size, size);
    assert_int_equal (record.flags, flags);
    assert_int_equal (record.part_size [0] + record.part_size [1], size);
    uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
    assert_non_null (copy);
    shmipc_ring_copy (&record, copy);
    assert_true (tu_check (copy, size, seed));
    free (copy);
    shmipc_ring_consume (reader);
}

//  Put a record of size bytes of pattern seed.
static void
s_put_record (shmipc_ring_t *writer, size_t size, uint64_t seed, uint32_t flags)
{
    uint8_t *bytes = (uint8_t *) malloc (size ? size : 1);
    assert_non_null (bytes);
    tu_fill (bytes, size, seed);
    shmipc_ring_put (writer, bytes, size, flags);
    free (bytes);
}

static void
test_ring_new_rejects_bad_arguments (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t *words = (uint64_t *) calloc (1, 256 + 32);
    assert_non_null (words);
    uint8_t *data = (uint8_t *) words;
    uint64_t *head = words + 32, *tail = words + 33;
    size_t sizes [] = { 0, 8, 32, SHMIPC_RING_MIN - 8, SHMIPC_RING_MIN + 8, 96,
                        SHMIPC_RING_MAX * 2, SHMIPC_RING_MAX + SHMIPC_RING_MIN };
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++) {
        errno = 0;
        assert_null (shmipc_ring_new_writer (data, sizes [index], head, tail));
        assert_int_equal (errno, EINVAL);
        errno = 0;
        assert_null (shmipc_ring_new_reader (data, sizes [index], head, tail));
        assert_int_equal (errno, EINVAL);
    }
    //  Misaligned or missing memory
    void *bad_data [] = { NULL, data + 4, data + 1 };
    for (size_t index = 0; index < 3; index++) {
        errno = 0;
        assert_null (shmipc_ring_new_writer (bad_data [index], 64, head, tail));
        assert_int_equal (errno, EINVAL);
        errno = 0;
        assert_null (shmipc_ring_new_reader (bad_data [index], 64, head, tail));
        assert_int_equal (errno, EINVAL);
    }
    uint64_t *odd = (uint64_t *) ((uint8_t *) head + 4);
    errno = 0;
    assert_null (shmipc_ring_new_writer (data, 64, odd, tail));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_writer (data, 64, head, odd));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_reader (data, 64, odd, tail));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_reader (data, 64, head, odd));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_writer (data, 64, NULL, tail));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_reader (data, 64, head, NULL));
    assert_int_equal (errno, EINVAL);
    //  The smallest and largest sizes are fine
    shmipc_ring_t *ring = shmipc_ring_new_writer (data, SHMIPC_RING_MIN, head, tail);
    assert_non_null (ring);
    assert_int_equal (shmipc_ring_size (ring), SHMIPC_RING_MIN);
    shmipc_ring_destroy (&ring);
    ring = shmipc_ring_new_reader (data, SHMIPC_RING_MAX, head, tail);
    assert_non_null (ring);
    assert_int_equal (shmipc_ring_size (ring), SHMIPC_RING_MAX);
    shmipc_ring_destroy (&ring);
    shmipc_ring_destroy (&ring);
    free (words);
    tu_assert_baseline (baseline);
}

static void
test_ring_writer_requires_an_empty_aligned_start (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t *words = (uint64_t *) calloc (1, 64 + 16);
    assert_non_null (words);
    uint64_t *head = words + 8, *tail = words + 9;
    //  Indices that differ: the ring is not empty
    *head = 64;
    *tail = 0;
    errno = 0;
    assert_null (shmipc_ring_new_writer (words, 64, head, tail));
    assert_int_equal (errno, EINVAL);
    *head = 0;
    *tail = 8;
    errno = 0;
    assert_null (shmipc_ring_new_writer (words, 64, head, tail));
    assert_int_equal (errno, EINVAL);
    //  Equal but not on a record boundary's alignment
    *head = *tail = 12;
    errno = 0;
    assert_null (shmipc_ring_new_writer (words, 64, head, tail));
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_null (shmipc_ring_new_reader (words, 64, head, tail));
    assert_int_equal (errno, EINVAL);
    //  Equal, aligned, anywhere in the 64-bit space
    *head = *tail = UINT64_MAX - 7;
    shmipc_ring_t *ring = shmipc_ring_new_writer (words, 64, head, tail);
    assert_non_null (ring);
    assert_int_equal (shmipc_ring_space (ring), 64);
    shmipc_ring_destroy (&ring);
    free (words);
    tu_assert_baseline (baseline);
}

static void
test_ring_reader_sees_records_published_before_it_was_created (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 256, 0);
    shmipc_ring_destroy (&rig.reader);
    s_put_record (rig.writer, 10, 1, 0);
    s_put_record (rig.writer, 20, 2, SHMIPC_RECORD_MORE);
    shmipc_ring_publish (rig.writer);
    rig.reader = shmipc_ring_new_reader (rig.data, rig.size, rig.head, rig.tail);
    assert_non_null (rig.reader);
    s_read_record (rig.reader, 10, 1, 0);
    s_read_record (rig.reader, 20, 2, SHMIPC_RECORD_MORE);
    s_assert_peek_fails (rig.reader, EAGAIN);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_record_size_is_header_plus_padded_payload (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    assert_int_equal (shmipc_ring_record_size (0), 8);
    for (size_t size = 1; size <= 8; size++)
        assert_int_equal (shmipc_ring_record_size (size), 16);
    assert_int_equal (shmipc_ring_record_size (9), 24);
    assert_int_equal (shmipc_ring_record_size (56), 64);
    assert_int_equal (shmipc_ring_record_size (57), 72);
    assert_int_equal (shmipc_ring_record_size (UINT32_MAX), 8 + (size_t) UINT32_MAX + 1);
    tu_assert_baseline (baseline);
}

static void
test_ring_round_trips_records_in_order (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 1024, 0);
    uint64_t written = 0, read = 0;
    long rounds = tu_scaled (20000, 200);
    for (long round = 0; round < rounds; round++) {
        //  Write as many as fit, a batch per publish, then read them all
        size_t size = (size_t) (written * 7919 % 300);
        while ((size_t) shmipc_ring_space (rig.writer)
                >= shmipc_ring_record_size (size)) {
            s_put_record (rig.writer, size, written, (uint32_t) (written % 4));
            written++;
            size = (size_t) (written * 7919 % 300);
            if (written % 3 == 0)
                shmipc_ring_publish (rig.writer);
        }
        shmipc_ring_publish (rig.writer);
        assert_false (shmipc_ring_pending (rig.writer));
        while (read < written) {
            s_read_record (rig.reader, (size_t) (read * 7919 % 300), read,
                           (uint32_t) (read % 4));
            read++;
            if (read % 5 == 0)
                shmipc_ring_release (rig.reader);
        }
        s_assert_peek_fails (rig.reader, EAGAIN);
        shmipc_ring_release (rig.reader);
        assert_int_equal (shmipc_ring_space (rig.writer), 1024);
    }
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

//  One ring of size bytes starting at index start: a record of size first
//  bytes, then one that fills the ring exactly; both read back.
static void
s_wrap_case (size_t size, uint64_t start, size_t first)
{
    s_rig_t rig;
    s_rig_open (&rig, size, start);
    size_t offset = (size_t) (start & (size - 1));
    size_t need = shmipc_ring_record_size (first);
    assert_int_equal (shmipc_ring_space (rig.writer), size);
    s_put_record (rig.writer, first, first + 1, (uint32_t) (first % 4));
    assert_int_equal (shmipc_ring_space (rig.writer), size - need);
    shmipc_ring_publish (rig.writer);
    assert_int_equal (shmipc_ring_available (rig.reader), need);

    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.size, first);
    assert_int_equal (record.flags, first % 4);
    size_t payload = (offset + SHMIPC_RECORD_HEADER) % size;
    size_t room = size - payload;
    assert_ptr_equal (record.part [0], rig.data + payload);
    if (first <= room) {
        assert_int_equal (record.part_size [0], first);
        assert_null (record.part [1]);
        assert_int_equal (record.part_size [1], 0);
    }
    else {
        assert_int_equal (record.part_size [0], room);
        assert_ptr_equal (record.part [1], rig.data);
        assert_int_equal (record.part_size [1], first - room);
    }
    uint8_t copy [256];
    shmipc_ring_copy (&record, copy);
    assert_true (tu_check (copy, first, first + 1));
    shmipc_ring_consume (rig.reader);
    assert_int_equal (shmipc_ring_unreleased (rig.reader), need);
    //  Fill the rest exactly: space is 0 until the reader releases
    if (size - need >= SHMIPC_RECORD_HEADER) {
        size_t second = size - need - SHMIPC_RECORD_HEADER;
        s_put_record (rig.writer, second, second + 1000, SHMIPC_RECORD_CHUNK);
        assert_int_equal (shmipc_ring_space (rig.writer), 0);
        shmipc_ring_publish (rig.writer);
        s_read_record (rig.reader, second, second + 1000, SHMIPC_RECORD_CHUNK);
    }
    s_assert_peek_fails (rig.reader, EAGAIN);
    assert_true (shmipc_ring_release (rig.reader));
    //  Either the second record filled the ring, or the first did
    assert_true (*rig.tail == start + size);
    assert_int_equal (shmipc_ring_space (rig.writer), size);
    s_rig_close (&rig);
}

static void
test_ring_wraps_at_every_offset_with_every_size (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t sizes [] = { 64, 256 };
    //  Low indices, and indices that cross 2^64 during the case
    for (size_t which = 0; which < 2; which++) {
        size_t size = sizes [which];
        uint64_t bases [] = { 0, 1ULL << 40, (uint64_t) 0 - size };
        for (size_t base = 0; base < 3; base++)
            for (size_t offset = 0; offset < size; offset += 8)
                for (size_t first = 0; first <= size - SHMIPC_RECORD_HEADER; first++)
                    s_wrap_case (size, bases [base] + offset, first);
    }
    tu_assert_baseline (baseline);
}

static void
test_ring_space_available_and_release_follow_publish (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 0);
    assert_int_equal (shmipc_ring_space (rig.writer), 128);
    assert_false (shmipc_ring_pending (rig.writer));
    assert_int_equal (shmipc_ring_available (rig.reader), 0);
    s_assert_peek_fails (rig.reader, EAGAIN);

    //  Put but not published: the writer counts it, the reader cannot see it
    s_put_record (rig.writer, 5, 5, 0);
    assert_true (shmipc_ring_pending (rig.writer));
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 16);
    assert_int_equal (*rig.head, 0);
    assert_int_equal (shmipc_ring_available (rig.reader), 0);
    s_assert_peek_fails (rig.reader, EAGAIN);

    shmipc_ring_publish (rig.writer);
    assert_false (shmipc_ring_pending (rig.writer));
    assert_int_equal (*rig.head, 16);
    assert_int_equal (shmipc_ring_available (rig.reader), 16);
    s_put_record (rig.writer, 20, 20, SHMIPC_RECORD_MORE);
    shmipc_ring_publish (rig.writer);
    assert_int_equal (shmipc_ring_available (rig.reader), 16 + 32);

    //  Peek does not consume: twice gives the same record
    shmipc_record_t one, two;
    assert_int_equal (shmipc_ring_peek (rig.reader, &one), 0);
    assert_int_equal (shmipc_ring_peek (rig.reader, &two), 0);
    assert_int_equal (one.size, 5);
    assert_int_equal (two.size, 5);
    assert_ptr_equal (one.part [0], two.part [0]);
    assert_int_equal (shmipc_ring_available (rig.reader), 48);
    shmipc_ring_consume (rig.reader);
    assert_int_equal (shmipc_ring_available (rig.reader), 32);
    assert_int_equal (shmipc_ring_unreleased (rig.reader), 16);
    //  Consumed, not released: the writer does not get the space yet
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 48);
    assert_int_equal (*rig.tail, 0);
    assert_true (shmipc_ring_release (rig.reader));
    assert_false (shmipc_ring_release (rig.reader));
    assert_int_equal (*rig.tail, 16);
    assert_int_equal (shmipc_ring_unreleased (rig.reader), 0);
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 32);

    s_read_record (rig.reader, 20, 20, SHMIPC_RECORD_MORE);
    assert_int_equal (shmipc_ring_available (rig.reader), 0);
    s_assert_peek_fails (rig.reader, EAGAIN);
    assert_true (shmipc_ring_release (rig.reader));
    assert_int_equal (shmipc_ring_space (rig.writer), 128);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_takes_empty_records (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 64, 0);
    for (int index = 0; index < 8; index++)
        shmipc_ring_put (rig.writer, NULL, 0, SHMIPC_RECORD_MORE);
    assert_int_equal (shmipc_ring_space (rig.writer), 0);
    shmipc_ring_publish (rig.writer);
    for (int index = 0; index < 8; index++) {
        shmipc_record_t record;
        assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
        assert_int_equal (record.size, 0);
        assert_int_equal (record.flags, SHMIPC_RECORD_MORE);
        assert_int_equal (record.part_size [0] + record.part_size [1], 0);
        shmipc_ring_copy (&record, NULL);
        shmipc_ring_consume (rig.reader);
    }
    s_assert_peek_fails (rig.reader, EAGAIN);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_tail_past_published (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 0);
    s_put_record (rig.writer, 8, 1, 0);
    shmipc_ring_publish (rig.writer);
    s_put_record (rig.writer, 8, 2, 0);       //  Put, not published
    //  The reader may consume up to 16, never more, not even what was put
    *rig.tail = 16;
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 16);
    uint64_t bad [] = { 24, 32, 128, 1ULL << 63, UINT64_MAX - 7 };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        *rig.tail = bad [index];
        errno = 0;
        assert_int_equal (shmipc_ring_space (rig.writer), -1);
        assert_int_equal (errno, EPROTO);
    }
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_tail_moving_backwards (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 1000);
    s_put_record (rig.writer, 24, 1, 0);
    s_put_record (rig.writer, 24, 2, 0);
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 24, 1, 0);
    assert_true (shmipc_ring_release (rig.reader));
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 32);
    //  Seen at 1032; anything before that is a step back
    uint64_t bad [] = { 1024, 1000, 0, 992 };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        *rig.tail = bad [index];
        errno = 0;
        assert_int_equal (shmipc_ring_space (rig.writer), -1);
        assert_int_equal (errno, EPROTO);
    }
    //  Staying put is fine
    *rig.tail = 1032;
    assert_int_equal (shmipc_ring_space (rig.writer), 128 - 32);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_misaligned_tail (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 0);
    s_put_record (rig.writer, 40, 1, 0);
    shmipc_ring_publish (rig.writer);
    for (uint64_t tail = 1; tail < 48; tail++) {
        if (tail % 8 == 0)
            continue;
        *rig.tail = tail;
        errno = 0;
        assert_int_equal (shmipc_ring_space (rig.writer), -1);
        assert_int_equal (errno, EPROTO);
    }
    *rig.tail = 48;
    assert_int_equal (shmipc_ring_space (rig.writer), 128);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_head_past_tail_plus_size (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 64, 64);
    //  Exactly a full ring is fine; a byte more is not
    *rig.head = 64 + 64;
    s_poke_header (&rig, 0, 56, 0);
    assert_int_equal (shmipc_ring_available (rig.reader), 64);
    s_rig_close (&rig);

    uint64_t bad [] = { 64 + 65, 64 + 72, 64 + 128, UINT64_MAX };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        s_rig_open (&rig, 64, 64);
        *rig.head = bad [index];
        errno = 0;
        assert_int_equal (shmipc_ring_available (rig.reader), -1);
        assert_int_equal (errno, EPROTO);
        s_assert_peek_fails (rig.reader, EPROTO);
        s_rig_close (&rig);
    }
    //  The bound is what the reader released, not what it consumed
    s_rig_open (&rig, 64, 0);
    s_put_record (rig.writer, 24, 1, 0);
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 24, 1, 0);
    *rig.head = 64 + 8;                     //  Overwrites 8 unreleased bytes
    errno = 0;
    assert_int_equal (shmipc_ring_available (rig.reader), -1);
    assert_int_equal (errno, EPROTO);
    shmipc_ring_release (rig.reader);
    assert_int_equal (shmipc_ring_available (rig.reader), 64 + 8 - 32);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_head_moving_backwards (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 512);
    s_put_record (rig.writer, 8, 1, 0);
    s_put_record (rig.writer, 8, 2, 0);
    shmipc_ring_publish (rig.writer);
    assert_int_equal (shmipc_ring_available (rig.reader), 32);
    uint64_t bad [] = { 512 + 24, 512 + 16, 512, 0 };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        *rig.head = bad [index];
        errno = 0;
        assert_int_equal (shmipc_ring_available (rig.reader), -1);
        assert_int_equal (errno, EPROTO);
    }
    *rig.head = 512 + 32;
    assert_int_equal (shmipc_ring_available (rig.reader), 32);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_record_larger_than_published (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 256, 0);
    //  16 bytes published: a header saying 8 fits, 9 does not
    *rig.head = 16;
    uint32_t bad [] = { 9, 16, 100, 248, 249, 1u << 20, UINT32_MAX };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        s_poke_header (&rig, 0, bad [index], 0);
        s_assert_peek_fails (rig.reader, EPROTO);
    }
    s_poke_header (&rig, 0, 8, 0);
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.size, 8);
    //  A record that would run past a full ring, whatever was published
    s_rig_close (&rig);
    s_rig_open (&rig, 64, 0);
    *rig.head = 64;
    s_poke_header (&rig, 0, 57, 0);
    s_assert_peek_fails (rig.reader, EPROTO);
    s_poke_header (&rig, 0, 56, 0);
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_unknown_flag_bits (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 64, 0);
    *rig.head = 8;
    for (int bit = 2; bit < 32; bit++) {
        s_poke_header (&rig, 0, 0, 1u << bit);
        s_assert_peek_fails (rig.reader, EPROTO);
        s_poke_header (&rig, 0, 0, (1u << bit) | SHMIPC_RECORD_MORE);
        s_assert_peek_fails (rig.reader, EPROTO);
    }
    s_poke_header (&rig, 0, 0, SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK);
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.flags, SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_rejects_partial_header (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    for (uint64_t head = 1; head < 8; head++) {
        s_rig_open (&rig, 64, 0);
        s_poke_header (&rig, 0, 0, 0);
        *rig.head = head;
        s_assert_peek_fails (rig.reader, EPROTO);
        s_rig_close (&rig);
    }
    //  One whole empty record, then 4 bytes of the next header
    s_rig_open (&rig, 64, 0);
    s_poke_header (&rig, 0, 0, 0);
    s_poke_header (&rig, 8, 0, 0);
    *rig.head = 12;
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    shmipc_ring_consume (rig.reader);
    s_assert_peek_fails (rig.reader, EPROTO);
    s_rig_close (&rig);
    //  A record whose padding was not all published
    s_rig_open (&rig, 64, 0);
    s_poke_header (&rig, 0, 3, 0);
    *rig.head = 12;
    s_assert_peek_fails (rig.reader, EPROTO);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

//  A model of one ring's two sides, kept by the randomized test: what each
//  side has stored and last accepted, to predict every call's result.
typedef struct {
    uint64_t w_cursor, w_published, w_seen;
    uint64_t r_cursor, r_released, r_seen, r_peeked;
} s_model_t;

//  A value near base, or anywhere.
static uint64_t
s_random_index (uint64_t *state, uint64_t base)
{
    uint64_t roll = tu_random (state);
    switch (roll % 4) {
        case 0:  return tu_random (state);
        case 1:  return base + (tu_random (state) % 160) - 80;
        case 2:  return base + ((tu_random (state) % 20) - 10) * 8;
        default: return base;
    }
}

static void
s_fresh (s_rig_t *rig, s_model_t *model, uint64_t start)
{
    s_rig_open (rig, rig->size, start);
    memset (model, 0, sizeof *model);
    model->w_cursor = model->w_published = model->w_seen = start;
    model->r_cursor = model->r_released = model->r_seen = start;
}

static void
test_ring_survives_random_indices_and_headers (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t random = 0x2545F4914F6CDD1DULL;
    s_rig_t rig = { .size = 64 };
    s_model_t model;
    s_fresh (&rig, &model, 0);
    uint8_t bytes [64];
    long rounds = tu_scaled (1000000, 5000);
    long successes = 0, refusals = 0;
    for (long round = 0; round < rounds; round++) {
        uint64_t roll = tu_random (&random) % 100;
        if (roll < 3) {
            //  Start over somewhere in the 64-bit space
            s_rig_close (&rig);
            uint64_t start = tu_random (&random) & ~(uint64_t) 7;
            if (roll == 0)
                start = (uint64_t) 0 - 8 * (tu_random (&random) % 16);
            s_fresh (&rig, &model, start);
        }
        else
        if (roll < 10)
            *rig.head = s_random_index (&random, model.r_seen);
        else
        if (roll < 17)
            *rig.tail = s_random_index (&random, model.w_seen);
        else
        if (roll < 25) {
            //  A random header (or garbage) at a random aligned offset
            size_t offset = (size_t) (tu_random (&random) % 8) * 8;
            uint64_t word = tu_random (&random);
            if (word & 1)
                word = (tu_random (&random) % 72) | ((word >> 1) % 8) << 32;
            memcpy (rig.data + offset, &word, sizeof word);
        }
        else
        if (roll < 45) {
            //  Writer: space, maybe a put, maybe a publish
            uint64_t tail = *rig.tail;
            bool valid = tail - model.w_seen <= model.w_published - model.w_seen
                      && (tail & 7) == 0;
            errno = 0;
            int64_t space = shmipc_ring_space (rig.writer);
            if (!valid) {
                assert_int_equal (space, -1);
                assert_int_equal (errno, EPROTO);
                refusals++;
                continue;
            }
            model.w_seen = tail;
            assert_int_equal (space, (int64_t) (64 - (model.w_cursor - tail)));
            assert_true (space >= 0 && space <= 64 && space % 8 == 0);
            successes++;
            size_t size = (size_t) (tu_random (&random) % 57);
            if (shmipc_ring_record_size (size) <= (size_t) space) {
                tu_fill (bytes, size, round);
                shmipc_ring_put (rig.writer, bytes, size,
                                 (uint32_t) (tu_random (&random) % 4));
                model.w_cursor += shmipc_ring_record_size (size);
            }
            if (tu_random (&random) % 2) {
                bool pending = model.w_cursor != model.w_published;
                assert_int_equal (shmipc_ring_pending (rig.writer), pending);
                shmipc_ring_publish (rig.writer);
                model.w_published = model.w_cursor;
                if (pending)
                    assert_true (*rig.head == model.w_cursor);
            }
        }
        else {
            //  Reader: peek, maybe copy and consume, maybe release
            uint64_t available = model.r_seen - model.r_cursor;
            int expect = 0;
            if (available == 0) {
                uint64_t head = *rig.head;
                if (head - model.r_seen > model.r_released + 64 - model.r_seen)
                    expect = EPROTO;
                else {
                    model.r_seen = head;
                    available = head - model.r_cursor;
                    if (available == 0)
                        expect = EAGAIN;
                }
            }
            uint64_t header;
            memcpy (&header, rig.data + (model.r_cursor & 63), sizeof header);
            uint32_t size = (uint32_t) header, flags = (uint32_t) (header >> 32);
            if (!expect
            && (available < 8 || (flags & ~3u)
            ||  shmipc_ring_record_size (size) > available))
                expect = EPROTO;
            shmipc_record_t record;
            errno = 0;
            int rc = shmipc_ring_peek (rig.reader, &record);
            if (expect) {
                assert_int_equal (rc, -1);
                assert_int_equal (errno, expect);
                refusals += expect == EPROTO;
                continue;
            }
            assert_int_equal (rc, 0);
            successes++;
            assert_int_equal (record.size, size);
            assert_int_equal (record.flags, flags);
            assert_true (record.size + 8 <= 64);
            assert_int_equal (record.part_size [0] + record.part_size [1], size);
            assert_true (record.part [0] >= rig.data
                         && record.part [0] + record.part_size [0] <= rig.data + 64);
            if (record.part_size [1])
                assert_ptr_equal (record.part [1], rig.data);
            //  Into a block of exactly size bytes: ASan sees any overrun
            uint8_t *copy = (uint8_t *) malloc (size ? size : 1);
            assert_non_null (copy);
            shmipc_ring_copy (&record, copy);
            free (copy);
            if (tu_random (&random) % 4) {
                shmipc_ring_consume (rig.reader);
                model.r_cursor += shmipc_ring_record_size (size);
            }
            if (tu_random (&random) % 2) {
                bool moved = model.r_cursor != model.r_released;
                assert_int_equal (shmipc_ring_release (rig.reader), moved);
                model.r_released = model.r_cursor;
                if (moved)
                    assert_true (*rig.tail == model.r_released);
            }
            assert_int_equal (shmipc_ring_unreleased (rig.reader),
                              model.r_cursor - model.r_released);
        }
    }
    //  Both outcomes happened, many times
    assert_true (successes > rounds / 10);
    assert_true (refusals > rounds / 50);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

//  A ring in a mirrored segment, written through the owner's read-write
//  mapping and read through a read-only attach: every record, wherever it
//  starts, is handed out in one piece, inside the reader's mapping and its
//  mirror, and holds what was written.
static void
test_ring_mirrored_hands_out_wrapping_records_in_one_piece (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t size = 4096;
    shmipc_segment_t *owner = shmipc_segment_new ("ring-mirror", SHMIPC_SEGMENT_HEADER + size, 0x52494e47);
    assert_non_null (owner);
    if (!shmipc_segment_mirrored (owner)) {
        //  Pages bigger than the header: no mirror, nothing to check here
        shmipc_segment_destroy (&owner);
        skip ();
    }
    shmipc_segment_t *peer = shmipc_segment_attach (dup (shmipc_segment_fd (owner)),
                                                    0, SIZE_MAX, 0x52494e47);
    assert_non_null (peer);
    assert_true (shmipc_segment_mirrored (peer));
    uint8_t *mine = (uint8_t *) shmipc_segment_data (owner);
    const uint8_t *theirs = (const uint8_t *) shmipc_segment_data (peer);
    uint64_t *head = (uint64_t *) mine;         //  Index words in the header
    uint64_t tail = 0;
    *head = 0;
    shmipc_ring_t *writer = shmipc_ring_new_writer (mine + SHMIPC_SEGMENT_HEADER, size,
                                                    head, &tail);
    shmipc_ring_t *reader = shmipc_ring_new_reader (theirs + SHMIPC_SEGMENT_HEADER, size,
                                                    head, &tail);
    assert_non_null (writer);
    assert_non_null (reader);
    shmipc_ring_set_mirrored (writer);
    shmipc_ring_set_mirrored (reader);
    const uint8_t *low = theirs + SHMIPC_SEGMENT_HEADER;
    const uint8_t *high = low + 2 * size;
    size_t wrapped = 0;
    for (size_t round = 0; round < 3000; round++) {
        size_t bytes = 1 + (round * 389) % 1500;
        assert_true (shmipc_ring_space (writer) >= (int64_t) shmipc_ring_record_size (bytes));
        s_put_record (writer, bytes, round, 0);
        shmipc_ring_publish (writer);
        shmipc_record_t record;
        assert_int_equal (shmipc_ring_peek (reader, &record), 0);
        assert_int_equal (record.size, bytes);
        assert_null (record.part [1]);
        assert_int_equal (record.part_size [0], bytes);
        assert_true (record.part [0] >= low && record.part [0] + bytes <= high);
        if (record.part [0] + bytes > low + size)
            wrapped++;
        assert_true (tu_check (record.part [0], bytes, round));
        shmipc_ring_consume (reader);
        shmipc_ring_release (reader);
    }
    //  The case this is about came up, many times
    assert_true (wrapped > 100);
    shmipc_ring_destroy (&writer);
    shmipc_ring_destroy (&reader);
    shmipc_segment_destroy (&peer);
    shmipc_segment_destroy (&owner);
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ring_new_rejects_bad_arguments),
        cmocka_unit_test (test_ring_writer_requires_an_empty_aligned_start),
        cmocka_unit_test (test_ring_reader_sees_records_published_before_it_was_created),
        cmocka_unit_test (test_ring_record_size_is_header_plus_padded_payload),
        cmocka_unit_test (test_ring_round_trips_records_in_order),
        cmocka_unit_test (test_ring_wraps_at_every_offset_with_every_size),
        cmocka_unit_test (test_ring_mirrored_hands_out_wrapping_records_in_one_piece),
        cmocka_unit_test (test_ring_space_available_and_release_follow_publish),
        cmocka_unit_test (test_ring_takes_empty_records),
        cmocka_unit_test (test_ring_rejects_tail_past_published),
        cmocka_unit_test (test_ring_rejects_tail_moving_backwards),
        cmocka_unit_test (test_ring_rejects_misaligned_tail),
        cmocka_unit_test (test_ring_rejects_head_past_tail_plus_size),
        cmocka_unit_test (test_ring_rejects_head_moving_backwards),
        cmocka_unit_test (test_ring_rejects_record_larger_than_published),
        cmocka_unit_test (test_ring_rejects_unknown_flag_bits),
        cmocka_unit_test (test_ring_rejects_partial_header),
        cmocka_unit_test (test_ring_survives_random_indices_and_headers),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
