/*  =========================================================================
    channel.h - the channel's private state: the objects it is made of

    Dependencies run one way, down (no file calls a file above it):

        channel.c        construction, segments, handshake, public calls,
          |    |         events, options: ties the others together
          v    v
    channel_tx.c  channel_rx.c     ring writer + streaming | ring reader +
          |    |                   reassembly + views
          v    v
        channel_waiter.c           sleep flags, arm/disarm, spin, WAKE
          |                        decisions, one wait loop (wait_until)
          v
        channel_link.c             the socket: state, records (WAKE, ACK,
                                   CTRL), control window, drain, sleep

    tx and rx also use link directly (state, break). Where tx needs rx (to
    give back read space before it waits), channel.c passes rx's release
    down as a callback. A change to the wake-up protocol touches
    channel_waiter; to the handshake, channel.c; to a record, channel_link.

    Owns, through its parts: see each part's header. Itself it owns the two
    segments (ours read-write, the peer's read-only mapping).
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_INTERNAL_H_INCLUDED
#define SHMIPC_CHANNEL_INTERNAL_H_INCLUDED

#include "shmipc_channel.h"
#include "shmipc_segment.h"
#include "channel_link.h"
#include "channel_waiter.h"
#include "channel_tx.h"
#include "channel_rx.h"

#define SHMIPC__CHANNEL_KIND    0x4e414843u     //  "CHAN": a channel segment
#define SHMIPC__CONTROL_OFFSET  64

//  Create our segment, fully populated, and point the waiter at our
//  control block (channel_handshake.c). Returns 0 or -1 with errno.
int
    shmipc__channel_own_new (shmipc_channel_t *self);

//  Send our HELLO with our segment's descriptor, without waiting. Returns
//  0, or -1 with errno (EPIPE or ECONNRESET: the peer is gone; ENOBUFS
//  instead of EAGAIN, which would mean "not yet").
int
    shmipc__channel_send_hello (shmipc_channel_t *self, int sock);

//  Read the peer's HELLO if it is there (and answer it, as the server).
//  Returns 0 when ready, -1/EAGAIN if not yet, -1 with another errno if
//  the channel broke.
int
    shmipc__channel_handshake_step (shmipc_channel_t *self);

struct _shmipc_channel_t {
    int role;                               //  SHMIPC_CLIENT or SHMIPC_SERVER
    int64_t created;                        //  When, in monotonic ms
    int64_t deadline;                       //  Handshake deadline (ms)
    size_t max_peer_capacity;               //  Largest peer ring we accept
                                            //  (SHMIPC_PEER_CAPACITY_DEFAULT
                                            //  or ours, unless set)
    shmipc_segment_t *own;                  //  Our segment (read-write); owned.
                                            //  A server's exists only once
                                            //  the client's HELLO passed
    shmipc_segment_t *peer;                 //  The peer's (read-only); owned

    shmipc__channel_link_t link;            //  The socket and its records
    shmipc__channel_waiter_t waiter;        //  Sleep flags and waiting
    shmipc__channel_tx_t tx;                //  Transmit side (capacity: ours)
    shmipc__channel_rx_t rx;                //  Receive side (capacity: the
                                            //  peer's)
};

#endif
