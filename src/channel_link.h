/*  =========================================================================
    channel_link.h - the channel's socket: its state, the records that
    cross it after the handshake (WAKE, ACK, CTRL, POOL, PIPE), the control
    window, and sleeping on it (and on our wake pipe)

    Owns: the connected SEQPACKET socket (from the end of construction on),
    the two wake pipes (ours, and our description of the peer's: see
    wakepipe.h), the control messages received and not yet read, and the
    channel's state
    (HANDSHAKE, READY, BROKEN: whoever breaks the channel breaks the link).
    Does not own: the rings, the segments, the sleep flags (channel_waiter),
    or the HELLO exchange (channel.c reads and writes it on this socket).
    Calls nothing else of the channel: it is the bottom of the graph in
    channel.h.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_LINK_H_INCLUDED
#define SHMIPC_CHANNEL_LINK_H_INCLUDED

#include "shmipc_channel.h"
#include "util.h"

#include <stdlib.h>
#include <unistd.h>

typedef enum {
    SHMIPC__HANDSHAKE,          //  Waiting for the peer's HELLO
    SHMIPC__READY,              //  Working (the peer may be gone: peer_gone)
    SHMIPC__BROKEN              //  Closed by an error; see error and reason
} shmipc__state_t;

//  A control message received and not yet read.
typedef struct {
    uint8_t *data;              //  Payload (malloc'd)
    size_t size;                //  Its size
} shmipc__ctrl_t;

typedef struct {
    int sock;                               //  Connected SEQPACKET socket;
                                            //  owned (-1 until construction
                                            //  succeeds)
    shmipc__state_t state;                  //  See shmipc__state_t
    bool peer_gone;                         //  End of stream seen on the socket
    int error;                              //  errno that broke the channel
    const char *reason;                     //  Why, in words (static string)
    char name [SHMIPC_NAME_MAX + 1];        //  Our name, for the log
    char peer_name [SHMIPC_NAME_MAX + 1];   //  The peer's, from its HELLO
                                            //  (written by channel.c)

    shmipc__ctrl_t ctrl [SHMIPC_CTRL_WINDOW];   //  Received control messages
    size_t ctrl_head;                       //  Oldest in ctrl []
    size_t ctrl_count;                      //  How many in ctrl []
    uint32_t ctrl_sent;                     //  Control messages we sent
    uint32_t ctrl_acked;                    //  Of those, read by the peer
    uint32_t ctrl_consumed;                 //  Control messages we read
    bool ack_pending;                       //  An ACK could not be sent yet
    int pool_fd;                            //  The peer's loan pool, from its
                                            //  POOL record, until channel_rx
                                            //  takes it; owned (-1: none)
    bool pool_seen;                         //  A POOL came (only one may)
    int wake_own;                           //  Our wake pipe, which the peer
                                            //  writes to wake us; owned (-1:
                                            //  none, WAKE records only)
    int wake_peer;                          //  Our description of the peer's
                                            //  wake pipe; owned (-1: none,
                                            //  we send WAKE records)
    bool pipe_seen;                         //  A PIPE came (only one may)
    bool no_pipe;                           //  Offer no wake pipe: the peer
                                            //  wakes us with WAKE records
    bool wake_maybe;                        //  We armed a flag since we last
                                            //  read our wake pipe: only then
                                            //  can an honest peer have written
    bool nudged;                            //  Records were read outside a
                                            //  wait: the next sleep returns
                                            //  at once (a WAKE may be gone)

    uint64_t stat_wakeups_sent;             //  Counter: WAKE records sent
    uint64_t stat_wakeups_received;         //  Counter: WAKE records received
    uint64_t stat_ctrl_sent;                //  Counter: CTRL records sent
    uint64_t stat_ctrl_received;            //  Counter: CTRL records received
} shmipc__channel_link_t;

//  Set up a link for name (at most SHMIPC_NAME_MAX bytes), without a socket
//  yet, in the HANDSHAKE state.
void
    shmipc__channel_link_init (shmipc__channel_link_t *self, const char *name);

//  Close the socket and free the unread control messages. Inline, like the
//  other parts' destroy: shmipc_channel_destroy stays one call deep.
static inline void
shmipc__channel_link_destroy (shmipc__channel_link_t *self)
{
    if (self->sock >= 0)
        close (self->sock);
    self->sock = -1;
    if (self->pool_fd >= 0)
        close (self->pool_fd);
    self->pool_fd = -1;
    if (self->wake_own >= 0)
        close (self->wake_own);
    self->wake_own = -1;
    if (self->wake_peer >= 0)
        close (self->wake_peer);
    self->wake_peer = -1;
    for (size_t index = 0; index < SHMIPC_CTRL_WINDOW; index++) {
        free (self->ctrl [index].data);
        self->ctrl [index].data = NULL;
    }
}

//  Close the channel for good with code and reason (the first break wins;
//  the socket is shut down). Returns -1 with errno set to the first code.
int
    shmipc__channel_link_break (shmipc__channel_link_t *self, int code,
                                const char *reason);

//  Fail with the errno that fits the state (the breaking error, or EPIPE
//  once the peer is gone), or return 0 if sending works.
int
    shmipc__channel_link_check_send (shmipc__channel_link_t *self);

//  recvmsg returned 0: end of stream, or an empty record (which our peer
//  never sends: a violation). Returns true for the latter.
bool
    shmipc__channel_link_empty_record (shmipc__channel_link_t *self);

//  Read every record waiting on the socket. Returns 0, or -1 if the channel
//  broke. End of stream marks the peer gone (not an error: the ring may
//  still hold its last messages).
int
    shmipc__channel_link_drain (shmipc__channel_link_t *self);

//  As drain, and read our wake pipe too if a flag was armed since it was
//  last read (the start of a wait that finds its flag armed, and events).
//  Returns 0 or -1 (broken).
int
    shmipc__channel_link_drain_all (shmipc__channel_link_t *self);

//  Make our wake pipe and send its write end in a PIPE record, at the end
//  of the handshake. Without a pipe (no descriptors, no /proc, socket
//  full) the peer goes on waking us with WAKE records: never an error.
void
    shmipc__channel_link_offer_pipe (shmipc__channel_link_t *self);

//  Read every record waiting, from anywhere but a wait's start (a LOAN
//  before its POOL): the next sleep then returns at once, as a WAKE read
//  here may have been meant for it. Returns 0 or -1 (broken).
int
    shmipc__channel_link_drain_now (shmipc__channel_link_t *self);

//  Send our loan pool's descriptor (a POOL record) without waiting.
//  Returns 0, or -1 (EAGAIN: socket full, try later; EPIPE).
int
    shmipc__channel_link_send_pool (shmipc__channel_link_t *self, int fd);

//  Sleep until the socket or our wake pipe brings something or deadline
//  (ms, -1 for ever) passes, and take what they brought. Returns 0, or -1 with EAGAIN
//  (deadline), EINTR, or the error that broke the channel.
int
    shmipc__channel_link_sleep (shmipc__channel_link_t *self, int64_t deadline);

//  Wake the peer without waiting: a byte into its wake pipe if it sent
//  one, else a WAKE record. Returns 0, or -1 (pipe or socket full, peer
//  gone: the caller may drop it, see channel_waiter.c).
int
    shmipc__channel_link_send_wake (shmipc__channel_link_t *self);

//  Send a control message if the peer's window has room, or fail: EAGAIN
//  (window or socket full), EPIPE, or the breaking error. The caller has
//  checked size and completed the handshake.
int
    shmipc__channel_link_send_ctrl (shmipc__channel_link_t *self,
                                    const void *data, size_t size);

//  Take the oldest control message into buffer and ACK it. Returns its
//  size, or -1: EAGAIN (none), ECONNRESET (none and the peer is gone),
//  EMSGSIZE (buffer too small; the message stays), or the breaking error.
ssize_t
    shmipc__channel_link_recv_ctrl (shmipc__channel_link_t *self,
                                    void *buffer, size_t size);

#endif
