/*  =========================================================================
    shmipc_ring - one-way ring of variable-length records in shared memory

    Owns: only its cursors. The memory is borrowed: the data area and the
    write index live in the writer's segment, the read index in the reader's
    segment, so each process writes only memory it owns. Single producer,
    single consumer; not thread-safe on either side.

    Indices are free-running 64-bit byte counts; offset = index mod size.
    A record is an 8-byte header {u32 size, u32 flags} and size payload bytes,
    padded to 8. Headers never straddle the end; payloads may wrap (and
    are then seen whole through a mirror mapping, if the ring has one).

    Holds: the reader may keep records it has consumed and released (their
    payload lent out in place) by listing them in a hold table in its own
    segment. The writer then never writes over a held record, except its
    first 8 bytes (the old header): it steps over it with a PAD record,
    which the reader skips. So space comes back in order as always, and a
    held record costs the writer its own bytes while it is held (and any
    gap before it too small for the next record).

    Memory ordering (C11): the writer stores payloads, then publishes its
    write index with a release store; the reader loads it with acquire, so
    every byte before the index is visible. The reader publishes its read
    index with release after copying out; the writer loads it with acquire
    before reusing the space. Wake-up flags are the channel's business.

    Every index and header the ring reads from the peer's memory is checked
    on every read; a violation is reported as -1/EPROTO, never trusted.
    =========================================================================
*/

#ifndef SHMIPC_RING_H_INCLUDED
#define SHMIPC_RING_H_INCLUDED

#include "shmipc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_ring_t shmipc_ring_t;

//  Bytes of record header.
#define SHMIPC_RECORD_HEADER 8

//  Largest payload of one record: its size is a u32 and the record, padded
//  to 8, must not overflow it. Bigger frames go in several chunks.
#define SHMIPC_RECORD_PAYLOAD_MAX   (UINT32_MAX - 7)

//  A quarter of a ring: the reader gives space back lazily once this much
//  waits, the writer waits for this much room (or what its message needs),
//  and a streamed chunk is at most this big, so that the two sides overlap.
#define SHMIPC__RING_SHARE(capacity)    ((capacity) / 4)

//  Record flags. The ring checks that no other bit is set.
#define SHMIPC_RECORD_MORE   1     //  Another frame of this message follows
#define SHMIPC_RECORD_CHUNK  2     //  This frame continues in the next record
#define SHMIPC_RECORD_PAD    4     //  Filler over held records: skipped (alone)
#define SHMIPC_RECORD_LOAN   8     //  The frame lies in the writer's loan pool:
                                   //  the payload is {u64 offset, u64 size}

//  Hold table: at most this many held records (one bit each in the mask).
#define SHMIPC_HOLDS_MAX     64

//  A hold slot: the record's offset in the ring (index mod size) in the
//  high 32 bits, its ring bytes (header included) in the low 32.
#define SHMIPC_HOLD_SLOT(offset, bytes) \
    (((uint64_t) (offset) << 32) | (uint32_t) (bytes))

//  The reader's hold table, in its own segment: bit i of mask set means
//  slots [i] describes a held record. Written by the reader only.
typedef struct {
    uint64_t mask;                  //  Slots in use (bit per slot)
    uint64_t slots [SHMIPC_HOLDS_MAX];  //  SHMIPC_HOLD_SLOT values
    uint64_t takes;                 //  Holds taken so far: a writer that
                                    //  sees it change while it reads the
                                    //  slots reads them again
} shmipc_holds_table_t;

//  A record as seen by the reader: its header (already copied out of shared
//  memory and checked) and where its payload lies, in one or two pieces when
//  it wraps. The payload is still the peer's memory: copy before trusting.
typedef struct {
    uint64_t at;                    //  Index of its header
    uint64_t bytes;                 //  Ring bytes it takes, header included
    uint32_t size;                  //  Payload bytes
    uint32_t flags;                 //  SHMIPC_RECORD_* bits
    const uint8_t *part [2];        //  Payload pieces; part [1] set if wrapped
    size_t part_size [2];           //  Their sizes, summing to size
} shmipc_record_t;

//  Create the writing side over size bytes of data (a power of two between
//  SHMIPC_RING_MIN and SHMIPC_RING_MAX), our write index, and the peer's
//  read index (read-only to us). Starts at the indices' current values
//  (both must be equal: an empty ring). Returns NULL with errno EINVAL.
shmipc_ring_t *
    shmipc_ring_new_writer (void *data, size_t size,
                            uint64_t *head, const uint64_t *tail);

