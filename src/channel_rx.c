/*  =========================================================================
    channel_rx - the receive side of a channel: finding whole messages in
    the peer's ring, handing them out in place or as copies, and giving the
    space back

    Owns nothing beyond the channel's state (channel.h). Trusts nothing in
    the peer's ring: the ring checks indices and record headers; this file
    checks the frame structure against our limits.

    A message that lies whole in the ring, no frame wrapping around its
    end, is handed out in place (IN_RING): its records are consumed but not
    released until the caller is done, so the writer cannot reuse them.
    Anything else (a message streamed in chunks, a frame that wraps, one
    not yet whole) is copied into self->partial (IN_COPY), and its space is
    released as we go.
    =========================================================================
*/

#include "channel.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

//  Bookkeeping bytes each frame counts against maxmsgsize.
#define S_FRAME_COST    32

static int s_views_to_copy (shmipc_channel_t *self);
static int s_view_copy (shmipc_channel_t *self);

void
shmipc__channel_release (shmipc_channel_t *self)
{
    if (self->ready == SHMIPC__IN_RING) {
        //  A message found in place but not handed out: copy it, so that a
        //  writer waiting for its space is not kept waiting on us
        if (self->view_held || s_views_to_copy (self) || s_view_copy (self))
            return;
        self->ready = SHMIPC__IN_COPY;
    }
    if (shmipc_ring_release (self->rx))
        shmipc__channel_wake_peer (self, false);
}

//  Release if worthwhile: a quarter of the ring is waiting, or the writer
//  says it waits (a hint: the release itself does the fenced check).
static void
s_release_lazily (shmipc_channel_t *self)
{
    if (shmipc_ring_unreleased (self->rx) >= self->peer_capacity / 4
    ||  (atomic_load_explicit ((_Atomic uint32_t *) &self->peer_ctl->tx_sleep,
                               memory_order_relaxed) & 1))
        shmipc__channel_release (self);
}

//  Check a record against the frame structure and our limits, given the
//  frames and bytes of the message so far. Returns 0 or -1 (broken).
static int
s_check_record (shmipc_channel_t *self, const shmipc_record_t *record,
                size_t frames, size_t content)
{
    if ((record->flags & SHMIPC_RECORD_CHUNK) && (record->flags & SHMIPC_RECORD_MORE))
        return shmipc__channel_break (self, EPROTO, "record flags CHUNK and MORE together");
    if (frames >= SHMIPC_FRAMES_MAX)
        return shmipc__channel_break (self, EMSGSIZE, "too many frames in one message");
    if (self->maxmsgsize) {
        uint64_t cost = (uint64_t) content + record->size + (frames + 1) * S_FRAME_COST;
        if (cost > self->maxmsgsize)
            return shmipc__channel_break (self, EMSGSIZE, "message larger than the maximum size");
    }
    return 0;
}

//  Copy records into self->partial until the message is whole or the ring
//  is empty. Returns 0 (self->ready is IN_COPY when whole) or -1 (broken).
static int
s_assemble_copy (shmipc_channel_t *self)
{
    while (true) {
        shmipc_record_t record;
        if (shmipc_ring_peek (self->rx, &record)) {
            if (errno == EAGAIN)
                return 0;
            return shmipc__channel_break (self, EPROTO,
                                          "peer ring index or record header out of range");
        }
        size_t frames = shmipc_msg_frames (self->partial);
        size_t content = shmipc_msg_content_size (self->partial);
        //  A continued frame adds bytes, not a frame
        if (s_check_record (self, &record, frames - (self->frame_open ? 1 : 0), content))
            return -1;
        void *dest = self->frame_open
                   ? shmipc_msg_grow_frame (self->partial, record.size)
                   : shmipc_msg_add_frame (self->partial, record.size);
        if (!dest)
            return shmipc__channel_break (self, ENOMEM, "out of memory");
        shmipc_ring_copy (&record, dest);
        shmipc_ring_consume (self->rx);
        self->frame_open = (record.flags & SHMIPC_RECORD_CHUNK) != 0;
        //  Keep a streaming writer going rather than let it stall on us
        s_release_lazily (self);
        if (!self->frame_open && !(record.flags & SHMIPC_RECORD_MORE)) {
            self->ready = SHMIPC__IN_COPY;
            return 0;
        }
    }
}

