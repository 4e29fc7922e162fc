/*  =========================================================================
    peer - one shm:// connection as the actor sees it: a channel, the
    greeting, and the bridge socket that stands in for the remote ZeroMQ
    socket next to the user's socket

    Owns: its channel, and its bridge unless the bridge was lent by a
    connecting endpoint (see shmipc__bridge_persists), and its entries in
    the actor's epoll set. Moves whole messages both ways without ever
    queueing more than one per direction: when the far side is full, it
    holds that one and stops reading.
    =========================================================================
*/

#ifndef SHMIPC_PEER_H_INCLUDED
#define SHMIPC_PEER_H_INCLUDED

#include <czmq.h>
#include "shmipc_channel.h"
#include "bridge.h"
#include "shmipc_loans.h"

typedef struct _shmipc__peer_t shmipc__peer_t;

//  Counters kept per peer.
typedef struct {
    uint64_t msgs_out;              //  User socket -> shm
    uint64_t bytes_out;
    uint64_t msgs_in;               //  shm -> user socket
    uint64_t bytes_in;
    uint64_t wakeups;               //  WAKE records sent + received
    uint64_t frames_lent;           //  shm -> user socket frames lent in
                                    //  place (zero-copy receive)
} shmipc__peer_stats_t;

//  Start a peer over a connected socket (taken on success). bridge, if not
//  NULL, is a persistent bridge lent by the endpoint. The peer keeps its
//  descriptors (channel, bridge's ZMQ_FD) in the epoll set epfd, with
//  data.ptr = tag, as its state needs them: the caller learns only that
//  tag is ready, and calls shmipc__peer_process. Returns NULL/errno.
shmipc__peer_t *
    shmipc__peer_new (int sock, int role, const shmipc__sockinfo_t *info,
                      void *bridge, const char *endpoint, int epfd, void *tag);

//  Close the channel and the bridge (unless lent), after taking them out of
//  the epoll set. Idempotent.
void
    shmipc__peer_destroy (shmipc__peer_t **self_p);

//  Return the monotonic ms by which the handshake and greeting must be
//  done, or -1 once the peer is active.
int64_t
    shmipc__peer_deadline (shmipc__peer_t *self);

//  Do whatever can be done now without waiting, at most batch messages
//  each way. Returns 1 if work is left (call again without waiting), 0 if
//  it must wait for its descriptors (the epoll set now says which: the
//  last calls on the channel and the bridge were their events checks, so
//  no wake-up is lost), or -1 when the peer is finished (closed, broken or
//  refused): destroy it.
int
    shmipc__peer_process (shmipc__peer_t *self, int batch);

//  Look, without system calls on the channel's side, whether the peer has
//  work: a message in the ring to pass on, room for the message it holds,
//  input on its bridge, or room in the bridge for what it holds. Meant for
//  a spin loop; stops the remote side's WAKEs while we spin.
bool
    shmipc__peer_spin (shmipc__peer_t *self);

//  Return true if the peer holds nothing to move in either direction and
//  its bridge has nothing waiting (for linger).
bool
    shmipc__peer_idle (shmipc__peer_t *self);

//  Return why the peer finished, or "" while it runs.
const char *
    shmipc__peer_reason (shmipc__peer_t *self);

//  Return the endpoint the peer belongs to.
const char *
    shmipc__peer_endpoint (shmipc__peer_t *self);

//  Tells whether a live connection of the same user socket already has
//  this routing id.
typedef bool (shmipc__id_taken_fn) (void *arg, const uint8_t *id, size_t size);

//  Have the peer refuse, at its greeting, a routing id that taken says is
//  in use (for a user ROUTER: libzmq would park such a connection, and its
//  bridge could never be closed). Optional.
void
    shmipc__peer_set_id_check (shmipc__peer_t *self, shmipc__id_taken_fn *taken,
                               void *arg);

//  Send frames that lie in loans (the user socket's pool) as loans.
void
    shmipc__peer_set_loans (shmipc__peer_t *self, shmipc_loans_t *loans);

//  Return true if the peer is connected with this (non-empty) routing id.
bool
    shmipc__peer_has_id (shmipc__peer_t *self, const uint8_t *id, size_t size);

//  Add how many messages the peer has moved each way to *in and *out.
void
    shmipc__peer_traffic (shmipc__peer_t *self, uint64_t *in, uint64_t *out);

//  Fill stats with the peer's counters.
void
    shmipc__peer_stats (shmipc__peer_t *self, shmipc__peer_stats_t *stats);

//  Add stats to sum, counter by counter (the actor's totals of closed
//  connections and its STATS answer sum them the same way).
static inline void
shmipc__peer_stats_add (shmipc__peer_stats_t *sum, const shmipc__peer_stats_t *stats)
{
    sum->msgs_out += stats->msgs_out;
    sum->bytes_out += stats->bytes_out;
    sum->msgs_in += stats->msgs_in;
    sum->bytes_in += stats->bytes_in;
    sum->wakeups += stats->wakeups;
    sum->frames_lent += stats->frames_lent;
}

//  Return true once the greeting was accepted and the bridge is live.
bool
    shmipc__peer_active (shmipc__peer_t *self);

#endif
