/*  =========================================================================
    channel_tx - the transmit side of a channel: ring space, waiting for
    it, writing whole messages, streaming oversize ones, publishing

    Owns the ring we write and the streaming progress (channel_tx.h).
    Trusts nothing it loads from the peer's segment: the read index is
    checked by the ring on every load.
    =========================================================================
*/

#include "channel_tx.h"

#include <errno.h>

void
shmipc__channel_tx_init (shmipc__channel_tx_t *self, shmipc__channel_link_t *link,
                         shmipc__channel_waiter_t *waiter, size_t capacity,
                         shmipc__release_fn *release, void *release_arg)
{
    *self = (shmipc__channel_tx_t) {
        .link = link, .waiter = waiter, .capacity = capacity, .sndtimeo = -1,
        .release = release, .release_arg = release_arg };
    shmipc__channel_lend_init (&self->lend, link);
}

int64_t
shmipc__channel_tx_space (shmipc__channel_tx_t *self)
{
    int64_t space = shmipc_ring_space (self->ring);
    if (space < 0)
        return shmipc__channel_link_break (self->link, EPROTO, "peer read index out of range");
    if (self->lend.count)
        shmipc__channel_lend_collect (&self->lend, self->ring);
    return space;
}

void
shmipc__channel_tx_publish (shmipc__channel_tx_t *self)
{
    if (shmipc_ring_pending (self->ring)) {
        shmipc_ring_publish (self->ring);
        shmipc__channel_waiter_wake_peer (self->waiter, SHMIPC__DIR_RX);
    }
}

//  Show the reader the free space we wait for while we sleep: what we
//  need, and at least a quarter of the ring, so that one wake-up lets a
//  batch go. Stored only when it changes: the reader reads that cache
//  line (tx_sleep) for every message, and a store there each time we look
//  for space would make the line bounce.
static void
s_show_need (shmipc__channel_tx_t *self, uint64_t need)
{
    uint64_t share = SHMIPC__RING_SHARE (self->capacity);
    uint64_t hint = need > share ? need : share;
    if (hint != self->need_shown) {
        shmipc__channel_waiter_set_need (self->waiter, hint);
        self->need_shown = hint;
    }
}

int
shmipc__channel_tx_writable (shmipc__channel_tx_t *self, bool arm)
{
    uint64_t want = self->want ? self->want : SHMIPC__RING_SHARE (self->capacity);
    while (true) {
        int64_t space = shmipc__channel_tx_space (self);
        if (space < 0)
            return -1;
        if ((uint64_t) space >= want) {
            shmipc__channel_waiter_disarm (self->waiter, SHMIPC__DIR_TX);
            return 1;
        }
        if (!arm || shmipc__channel_waiter_armed (self->waiter, SHMIPC__DIR_TX))
            return 0;
        s_show_need (self, want);
        shmipc__channel_waiter_arm (self->waiter, SHMIPC__DIR_TX);
    }
}

//  Return the payload bytes frame takes in the ring: a LOAN record's if
//  lending (a message's frames are looked at with one lend_ready answer).
static size_t
s_payload (shmipc__channel_tx_t *self, const struct iovec *frame, bool lending)
{
    if (lending && shmipc__channel_lend_offset (&self->lend, frame) >= 0)
        return SHMIPC__LOAN_PAYLOAD;
    return frame->iov_len;
}

//  Return the bytes a message of these frames takes in the ring.
static uint64_t
s_record_bytes (shmipc__channel_tx_t *self, const struct iovec *frames, size_t nframes,
                bool lending)
{
    uint64_t total = 0;
    for (size_t index = 0; index < nframes; index++)
        total += shmipc_ring_record_size (s_payload (self, &frames [index], lending));
    return total;
}

//  Return the bytes the message takes written from our cursor now: its
//  records and any padding over records the reader holds (as the last
//  look at the space saw them), or more than the ring if no place will do.
static uint64_t
s_message_bytes (shmipc__channel_tx_t *self, const struct iovec *frames, size_t nframes,
                 bool lending)
{
    uint64_t start = shmipc_ring_cursor (self->ring);
    uint64_t at = start;
    for (size_t index = 0; index < nframes; index++) {
        size_t payload = s_payload (self, &frames [index], lending);
        uint64_t pad = shmipc_ring_pad (self->ring, at, payload);
        if (pad > self->capacity)
            return pad;
        at += pad + shmipc_ring_record_size (payload);
    }
    return at - start;
}

