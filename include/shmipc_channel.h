/*  =========================================================================
    shmipc_channel - a bidirectional message channel between two processes:
    two shared-memory rings plus a Unix socket for the handshake, wake-ups
    and control messages

    Owns: the connected socket it was given, its own sealed segment (our
    ring's data, our write and read indices, our sleep flags), the mapping of
    the peer's segment (read-only), and any message being reassembled.
    Does not own the messages it returns. Not thread-safe: one thread at a
    time, like a ZeroMQ socket.

    Messages are one or more frames, delivered whole or not at all, in order.
    A message larger than the ring streams through it in chunks and is
    reassembled on the far side. Wake-ups cross the socket only when the
    other side has said, in its own segment, that it is going to sleep.
    =========================================================================
*/

#ifndef SHMIPC_CHANNEL_H_INCLUDED
#define SHMIPC_CHANNEL_H_INCLUDED

#include "shmipc_common.h"
#include "shmipc_msg.h"
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_channel_t shmipc_channel_t;

//  A frame of the peer's ring kept in place after recv_done (see
//  shmipc_channel_hold).
typedef struct _shmipc_hold_t shmipc_hold_t;

//  Roles: exactly one side of a channel is the server. The client speaks
//  first; the server answers only a client HELLO it accepted.
#define SHMIPC_CLIENT 0
#define SHMIPC_SERVER 1

//  Largest ring we accept from a peer by default, unless our own ring is
//  larger (then up to ours): see shmipc_channel_set_max_peer_capacity.
#define SHMIPC_PEER_CAPACITY_DEFAULT (64UL << 20)

//  Bits returned by shmipc_channel_events.
#define SHMIPC_POLLIN    1      //  A whole message can be received
#define SHMIPC_POLLOUT   2      //  The ring has room for a message
#define SHMIPC_POLLCTRL  4      //  A control message can be received
#define SHMIPC_POLLERR   8      //  The channel is closed or broken

//  A frame seen in place, without a copy (see shmipc_channel_recv_view).
typedef struct {
    const void *data;           //  Its bytes (NULL if size is 0)
    size_t size;                //  How many
} shmipc_frame_t;

//  Counters, for monitoring.
typedef struct {
    uint64_t msgs_sent;         //  Messages written to our ring
    uint64_t bytes_sent;        //  Payload bytes written
    uint64_t msgs_received;     //  Messages delivered to the caller
    uint64_t bytes_received;    //  Payload bytes delivered
    uint64_t wakeups_sent;      //  Wake-ups we sent the peer (pipe bytes
                                //  or WAKE records)
    uint64_t wakeups_received;  //  Wake-ups read: WAKE records, and bytes
                                //  drained from our pipe (the peer's count:
                                //  it may write more than it should)
    uint64_t ctrl_sent;         //  Control messages sent
    uint64_t ctrl_received;     //  Control messages received
} shmipc_channel_stats_t;

//  Create a channel over sock, a connected AF_UNIX SOCK_SEQPACKET socket
//  (record boundaries keep every control record whole; a SOCK_STREAM socket
//  is refused with EPROTOTYPE). name travels in the handshake; capacity is
//  the size in bytes of the ring we write (rounded up to a power of two);
//  role is SHMIPC_CLIENT or SHMIPC_SERVER. A client creates its segment and
//  sends its half of the handshake at once; a server creates and sends
//  nothing until the client's half has arrived and passed its checks (so a
//  peer that says nothing costs a server no shared memory and no
//  descriptor). Returns without waiting for the peer: see
//  shmipc_channel_handshake. On success the channel owns sock (made
//  close-on-exec, and blocking: the channel says MSG_DONTWAIT itself
//  wherever it must not wait, so that a waiting call can sleep and take
//  its wake-up in one system call); on failure the caller still does.
//  Returns NULL with errno.
SHMIPC_EXPORT shmipc_channel_t *
    shmipc_channel_new (int sock, const char *name, size_t capacity, int role);

//  Close the socket (the peer sees end of stream), unmap both segments,
//  free everything. Messages already published stay readable by the peer,
//  which keeps its own mapping. Idempotent; nullifies the reference.
SHMIPC_EXPORT void
    shmipc_channel_destroy (shmipc_channel_t **self_p);

