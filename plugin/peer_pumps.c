/*  =========================================================================
    peer_pumps - the two pumps of a shm:// connection: whole messages from
    the channel to the bridge (copied, or lent in place with zero-copy
    receive) and from the bridge to the channel

    Owns nothing: the frames held in each direction are the peer's
    (peer_internal.h). Everything read from the channel is untrusted; the
    channel checks the ring.
    =========================================================================
*/

#include "peer_internal.h"
#include "util.h"

#include <errno.h>

//  Frames at least this big go into pooled buffers, reused message after
//  message instead of fresh (page-faulting) memory.
#define S_POOL_MIN          65536

//  With zero-copy receive, frames at least this big are lent in place:
//  below it a copy costs less than the hold and ZeroMQ's free callback.
#define S_ZEROCOPY_MIN      65536

//  ThreadSanitizer cannot see libzmq (not instrumented) hand a message's
//  memory from the user's thread to ours and back, so it reports every
//  frame we copy as a race with the user's thread. Our copies into and out
//  of those frames are hidden from it; everything else stays checked.
#ifdef SHMIPC__TSAN
#   define S_HANDOFF_BEGIN()    (AnnotateIgnoreReadsBegin (__FILE__, __LINE__), \
                                 AnnotateIgnoreWritesBegin (__FILE__, __LINE__))
#   define S_HANDOFF_END()      (AnnotateIgnoreWritesEnd (__FILE__, __LINE__), \
                                 AnnotateIgnoreReadsEnd (__FILE__, __LINE__))
#else
#   define S_HANDOFF_BEGIN()
#   define S_HANDOFF_END()
#endif

//  Make room for count frames in an array of zmq_msg_t (and as many
//  iovecs). The frames may move: libzmq keeps small ones inside the
//  zmq_msg_t, so no pointer to their data may be kept across this call.
static int
s_reserve (zmq_msg_t **frames, struct iovec **iov, size_t *slots, size_t count)
{
    size_t iov_slots = *slots;
    if (iov && shmipc__grow ((void **) iov, &iov_slots, count, sizeof **iov))
        return -1;
    return shmipc__grow ((void **) frames, slots, count, sizeof **frames);
}

//  ZeroMQ frees a lent frame: its ring space may go back to the peer.
static void
s_hold_free (void *data, void *hint)
{
    (void) data;
    shmipc_hold_release ((shmipc_hold_t *) hint);
}

//  With zero-copy receive, make frame point at frame index of the message
//  in place. Returns 0, or -1 if it must be copied after all (too small,
//  not in the ring, or the holds are used up).
static int
s_lend (shmipc__peer_t *self, zmq_msg_t *frame, const shmipc_frame_t *frames,
        size_t index)
{
    if (!self->info.zerocopy || frames [index].size < S_ZEROCOPY_MIN)
        return -1;
    shmipc_hold_t *hold = shmipc_channel_hold (self->channel, index);
    if (!hold)
        return -1;
    //  Read-only memory: ZeroMQ never writes a message's data it did not
    //  allocate, and the user was told not to
    if (zmq_msg_init_data (frame, (void *) frames [index].data, frames [index].size,
                           s_hold_free, hold)) {
        shmipc_hold_release (hold);
        return -1;
    }
    self->stats.frames_lent++;
    return 0;
}

//  Turn the message the channel holds in place into zmq frames: small ones
//  copied into ZeroMQ's own, large ones into pooled buffers, or lent in
//  place with zero-copy receive. The copy is the security boundary: the
//  user's socket never sees the peer's memory unless it trusts the peer.
static int
s_prepare_in (shmipc__peer_t *self, const shmipc_frame_t *frames, size_t count)
{
    if (s_reserve (&self->in_frames, NULL, &self->in_slots, count))
        return -1;
    size_t bytes = 0;
    for (size_t index = 0; index < count; index++) {
        zmq_msg_t *frame = &self->in_frames [index];
        size_t size = frames [index].size;
        bytes += size;
        if (s_lend (self, frame, frames, index) == 0)
            continue;
        S_HANDOFF_BEGIN ();
        int rc = size >= S_POOL_MIN ? shmipc__pool_frame (self->pool, frame, size)
                                    : zmq_msg_init_size (frame, size);
        if (rc == 0 && size)
            memcpy (zmq_msg_data (frame), frames [index].data, size);
        S_HANDOFF_END ();
        if (rc) {
            shmipc__peer_close_frames (self->in_frames, 0, index);
            return -1;
        }
    }
    self->in_count = count;
    self->in_next = 0;
    self->stats.msgs_in++;
    self->stats.bytes_in += bytes;
    return 0;
}

