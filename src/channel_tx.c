/*  =========================================================================
    channel_tx - the transmit side of a channel: ring space, waiting for
    it, writing whole messages, streaming oversize ones, publishing

    Owns nothing beyond the channel's state (channel.h). Trusts nothing it
    loads from the peer's segment: the read index is checked by the ring on
    every load.
    =========================================================================
*/

#include "channel.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

int64_t
shmipc__channel_space (shmipc_channel_t *self)
{
    int64_t space = shmipc_ring_space (self->tx);
    if (space < 0)
        return shmipc__channel_break (self, EPROTO, "peer read index out of range");
    return space;
}

void
shmipc__channel_publish (shmipc_channel_t *self)
{
    if (shmipc_ring_pending (self->tx)) {
        shmipc_ring_publish (self->tx);
        shmipc__channel_wake_peer (self, true);
    }
}

//  Return the bytes a message of these frames takes in the ring.
static uint64_t
s_record_bytes (const struct iovec *frames, size_t nframes)
{
    uint64_t total = 0;
    for (size_t index = 0; index < nframes; index++)
        total += shmipc_ring_record_size (frames [index].iov_len);
    return total;
}

//  Wait for at least need bytes of space, or fail: EAGAIN (non-blocking or
//  timed out), EINTR, EPIPE (peer gone), EPROTO.
static int
s_wait_space (shmipc_channel_t *self, uint64_t need, int flags)
{
    if (SHMIPC__TX_ARMED (self) && shmipc__channel_wake_up (self, false))
        return -1;
    bool dontwait = (flags & SHMIPC_DONTWAIT) != 0;
    int64_t deadline = -1;
    int64_t spin_until = 0;
    bool first = true;
    while (true) {
        int64_t space = shmipc__channel_space (self);
        if (space < 0)
            return -1;
        if ((uint64_t) space >= need) {
            shmipc__channel_disarm (self, false);
            self->tx_want = 0;
            return 0;
        }
        if (shmipc__channel_check_send (self))
            return -1;
        if (first) {
            //  We must wait. Whatever the reader should see must be visible
            //  first (a deferred batch too, but only now), and the space we
            //  have read from the peer's ring must go back: the peer may be
            //  waiting for it while we wait for the peer
            first = false;
            shmipc__channel_publish (self);
            shmipc__channel_release (self);
            deadline = shmipc__deadline (self->sndtimeo);
            if (self->spin_us > 0 && !dontwait)
                spin_until = shmipc__now_us () + self->spin_us;
            continue;
        }
        if (!SHMIPC__TX_ARMED (self)) {
            if (spin_until && shmipc__now_us () < spin_until) {
                shmipc__channel_spin_pause ();
                continue;
            }
            //  Say we sleep, then look once more: the reader checks our flag
            //  after it releases, so one of us sees the other
            shmipc__channel_arm (self, false);
            continue;
        }
        if (dontwait) {
            self->tx_want = need;
            errno = EAGAIN;
            return -1;
        }
        if (shmipc__channel_sleep (self, deadline)) {
            if (errno == EAGAIN)
                self->tx_want = need;
            return -1;
        }
        shmipc__channel_disarm (self, false);
    }
}

