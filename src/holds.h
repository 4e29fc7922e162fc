/*  =========================================================================
    holds - records of the peer's ring that the reader lends out in place
    (zero-copy receive), and what keeps their memory mapped meanwhile

    Owns: the hold slots' bookkeeping, and from shmipc__holds_close on the
    segments (ours holds the table, the peer's and its loan pool the
    data), unmapped with the last hold. The table itself lies in our control block: the
    peer's writer reads it (ring.c) and steps over what it lists.

    Threads: take runs in the channel's thread; shmipc_hold_release in any
    thread, before or after the channel is gone. The slot bits and the
    counts are atomics; nothing else is shared.
    =========================================================================
*/

#ifndef SHMIPC_HOLDS_H_INCLUDED
#define SHMIPC_HOLDS_H_INCLUDED

#include "shmipc_channel.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"

typedef struct _shmipc__holds_t shmipc__holds_t;

//  Smallest ring whose records may be held (see holds.c).
#define SHMIPC_HOLDS_RING_MIN   4096

//  Create the bookkeeping for table (in our segment, all zero) over a ring
//  of capacity bytes. At most half of it is held at once, plus a header
//  per slot (so two 1 MiB frames of a 4 MiB ring may be); the writer
//  keeps the rest, and in it always room for a record (see holds.c).
//  Returns NULL with errno ENOMEM.
shmipc__holds_t *
    shmipc__holds_new (shmipc_holds_table_t *table, size_t capacity);

//  Hold the record of bytes ring bytes whose header is at index at.
//  Returns the hold, or NULL (errno ENOBUFS) when every slot is taken, the
//  record would take the held bytes past the share, or the ring is under
//  SHMIPC_HOLDS_RING_MIN: then the caller copies. Call before the
//  record's space is released to the writer.
shmipc_hold_t *
    shmipc__holds_take (shmipc__holds_t *self, uint64_t at, uint64_t bytes);

//  The channel lets go: the segments (ours, the peer's, its loan pool;
//  NULL is fine) are now the holds', destroyed with the last hold, or now
//  if none is out. Nullifies the reference and the caller's segment
//  references.
void
    shmipc__holds_close (shmipc__holds_t **self_p, shmipc_segment_t **own,
                         shmipc_segment_t **peer, shmipc_segment_t **pool);

#endif