//  Complete the handshake: read the peer's half, check it (magic, version,
//  opposite role, capacity, name) and attach its segment; a server then
//  creates its own segment and answers. A client's handshake cannot
//  complete before the server's has run, so a single thread holding both
//  ends steps the server first. timeout_ms: 0
//  checks once, -1 waits for ever, otherwise waits that long. Returns 0 once
//  ready, or -1 with errno: EAGAIN (not yet: timeout_ms elapsed), ETIMEDOUT
//  (the handshake deadline passed), EPROTO (the peer broke the protocol),
//  ECONNRESET (the peer went away).
SHMIPC_EXPORT int
    shmipc_channel_handshake (shmipc_channel_t *self, int timeout_ms);

//  Set how long the handshake may take from channel creation, in ms
//  (default 5000). A peer that has not completed it by then is refused.
SHMIPC_EXPORT void
    shmipc_channel_set_handshake_timeout (shmipc_channel_t *self, int timeout_ms);

//  Return the monotonic time (ms, CLOCK_MONOTONIC) at which
//  the pending handshake expires, or -1 once the channel is ready.
SHMIPC_EXPORT int64_t
    shmipc_channel_deadline (shmipc_channel_t *self);

//  Return true once the handshake has completed.
SHMIPC_EXPORT bool
    shmipc_channel_ready (shmipc_channel_t *self);

//  Return the name the peer sent, or NULL before the handshake completes.
SHMIPC_EXPORT const char *
    shmipc_channel_peer_name (shmipc_channel_t *self);

//  Return the descriptor to poll for POLLIN (with shmipc_channel_wake_fd,
//  once the handshake is done). Like ZeroMQ's ZMQ_FD it is a notification,
//  not a level: it becomes readable when something may have changed (a
//  message, a control message or ring space arrived, the peer went away),
//  and any call on the channel may consume that notification. So, as with
//  ZMQ_EVENTS: make shmipc_channel_events the last call before you wait on
//  the descriptors, and wait only if it returned nothing you can act on.
//  Readable does not promise a message either: ask events again.
SHMIPC_EXPORT int
    shmipc_channel_fd (shmipc_channel_t *self);

//  Return the second descriptor to poll for POLLIN, the pipe the peer
//  wakes us through (a byte there costs less than a record on the
//  socket), or -1 while there is none: before the handshake completes, or
//  if the pipe could not be made (then the peer wakes us on the socket).
//  It is the same from the handshake to destroy. It never hangs up, and
//  behaves as shmipc_channel_fd does: events reads it.
SHMIPC_EXPORT int
    shmipc_channel_wake_fd (shmipc_channel_t *self);

//  Read whatever arrived on the socket, look at both rings, and return
//  SHMIPC_POLL* bits: POLLIN if a whole message is ready, POLLOUT if the
//  message that last failed with EAGAIN now fits (or, if none did, a
//  quarter of the ring is free), POLLCTRL, POLLERR. It arms the descriptor
//  for whatever is not ready, so after it the descriptor signals the next
//  change.
SHMIPC_EXPORT int
    shmipc_channel_events (shmipc_channel_t *self);

//  Like shmipc_channel_events, but cheap enough for a spin loop: it looks
//  only at the rings (no system call) and, instead of arming the
//  descriptor, tells the peer not to send WAKEs while we spin. Returns
//  SHMIPC_POLLIN if the peer has published something unread, SHMIPC_POLLOUT
//  as events does, SHMIPC_POLLERR if the channel broke. Call
//  shmipc_channel_events before you wait on the descriptor again.
SHMIPC_EXPORT int
    shmipc_channel_peek_events (shmipc_channel_t *self);

