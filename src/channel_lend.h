/*  =========================================================================
    channel_lend.h - the channel's loans on the sending side: frames that
    lie in our loan pool go as LOAN records (offset and size), and each
    loan's block is referenced until the reader is done with it

    Owns: a reference to the pool (shmipc_loans_t) and one block reference
    per LOAN record the reader may still use. Does not own the ring or the
    socket. Calls down only: link (the POOL record), loans, ring (to learn
    what came back).
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_LEND_H_INCLUDED
#define SHMIPC_CHANNEL_LEND_H_INCLUDED

#include "channel_link.h"
#include "shmipc_loans.h"
#include "shmipc_ring.h"

#include <sys/uio.h>

//  A LOAN record's payload.
#define SHMIPC__LOAN_PAYLOAD    16

//  One LOAN record the reader may still use.
typedef struct {
    uint64_t at;                //  Its header's index in our ring
    const void *data;           //  The block it lends
} shmipc__loan_t;

typedef struct {
    shmipc__channel_link_t *link;   //  For the POOL record; not owned
    shmipc_loans_t *loans;          //  Our pool, if any; held (shared)
    bool pool_sent;                 //  The peer has its descriptor
    shmipc__loan_t *out;            //  Loans not yet back; owned
    size_t count;                   //  How many
    size_t slots;                   //  Room in out []
} shmipc__channel_lend_t;

//  Set up, with no pool.
static inline void
shmipc__channel_lend_init (shmipc__channel_lend_t *self, shmipc__channel_link_t *link)
{
    *self = (shmipc__channel_lend_t) { .link = link };
}

//  Let go of every loan: those that came back (as ring, if not NULL, sees
//  the reader now) go back to the pool; the others the reader may still
//  read (unread in the ring, or held), so their blocks are retired, never
//  reused while the pool lives.
void
    shmipc__channel_lend_destroy (shmipc__channel_lend_t *self, shmipc_ring_t *ring);

//  Lend from loans (shared: we hold it too) from now on. Once the peer has
//  a pool, another is ignored: a channel lends from one pool only.
void
    shmipc__channel_lend_set (shmipc__channel_lend_t *self, shmipc_loans_t *loans);

//  Return true if a message may have loaned frames now: a pool is set and
//  the peer has its descriptor (sent here if not yet; false if the socket
//  cannot take it now).
bool
    shmipc__channel_lend_ready (shmipc__channel_lend_t *self);

//  Return the pool offset of frame if it is a whole-block-backed loan,
//  else -1. Call only after lend_ready said true.
int64_t
    shmipc__channel_lend_offset (shmipc__channel_lend_t *self, const struct iovec *frame);

//  A LOAN record for data went into the ring at index at: reference its
//  block until it comes back. Returns 0 or -1 (ENOMEM).
int
    shmipc__channel_lend_note (shmipc__channel_lend_t *self, uint64_t at,
                               const void *data);

//  Drop the references of loans that came back (read, released, and not
//  held), as the ring's last look at the reader saw them.
void
    shmipc__channel_lend_collect (shmipc__channel_lend_t *self, shmipc_ring_t *ring);

#endif
