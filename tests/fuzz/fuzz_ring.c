/*  =========================================================================
    fuzz_ring - libFuzzer harness for the ring reader: the input is what a
    hostile peer controls, its ring bytes and the sequence of write indices
    it publishes

    Owns nothing. Input: 1 byte ring size selector (64 << n, n < 7), then
    eight 8-byte write indices, then the ring's bytes. The reader must
    deliver records that lie inside the ring and inside what was published,
    or refuse with EPROTO, never read out of bounds, never loop.
    =========================================================================
*/

#include "shmipc_ring.h"

#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  An invariant that must hold whatever the input: checked in every build
//  (assert would vanish under NDEBUG)
#define S_CHECK(condition) do { \
    if (!(condition)) { \
        fprintf (stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
        abort (); \
    } \
} while (0)

#define S_INDICES 8

//  Assert that ring indices [from, to) hold PAD records only (filler the
//  reader skipped, consuming it), each whole.
static void
s_assert_pads (const uint8_t *ring, size_t ring_size, uint64_t from, uint64_t to)
{
    while (from != to) {
        uint64_t header;
        memcpy (&header, ring + (from & (ring_size - 1)), sizeof header);
        S_CHECK ((uint32_t) (header >> 32) == SHMIPC_RECORD_PAD);
        uint64_t need = shmipc_ring_record_size ((uint32_t) header);
        S_CHECK (need <= to - from);
        from += need;
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size < 1 + 8 * S_INDICES)
        return 0;
    size_t ring_size = (size_t) SHMIPC_RING_MIN << (data [0] % 7);
    uint64_t indices [S_INDICES];
    memcpy (indices, data + 1, sizeof indices);
    const uint8_t *bytes = data + 1 + sizeof indices;
    size_t nbytes = size - 1 - sizeof indices;

    //  The ring lives in its own allocation of exactly ring_size bytes
    uint8_t *ring = (uint8_t *) aligned_alloc (64, ring_size);
    memset (ring, 0, ring_size);
    memcpy (ring, bytes, nbytes < ring_size ? nbytes : ring_size);
    uint64_t *head = (uint64_t *) aligned_alloc (64, 64);
    uint64_t *tail = (uint64_t *) aligned_alloc (64, 64);
    *head = 0;
    *tail = 0;
    shmipc_ring_t *reader = shmipc_ring_new_reader (ring, ring_size, head, tail);
    S_CHECK (reader);
    uint8_t *copy = (uint8_t *) malloc (ring_size);

    uint64_t delivered = 0;
    for (int step = 0; step < S_INDICES; step++) {
        //  The peer publishes its next (perhaps impossible) index
        *head = indices [step];
        int records = 0;
        while (true) {
            shmipc_record_t record;
            if (shmipc_ring_peek (reader, &record)) {
                S_CHECK (errno == EAGAIN || errno == EPROTO);
                if (errno == EPROTO)
                    goto done;  //  A refused ring stays refused: stop here
                break;
            }
            //  What was delivered lies inside the ring
            S_CHECK (record.size <= ring_size - SHMIPC_RECORD_HEADER);
            S_CHECK (record.part_size [0] + record.part_size [1] == record.size);
            S_CHECK (record.part [0] >= ring && record.part [0] + record.part_size [0] <= ring + ring_size);
            S_CHECK (!record.part [1] || record.part [1] == ring);
            shmipc_ring_copy (&record, copy);
            shmipc_ring_consume (reader);
            //  Any PAD records before it were consumed on the way
            S_CHECK (record.at - delivered < ring_size);
            s_assert_pads (ring, ring_size, delivered, record.at);
            delivered = record.at + shmipc_ring_record_size (record.size);
            //  Never more than the ring holds between two releases
            S_CHECK (++records <= (int) (ring_size / SHMIPC_RECORD_HEADER));
        }
        shmipc_ring_release (reader);
        //  Released: every record delivered, and any PAD records after them
        S_CHECK (*tail - delivered <= ring_size);
        s_assert_pads (ring, ring_size, delivered, *tail);
        delivered = *tail;
    }
done:
    shmipc_ring_destroy (&reader);
    free (copy);
    free (head);
    free (tail);
    free (ring);
    return 0;
}