//  Transmit one message of nframes frames (nframes >= 1), whole or not at
//  all. Flags: SHMIPC_DONTWAIT fails with EAGAIN when the ring is full
//  instead of waiting for the reader; SHMIPC_DEFER leaves the message
//  unpublished until shmipc_channel_flush (a batch then costs one publish
//  and at most one wake-up). A message bigger than the ring is streamed in
//  chunks, and so is one that the frames the reader holds
//  (shmipc_channel_hold) leave no place for whole; with SHMIPC_DONTWAIT
//  it may return EAGAIN part-way, and the caller must then repeat the call
//  with the same frames to go on (a different message fails with EINVAL;
//  an EAGAIN before the first chunk binds nothing). Returns 0 or -1 with errno: EAGAIN,
//  EPIPE (the peer is gone), EPROTO (the peer broke the protocol), EMSGSIZE
//  (more than SHMIPC_FRAMES_MAX frames).
SHMIPC_EXPORT int
    shmipc_channel_sendv (shmipc_channel_t *self, const struct iovec *frames,
                          size_t nframes, int flags);

//  Transmit a one-frame message; as shmipc_channel_sendv.
SHMIPC_EXPORT int
    shmipc_channel_send (shmipc_channel_t *self, const void *data,
                         size_t size, int flags);

//  Transmit a shmipc_msg_t; as shmipc_channel_sendv. Does not take it.
SHMIPC_EXPORT int
    shmipc_channel_send_msg (shmipc_channel_t *self, shmipc_msg_t *msg,
                             int flags);

//  Publish deferred messages and wake the peer if it sleeps. Returns 0 or
//  -1 with errno (EPROTO, EPIPE).
SHMIPC_EXPORT int
    shmipc_channel_flush (shmipc_channel_t *self);

//  Receive one message into msg (reset first; its buffers are reused).
//  Without SHMIPC_DONTWAIT waits for one. Returns 0, or -1 with errno:
//  EAGAIN (none yet, or the receive timeout passed), ECONNRESET (the peer
//  is gone and every message it sent has been delivered), EPROTO (the peer
//  broke the protocol; the channel is closed), EMSGSIZE (bigger than the
//  maximum message size; the channel is closed).
SHMIPC_EXPORT int
    shmipc_channel_recv_into (shmipc_channel_t *self, shmipc_msg_t *msg,
                              int flags);

//  Receive one message into a new shmipc_msg_t; as shmipc_channel_recv_into.
SHMIPC_EXPORT shmipc_msg_t *
    shmipc_channel_recv (shmipc_channel_t *self, int flags);

//  Receive the next whole message without copying it: *frames gets an array
//  of *nframes frames, valid until shmipc_channel_recv_done. Usually they
//  point into the peer's ring, which is the peer's memory: it can still
//  change those bytes while you read them, so copy before you trust them
//  (a message that streamed or wrapped around the ring is given from a
//  private copy). Calling it again before recv_done returns the same
//  message. Flags and errors as shmipc_channel_recv_into.
SHMIPC_EXPORT int
    shmipc_channel_recv_view (shmipc_channel_t *self, const shmipc_frame_t **frames,
                              size_t *nframes, int flags);

//  Finish with the message from shmipc_channel_recv_view; its ring space
//  goes back to the writer. Does nothing if no message is held.
SHMIPC_EXPORT void
    shmipc_channel_recv_done (shmipc_channel_t *self);

//  Keep frame index of the message from shmipc_channel_recv_view where it
//  is after recv_done (zero-copy receive): its bytes stay mapped, and the
//  peer's writer steps over them, until shmipc_hold_release. The rest of
//  the ring flows on meanwhile. The bytes are still the peer's: it can
//  change them while you read (trust it, or copy). Returns the hold, or
//  NULL with errno: ENOBUFS (at most 64 holds and half of the peer's ring
//  at once, and none from a ring under 4 KiB: copy the frame instead),
//  EAGAIN (the frame is a private copy, not in the ring, or empty),
//  EINVAL (no message from recv_view, or no such frame).
SHMIPC_EXPORT shmipc_hold_t *
    shmipc_channel_hold (shmipc_channel_t *self, size_t index);

//  Give a held frame back. Any thread, also after the channel is
//  destroyed (the last hold then unmaps its segments). NULL does nothing.
SHMIPC_EXPORT void
    shmipc_hold_release (shmipc_hold_t *hold);

//  Receive every pending message, up to max, into msgs [] (new messages the
//  caller destroys). Without SHMIPC_DONTWAIT waits for the first. Returns the
//  count (>= 1), or -1 with errno as shmipc_channel_recv_into.
SHMIPC_EXPORT ssize_t
    shmipc_channel_recv_vectored (shmipc_channel_t *self, shmipc_msg_t **msgs,
                                  size_t max, int flags);