//  Make room for one more view.
static int
s_grow_views (shmipc_channel_t *self)
{
    if (self->nviews < self->view_slots)
        return 0;
    size_t slots = self->view_slots ? self->view_slots * 2 : 8;
    shmipc_frame_t *views = (shmipc_frame_t *) realloc (self->views, slots * sizeof *views);
    if (!views)
        return shmipc__channel_break (self, ENOMEM, "out of memory");
    self->views = views;
    self->view_slots = slots;
    return 0;
}

//  Copy the frames viewed so far into self->partial: the message cannot be
//  handed out in place after all. Their records are still unreleased.
static int
s_views_to_copy (shmipc_channel_t *self)
{
    for (size_t index = 0; index < self->nviews; index++)
        if (shmipc_msg_addmem (self->partial, self->views [index].data,
                               self->views [index].size))
            return shmipc__channel_break (self, ENOMEM, "out of memory");
    self->nviews = 0;
    return 0;
}

//  Look for a whole message, in place if it lies whole in the ring, else
//  by copying. Returns 0 (see self->ready) or -1 (broken).
static int
s_find_message (shmipc_channel_t *self)
{
    if (self->ready != SHMIPC__NONE)
        return 0;
    if (shmipc_msg_frames (self->partial) == 0 && !self->frame_open) {
        size_t content = 0;
        while (true) {
            shmipc_record_t record;
            if (shmipc_ring_peek (self->rx, &record)) {
                if (errno != EAGAIN)
                    return shmipc__channel_break (self, EPROTO,
                        "peer ring index or record header out of range");
                if (self->nviews == 0)
                    return 0;
                //  Not whole yet (it streams): copy what we have, go on later
                return s_views_to_copy (self);
            }
            if (s_check_record (self, &record, self->nviews, content))
                return -1;
            if (record.part [1] || (record.flags & SHMIPC_RECORD_CHUNK)) {
                //  Wraps or streams: copy from here on (the record is
                //  peeked, not consumed, so the copy starts with it)
                if (s_views_to_copy (self))
                    return -1;
                break;
            }
            if (s_grow_views (self))
                return -1;
            self->views [self->nviews++] = (shmipc_frame_t) {
                .data = record.size ? record.part [0] : NULL, .size = record.size };
            content += record.size;
            shmipc_ring_consume (self->rx);
            if (!(record.flags & SHMIPC_RECORD_MORE)) {
                self->ready = SHMIPC__IN_RING;
                return 0;
            }
        }
    }
    if (s_assemble_copy (self))
        return -1;
    return self->ready == SHMIPC__IN_COPY ? s_view_copy (self) : 0;
}

static int
s_view_copy (shmipc_channel_t *self)
{
    size_t count = shmipc_msg_frames (self->partial);
    self->nviews = 0;
    for (size_t index = 0; index < count; index++) {
        if (s_grow_views (self))
            return -1;
        self->views [self->nviews++] = (shmipc_frame_t) {
            .data = shmipc_msg_data (self->partial, index),
            .size = shmipc_msg_size (self->partial, index) };
    }
    return 0;
}

int
shmipc__channel_poll_message (shmipc_channel_t *self, bool arm)
{
    while (true) {
        if (s_find_message (self))
            return -1;
        if (self->ready != SHMIPC__NONE) {
            shmipc__channel_disarm (self, true);
            return 0;
        }
        //  Empty: give back the space before anyone sleeps on it
        shmipc__channel_release (self);
        if (!arm || SHMIPC__RX_ARMED (self))
            return 0;
        shmipc__channel_arm (self, true);
        //  And look once more, now that the writer will see our flag
    }
}

