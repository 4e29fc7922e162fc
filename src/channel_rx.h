/*  =========================================================================
    channel_rx.h - the channel's receive side: finding whole messages in
    the peer's ring, handing them out in place or as copies, giving the
    space back

    Owns: the ring we read (from the handshake on; channel.c creates it
    over the peer's segment), the message being copied together, and the
    frames of the ready message. Does not own the peer's segment, the
    socket (channel_link) or the sleep flags (channel_waiter). Calls down
    only: waiter and link.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_RX_H_INCLUDED
#define SHMIPC_CHANNEL_RX_H_INCLUDED

#include "channel_waiter.h"
#include "channel_lend.h"
#include "holds.h"
#include "shmipc_ring.h"

#include <stdlib.h>

//  Where a record lies in the ring: what a hold of its frame covers.
typedef struct {
    uint64_t at;                //  Index of its header
    uint64_t bytes;             //  Its ring bytes, header included
} shmipc__span_t;

//  Where the frames of the message ready for the caller are.
typedef enum {
    SHMIPC__NONE,               //  No whole message yet
    SHMIPC__IN_RING,            //  In the peer's ring, consumed, not released
    SHMIPC__IN_COPY             //  In partial (it streamed, wrapped or split)
} shmipc__ready_t;

typedef struct {
    shmipc__channel_link_t *link;           //  For state and breaking; not owned
    shmipc__channel_waiter_t *waiter;       //  Sleeps and wakes; not owned
    shmipc_ring_t *ring;                    //  The ring we read; owned, set
                                            //  at the handshake (channel.c)
    size_t capacity;                        //  Its bytes (the peer's capacity)
    size_t maxmsgsize;                      //  Largest message accepted (0: any)
    int rcvtimeo;                           //  ms, -1 for ever

    shmipc_msg_t *partial;                  //  Message being copied together;
                                            //  owned
    bool frame_open;                        //  Its last frame continues
    shmipc__ready_t ready;                  //  Where the ready message is
    shmipc_frame_t *views;                  //  Its frames; owned
    size_t nviews;                          //  How many
    size_t view_slots;                      //  Room in views [] and spans []
    shmipc__span_t *spans;                  //  IN_RING: each view's record
                                            //  in the ring (to hold it); owned
    shmipc_segment_t *pool;                 //  The peer's loan pool, mapped
                                            //  at its first LOAN; owned
    bool loans_read;                        //  LOAN records consumed and not
                                            //  yet released: their blocks
                                            //  wait for it in the writer
    shmipc__holds_t *holds;                 //  Frames lent out in place;
                                            //  owned (channel.c makes it)
    bool view_held;                         //  Handed out by recv_view and
                                            //  not yet done
    uint64_t stat_msgs_received;            //  Counter: messages delivered
    uint64_t stat_bytes_received;           //  Counter: payload bytes delivered
} shmipc__channel_rx_t;

//  Set up the receive side (no ring yet). Returns 0, or -1 (ENOMEM).
int
    shmipc__channel_rx_init (shmipc__channel_rx_t *self, shmipc__channel_link_t *link,
                             shmipc__channel_waiter_t *waiter);

//  Free what the receive side owns.
static inline void
shmipc__channel_rx_destroy (shmipc__channel_rx_t *self)
{
    shmipc_ring_destroy (&self->ring);
    shmipc_msg_destroy (&self->partial);
    free (self->views);
    self->views = NULL;
    free (self->spans);
    self->spans = NULL;
}

//  Make a whole message ready if one is there, arming the rx flag when
//  none is (if arm). Returns 0 (see self->ready) or -1 (broken).
int
    shmipc__channel_rx_poll (shmipc__channel_rx_t *self, bool arm);

//  Return 1 if a message is ready or the ring holds data, 0 if not, -1 if
//  the peer's ring is corrupt (broken). Does not arm.
int
    shmipc__channel_rx_readable (shmipc__channel_rx_t *self);

//  Return consumed space to the writer and wake it if it waits. A ready
//  message still in the ring is first copied out, unless the caller holds
//  it (recv_view): its space then stays ours until recv_done.
void
    shmipc__channel_rx_release (shmipc__channel_rx_t *self);

//  The public receive calls once the handshake is done (or a message is
//  ready): same contracts as shmipc_channel_recv_view, _recv_done,
//  _recv_into, _recv, _recv_vectored.
int
    shmipc__channel_rx_recv_view (shmipc__channel_rx_t *self,
                                  const shmipc_frame_t **frames, size_t *nframes,
                                  int flags);
void
    shmipc__channel_rx_recv_done (shmipc__channel_rx_t *self);
shmipc_hold_t *
    shmipc__channel_rx_hold (shmipc__channel_rx_t *self, size_t index);
int
    shmipc__channel_rx_recv_into (shmipc__channel_rx_t *self, shmipc_msg_t *msg,
                                  int flags);
shmipc_msg_t *
    shmipc__channel_rx_recv (shmipc__channel_rx_t *self, int flags);
ssize_t
    shmipc__channel_rx_recv_vectored (shmipc__channel_rx_t *self, shmipc_msg_t **msgs,
                                      size_t max, int flags);

#endif
