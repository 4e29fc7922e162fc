/*  =========================================================================
    channel_lend - frames lent from our loan pool: the POOL record, the
    block references of LOAN records in flight (channel_lend.h)

    A block lent to the reader must not be reused while the reader may
    still read it: until its LOAN record has been read and released, and
    for as long as the reader's hold table lists the record (zero-copy
    receive). The ring answers both (shmipc_ring_returned).
    =========================================================================
*/

#include "channel_lend.h"

#include <errno.h>
#include <stdlib.h>

void
shmipc__channel_lend_destroy (shmipc__channel_lend_t *self, shmipc_ring_t *ring)
{
    //  A last look at the reader (its segment is still mapped), then what
    //  it may still read is retired
    if (ring && self->count && shmipc_ring_space (ring) >= 0)
        shmipc__channel_lend_collect (self, ring);
    for (size_t index = 0; index < self->count; index++)
        shmipc_loans_retire (self->loans, self->out [index].data);
    free (self->out);
    self->out = NULL;
    self->count = 0;
    shmipc_loans_release (&self->loans);
}

void
shmipc__channel_lend_set (shmipc__channel_lend_t *self, shmipc_loans_t *loans)
{
    //  The pool a peer has mapped cannot change: a second one is not lent
    if (self->pool_sent || loans == self->loans)
        return;
    shmipc_loans_release (&self->loans);
    self->loans = loans ? shmipc_loans_share (loans) : NULL;
}

bool
shmipc__channel_lend_ready (shmipc__channel_lend_t *self)
{
    if (!self->loans)
        return false;
    if (!self->pool_sent
    &&  shmipc__channel_link_send_pool (self->link,
                                        shmipc_segment_fd (shmipc_loans_segment (self->loans))) == 0)
        self->pool_sent = true;
    return self->pool_sent;
}

int64_t
shmipc__channel_lend_offset (shmipc__channel_lend_t *self, const struct iovec *frame)
{
    if (!self->loans || frame->iov_len == 0)
        return -1;
    return shmipc_loans_offset (self->loans, frame->iov_base, frame->iov_len);
}

int
shmipc__channel_lend_note (shmipc__channel_lend_t *self, uint64_t at, const void *data)
{
    if (shmipc__grow ((void **) &self->out, &self->slots, self->count + 1, sizeof *self->out))
        return -1;
    //  The caller's reference keeps the block taken: ours cannot fail
    if (shmipc_loans_ref (self->loans, data))
        return -1;
    self->out [self->count++] = (shmipc__loan_t) { .at = at, .data = data };
    return 0;
}

void
shmipc__channel_lend_collect (shmipc__channel_lend_t *self, shmipc_ring_t *ring)
{
    size_t kept = 0;
    for (size_t index = 0; index < self->count; index++) {
        shmipc__loan_t loan = self->out [index];
        if (shmipc_ring_returned (ring, loan.at, SHMIPC__LOAN_PAYLOAD))
            shmipc_loans_unref (self->loans, loan.data);
        else
            self->out [kept++] = loan;
    }
    self->count = kept;
}
