/*  =========================================================================
    shmipc_loans - a pool of shared memory that a sending socket lends out
    as frame buffers, so that a frame the application fills there crosses
    to the peer as an offset, never copied

    Owns: one sealed segment (ours read-write; peers map it read-only) and
    the map of its blocks. Each block counts its references: one for
    whoever filled it (ZeroMQ's message), one per channel that sent it and
    has not seen it come back. A block is free again at zero. The pool
    itself lives until its holders (the socket, each channel lending from
    it) have let go and every block is back.

    Thread-safe: blocks are taken in the application's thread and given
    back in ZeroMQ's or the actor's.
    =========================================================================
*/

#ifndef SHMIPC_LOANS_H_INCLUDED
#define SHMIPC_LOANS_H_INCLUDED

#include "shmipc_common.h"
#include "shmipc_segment.h"
#include "shmipc_channel.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_loans_t shmipc_loans_t;

//  Segment kind of a loan pool (segment.c checks it on attach).
#define SHMIPC_LOANS_KIND   0x4e414f4cu     //  "LOAN"

//  Blocks are whole units of this many bytes.
#define SHMIPC_LOANS_UNIT   4096

//  Largest pool, and so the most a peer's pool can make us map.
#define SHMIPC_LOANS_MAX    (1UL << 30)

//  Create a pool of size bytes (rounded up to units; at most
//  SHMIPC_LOANS_MAX), every page allocated now. Returns NULL with errno.
shmipc_loans_t *
    shmipc_loans_new (const char *name, size_t size);

//  Return the pool with one more holder.
shmipc_loans_t *
    shmipc_loans_share (shmipc_loans_t *self);

//  A holder lets go: the pool goes with the last holder and the last
//  block. Nullifies the reference.
void
    shmipc_loans_release (shmipc_loans_t **self_p);

//  Take a block of at least size bytes (size > 0), with one reference.
//  Returns its data, or NULL (errno ENOBUFS) when no free run is that big.
void *
    shmipc_loans_take (shmipc_loans_t *self, size_t size);

//  Add a reference to the block that starts at data. Returns 0, or -1
//  (EINVAL) if no taken block starts there.
int
    shmipc_loans_ref (shmipc_loans_t *self, const void *data);

//  Drop a reference to the block that starts at data; at zero it is free.
//  The last block of a pool without holders frees the pool.
void
    shmipc_loans_unref (shmipc_loans_t *self, const void *data);

//  Drop a reference to the block that starts at data, which someone we
//  cannot ask any more may still read (a channel closed while the peer
//  may still read the block): at zero it stays out of use for the pool's
//  life instead of coming back.
void
    shmipc_loans_retire (shmipc_loans_t *self, const void *data);

//  Return the offset of data in the pool's data area if [data, data +
//  size) lies in a taken block that starts at data, else -1. Lock-free
//  range check first: for any pointer.
int64_t
    shmipc_loans_offset (shmipc_loans_t *self, const void *data, size_t size);

//  Return the segment (its descriptor goes to peers).
shmipc_segment_t *
    shmipc_loans_segment (shmipc_loans_t *self);

//  Let channel send frames that lie in loans's blocks as LOAN records
//  (sendv recognises them by address): the peer maps the pool read-only
//  and reads them there. The channel holds the pool too. A channel lends
//  from one pool: once the peer has one, another is ignored.
void
    shmipc_channel_set_loans (shmipc_channel_t *channel, shmipc_loans_t *loans);

#ifdef __cplusplus
}
#endif

#endif