//  Send the held frames to the bridge. Returns 0 when all went, -1/EAGAIN
//  if the bridge is full (before the first frame: nothing half-sent), -1
//  on other errors.
static int
s_send_in (shmipc__peer_t *self)
{
    while (self->in_next < self->in_count) {
        size_t index = self->in_next;
        int flags = ZMQ_DONTWAIT | (index + 1 < self->in_count ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send (&self->in_frames [index], self->bridge, flags) == -1) {
            //  Only the first frame can meet a full pipe: once it went, the
            //  rest of the message always goes
            errno = zmq_errno () == EAGAIN && index > 0 ? EPROTO : zmq_errno ();
            return -1;
        }
        self->in_next++;
    }
    self->in_count = self->in_next = 0;
    return 0;
}

//  Channel -> bridge. Returns 1 if the batch ran out, 0 to wait, -1 dead.
int
shmipc__peer_pump_in (shmipc__peer_t *self, int batch)
{
    for (int count = 0; count < batch; count++) {
        if (self->in_count == 0) {
            const shmipc_frame_t *frames;
            size_t nframes;
            if (shmipc_channel_recv_view (self->channel, &frames, &nframes,
                                          SHMIPC_DONTWAIT)) {
                if (errno == EAGAIN)
                    return 0;
                if (errno == ECONNRESET)
                    return shmipc__peer_die (self, "peer closed the connection");
                return shmipc__peer_die_channel (self, "receive failed");
            }
            int rc = s_prepare_in (self, frames, nframes);
            shmipc_channel_recv_done (self->channel);
            if (rc)
                return shmipc__peer_die (self, "out of memory");
        }
        if (s_send_in (self)) {
            if (errno == EAGAIN)
                return 0;
            return shmipc__peer_die (self, "bridge send failed");
        }
    }
    return 1;
}

//  Read one whole message from the bridge into self->out. Returns 0, or
//  -1/EAGAIN if there is none, -1 on other errors.
static int
s_read_out (shmipc__peer_t *self)
{
    size_t count = 0;
    while (true) {
        if (s_reserve (&self->out, &self->out_iov, &self->out_slots, count + 1))
            return -1;
        zmq_msg_t *frame = &self->out [count];
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, self->bridge, ZMQ_DONTWAIT) == -1) {
            int saved = zmq_errno ();
            zmq_msg_close (frame);
            shmipc__peer_close_frames (self->out, 0, count);
            //  Later frames of a message are always there with the first
            errno = count ? EPROTO : saved;
            return -1;
        }
        count++;
        if (!zmq_msg_more (frame))
            break;
    }
    //  Only now: libzmq keeps small frames inside the zmq_msg_t itself, so
    //  their data moves whenever the array grows (s_reserve)
    for (size_t index = 0; index < count; index++) {
        self->out_iov [index].iov_base = zmq_msg_data (&self->out [index]);
        self->out_iov [index].iov_len = zmq_msg_size (&self->out [index]);
    }
    self->out_count = count;
    return 0;
}

//  Bridge -> channel. Returns 1 if the batch ran out, 0 to wait, -1 dead.
int
shmipc__peer_pump_out (shmipc__peer_t *self, int batch)
{
    if (!shmipc__peer_bridge_reads (self))
        return 0;
    int rc = 1;
    for (int count = 0; count < batch; count++) {
        if (self->out_count == 0 && s_read_out (self)) {
            if (errno != EAGAIN)
                return shmipc__peer_die (self, "bridge receive failed");
            rc = 0;
            break;
        }
        S_HANDOFF_BEGIN ();
        int sent = shmipc_channel_sendv (self->channel, self->out_iov, self->out_count,
                                         SHMIPC_DONTWAIT | SHMIPC_DEFER);
        S_HANDOFF_END ();
        if (sent) {
            if (errno == EAGAIN) {
                rc = 0;
                break;
            }
            if (errno == EPIPE)
                return shmipc__peer_die (self, "peer closed the connection");
            return shmipc__peer_die_channel (self, "send failed");
        }
        for (size_t index = 0; index < self->out_count; index++)
            self->stats.bytes_out += self->out_iov [index].iov_len;
        self->stats.msgs_out++;
        shmipc__peer_close_frames (self->out, 0, self->out_count);
        self->out_count = 0;
    }
    //  One publish (and at most one WAKE) for the whole batch
    if (shmipc_channel_flush (self->channel))
        return shmipc__peer_die_channel (self, "flush failed");
    return rc;
}