//  Write frame as a record with flags: a LOAN record if it lies in our
//  pool (and lending), else its bytes. Returns 0 or -1 (ENOMEM: broken).
static int
s_put_frame (shmipc__channel_tx_t *self, const struct iovec *frame, uint32_t flags,
             bool lending)
{
    int64_t offset = lending ? shmipc__channel_lend_offset (&self->lend, frame) : -1;
    if (offset < 0) {
        shmipc_ring_put (self->ring, frame->iov_base, frame->iov_len, flags);
        return 0;
    }
    uint8_t payload [SHMIPC__LOAN_PAYLOAD];
    shmipc__put64 (payload, (uint64_t) offset);
    shmipc__put64 (payload + 8, frame->iov_len);
    uint64_t at = shmipc_ring_put (self->ring, payload, sizeof payload,
                                   flags | SHMIPC_RECORD_LOAN);
    if (shmipc__channel_lend_note (&self->lend, at, frame->iov_base))
        return shmipc__channel_link_break (self->link, ENOMEM, "out of memory");
    return 0;
}

//  What s_wait_space waits for.
typedef struct {
    shmipc__channel_tx_t *self;             //  The transmit side
    uint64_t need;                          //  Bytes of space wanted
    const struct iovec *frames;             //  Or room for this message,
    size_t nframes;                         //  written whole (frames set)
    bool lending;                           //  Its loaned frames as LOANs
    bool scattered;                         //  Set if records the reader
                                            //  holds leave no place for it
} s_space_t;

//  Check for space: 1 enough (or scattered), 0 not yet, -1 (EPROTO,
//  EPIPE, broken).
static int
s_check_space (void *arg)
{
    s_space_t *space_for = (s_space_t *) arg;
    shmipc__channel_tx_t *self = space_for->self;
    int64_t space = shmipc__channel_tx_space (self);
    if (space < 0)
        return -1;
    if (space_for->frames) {
        //  Where it goes depends on what the reader holds now
        space_for->need = s_message_bytes (self, space_for->frames, space_for->nframes,
                                           space_for->lending);
        if (space_for->need > self->capacity) {
            space_for->scattered = true;
            return 1;
        }
    }
    if ((uint64_t) space >= space_for->need)
        return 1;
    return shmipc__channel_link_check_send (self->link);
}

//  We must wait. Whatever the reader should see must be visible first (a
//  deferred batch too, but only now), and the space we have read from the
//  peer's ring must go back: the peer may be waiting for it while we wait
//  for the peer.
static void
s_prepare_wait (void *arg)
{
    shmipc__channel_tx_t *self = ((s_space_t *) arg)->self;
    shmipc__channel_tx_publish (self);
    self->release (self->release_arg);
}

//  Wait for space_for->need bytes of space (or, frames set, for room for
//  the message), or fail: EAGAIN (non-blocking or timed out: want
//  remembers the need), EINTR, EPIPE (peer gone), EPROTO.
static int
s_wait (shmipc__channel_tx_t *self, s_space_t *space_for, int flags)
{
    s_show_need (self, space_for->need);
    if (shmipc__channel_waiter_wait_until (self->waiter, SHMIPC__DIR_TX,
                                           s_check_space, s_prepare_wait, space_for,
                                           self->sndtimeo, flags)) {
        if (errno == EAGAIN)
            self->want = space_for->need;
        return -1;
    }
    self->want = 0;
    return 0;
}

//  Wait for at least need bytes of space (see s_wait).
static int
s_wait_space (shmipc__channel_tx_t *self, uint64_t need, int flags)
{
    s_space_t space_for = { .self = self, .need = need };
    return s_wait (self, &space_for, flags);
}

