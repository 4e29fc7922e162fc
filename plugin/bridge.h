/*  =========================================================================
    bridge - the socket that stands in for a remote ZeroMQ socket next to
    the user's socket, and the snapshot of the user's socket it is made for

    Owns nothing: a bridge belongs to whoever made it (a peer, or a
    connecting endpoint that lends it to its peers). A bridge is a raw
    libzmq socket (void *) in the user socket's context, not a zsock_t: zsock_new
    asserts when libzmq refuses a socket (at the context's socket limit or
    out of descriptors), and a peer must never be able to make us abort.
    =========================================================================
*/

#ifndef SHMIPC_BRIDGE_H_INCLUDED
#define SHMIPC_BRIDGE_H_INCLUDED

#include <czmq.h>
#include "greeting.h"

//  What a bridge and a peer need to know about the user's socket: a snapshot taken in
//  the user's thread when bind or connect was called.
typedef struct {
    void *context;                  //  Its libzmq context: bridges live
                                    //  there (inproc connects only there)
    int type;                       //  User socket type (ZMQ_*)
    char inproc [SHMIPC__INPROC_MAX];   //  Its private inproc endpoint
    uint8_t routing_id [SHMIPC__ROUTING_ID_MAX];    //  Its ZMQ_ROUTING_ID
    size_t routing_id_size;         //  0 if none
    int sndhwm;                     //  Its ZMQ_SNDHWM (a bridge's own
    int rcvhwm;                     //  Its ZMQ_RCVHWM  are 1: bridge_new)
    size_t capacity;                //  Ring bytes for our side
    size_t maxmsgsize;              //  Its ZMQ_MAXMSGSIZE, 0 for none; over
                                    //  shm:// it bounds whole messages
    size_t max_peer_capacity;       //  Largest ring we map from a peer (0:
                                    //  the channel's default)
    bool immediate;                 //  Its ZMQ_IMMEDIATE: queue nothing
                                    //  for a connection that is not up
    bool zerocopy;                  //  Lend large received frames in place
                                    //  (shmipc_set_zerocopy)
} shmipc__sockinfo_t;

//  Create the bridge socket (a raw libzmq socket in the user's context) for a
//  user socket described by info, with the remote's routing id (may be
//  NULL), connected to the user's socket. Returns NULL with errno (EMFILE
//  at the context's socket limit or the descriptor limit) instead of
//  asserting as zsock_new would.
void *
    shmipc__bridge_new (const shmipc__sockinfo_t *info,
                        const uint8_t *routing_id, size_t routing_id_size);

//  Close a bridge made by shmipc__bridge_new. Nullifies the reference.
void
    shmipc__bridge_destroy (void **self_p);

//  Return the bridge's ZMQ_EVENTS (0 on error). Like every ZMQ_EVENTS
//  call, it also runs the socket's pending commands.
int
    shmipc__bridge_events (void *self);

#endif