//  Make a whole message ready, waiting if flags allow. Returns 0 with
//  self->ready set, or -1 with errno.
static int
s_wait_message (shmipc_channel_t *self, int flags)
{
    if (self->ready != SHMIPC__NONE)
        return 0;
    if (self->state != SHMIPC__READY
    &&  shmipc__channel_ensure_ready (self, flags, shmipc__deadline (self->rcvtimeo)))
        return -1;
    if (SHMIPC__RX_ARMED (self) && shmipc__channel_wake_up (self, true))
        return -1;
    bool dontwait = (flags & SHMIPC_DONTWAIT) != 0;
    bool first = true;
    int64_t deadline = -1;
    int64_t spin_until = 0;
    while (true) {
        if (self->state == SHMIPC__BROKEN) {
            errno = self->error;
            return -1;
        }
        bool spinning = spin_until && shmipc__now_us () < spin_until;
        if (shmipc__channel_poll_message (self, !first && !spinning))
            return -1;
        if (self->ready != SHMIPC__NONE)
            return 0;
        if (first) {
            //  Nothing there: now, and only now, work out how to wait
            first = false;
            deadline = shmipc__deadline (self->rcvtimeo);
            if (self->spin_us > 0 && !dontwait)
                spin_until = shmipc__now_us () + self->spin_us;
            continue;
        }
        if (spinning) {
            shmipc__channel_spin_pause ();
            continue;
        }
        if (self->peer_gone) {
            //  Armed and re-checked after end of stream: nothing more comes
            errno = ECONNRESET;
            return -1;
        }
        if (dontwait) {
            errno = EAGAIN;
            return -1;
        }
        if (shmipc__channel_sleep (self, deadline))
            return -1;
        shmipc__channel_disarm (self, true);
    }
}

//  The caller is done with the ready message: count it, forget it, and
//  give its space back when worthwhile.
static void
s_done (shmipc_channel_t *self)
{
    self->stats.msgs_received++;
    for (size_t index = 0; index < self->nviews; index++)
        self->stats.bytes_received += self->views [index].size;
    if (self->ready == SHMIPC__IN_COPY) {
        shmipc_msg_reset (self->partial);
        self->frame_open = false;
    }
    self->ready = SHMIPC__NONE;
    self->nviews = 0;
    self->view_held = false;
    s_release_lazily (self);
}

//  Hand the ready message to msg (reset first). A copied message is swapped
//  in whole; one in the ring is copied out, reusing msg's buffers.
static int
s_deliver (shmipc_channel_t *self, shmipc_msg_t *msg)
{
    shmipc_msg_reset (msg);
    if (self->ready == SHMIPC__IN_COPY)
        shmipc__msg_swap (self->partial, msg);
    else
        for (size_t index = 0; index < self->nviews; index++)
            if (shmipc_msg_addmem (msg, self->views [index].data, self->views [index].size)) {
                shmipc_msg_reset (msg);
                errno = ENOMEM;
                return -1;      //  The message stays ready: try again
            }
    s_done (self);
    return 0;
}

int
shmipc_channel_recv_view (shmipc_channel_t *self, const shmipc_frame_t **frames,
                          size_t *nframes, int flags)
{
    assert (self);
    assert (frames && nframes);
    if (s_wait_message (self, flags))
        return -1;
    *frames = self->views;
    *nframes = self->nviews;
    self->view_held = true;
    return 0;
}

void
shmipc_channel_recv_done (shmipc_channel_t *self)
{
    assert (self);
    //  Only a message handed out by recv_view: one that events () made
    //  ready is still the caller's to receive
    if (self->view_held)
        s_done (self);
}

int
shmipc_channel_recv_into (shmipc_channel_t *self, shmipc_msg_t *msg, int flags)
{
    assert (self);
    assert (msg);
    if (s_wait_message (self, flags))
        return -1;
    return s_deliver (self, msg);
}

shmipc_msg_t *
shmipc_channel_recv (shmipc_channel_t *self, int flags)
{
    assert (self);
    if (s_wait_message (self, flags))
        return NULL;
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg || s_deliver (self, msg)) {
        shmipc_msg_destroy (&msg);
        errno = ENOMEM;
        return NULL;
    }
    return msg;
}

ssize_t
shmipc_channel_recv_vectored (shmipc_channel_t *self, shmipc_msg_t **msgs,
                              size_t max, int flags)
{
    assert (self);
    assert (msgs);
    if (max == 0) {
        errno = EINVAL;
        return -1;
    }
    size_t count = 0;
    while (count < max) {
        if (s_wait_message (self, count ? SHMIPC_DONTWAIT : flags)) {
            if (count)
                break;          //  The first error waits for the next call
            return -1;
        }
        msgs [count] = shmipc_msg_new ();
        if (!msgs [count] || s_deliver (self, msgs [count])) {
            shmipc_msg_destroy (&msgs [count]);
            if (count)
                break;
            errno = ENOMEM;
            return -1;
        }
        count++;
    }
    shmipc__channel_release (self);
    return (ssize_t) count;
}
