/*  =========================================================================
    channel.h - the channel's private state, shared by its three files

    channel.c       construction, handshake, socket records, sleep and wake,
                    control messages, events, options
    channel_tx.c    transmit: ring space, waiting, streaming, publishing
    channel_rx.c    receive: finding whole messages, views, copies, release

    Owns nothing by itself: see struct _shmipc_channel_t for who owns what.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_INTERNAL_H_INCLUDED
#define SHMIPC_CHANNEL_INTERNAL_H_INCLUDED

#include "shmipc_channel.h"
#include "shmipc_ring.h"
#include "shmipc_segment.h"
#include "util.h"

#include <stdatomic.h>

#define SHMIPC__CHANNEL_KIND    0x4e414843u     //  "CHAN": a channel segment
#define SHMIPC__CONTROL_OFFSET  64

//  The words each side publishes, in its own segment, one cache line each
//  so that the two writers never share a line.
typedef struct {
    _Alignas (64) uint64_t head;        //  Write index of our ring
    _Alignas (64) uint64_t tail;        //  Read index into the peer's ring
    _Alignas (64) uint32_t rx_sleep;    //  Odd while we wait for data
    _Alignas (64) uint32_t tx_sleep;    //  Odd while we wait for space
} shmipc__control_t;

typedef enum {
    SHMIPC__HANDSHAKE,          //  Waiting for the peer's HELLO
    SHMIPC__READY,              //  Working (the peer may be gone: peer_gone)
    SHMIPC__BROKEN              //  Closed by an error; see error and reason
} shmipc__state_t;

//  Where the frames of the message ready for the caller are.
typedef enum {
    SHMIPC__NONE,               //  No whole message yet
    SHMIPC__IN_RING,            //  In the peer's ring, consumed, not released
    SHMIPC__IN_COPY             //  In partial (it streamed, wrapped or split)
} shmipc__ready_t;

//  A control message received and not yet read.
typedef struct {
    uint8_t *data;              //  Payload (malloc'd)
    size_t size;                //  Its size
} shmipc__ctrl_t;

//  Progress through a message too big for the ring (see sendv).
typedef struct {
    bool active;                //  A message is part-way through
    size_t nframes;             //  Its frame count, to recognise the retry
    uint64_t total;             //  Its content size, likewise
    size_t frame;               //  Frame being written
    size_t offset;              //  Bytes of that frame already written
} shmipc__stream_t;

struct _shmipc_channel_t {
    int sock;                               //  Connected SEQPACKET socket; owned
    int role;                               //  SHMIPC_CLIENT or SHMIPC_SERVER
    shmipc__state_t state;                  //  See shmipc__state_t
    bool peer_gone;                         //  End of stream seen on the socket
    int error;                              //  errno that broke the channel
    const char *reason;                     //  Why, in words (static string)
    char name [SHMIPC_NAME_MAX + 1];        //  Our name
    char peer_name [SHMIPC_NAME_MAX + 1];   //  The peer's, from its HELLO
    int64_t created;                        //  When, in monotonic ms
    int64_t deadline;                       //  Handshake deadline (ms)
    size_t capacity;                        //  Our ring's bytes
    size_t peer_capacity;                   //  The peer's ring's bytes
    size_t max_peer_capacity;               //  Largest peer ring we accept
                                            //  (SHMIPC_PEER_CAPACITY_DEFAULT
                                            //  or ours, unless set)
    size_t maxmsgsize;                      //  Largest message accepted (0: any)
    int sndtimeo;                           //  ms, -1 for ever
    int rcvtimeo;                           //  ms, -1 for ever
    int spin_us;                            //  Spin before sleeping, us

    shmipc_segment_t *own;                  //  Our segment (read-write); owned.
                                            //  A server's exists only once
                                            //  the client's HELLO passed
    shmipc_segment_t *peer;                 //  The peer's (read-only); owned
    shmipc__control_t *own_ctl;             //  Control block in our segment
    const shmipc__control_t *peer_ctl;      //  Control block in the peer's
    shmipc_ring_t *tx;                      //  The ring we write; owned
    shmipc_ring_t *rx;                      //  The ring we read; owned

    uint32_t rx_epoch;                      //  Our rx_sleep value
    uint32_t tx_epoch;                      //  Our tx_sleep value
    uint32_t woke_rx;                       //  Peer rx_sleep epoch last woken
    uint32_t woke_tx;                       //  Peer tx_sleep epoch last woken
    uint64_t tx_want;                       //  Bytes the last send that
                                            //  failed with EAGAIN needed

    shmipc_msg_t *partial;                  //  Message being copied together;
                                            //  owned
    bool frame_open;                        //  Its last frame continues
    shmipc__ready_t ready;                  //  Where the ready message is
    shmipc_frame_t *views;                  //  Its frames; owned
    size_t nviews;                          //  How many
    size_t view_slots;                      //  Room in views []
    bool view_held;                         //  Handed out by recv_view and
                                            //  not yet done
    shmipc__stream_t stream;                //  Outgoing oversize message

    shmipc__ctrl_t ctrl [SHMIPC_CTRL_WINDOW];   //  Received control messages
    size_t ctrl_head;                       //  Oldest in ctrl []
    size_t ctrl_count;                      //  How many in ctrl []
    uint32_t ctrl_sent;                     //  Control messages we sent
    uint32_t ctrl_acked;                    //  Of those, read by the peer
    uint32_t ctrl_consumed;                 //  Control messages we read
    bool ack_pending;                       //  An ACK could not be sent yet

    shmipc_channel_stats_t stats;           //  Counters
};

#define SHMIPC__RX_ARMED(self) (((self)->rx_epoch & 1) != 0)
#define SHMIPC__TX_ARMED(self) (((self)->tx_epoch & 1) != 0)

//  channel.c: shared by the transmit and receive files.

//  Close the channel for good with code and reason. Returns -1, errno set.
int
    shmipc__channel_break (shmipc_channel_t *self, int code, const char *reason);

//  Complete the handshake as flags allow (EAGAIN for non-blocking calls).
int
    shmipc__channel_ensure_ready (shmipc_channel_t *self, int flags, int64_t deadline);

//  Read every record waiting on the socket. Returns 0 or -1 (broken).
int
    shmipc__channel_drain (shmipc_channel_t *self);

//  Set our rx or tx sleep flag to a new odd epoch (then a full fence), or
//  back to even. Clearing does not read the socket: a WAKE left there only
//  costs one spurious wake-up.
void
    shmipc__channel_arm (shmipc_channel_t *self, bool rx);
void
    shmipc__channel_disarm (shmipc_channel_t *self, bool rx);

//  Leave the armed state at the start of an operation: clear the flag and
//  read the socket. Returns 0 or -1 (broken).
int
    shmipc__channel_wake_up (shmipc_channel_t *self, bool rx);

//  Sleep until the socket brings something or deadline passes, and take
//  what it brought. Returns 0, or -1 with EAGAIN (deadline), EINTR, or the
//  error that broke the channel.
int
    shmipc__channel_sleep (shmipc_channel_t *self, int64_t deadline);

//  Spin once while waiting: give the CPU away, since the peer we wait for
//  may be queued behind us on this very CPU.
void
    shmipc__channel_spin_pause (void);

//  Send a WAKE to the peer if its flag (rx_sleep or tx_sleep) asks for one
//  we have not yet sent for that epoch. Call after publishing or releasing.
void
    shmipc__channel_wake_peer (shmipc_channel_t *self, bool reader);

//  Fail with the errno that fits the state, or return 0 if sending works.
int
    shmipc__channel_check_send (shmipc_channel_t *self);

//  channel_tx.c

//  Return free bytes in our ring, or -1 (EPROTO: the peer lied).
int64_t
    shmipc__channel_space (shmipc_channel_t *self);

//  Publish what we wrote and wake the reader if it sleeps.
void
    shmipc__channel_publish (shmipc_channel_t *self);

//  channel_rx.c

//  Make a whole message ready if one is there, arming the rx flag when
//  none is (if arm). Returns 0 (see self->ready) or -1 (broken).
int
    shmipc__channel_poll_message (shmipc_channel_t *self, bool arm);

//  Return consumed space to the writer and wake it if it waits. A ready
//  message still in the ring is first copied out, unless the caller holds
//  it (recv_view): its space then stays ours until recv_done.
void
    shmipc__channel_release (shmipc_channel_t *self);

#endif
