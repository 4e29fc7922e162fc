/*  =========================================================================
    channel_tx.h - the channel's transmit side: our ring's space, waiting
    for it, writing whole messages, streaming oversize ones, publishing

    Owns: the ring we write (from the handshake on; channel.c creates it
    over our segment) and the progress of an oversize message. Does not
    own the segment, the socket (channel_link) or the sleep flags
    (channel_waiter). Calls down only: waiter and link. Giving back the
    read space before a wait is the receive side's job: channel.c hands it
    down as the release callback.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_TX_H_INCLUDED
#define SHMIPC_CHANNEL_TX_H_INCLUDED

#include "channel_waiter.h"
#include "channel_lend.h"
#include "shmipc_ring.h"

//  Progress through a message too big for the ring (see sendv).
typedef struct {
    bool active;                //  A message is part-way through
    size_t nframes;             //  Its frame count, to recognise the retry
    uint64_t total;             //  Its content size, likewise
    size_t frame;               //  Frame being written
    size_t offset;              //  Bytes of that frame already written
} shmipc__stream_t;

//  Called once before a send waits for space; gives back what we have read
//  from the peer's ring, which the peer may be waiting for.
typedef void (shmipc__release_fn) (void *arg);

typedef struct {
    shmipc__channel_link_t *link;           //  For state and breaking; not owned
    shmipc__channel_waiter_t *waiter;       //  Sleeps and wakes; not owned
    shmipc_ring_t *ring;                    //  The ring we write; owned, set
                                            //  at the handshake (channel.c)
    size_t capacity;                        //  Its bytes
    int sndtimeo;                           //  ms, -1 for ever
    uint64_t want;                          //  Bytes the last send that
                                            //  failed with EAGAIN needed
    uint64_t need_shown;                    //  tx_need as last published: a
                                            //  store only when it changes (the
                                            //  reader reads that line often)
    shmipc__stream_t stream;                //  Outgoing oversize message
    shmipc__channel_lend_t lend;            //  Frames lent from our pool
    shmipc__release_fn *release;            //  See shmipc__release_fn
    void *release_arg;                      //  Its argument
    uint64_t stat_msgs_sent;                //  Counter: messages written
    uint64_t stat_bytes_sent;               //  Counter: payload bytes written
} shmipc__channel_tx_t;

//  Set up the transmit side for a ring of capacity bytes (not created yet).
void
    shmipc__channel_tx_init (shmipc__channel_tx_t *self, shmipc__channel_link_t *link,
                             shmipc__channel_waiter_t *waiter, size_t capacity,
                             shmipc__release_fn *release, void *release_arg);

//  Destroy the ring, if any, and give back what is lent.
static inline void
shmipc__channel_tx_destroy (shmipc__channel_tx_t *self)
{
    shmipc__channel_lend_destroy (&self->lend, self->ring);
    shmipc_ring_destroy (&self->ring);
}

//  Return free bytes in our ring, or -1 (EPROTO: the peer lied; broken).
int64_t
    shmipc__channel_tx_space (shmipc__channel_tx_t *self);

//  Publish what we wrote and wake the reader if it sleeps.
void
    shmipc__channel_tx_publish (shmipc__channel_tx_t *self);

//  Return 1 if what last failed with EAGAIN now fits (a quarter of the
//  ring if nothing failed), clearing the tx flag; else 0, after arming the
//  flag (if arm) and looking once more. -1 if the channel broke.
int
    shmipc__channel_tx_writable (shmipc__channel_tx_t *self, bool arm);

//  shmipc_channel_sendv once the arguments are checked and the handshake
//  is done: same contract.
int
    shmipc__channel_tx_sendv (shmipc__channel_tx_t *self, const struct iovec *frames,
                              size_t nframes, int flags);

#endif
