/*  =========================================================================
    pool - reusable buffers for large frames handed to ZeroMQ without a copy

    Owns the idle buffers. A buffer given to ZeroMQ comes back when the
    user's thread closes the message (zmq_free_fn), so the pool is
    thread-safe and outlives its owner while buffers are out. Reuse spares
    every large message the page faults of fresh memory.
    =========================================================================
*/

#ifndef SHMIPC_POOL_H_INCLUDED
#define SHMIPC_POOL_H_INCLUDED

#include <stddef.h>
#include <zmq.h>

typedef struct _shmipc__pool_t shmipc__pool_t;

//  Create a pool that keeps at most max_bytes of idle buffers.
shmipc__pool_t *
    shmipc__pool_new (size_t max_bytes);

//  The owner lets go: idle buffers are freed now, the rest as they come
//  back, and the pool itself with the last one. Nullifies the reference.
void
    shmipc__pool_release (shmipc__pool_t **self_p);

//  Initialise frame with a pooled buffer of size bytes (contents
//  undefined). Returns 0, or -1 with errno ENOMEM.
int
    shmipc__pool_frame (shmipc__pool_t *self, zmq_msg_t *frame, size_t size);

#endif