//  Create the reading side over the peer's data and write index (read-only
//  to us) and our read index.
shmipc_ring_t *
    shmipc_ring_new_reader (const void *data, size_t size,
                            const uint64_t *head, uint64_t *tail);

//  Destroy the ring (not the memory). Idempotent; nullifies the reference.
void
    shmipc_ring_destroy (shmipc_ring_t **self_p);

//  Return the data size in bytes.
size_t
    shmipc_ring_size (shmipc_ring_t *self);

//  Return the ring bytes a record with a payload of size bytes takes.
size_t
    shmipc_ring_record_size (size_t size);

//  Writer: return the bytes free for new records, after loading the peer's
//  read index. Trusts nothing: the index must lie between the last one seen
//  and what we published. Returns -1/EPROTO if it does not.
int64_t
    shmipc_ring_space (shmipc_ring_t *self);

//  Writer: read the peer's hold table (untrusted; read-only to us) at
//  every shmipc_ring_space from now on. Without one, nothing is held.
void
    shmipc_ring_set_holds (shmipc_ring_t *self, const shmipc_holds_table_t *holds);

//  Writer: return the index where the next record goes (records put so
//  far included).
uint64_t
    shmipc_ring_cursor (shmipc_ring_t *self);

//  Writer: return the padding a record of size payload bytes needs before
//  it at index at (>= the cursor) to clear every record held when
//  shmipc_ring_space last looked (0 if none is in the way), or more than
//  the ring's size if no place in the ring will do.
uint64_t
    shmipc_ring_pad (shmipc_ring_t *self, uint64_t at, size_t size);

//  Writer: return the largest payload that fits at the cursor in space
//  bytes (from shmipc_ring_space) after *pad bytes of padding (set), with
//  no held record in the way; 0 if none does.
size_t
    shmipc_ring_room (shmipc_ring_t *self, uint64_t space, uint64_t *pad);

//  Writer: append one record, after a PAD record if shmipc_ring_pad says
//  so. The caller has checked that both fit in shmipc_ring_space, with no
//  call to it in between; writing past it is an API misuse (assert). Not
//  visible until published. Returns the index of its header.
uint64_t
    shmipc_ring_put (shmipc_ring_t *self, const void *data, size_t size,
                     uint32_t flags);

//  Writer: make every record put so far visible to the reader.
void
    shmipc_ring_publish (shmipc_ring_t *self);

//  Writer: return true if records were put since the last publish.
bool
    shmipc_ring_pending (shmipc_ring_t *self);

//  Reader: return the published bytes not yet consumed, after loading the
//  peer's write index. Trusts nothing: the index must lie between the last
//  one seen and our read index plus the size. Returns -1/EPROTO otherwise.
int64_t
    shmipc_ring_available (shmipc_ring_t *self);

//  Reader: look at the next record without consuming it, stepping past
//  PAD records (consumed here). Trusts nothing: the header is copied out
//  once, then its size must fit in what was published and its flags must
//  be known (PAD alone). Returns 0, or -1 with errno EAGAIN (nothing
//  published) or EPROTO (a violation).
int
    shmipc_ring_peek (shmipc_ring_t *self, shmipc_record_t *record);

//  Reader: copy a peeked record's payload to dest (record->size bytes).
void
    shmipc_ring_copy (const shmipc_record_t *record, void *dest);

//  Reader: step past the record last peeked. Space is returned to the
//  writer at the next release.
void
    shmipc_ring_consume (shmipc_ring_t *self);

//  Reader: publish the read index, returning consumed space to the writer.
//  Returns true if it moved.
bool
    shmipc_ring_release (shmipc_ring_t *self);

//  Say that the size bytes after the data are mapped to the same memory
//  (a mirrored segment): payloads are then written, and handed to the
//  reader, in one piece, part [1] never set.
void
    shmipc_ring_set_mirrored (shmipc_ring_t *self);

//  Reader: return the bytes the writer would have free if we released all
//  we have consumed (from the write index last seen).
size_t
    shmipc_ring_free_if_released (shmipc_ring_t *self);

//  Writer: return true if the record whose header is at index at has
//  been read and released, and the reader's hold table (as the last
//  shmipc_ring_space saw it) does not hold it.
bool
    shmipc_ring_returned (shmipc_ring_t *self, uint64_t at, size_t size);

//  Reader: return the bytes consumed but not yet released.
size_t
    shmipc_ring_unreleased (shmipc_ring_t *self);

#ifdef __cplusplus
}
#endif

#endif
