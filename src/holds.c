/*  =========================================================================
    holds - records of the peer's ring lent out in place, and the segments
    kept mapped while they are (holds.h)

    A hold takes one bit of the table's mask. The slot value is written
    first and the bit set with release, before the record's space goes
    back to the writer (release of the read index): a writer that sees the
    space free sees the hold. Release clears the bit: the writer may then
    reuse the bytes at its next look.

    The share: half the ring, plus a header for each of the 64 slots. So
    held records leave at least capacity / 2 - 512 bytes in at most 65
    gaps, and in a ring of SHMIPC_HOLDS_RING_MIN or more one gap has room
    for a record of 8 bytes (16 with its header): a writer whose reader
    has given everything back can always go on. A table that leaves no
    such room is a lie (channel_tx.c cuts the peer off).
    =========================================================================
*/

#include "holds.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct _shmipc_hold_t {
    shmipc__holds_t *owner;         //  Whose slot; not owned
    unsigned slot;                  //  Slot (bit) index
    uint64_t bytes;                 //  Ring bytes held
};

struct _shmipc__holds_t {
    shmipc_holds_table_t *table;    //  In our segment; not owned until
                                    //  close, then through own
    uint64_t mask;                  //  Ring size - 1: index to offset
    uint64_t share;                 //  Most bytes held at once
    uint64_t takes_count;           //  Holds taken (the table's takes)
    _Atomic uint64_t held;          //  Bytes held now
    _Atomic unsigned refs;          //  One for the channel, one per hold
    shmipc_segment_t *own;          //  Our segment, from close on; owned
    shmipc_segment_t *peer;         //  The peer's, from close on; owned
    shmipc_segment_t *pool;         //  The peer's loan pool, likewise
    shmipc_hold_t holds [SHMIPC_HOLDS_MAX];     //  One per slot
};

shmipc__holds_t *
shmipc__holds_new (shmipc_holds_table_t *table, size_t capacity)
{
    assert (table);
    shmipc__holds_t *self = (shmipc__holds_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = table;
    self->mask = capacity - 1;
    self->share = capacity >= SHMIPC_HOLDS_RING_MIN
                ? capacity / 2 + SHMIPC_HOLDS_MAX * SHMIPC_RECORD_HEADER : 0;
    atomic_init (&self->held, 0);
    atomic_init (&self->refs, 1);
    for (unsigned slot = 0; slot < SHMIPC_HOLDS_MAX; slot++)
        self->holds [slot] = (shmipc_hold_t) { .owner = self, .slot = slot };
    return self;
}

//  Drop one reference; the last frees everything.
static void
s_unref (shmipc__holds_t *self)
{
    if (atomic_fetch_sub_explicit (&self->refs, 1, memory_order_acq_rel) == 1) {
        shmipc_segment_destroy (&self->own);
        shmipc_segment_destroy (&self->peer);
        shmipc_segment_destroy (&self->pool);
        free (self);
    }
}

shmipc_hold_t *
shmipc__holds_take (shmipc__holds_t *self, uint64_t at, uint64_t bytes)
{
    assert (self);
    _Atomic uint64_t *mask = (_Atomic uint64_t *) &self->table->mask;
    //  Acquire: a slot freed by another thread is free after its reads
    uint64_t used = atomic_load_explicit (mask, memory_order_acquire);
    uint64_t held = atomic_load_explicit (&self->held, memory_order_relaxed);
    if (~used == 0 || held + bytes > self->share || bytes > UINT32_MAX) {
        errno = ENOBUFS;
        return NULL;
    }
    //  Only this thread sets bits, so a clear bit stays clear until we do
    unsigned slot = (unsigned) __builtin_ctzll (~used);
    shmipc_hold_t *hold = &self->holds [slot];
    hold->bytes = bytes;
    atomic_fetch_add_explicit (&self->held, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit (&self->refs, 1, memory_order_relaxed);
    atomic_store_explicit ((_Atomic uint64_t *) &self->table->slots [slot],
                           SHMIPC_HOLD_SLOT (at & self->mask, bytes),
                           memory_order_relaxed);
    atomic_fetch_or_explicit (mask, (uint64_t) 1 << slot, memory_order_release);
    //  Only this thread writes it
    atomic_store_explicit ((_Atomic uint64_t *) &self->table->takes,
                           self->takes_count++ + 1, memory_order_release);
    return hold;
}

void
shmipc_hold_release (shmipc_hold_t *hold)
{
    if (!hold)
        return;
    shmipc__holds_t *self = hold->owner;
    //  Release: our reads of the payload come before the writer's reuse.
    //  The bit first, the count after: the table never lists more than
    //  the count says, which take keeps within the share
    atomic_fetch_and_explicit ((_Atomic uint64_t *) &self->table->mask,
                               ~((uint64_t) 1 << hold->slot), memory_order_release);
    atomic_fetch_sub_explicit (&self->held, hold->bytes, memory_order_relaxed);
    s_unref (self);
}

void
shmipc__holds_close (shmipc__holds_t **self_p, shmipc_segment_t **own,
                     shmipc_segment_t **peer, shmipc_segment_t **pool)
{
    assert (self_p);
    shmipc__holds_t *self = *self_p;
    if (!self) {
        shmipc_segment_destroy (own);
        shmipc_segment_destroy (peer);
        shmipc_segment_destroy (pool);
        return;
    }
    self->own = *own;
    self->peer = *peer;
    self->pool = *pool;
    *own = NULL;
    *peer = NULL;
    *pool = NULL;
    *self_p = NULL;
    s_unref (self);
}
