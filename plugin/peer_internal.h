/*  =========================================================================
    peer_internal.h - what the parts of a peer share: its state, and the
    calls peer.c (life, greeting, events) and peer_pumps.c (moving
    messages) make of each other. Not for other files.
    =========================================================================
*/

#ifndef SHMIPC_PEER_INTERNAL_H_INCLUDED
#define SHMIPC_PEER_INTERNAL_H_INCLUDED

#include "peer.h"
#include "pool.h"

typedef enum {
    SHMIPC__PEER_HANDSHAKE,                //  Channel handshake under way
    SHMIPC__PEER_GREETING,                 //  Waiting for the peer's greeting
    SHMIPC__PEER_ACTIVE,                   //  Moving messages
    SHMIPC__PEER_DEAD                      //  Finished; see reason
} shmipc__peer_state_t;

struct _shmipc__peer_t {
    shmipc_channel_t *channel;      //  The shm channel; owned
    void *bridge;                   //  Stands in for the remote socket (a
                                    //  raw libzmq socket)
    int bridge_type;                //  Its type (ZMQ_*)
    bool lent;                      //  The bridge belongs to the endpoint
    int epfd;                       //  The actor's epoll set (not owned)
    void *tag;                      //  Our entries' data.ptr in it
    uint32_t channel_watch;         //  Events the channel's descriptor is
                                    //  registered for (0: not registered)
    bool channel_added;             //  The descriptor is in the set
    int bridge_fd;                  //  The bridge's ZMQ_FD in the set, or -1
    shmipc__sockinfo_t info;        //  The user socket, as bind/connect saw it
    char *endpoint;                 //  Endpoint, for logs; owned
    shmipc__peer_state_t state;                //  See shmipc__peer_state_t
    const char *reason;             //  Why it finished (static string)
    int64_t deadline;               //  Greeting deadline (ms)

    zmq_msg_t *out;                 //  Held bridge -> channel frames
    struct iovec *out_iov;          //  The same frames as iovecs
    size_t out_count;               //  Frames held (0: none)
    size_t out_slots;               //  Room in out [] and out_iov []

    shmipc__pool_t *pool;           //  Buffers for large frames; released
                                    //  with us, freed with its last buffer
    zmq_msg_t *in_frames;           //  Held channel -> bridge frames
    size_t in_count;                //  Frames held (0: none)
    size_t in_next;                 //  Next frame to send
    size_t in_slots;                //  Room in in_frames []

    shmipc__peer_stats_t stats;     //  Counters
    uint8_t peer_id [SHMIPC__ROUTING_ID_MAX];   //  The remote's routing id,
                                                //  once greeted
    size_t peer_id_size;            //  0 if none (or not greeted yet)
    shmipc__id_taken_fn *id_taken;  //  Duplicate routing id check, or NULL
    void *id_taken_arg;             //  Its argument (the actor)
};

//  Finish the peer with reason. Returns -1 for tail calls.
int
    shmipc__peer_die (shmipc__peer_t *self, const char *reason);

//  Finish the peer with the channel's own reason, or a default.
int
    shmipc__peer_die_channel (shmipc__peer_t *self, const char *otherwise);

//  Close the held frames in [from, count).
void
    shmipc__peer_close_frames (zmq_msg_t *frames, size_t from, size_t count);

//  Return true if the bridge can be read (not a PUSH bridge).
bool
    shmipc__peer_bridge_reads (shmipc__peer_t *self);

//  Channel -> bridge, and bridge -> channel (peer_pumps.c), at most batch
//  messages each. Return 1 if the batch ran out, 0 to wait, -1 dead.
int
    shmipc__peer_pump_in (shmipc__peer_t *self, int batch);
int
    shmipc__peer_pump_out (shmipc__peer_t *self, int batch);

#endif
