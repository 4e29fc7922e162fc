/*  =========================================================================
    ring - single-producer/single-consumer ring of variable-length records
    over shared memory

    Owns only its cursors; the memory belongs to the segments. The writer
    side trusts nothing it loads from the reader's segment (the read index),
    the reader side trusts nothing it loads from the writer's segment (the
    write index, record headers, payloads): each is checked on every load.
    =========================================================================
*/

#include "shmipc_ring.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define S_FLAGS_KNOWN (SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK | SHMIPC_RECORD_PAD \
                       | SHMIPC_RECORD_LOAN)

//  A record held by the reader, as the writer last saw it (checked).
typedef struct {
    uint64_t offset;            //  Its header's offset in the ring
    uint64_t bytes;             //  Its ring bytes, header included
} s_held_t;

struct _shmipc_ring_t {
    uint8_t *data;              //  Ring bytes (a reader never writes them)
    uint64_t size;              //  Bytes, a power of two
    uint64_t mask;              //  size - 1
    uint64_t *head;             //  Write index, in the writer's segment
    uint64_t *tail;             //  Read index, in the reader's segment
    bool writer;                //  True on the writing side
    uint64_t cursor;            //  Next byte to put (writer) or read (reader)
    uint64_t published;         //  Last index we stored: head or tail
    uint64_t seen;              //  Last index we loaded from the peer
    uint64_t peeked;            //  Reader: bytes of the record last peeked
    bool mirrored;              //  The size bytes after data are the same
                                //  memory: payloads never split
    const shmipc_holds_table_t *holds;  //  Writer: the reader's hold table
                                        //  (untrusted), or NULL
    size_t nheld;               //  Writer: records held at the last look
    s_held_t held [SHMIPC_HOLDS_MAX];   //  Writer: those records
};

//  Our own index: only we store it; relaxed is enough to read it back.
#define S_OWN(ptr)  ((_Atomic uint64_t *) (ptr))

static bool
s_valid_size (size_t size)
{
    return size >= SHMIPC_RING_MIN && size <= SHMIPC_RING_MAX
        && (size & (size - 1)) == 0;
}

