/*  test_ring - the SPSC record ring over a plain buffer: round trips,
    wrap-around at every offset, refusal of every index or header a
    hostile peer could publish, and holds: the writer steps over the
    records a reader's hold table lists (PAD records, which the reader
    skips), whatever the table says.
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
    for (int bit = 4; bit < 32; bit++) {
        s_poke_header (&rig, 0, 0, 1u << bit);
        s_assert_peek_fails (rig.reader, EPROTO);
        s_poke_header (&rig, 0, 0, (1u << bit) | SHMIPC_RECORD_MORE);
        s_assert_peek_fails (rig.reader, EPROTO);
        s_poke_header (&rig, 0, 0, (1u << bit) | SHMIPC_RECORD_PAD);
        s_assert_peek_fails (rig.reader, EPROTO);
    }
    //  PAD is filler: alone, or not at all
    uint32_t mixed [] = { SHMIPC_RECORD_PAD | SHMIPC_RECORD_MORE,
                          SHMIPC_RECORD_PAD | SHMIPC_RECORD_CHUNK,
                          SHMIPC_RECORD_PAD | SHMIPC_RECORD_LOAN,
                          SHMIPC_RECORD_PAD | SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK };
    for (size_t index = 0; index < sizeof mixed / sizeof mixed [0]; index++) {
        s_poke_header (&rig, 0, 0, mixed [index]);
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
    long successes = 0, refusals = 0, pads = 0;
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
            //  A random header (or garbage) at a random aligned offset, or
            //  a PAD where the reader is
            size_t offset = (size_t) (tu_random (&random) % 8) * 8;
            uint64_t word = tu_random (&random);
            if (word & 1)
                word = (tu_random (&random) % 72) | ((word >> 1) % 16) << 32;
            if (roll < 22 && tu_random (&random) % 2) {
                offset = (size_t) (model.r_cursor & 63);
                word = (tu_random (&random) % 40) | (uint64_t) SHMIPC_RECORD_PAD << 32;
            }
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
            //  PAD records (alone) are consumed on the way, as filler
            int expect = 0;
            uint32_t size, flags;
            while (true) {
                uint64_t available = model.r_seen - model.r_cursor;
                if (available == 0) {
                    uint64_t head = *rig.head;
                    if (head - model.r_seen > model.r_released + 64 - model.r_seen) {
                        expect = EPROTO;
                        break;
                    }
                    model.r_seen = head;
                    available = head - model.r_cursor;
                    if (available == 0) {
                        expect = EAGAIN;
                        break;
                    }
                }
                uint64_t header;
                memcpy (&header, rig.data + (model.r_cursor & 63), sizeof header);
                size = (uint32_t) header;
                flags = (uint32_t) (header >> 32);
                if (available < 8 || (flags & ~15u)
                ||  ((flags & SHMIPC_RECORD_PAD) && flags != SHMIPC_RECORD_PAD)
                ||  shmipc_ring_record_size (size) > available) {
                    expect = EPROTO;
                    break;
                }
                if (flags != SHMIPC_RECORD_PAD)
                    break;
                model.r_cursor += shmipc_ring_record_size (size);
                pads++;
            }
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
    //  Both outcomes happened, many times, and PAD records were skipped
    print_message ("    %ld rounds: %ld successes, %ld refusals, %ld PAD records skipped\n",
                   rounds, successes, refusals, pads);
    assert_true (successes > rounds / 10);
    assert_true (refusals > rounds / 50);
    assert_true (pads > rounds / 1000);
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

//  --------------------------------------------------------------------------
//  Holds: the reader lists records it keeps in a table; the writer steps
//  over them with PAD records

//  List a record in the table, as the reader does: the slot, then its bit.
static void
s_hold (shmipc_holds_table_t *table, unsigned slot, uint64_t offset, uint64_t bytes)
{
    table->slots [slot] = SHMIPC_HOLD_SLOT (offset, bytes);
    table->mask |= (uint64_t) 1 << slot;
}

//  True if a slot is one the writer must respect: a record that could be
//  in a ring of size bytes (what shmipc_ring_set_holds documents).
static bool
s_slot_valid (uint64_t value, size_t size)
{
    uint64_t offset = value >> 32, bytes = (uint32_t) value;
    return offset < size && bytes >= shmipc_ring_record_size (1) && bytes < size
        && ((offset | bytes) & 7) == 0;
}

//  True if ring bytes [at, at + bytes) (indices, any lap) and the valid
//  slot value overlap, in a ring of size bytes.
static bool
s_overlaps (uint64_t at, uint64_t bytes, uint64_t value, size_t size)
{
    uint64_t offset = value >> 32, held = (uint32_t) value;
    uint64_t mask = size - 1;
    //  Distance from each start to the other, forwards
    return ((offset - at) & mask) < bytes || ((at - offset) & mask) < held;
}

//  A held record, as the test's reader keeps it: where its payload lies
//  and what it holds.
typedef struct {
    unsigned slot;
    uint64_t at;                //  Index of its header
    size_t size;
    uint64_t seed;
    shmipc_record_t record;     //  Its parts in the ring
} s_held_t;

//  Assert a held record's payload is still what the writer put there.
static void
s_assert_held_intact (const s_held_t *held)
{
    uint8_t *copy = (uint8_t *) malloc (held->size ? held->size : 1);
    assert_non_null (copy);
    shmipc_ring_copy (&held->record, copy);
    assert_true (tu_check (copy, held->size, held->seed));
    free (copy);
}

static void
test_ring_pad_steps_over_held_records_for_many_laps (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t random = 0x9E3779B97F4A7C15ULL;
    size_t size = 4096;
    s_rig_t rig;
    s_rig_open (&rig, size, (uint64_t) 0 - 3 * size);  //  Indices cross 2^64
    uint64_t start = *rig.head;
    shmipc_holds_table_t table = { 0 };
    shmipc_ring_set_holds (rig.writer, &table);
    //  Records put and not yet read: their sizes (the seed is the count)
    size_t queue [1024];
    uint64_t written = 0, read = 0;
    s_held_t held [SHMIPC_HOLDS_MAX];
    size_t nheld = 0, held_bytes = 0, holds_taken = 0, steps_over = 0;
    uint64_t next_at = start;               //  Where the reader expects the next record
    long rounds = tu_scaled (40000, 2000);
    for (long round = 0; round < rounds; round++) {
        uint64_t roll = tu_random (&random) % 100;
        if (roll < 50 && written - read < 1024) {
            //  Writer: the next record whole if it has a place, else what
            //  fits up to the next hold (as a streaming writer does)
            int64_t space = shmipc_ring_space (rig.writer);
            assert_true (space >= 0);
            size_t bytes = (size_t) (tu_random (&random) % 4 ? tu_random (&random) % 64
                                                             : tu_random (&random) % 600);
            uint64_t pad = shmipc_ring_pad (rig.writer, shmipc_ring_cursor (rig.writer), bytes);
            if (pad > size || pad + shmipc_ring_record_size (bytes) > (uint64_t) space) {
                size_t room = shmipc_ring_room (rig.writer, (uint64_t) space, &pad);
                if (room == 0)
                    continue;
                if (bytes > room)
                    bytes = room;
                assert_true (pad + shmipc_ring_record_size (bytes) <= (uint64_t) space);
            }
            s_put_record (rig.writer, bytes, written, 0);
            queue [written % 1024] = bytes;
            written++;
            if (tu_random (&random) % 3)
                shmipc_ring_publish (rig.writer);
            //  Nothing held was written over (past its old header)
            for (size_t index = 0; index < nheld; index++)
                s_assert_held_intact (&held [index]);
        }
        else
        if (roll < 85) {
            //  Reader: the next record, in order, pads skipped; hold it
            //  now and then, within 64 slots and half the ring
            shmipc_record_t record;
            if (shmipc_ring_peek (rig.reader, &record)) {
                assert_int_equal (errno, EAGAIN);
                shmipc_ring_release (rig.reader);
                continue;
            }
            assert_true (read < written);
            assert_int_equal (record.size, queue [read % 1024]);
            assert_int_equal (record.flags, 0);
            assert_true (record.at - next_at < size);
            if (record.at != next_at)
                steps_over++;
            next_at = record.at + shmipc_ring_record_size (record.size);
            uint64_t bytes = shmipc_ring_record_size (record.size);
            if (record.size && nheld < SHMIPC_HOLDS_MAX && held_bytes + bytes <= size / 2
            &&  tu_random (&random) % 3 == 0) {
                unsigned slot = (unsigned) __builtin_ctzll (~table.mask);
                s_hold (&table, slot, record.at & (size - 1), bytes);
                held [nheld++] = (s_held_t) { .slot = slot, .at = record.at,
                    .size = record.size, .seed = read, .record = record };
                held_bytes += bytes;
                holds_taken++;
            }
            else {
                uint8_t *copy = (uint8_t *) malloc (record.size ? record.size : 1);
                assert_non_null (copy);
                shmipc_ring_copy (&record, copy);
                assert_true (tu_check (copy, record.size, read));
                free (copy);
            }
            read++;
            shmipc_ring_consume (rig.reader);
            if (tu_random (&random) % 4 == 0)
                shmipc_ring_release (rig.reader);
        }
        else
        if (nheld && roll < 95) {
            //  Let one go, any one: its bytes are still what was written
            size_t index = (size_t) (tu_random (&random) % nheld);
            s_assert_held_intact (&held [index]);
            table.mask &= ~((uint64_t) 1 << held [index].slot);
            held_bytes -= shmipc_ring_record_size (held [index].size);
            held [index] = held [--nheld];
        }
    }
    //  Many laps, many holds, and the writer stepped over them
    uint64_t laps = (*rig.head - start) / size;
    print_message ("    %llu laps, %zu holds, %zu records after pads\n",
                   (unsigned long long) laps, holds_taken, steps_over);
    assert_true (laps >= 5);
    assert_true (holds_taken > 50);
    assert_true (steps_over > 20);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_reader_skips_pad_records (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 128, 0);
    //  PAD, record, PAD, PAD, record, a PAD that wraps, then a PAD last
    s_poke_header (&rig, 0, 16, SHMIPC_RECORD_PAD);
    s_poke_header (&rig, 24, 3, SHMIPC_RECORD_MORE);
    memcpy (rig.data + 32, "abc", 3);
    s_poke_header (&rig, 40, 0, SHMIPC_RECORD_PAD);
    s_poke_header (&rig, 48, 8, SHMIPC_RECORD_PAD);
    s_poke_header (&rig, 64, 1, 0);
    rig.data [72] = 'z';
    s_poke_header (&rig, 80, 56, SHMIPC_RECORD_PAD);   //  To 144: wraps
    s_poke_header (&rig, 16, 0, SHMIPC_RECORD_PAD);
    *rig.head = 80;
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.at, 24);
    assert_int_equal (record.size, 3);
    assert_int_equal (record.flags, SHMIPC_RECORD_MORE);
    assert_memory_equal (record.part [0], "abc", 3);
    shmipc_ring_consume (rig.reader);
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.at, 64);
    assert_int_equal (record.size, 1);
    shmipc_ring_consume (rig.reader);
    s_assert_peek_fails (rig.reader, EAGAIN);
    assert_true (shmipc_ring_release (rig.reader));
    assert_int_equal (*rig.tail, 80);
    //  Filler only: consumed, nothing handed out, and released as read
    *rig.head = 144;
    s_assert_peek_fails (rig.reader, EAGAIN);
    assert_int_equal (shmipc_ring_unreleased (rig.reader), 64);
    assert_true (shmipc_ring_release (rig.reader));
    assert_int_equal (*rig.tail, 144);
    //  A PAD must fit in what was published, like any record
    s_poke_header (&rig, 16, 16, SHMIPC_RECORD_PAD);
    *rig.head = 160;
    s_assert_peek_fails (rig.reader, EPROTO);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_writer_ignores_invalid_hold_slots (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 256, 0);
    shmipc_holds_table_t table = { 0 };
    shmipc_ring_set_holds (rig.writer, &table);
    uint64_t invalid [] = {
        SHMIPC_HOLD_SLOT (4, 16),           //  Misaligned offset
        SHMIPC_HOLD_SLOT (8, 20),           //  Misaligned size
        SHMIPC_HOLD_SLOT (0, 8),            //  Smaller than any held record
        SHMIPC_HOLD_SLOT (0, 0),
        SHMIPC_HOLD_SLOT (0, 256),          //  The whole ring, or more
        SHMIPC_HOLD_SLOT (0, 1000),
        SHMIPC_HOLD_SLOT (0, UINT32_MAX - 7),
        SHMIPC_HOLD_SLOT (256, 16),         //  Offset past the ring
        SHMIPC_HOLD_SLOT (1ULL << 31, 16),
        SHMIPC_HOLD_SLOT (UINT32_MAX - 7, 16),
        UINT64_MAX,
    };
    size_t ninvalid = sizeof invalid / sizeof invalid [0];
    for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
        s_hold (&table, slot, 0, 0);
    for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
        table.slots [slot] = invalid [slot % ninvalid];
    assert_true (table.mask == UINT64_MAX);
    //  Every slot in use, none valid: nothing is in the way
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    for (size_t bytes = 0; bytes <= 248; bytes += 8)
        assert_int_equal (shmipc_ring_pad (rig.writer, 0, bytes), 0);
    uint64_t pad = 99;
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 248);
    assert_int_equal (pad, 0);
    s_put_record (rig.writer, 248, 1, 0);
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 248, 1, 0);
    shmipc_ring_release (rig.reader);
    //  A valid slot among them counts, from the next look at the space on
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    table.slots [5] = SHMIPC_HOLD_SLOT (0, 16);     //  At our cursor (256)
    assert_int_equal (shmipc_ring_pad (rig.writer, 256, 0), 0);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_pad (rig.writer, 256, 0), 16);
    //  Its bit clear: ignored again
    table.mask &= ~((uint64_t) 1 << 5);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_pad (rig.writer, 256, 0), 0);
    //  No table at all: nothing held, whatever the old one said
    table.mask = UINT64_MAX;
    shmipc_ring_set_holds (rig.writer, NULL);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_pad (rig.writer, 256, 0), 0);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_pad_says_no_place_when_holds_cover_the_ring (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 256, 0);
    shmipc_holds_table_t table = { 0 };
    shmipc_ring_set_holds (rig.writer, &table);
    //  Records of 24 bytes every 32: 8-byte gaps between them
    for (unsigned slot = 0; slot < 8; slot++)
        s_hold (&table, slot, 32 * slot, 24);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    //  An empty record fits in a gap; anything bigger has no place
    assert_int_equal (shmipc_ring_pad (rig.writer, 0, 0), 24);
    assert_int_equal (shmipc_ring_pad (rig.writer, 24, 0), 0);
    for (size_t bytes = 1; bytes < 300; bytes++)
        assert_true (shmipc_ring_pad (rig.writer, 0, bytes) > 256);
    uint64_t pad = 0;
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 0);
    assert_true (pad > 256);
    //  Overlapping records that cover every byte, in every slot (a lie):
    //  still an answer, at once
    for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
        s_hold (&table, slot, (slot * 40) & 255 & ~7u, 248 - 8 * (slot % 8));
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    for (uint64_t at = 0; at < 512; at += 8)
        for (size_t bytes = 0; bytes < 64; bytes += 7)
            assert_true (shmipc_ring_pad (rig.writer, at, bytes) > 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 0);
    //  Two records that together make the whole ring
    table.mask = 0;
    s_hold (&table, 0, 0, 128);
    s_hold (&table, 1, 128, 128);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_true (shmipc_ring_pad (rig.writer, 0, 0) > 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 0);
    //  Let one go: its place is found again
    table.mask = 1;
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_pad (rig.writer, 0, 120), 128);
    assert_true (shmipc_ring_pad (rig.writer, 0, 121) > 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 120);
    assert_int_equal (pad, 128);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

static void
test_ring_room_stops_before_the_next_held_record (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    s_rig_t rig;
    s_rig_open (&rig, 256, 0);
    shmipc_holds_table_t table = { 0 };
    shmipc_ring_set_holds (rig.writer, &table);
    //  A record at [128, 160) held, with its bytes in place
    s_hold (&table, 0, 128, 32);
    tu_fill (rig.data + 136, 24, 42);
    uint64_t pad = 99;
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 120);
    assert_int_equal (pad, 0);
    //  Less space than that: the space is the limit
    assert_int_equal (shmipc_ring_room (rig.writer, 64, &pad), 56);
    assert_int_equal (shmipc_ring_room (rig.writer, 8, &pad), 0);
    s_put_record (rig.writer, 120, 1, SHMIPC_RECORD_CHUNK);
    //  At the held record's header: past it, then up to what is free
    assert_int_equal (shmipc_ring_cursor (rig.writer), 128);
    assert_int_equal (shmipc_ring_space (rig.writer), 128);
    assert_int_equal (shmipc_ring_room (rig.writer, 128, &pad), 88);
    assert_int_equal (pad, 32);
    s_put_record (rig.writer, 88, 2, 0);
    assert_int_equal (shmipc_ring_cursor (rig.writer), 256);
    assert_int_equal (shmipc_ring_space (rig.writer), 0);
    //  Only the held record's old header was written: a PAD over it
    assert_true (tu_check (rig.data + 136, 24, 42));
    uint64_t header;
    memcpy (&header, rig.data + 128, 8);
    assert_true (header == (24 | (uint64_t) SHMIPC_RECORD_PAD << 32));
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 120, 1, SHMIPC_RECORD_CHUNK);
    shmipc_record_t record;
    assert_int_equal (shmipc_ring_peek (rig.reader, &record), 0);
    assert_int_equal (record.at, 160);
    s_read_record (rig.reader, 88, 2, 0);
    s_assert_peek_fails (rig.reader, EAGAIN);
    shmipc_ring_release (rig.reader);
    //  Next lap, cursor 256 (offset 0): a hold 8 bytes ahead leaves too
    //  little for a record before it, so the room is after it
    table.mask = 0;
    s_hold (&table, 1, 8, 40);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 200);
    assert_int_equal (pad, 48);
    s_put_record (rig.writer, 200, 3, 0);
    assert_int_equal (shmipc_ring_cursor (rig.writer), 256 + 48 + 208);
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 200, 3, 0);
    shmipc_ring_release (rig.reader);
    //  And a record that would wrap into a hold stops before it
    table.mask = 0;
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    s_put_record (rig.writer, 200, 4, 0);           //  Not padded: to offset 208
    assert_int_equal (shmipc_ring_cursor (rig.writer), 512 + 208);
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 200, 4, 0);
    shmipc_ring_release (rig.reader);
    s_hold (&table, 2, 16, 16);
    tu_fill (rig.data + 24, 8, 43);
    assert_int_equal (shmipc_ring_space (rig.writer), 256);
    assert_int_equal (shmipc_ring_room (rig.writer, 256, &pad), 64 - 8);
    assert_int_equal (pad, 0);
    s_put_record (rig.writer, 56, 5, 0);
    assert_true (tu_check (rig.data + 24, 8, 43));
    shmipc_ring_publish (rig.writer);
    s_read_record (rig.reader, 56, 5, 0);
    s_rig_close (&rig);
    tu_assert_baseline (baseline);
}

//  Whatever a lying reader puts in its table, the writer writes only its
//  free space (the reader's unread records stay as they are), never puts a
//  record over a slot that could be a held record, and the reader still
//  gets every record in order.
static void
test_ring_writer_stays_in_free_space_whatever_the_hold_table_says (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    uint64_t random = 0x2545F4914F6CDD1DULL;
    size_t size = 256;
    s_rig_t rig;
    s_rig_open (&rig, size, 1ULL << 40);
    shmipc_holds_table_t table = { 0 };
    shmipc_ring_set_holds (rig.writer, &table);
    uint8_t before [256];
    size_t queue [256];
    uint64_t written = 0, read = 0;
    long puts = 0, padded = 0, refused = 0;
    long rounds = tu_scaled (100000, 3000);
    for (long round = 0; round < rounds; round++) {
        uint64_t roll = tu_random (&random) % 100;
        if (roll < 15) {
            //  A new table: none, a few or every slot in use, plausible
            //  records (small, now and then big) or garbage
            table.mask = tu_random (&random);
            if (roll < 12)
                table.mask &= tu_random (&random) & tu_random (&random)
                             & tu_random (&random) & tu_random (&random);
            if (roll < 3)
                table.mask = 0;
            for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++) {
                uint64_t value = tu_random (&random);
                uint64_t bytes = 8 * (1 + (value >> 20) % (value % 8 ? 8 : size / 8));
                if (value % 4)
                    value = SHMIPC_HOLD_SLOT ((value >> 8) % size & ~(uint64_t) 7, bytes);
                table.slots [slot] = value;
            }
        }
        else
        if (roll < 60 && written - read < 256) {
            int64_t space = shmipc_ring_space (rig.writer);
            assert_true (space >= 0);
            uint64_t cursor = shmipc_ring_cursor (rig.writer);
            size_t bytes = (size_t) (tu_random (&random) % 100);
            uint64_t pad = shmipc_ring_pad (rig.writer, cursor, bytes);
            if (pad > size || pad + shmipc_ring_record_size (bytes) > (uint64_t) space) {
                uint64_t room_pad;
                size_t room = shmipc_ring_room (rig.writer, (uint64_t) space, &room_pad);
                if (room == 0) {
                    refused++;
                    continue;
                }
                bytes = room < bytes ? room : bytes;
                //  Any record up to the room fits, after no more padding
                pad = shmipc_ring_pad (rig.writer, cursor, bytes);
                assert_true (pad <= room_pad);
                assert_true (pad + shmipc_ring_record_size (bytes) <= (uint64_t) space);
            }
            //  Where it goes is clear of every slot that could be a record
            //  (the table as the writer last loaded it: nobody changed it)
            for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
                if (((table.mask >> slot) & 1) && s_slot_valid (table.slots [slot], size))
                    assert_false (s_overlaps (cursor + pad, shmipc_ring_record_size (bytes),
                                              table.slots [slot], size));
            memcpy (before, rig.data, size);
            s_put_record (rig.writer, bytes, written, 0);
            queue [written % 256] = bytes;
            written++;
            puts++;
            padded += pad > 0;
            //  Every byte that changed lies in the free space
            for (size_t at = 0; at < size; at++)
                if (rig.data [at] != before [at])
                    assert_true (((at - cursor) & (size - 1)) < (uint64_t) space);
            if (tu_random (&random) % 2)
                shmipc_ring_publish (rig.writer);
        }
        else {
            //  An honest reader: every record in order, pads skipped
            shmipc_ring_publish (rig.writer);
            while (tu_random (&random) % 4) {
                shmipc_record_t record;
                if (shmipc_ring_peek (rig.reader, &record)) {
                    assert_int_equal (errno, EAGAIN);
                    break;
                }
                assert_true (read < written);
                s_read_record (rig.reader, queue [read % 256], read, 0);
                read++;
            }
            shmipc_ring_release (rig.reader);
        }
    }
    print_message ("    %ld records put, %ld after a pad, %ld with no place\n",
                   puts, padded, refused);
    assert_true (puts > rounds / 10);
    assert_true (padded > rounds / 100);
    assert_true (refused > 0);
    s_rig_close (&rig);
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
        cmocka_unit_test (test_ring_reader_skips_pad_records),
        cmocka_unit_test (test_ring_writer_ignores_invalid_hold_slots),
        cmocka_unit_test (test_ring_pad_says_no_place_when_holds_cover_the_ring),
        cmocka_unit_test (test_ring_room_stops_before_the_next_held_record),
        cmocka_unit_test (test_ring_pad_steps_over_held_records_for_many_laps),
        cmocka_unit_test (test_ring_writer_stays_in_free_space_whatever_the_hold_table_says),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