//  Write an oversize message in chunks, as space allows, resuming from
//  self->stream. Publishes each chunk so the reader can drain as we go.
static int
s_stream (shmipc_channel_t *self, const struct iovec *frames, size_t nframes,
          int flags)
{
    shmipc__stream_t *stream = &self->stream;
    size_t quarter = self->capacity / 4;
    while (stream->frame < nframes) {
        const uint8_t *data = (const uint8_t *) frames [stream->frame].iov_base;
        size_t remaining = frames [stream->frame].iov_len - stream->offset;
        //  Wait for a worthwhile chunk, not a sliver
        uint64_t want = shmipc_ring_record_size (remaining);
        if (want > quarter)
            want = quarter;
        if (s_wait_space (self, want, flags))
            return -1;
        int64_t space = shmipc__channel_space (self);
        if (space < 0)
            return -1;
        size_t room = (size_t) space - SHMIPC_RECORD_HEADER;
        size_t chunk = remaining < room ? remaining : room;
        if (chunk > UINT32_MAX - 7)
            chunk = UINT32_MAX - 7;
        uint32_t record_flags = 0;
        if (chunk < remaining)
            record_flags = SHMIPC_RECORD_CHUNK;
        else
        if (stream->frame + 1 < nframes)
            record_flags = SHMIPC_RECORD_MORE;
        //  An empty frame may come as NULL: no arithmetic on it
        shmipc_ring_put (self->tx, chunk ? data + stream->offset : data, chunk,
                         record_flags);
        stream->offset += chunk;
        if (stream->offset == frames [stream->frame].iov_len) {
            stream->frame++;
            stream->offset = 0;
        }
        shmipc__channel_publish (self);
    }
    stream->active = false;
    return 0;
}

int
shmipc_channel_sendv (shmipc_channel_t *self, const struct iovec *frames,
                      size_t nframes, int flags)
{
    assert (self);
    assert (frames || nframes == 0);
    if (nframes == 0) {
        errno = EINVAL;
        return -1;
    }
    if (nframes > SHMIPC_FRAMES_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if ((self->state != SHMIPC__READY
         && shmipc__channel_ensure_ready (self, flags, shmipc__deadline (self->sndtimeo)))
    ||  shmipc__channel_check_send (self))
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
        uint64_t need = s_record_bytes (frames, nframes);
        bool oversize = need > self->capacity;
        for (size_t index = 0; index < nframes && !oversize; index++)
            oversize = frames [index].iov_len > UINT32_MAX - 7;
        if (!oversize) {
            //  Fits: wait for room for all of it, then write it in one go
            if (s_wait_space (self, need, flags))
                return -1;
            for (size_t index = 0; index < nframes; index++)
                shmipc_ring_put (self->tx, frames [index].iov_base,
                                 frames [index].iov_len,
                                 index + 1 < nframes ? SHMIPC_RECORD_MORE : 0);
            self->stats.msgs_sent++;
            self->stats.bytes_sent += content;
            if (!(flags & SHMIPC_DEFER))
                shmipc__channel_publish (self);
            return 0;
        }
        *stream = (shmipc__stream_t) { .active = true, .nframes = nframes, .total = content };
    }
    if (s_stream (self, frames, nframes, flags))
        return -1;
    self->stats.msgs_sent++;
    self->stats.bytes_sent += content;
    return 0;
}

int
shmipc_channel_send (shmipc_channel_t *self, const void *data, size_t size, int flags)
{
    assert (data || size == 0);
    struct iovec frame = { .iov_base = (void *) data, .iov_len = size };
    return shmipc_channel_sendv (self, &frame, 1, flags);
}

int
shmipc_channel_send_msg (shmipc_channel_t *self, shmipc_msg_t *msg, int flags)
{
    assert (msg);
    size_t nframes = shmipc_msg_frames (msg);
    if (nframes == 0 || nframes > SHMIPC_FRAMES_MAX) {
        errno = nframes ? EMSGSIZE : EINVAL;
        return -1;
    }
    struct iovec small [8];
    struct iovec *frames = nframes <= 8 ? small
                         : (struct iovec *) malloc (nframes * sizeof *frames);
    if (!frames)
        return -1;
    for (size_t index = 0; index < nframes; index++) {
        frames [index].iov_base = (void *) shmipc_msg_data (msg, index);
        frames [index].iov_len = shmipc_msg_size (msg, index);
    }
    int rc = shmipc_channel_sendv (self, frames, nframes, flags);
    if (frames != small) {
        int saved = errno;
        free (frames);
        errno = saved;
    }
    return rc;
}

int
shmipc_channel_flush (shmipc_channel_t *self)
{
    assert (self);
    if (shmipc__channel_check_send (self))
        return -1;
    if (self->tx)
        shmipc__channel_publish (self);
    return 0;
}