static shmipc_ring_t *
s_new (void *data, size_t size, uint64_t *head, uint64_t *tail, bool writer)
{
    if (!data || !head || !tail || !s_valid_size (size)
    ||  ((uintptr_t) data & 7) || ((uintptr_t) head & 7) || ((uintptr_t) tail & 7)) {
        errno = EINVAL;
        return NULL;
    }
    //  Start from our own index, 8-aligned so that headers never straddle
    //  the end. A writer starts on an empty ring: the peer's read index must
    //  equal it (checked here once, and on every load after).
    uint64_t start = atomic_load_explicit (S_OWN (writer ? head : tail),
                                           memory_order_relaxed);
    if ((start & 7) || (writer && start != atomic_load_explicit (
                                      (_Atomic uint64_t *) tail, memory_order_acquire))) {
        errno = EINVAL;
        return NULL;
    }
    shmipc_ring_t *self = (shmipc_ring_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->data = (uint8_t *) data;
    self->size = size;
    self->mask = size - 1;
    self->head = head;
    self->tail = tail;
    self->writer = writer;
    self->cursor = self->published = self->seen = start;
    return self;
}

shmipc_ring_t *
shmipc_ring_new_writer (void *data, size_t size, uint64_t *head, const uint64_t *tail)
{
    return s_new (data, size, head, (uint64_t *) tail, true);
}

shmipc_ring_t *
shmipc_ring_new_reader (const void *data, size_t size, const uint64_t *head, uint64_t *tail)
{
    return s_new ((void *) data, size, (uint64_t *) head, tail, false);
}

void
shmipc_ring_destroy (shmipc_ring_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

size_t
shmipc_ring_size (shmipc_ring_t *self)
{
    assert (self);
    return self->size;
}

size_t
shmipc_ring_record_size (size_t size)
{
    return SHMIPC_RECORD_HEADER + ((size + 7) & ~(size_t) 7);
}

//  One reading of the reader's hold table (s_load_holds). Trusts nothing:
//  a slot that does not describe a record that could be in the ring
//  (aligned, at least a header and 8 bytes, smaller than the ring) is
//  ignored; a lie can only make us pad more, never write outside our free
//  space.
static void
s_load_slots (shmipc_ring_t *self)
{
    uint64_t mask = atomic_load_explicit ((_Atomic uint64_t *) &self->holds->mask,
                                          memory_order_acquire);
    self->nheld = 0;
    while (mask) {
        int slot = __builtin_ctzll (mask);
        mask &= mask - 1;
        uint64_t value = atomic_load_explicit (
            (_Atomic uint64_t *) &self->holds->slots [slot], memory_order_relaxed);
        uint64_t offset = value >> 32;
        uint64_t bytes = (uint32_t) value;
        if (offset < self->size && bytes >= shmipc_ring_record_size (1)
        &&  bytes < self->size && ((offset | bytes) & 7) == 0)
            self->held [self->nheld++] = (s_held_t) { .offset = offset, .bytes = bytes };
    }
}

//  Take a snapshot of the reader's hold table. Loaded after the read
//  index: a record the reader held before it gave the record's space back
//  is in the table by then (release/acquire).
static void
s_load_holds (shmipc_ring_t *self)
{
    //  A slot reused while we read would mix two moments: the records we
    //  list must all have been held at once (within the reader's share).
    //  A few tries; a reader that changes it all the time gets the last
    _Atomic uint64_t *takes = (_Atomic uint64_t *) &self->holds->takes;
    for (int attempt = 0; attempt < 4; attempt++) {
        uint64_t before = atomic_load_explicit (takes, memory_order_acquire);
        s_load_slots (self);
        atomic_thread_fence (memory_order_acquire);
        if (atomic_load_explicit (takes, memory_order_relaxed) == before)
            return;
    }
}

int64_t
shmipc_ring_space (shmipc_ring_t *self)
{
    //  Trusts: nothing in the reader's index. Checks: it lies between the
    //  last index seen and the last one we published (it cannot go back,
    //  nor consume what was never published), on a record boundary's
    //  alignment (so free space is always a multiple of 8).
    assert (self && self->writer);
    uint64_t tail = atomic_load_explicit ((_Atomic uint64_t *) self->tail,
                                          memory_order_acquire);
    if (tail - self->seen > self->published - self->seen || (tail & 7)) {
        errno = EPROTO;
        return -1;
    }
    self->seen = tail;
    if (self->holds)
        s_load_holds (self);
    return (int64_t) (self->size - (self->cursor - tail));
}

void
shmipc_ring_set_holds (shmipc_ring_t *self, const shmipc_holds_table_t *holds)
{
    assert (self && self->writer);
    self->holds = holds;
    self->nheld = 0;
}

uint64_t
shmipc_ring_cursor (shmipc_ring_t *self)
{
    assert (self);
    return self->cursor;
}

uint64_t
shmipc_ring_pad (shmipc_ring_t *self, uint64_t at, size_t size)
{
    assert (self && self->writer);
    if (self->nheld == 0)
        return 0;
    uint64_t need = shmipc_ring_record_size (size);
    uint64_t pad = 0;
    //  Each pass steps past one held record or finds the place clear; the
    //  records may overlap (a lying reader), so bound the passes too
    for (size_t pass = 0; pass <= 2 * self->nheld; pass++) {
        uint64_t position = (at + pad) & self->mask;
        bool clear = true;
        for (size_t index = 0; index < self->nheld; index++) {
            uint64_t start = (self->held [index].offset - position) & self->mask;
            uint64_t end = start + self->held [index].bytes;
            if (end > self->size)
                pad += end - self->size;    //  We are inside it: to its end
            else
            if (start < need)
                pad += end;                 //  It starts under the record
            else
                continue;
            clear = false;
            break;
        }
        if (clear)
            return pad;
        if (pad > self->size)
            break;
    }
    return self->size + 1;
}

size_t
shmipc_ring_room (shmipc_ring_t *self, uint64_t space, uint64_t *pad)
{
    assert (self && self->writer);
    assert (pad);
    *pad = shmipc_ring_pad (self, self->cursor, 1);
    uint64_t least = shmipc_ring_record_size (1);
    if (*pad > space || space - *pad < least)
        return 0;
    //  From there up to the first held record, within space
    uint64_t run = space - *pad;
    uint64_t position = (self->cursor + *pad) & self->mask;
    for (size_t index = 0; index < self->nheld; index++) {
        uint64_t start = (self->held [index].offset - position) & self->mask;
        if (start < run)
            run = start;
    }
    return (size_t) (run - SHMIPC_RECORD_HEADER);
}

//  Copy size bytes to ring offset offset, wrapping at the end.
static void
s_copy_in (shmipc_ring_t *self, uint64_t offset, const void *data, size_t size)
{
    size_t first = self->size - offset;
    //  Mirrored: offset + size < 2 * size, all mapped
    if (size <= first || self->mirrored)
        memcpy (self->data + offset, data, size);
    else {
        memcpy (self->data + offset, data, first);
        memcpy (self->data, (const uint8_t *) data + first, size - first);
    }
}

uint64_t
shmipc_ring_put (shmipc_ring_t *self, const void *data, size_t size, uint32_t flags)
{
    assert (self && self->writer);
    assert (data || size == 0);
    assert ((flags & ~(uint32_t) (SHMIPC_RECORD_MORE | SHMIPC_RECORD_CHUNK
                                  | SHMIPC_RECORD_LOAN)) == 0);
    assert (size <= UINT32_MAX);
    size_t need = shmipc_ring_record_size (size);
    uint64_t pad = shmipc_ring_pad (self, self->cursor, size);
    //  The caller checked space; writing past it would corrupt unread data
    assert (pad + need <= self->size - (self->cursor - self->seen));
    if (pad) {
        //  Over held records: only this header is written, at our cursor
        //  (free space, or a held record's old header)
        uint64_t filler = (uint64_t) (pad - SHMIPC_RECORD_HEADER)
                        | ((uint64_t) SHMIPC_RECORD_PAD << 32);
        memcpy (self->data + (self->cursor & self->mask), &filler, sizeof filler);
        self->cursor += pad;
    }

    uint64_t header = (uint64_t) size | ((uint64_t) flags << 32);
    uint64_t offset = self->cursor & self->mask;
    //  Headers are 8-aligned in a ring of 2^n >= 64 bytes: never split
    memcpy (self->data + offset, &header, sizeof header);
    if (size)
        s_copy_in (self, (offset + SHMIPC_RECORD_HEADER) & self->mask, data, size);
    self->cursor += need;
    return self->cursor - need;
}

void
shmipc_ring_publish (shmipc_ring_t *self)
{
    assert (self && self->writer);
    if (self->cursor != self->published) {
        atomic_store_explicit ((_Atomic uint64_t *) self->head, self->cursor,
                               memory_order_release);
        self->published = self->cursor;
    }
}

bool
shmipc_ring_pending (shmipc_ring_t *self)
{
    assert (self && self->writer);
    return self->cursor != self->published;
}

int64_t
shmipc_ring_available (shmipc_ring_t *self)
{
    //  Trusts: nothing in the writer's index. Checks: it lies between the
    //  last index seen and our released index plus the size (the writer
    //  cannot go back, nor overwrite what we have not released).
    assert (self && !self->writer);
    uint64_t head = atomic_load_explicit ((_Atomic uint64_t *) self->head,
                                          memory_order_acquire);
    if (head - self->seen > self->published + self->size - self->seen) {
        errno = EPROTO;
        return -1;
    }
    self->seen = head;
    return (int64_t) (head - self->cursor);
}

int
shmipc_ring_peek (shmipc_ring_t *self, shmipc_record_t *record)
{
    //  Trusts: nothing in the header. Checks: a whole header was published,
    //  the payload fits in what was published, only known flags are set.
    assert (self && !self->writer);
    assert (record);
    uint64_t offset, need;
    uint32_t size, flags;
    while (true) {
        uint64_t available = self->seen - self->cursor;
        if (available == 0) {
            int64_t fresh = shmipc_ring_available (self);
            if (fresh < 0)
                return -1;
            available = (uint64_t) fresh;
            if (available == 0) {
                errno = EAGAIN;
                return -1;
            }
        }
        if (available < SHMIPC_RECORD_HEADER) {
            errno = EPROTO;
            return -1;
        }
        offset = self->cursor & self->mask;
        //  One atomic load: the peer may be rewriting it as we read
        uint64_t header = atomic_load_explicit (
            (_Atomic uint64_t *) (self->data + offset), memory_order_relaxed);
        size = (uint32_t) header;
        flags = (uint32_t) (header >> 32);
        need = shmipc_ring_record_size (size);
        if ((flags & ~S_FLAGS_KNOWN) || need > available
        ||  ((flags & SHMIPC_RECORD_PAD) && flags != SHMIPC_RECORD_PAD)) {
            errno = EPROTO;
            return -1;
        }
        if (flags != SHMIPC_RECORD_PAD)
            break;
        //  Filler over records we hold: step past it, nothing to read
        self->cursor += need;
    }
    record->at = self->cursor;
    record->bytes = need;
    uint64_t start = (offset + SHMIPC_RECORD_HEADER) & self->mask;
    size_t first = self->size - start;
    record->size = size;
    record->flags = flags;
    record->part [0] = self->data + start;
    if (size <= first || self->mirrored) {
        record->part_size [0] = size;
        record->part [1] = NULL;
        record->part_size [1] = 0;
    }
    else {
        record->part_size [0] = first;
        record->part [1] = self->data;
        record->part_size [1] = size - first;
    }
    self->peeked = need;
    return 0;
}

void
shmipc_ring_copy (const shmipc_record_t *record, void *dest)
{
    assert (record);
    assert (dest || record->size == 0);
    if (record->part_size [0])
        memcpy (dest, record->part [0], record->part_size [0]);
    if (record->part_size [1])
        memcpy ((uint8_t *) dest + record->part_size [0], record->part [1],
                record->part_size [1]);
}

void
shmipc_ring_consume (shmipc_ring_t *self)
{
    assert (self && !self->writer);
    assert (self->peeked);      //  Consume follows a successful peek
    self->cursor += self->peeked;
    self->peeked = 0;
}

bool
shmipc_ring_release (shmipc_ring_t *self)
{
    assert (self && !self->writer);
    if (self->cursor == self->published)
        return false;
    atomic_store_explicit ((_Atomic uint64_t *) self->tail, self->cursor,
                           memory_order_release);
    self->published = self->cursor;
    return true;
}

void
shmipc_ring_set_mirrored (shmipc_ring_t *self)
{
    assert (self);
    self->mirrored = true;
}

size_t
shmipc_ring_free_if_released (shmipc_ring_t *self)
{
    assert (self && !self->writer);
    //  seen is checked (available): at most size ahead of cursor
    return (size_t) (self->size - (self->seen - self->cursor));
}

bool
shmipc_ring_returned (shmipc_ring_t *self, uint64_t at, size_t size)
{
    assert (self && self->writer);
    uint64_t need = shmipc_ring_record_size (size);
    //  seen: the read index last loaded (checked, never past our cursor)
    if (self->seen - at < need || self->seen - at > self->cursor - at)
        return false;
    uint64_t offset = at & self->mask;
    for (size_t index = 0; index < self->nheld; index++)
        if (self->held [index].offset == offset && self->held [index].bytes == need)
            return false;
    return true;
}

size_t
shmipc_ring_unreleased (shmipc_ring_t *self)
{
    assert (self && !self->writer);
    return (size_t) (self->cursor - self->published);
}