//  Write an oversize message in chunks, as space allows, resuming from
//  self->stream. Publishes each chunk so the reader can drain as we go.
static int
s_stream (shmipc__channel_tx_t *self, const struct iovec *frames, size_t nframes,
          int flags)
{
    shmipc__stream_t *stream = &self->stream;
    size_t quarter = SHMIPC__RING_SHARE (self->capacity);
    while (stream->frame < nframes) {
        const uint8_t *data = (const uint8_t *) frames [stream->frame].iov_base;
        size_t remaining = frames [stream->frame].iov_len - stream->offset;
        //  Wait for a worthwhile chunk, not a sliver
        uint64_t want = shmipc_ring_record_size (remaining);
        if (want > quarter)
            want = quarter;
        if (s_wait_space (self, want, flags))
            return -1;
        int64_t space = shmipc__channel_tx_space (self);
        if (space < 0)
            return -1;
        //  Up to the first record the reader holds, past any at the cursor
        uint64_t pad;
        size_t room = shmipc_ring_room (self->ring, (uint64_t) space, &pad);
        if (room == 0) {
            //  Held records fill what is free. With all of the ring free,
            //  an honest reader always leaves room (holds.c): this one lies
            if ((uint64_t) space >= self->capacity)
                return shmipc__channel_link_break (self->link, EPROTO,
                                                   "peer hold table leaves no room");
            //  Else wait for the reader to give back more than there is
            if (s_wait_space (self, (uint64_t) space + SHMIPC_RECORD_HEADER, flags))
                return -1;
            continue;
        }
        size_t chunk = remaining < room ? remaining : room;
        if (chunk > SHMIPC_RECORD_PAYLOAD_MAX)
            chunk = SHMIPC_RECORD_PAYLOAD_MAX;
        uint32_t record_flags = 0;
        if (chunk < remaining)
            record_flags = SHMIPC_RECORD_CHUNK;
        else
        if (stream->frame + 1 < nframes)
            record_flags = SHMIPC_RECORD_MORE;
        //  An empty frame may come as NULL: no arithmetic on it
        shmipc_ring_put (self->ring, chunk ? data + stream->offset : data, chunk,
                         record_flags);
        stream->offset += chunk;
        if (stream->offset == frames [stream->frame].iov_len) {
            stream->frame++;
            stream->offset = 0;
        }
        shmipc__channel_tx_publish (self);
    }
    stream->active = false;
    return 0;
}

int
shmipc__channel_tx_sendv (shmipc__channel_tx_t *self, const struct iovec *frames,
                          size_t nframes, int flags)
{
    if (shmipc__channel_link_check_send (self->link))
        return -1;
    uint64_t content = 0;
    for (size_t index = 0; index < nframes; index++)
        content += frames [index].iov_len;

    shmipc__stream_t *stream = &self->stream;
    if (stream->active) {
        if (stream->nframes != nframes || stream->total != content) {
            errno = EINVAL;     //  The retry must be the same message
            return -1;
        }
    }
    else {
        //  Frames in our loan pool go as offsets, if the peer has the pool
        bool lending = shmipc__channel_lend_ready (&self->lend);
        uint64_t need = s_record_bytes (self, frames, nframes, lending);
        bool oversize = need > self->capacity;
        for (size_t index = 0; index < nframes && !oversize; index++)
            oversize = s_payload (self, &frames [index], lending) > SHMIPC_RECORD_PAYLOAD_MAX;
        s_space_t space_for = { .self = self, .need = need, .frames = frames,
                                .nframes = nframes, .lending = lending };
        if (!oversize) {
            //  Fits: wait for room for all of it, then write it in one go
            //  (no look at the space in between: the padding stays as
            //  that look worked it out)
            if (s_wait (self, &space_for, flags))
                return -1;
            oversize = space_for.scattered;
        }
        if (!oversize) {
            for (size_t index = 0; index < nframes; index++)
                if (s_put_frame (self, &frames [index],
                                 index + 1 < nframes ? SHMIPC_RECORD_MORE : 0, lending))
                    return -1;
            self->stat_msgs_sent++;
            self->stat_bytes_sent += content;
            if (!(flags & SHMIPC_DEFER))
                shmipc__channel_tx_publish (self);
            return 0;
        }
        *stream = (shmipc__stream_t) { .active = true, .nframes = nframes, .total = content };
    }
    if (s_stream (self, frames, nframes, flags)) {
        //  Nothing written yet: the caller is not bound to this message
        if (stream->frame == 0 && stream->offset == 0)
            stream->active = false;
        return -1;
    }
    self->stat_msgs_sent++;
    self->stat_bytes_sent += content;
    return 0;
}