//  Send a control message (at most SHMIPC_CTRL_MAX bytes) over the socket.
//  Control messages bypass the rings. At most SHMIPC_CTRL_WINDOW may be
//  unread by the peer; past that, fails with EAGAIN. Returns 0 or -1 with
//  errno (EAGAIN, EMSGSIZE, EPIPE).
SHMIPC_EXPORT int
    shmipc_channel_send_ctrl (shmipc_channel_t *self, const void *data,
                              size_t size);

//  Receive a control message into buffer. Returns its size, or -1 with
//  errno: EAGAIN (none), EMSGSIZE (buffer too small; the message stays),
//  ECONNRESET (the peer is gone).
SHMIPC_EXPORT ssize_t
    shmipc_channel_recv_ctrl (shmipc_channel_t *self, void *buffer,
                              size_t size);

//  Set the send and receive timeouts for the waiting forms, in ms (-1, the
//  default, waits for ever). A timeout fails with EAGAIN. A waiting call
//  interrupted by a signal fails with EINTR, as zmq_recv does.
SHMIPC_EXPORT void
    shmipc_channel_set_sndtimeo (shmipc_channel_t *self, int timeout_ms);
SHMIPC_EXPORT void
    shmipc_channel_set_rcvtimeo (shmipc_channel_t *self, int timeout_ms);

//  Set how long a waiting call spins on the ring before it sleeps, in
//  microseconds (default 0). Spinning trades CPU for latency; it is bounded
//  by this value, so an idle channel still sleeps.
SHMIPC_EXPORT void
    shmipc_channel_set_spin (shmipc_channel_t *self, int spin_us);

//  Say that the caller calls shmipc_channel_events before every sleep on
//  shmipc_channel_fd (as an event loop should): non-blocking calls then
//  leave reading the socket to events, one system call less each. A caller
//  that does not would find the descriptor readable again and again.
SHMIPC_EXPORT void
    shmipc_channel_set_events_driven (shmipc_channel_t *self, bool on);

//  Say whether the peer should wake us through a pipe of ours (on, the
//  default: a byte there costs less than a WAKE record) or with WAKE records
//  on the socket. Takes effect at the handshake; call it before. Either
//  way we wake the peer the way it asked. The plugin's actor turns it off:
//  see docs/performance.md, "Wake pipes".
SHMIPC_EXPORT void
    shmipc_channel_set_wake_pipe (shmipc_channel_t *self, bool on);

//  Set the largest message we accept, in bytes: the sum of its frames plus
//  32 bytes of bookkeeping per frame, so that a flood of empty frames is
//  bounded too. 0, the default, means no limit. A bigger message closes the
//  channel (EMSGSIZE).
SHMIPC_EXPORT void
    shmipc_channel_set_maxmsgsize (shmipc_channel_t *self, size_t size);

//  Set the largest ring capacity we accept from the peer (at most
//  SHMIPC_RING_MAX). The default is SHMIPC_PEER_CAPACITY_DEFAULT (64 MiB),
//  or our own capacity if that is larger. A bound on the address space a
//  peer can make us map; its pages are its own (a segment with unallocated
//  pages is refused, EPROTO, so our reads never allocate them for it).
//  Call it before the handshake completes.
SHMIPC_EXPORT void
    shmipc_channel_set_max_peer_capacity (shmipc_channel_t *self, size_t size);

//  Return 0 if the channel works, else the errno that closed it.
SHMIPC_EXPORT int
    shmipc_channel_error (shmipc_channel_t *self);

//  Return why the channel closed, in words ("" while it works).
SHMIPC_EXPORT const char *
    shmipc_channel_reason (shmipc_channel_t *self);

//  Return the capacity of the ring we write and of the ring we read.
SHMIPC_EXPORT size_t
    shmipc_channel_capacity (shmipc_channel_t *self);
SHMIPC_EXPORT size_t
    shmipc_channel_peer_capacity (shmipc_channel_t *self);

//  Copy the counters into stats.
SHMIPC_EXPORT void
    shmipc_channel_stats (shmipc_channel_t *self, shmipc_channel_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
