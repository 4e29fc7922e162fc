/*  =========================================================================
    channel_rx - the receive side of a channel: finding whole messages in
    the peer's ring, handing them out in place or as copies, and giving the
    space back

    Owns the ring we read, the message being copied together and the views
    (channel_rx.h). Trusts nothing in the peer's ring: the ring checks
    indices and record headers; this file checks the frame structure
    against our limits.

    A message that lies whole in the ring, no frame wrapping around its
    end, is handed out in place (IN_RING): its records are consumed but not
    released until the caller is done, so the writer cannot reuse them.
    Anything else (a message streamed in chunks, a frame that wraps, one
    not yet whole) is copied into self->partial (IN_COPY), and its space is
    released as we go.
    =========================================================================
*/

#include "channel_rx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

//  Bookkeeping bytes each frame counts against maxmsgsize.
#define S_FRAME_COST    32

static int s_views_to_copy (shmipc__channel_rx_t *self);
static int s_view_copy (shmipc__channel_rx_t *self);

int
shmipc__channel_rx_init (shmipc__channel_rx_t *self, shmipc__channel_link_t *link,
                         shmipc__channel_waiter_t *waiter)
{
    *self = (shmipc__channel_rx_t) { .link = link, .waiter = waiter, .rcvtimeo = -1 };
    self->partial = shmipc_msg_new ();
    return self->partial ? 0 : -1;
}

void
shmipc__channel_rx_release (shmipc__channel_rx_t *self)
{
    if (self->ready == SHMIPC__IN_RING) {
        //  A message found in place but not handed out: copy it, so that a
        //  writer waiting for its space is not kept waiting on us
        if (self->view_held || s_views_to_copy (self) || s_view_copy (self))
            return;
        self->ready = SHMIPC__IN_COPY;
    }
    self->loans_read = false;
    if (shmipc_ring_release (self->ring))
        shmipc__channel_waiter_wake_peer (self->waiter, SHMIPC__DIR_TX);
}

//  Release if worthwhile: a quarter of the ring is waiting, or the writer
//  says it waits (a hint: the release itself does the fenced check) and
//  the space it says it waits for would be free. Not sooner: a writer
//  woken for every record released would wake once per message.
static void
s_release_lazily (shmipc__channel_rx_t *self)
{
    //  A LOAN record is small but its block large: the writer's pool
    //  needs it back long before a quarter of the ring is read
    if (self->loans_read
    ||  shmipc_ring_unreleased (self->ring) >= SHMIPC__RING_SHARE (self->capacity))
        shmipc__channel_rx_release (self);
    else
    if (shmipc__channel_waiter_peer_sleeps (self->waiter, SHMIPC__DIR_TX)) {
        uint64_t need = shmipc__channel_waiter_peer_need (self->waiter);
        if (need > self->capacity)
            need = self->capacity;
        if (shmipc_ring_free_if_released (self->ring) >= need)
            shmipc__channel_rx_release (self);
    }
}

//  Map the peer's loan pool, whose descriptor came in a POOL record sent
//  before any LOAN (reading the socket for it if it is still there).
//  Returns 0 or -1 (broken).
static int
s_map_pool (shmipc__channel_rx_t *self)
{
    if (self->link->pool_fd < 0 && shmipc__channel_link_drain_now (self->link))
        return -1;
    if (self->link->pool_fd < 0)
        return shmipc__channel_link_break (self->link, EPROTO, "LOAN record before POOL");
    int fd = self->link->pool_fd;
    self->link->pool_fd = -1;
    //  Checked as any segment: sealed, populated, our header, a sane size
    self->pool = shmipc_segment_attach (fd, SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_UNIT,
                                        SHMIPC_SEGMENT_HEADER + SHMIPC_LOANS_MAX,
                                        SHMIPC_LOANS_KIND);
    if (!self->pool)
        return shmipc__channel_link_break (self->link, EPROTO, "peer loan pool refused");
    return 0;
}

//  A LOAN record: point the record at the lent bytes in the peer's pool
//  instead. Trusts nothing: a loaned frame is whole (no CHUNK, and it
//  continues no chunked frame), its payload an offset and a size that lie
//  in the pool. Returns 0 or -1 (broken).
static int
s_resolve_loan (shmipc__channel_rx_t *self, shmipc_record_t *record)
{
    if (!(record->flags & SHMIPC_RECORD_LOAN))
        return 0;
    if ((record->flags & SHMIPC_RECORD_CHUNK) || self->frame_open
    ||  record->size != SHMIPC__LOAN_PAYLOAD)
        return shmipc__channel_link_break (self->link, EPROTO, "bad LOAN record");
    if (!self->pool && s_map_pool (self))
        return -1;
    self->loans_read = true;
    //  Copied out once: the peer may be rewriting it as we read
    uint8_t payload [SHMIPC__LOAN_PAYLOAD];
    shmipc_ring_copy (record, payload);
    uint64_t offset = shmipc__get64 (payload);
    uint64_t size = shmipc__get64 (payload + 8);
    uint64_t area = shmipc_segment_size (self->pool) - SHMIPC_SEGMENT_HEADER;
    if (offset > area || size > area - offset || size > UINT32_MAX)
        return shmipc__channel_link_break (self->link, EPROTO,
                                           "LOAN outside the peer's pool");
    const uint8_t *data = (const uint8_t *) shmipc_segment_data (self->pool)
                        + SHMIPC_SEGMENT_HEADER + offset;
    record->size = (uint32_t) size;
    record->part [0] = data;
    record->part_size [0] = (size_t) size;
    record->part [1] = NULL;
    record->part_size [1] = 0;
    return 0;
}

//  Check a record against the frame structure and our limits, given the
//  frames and bytes of the message so far. Returns 0 or -1 (broken).
static int
s_check_record (shmipc__channel_rx_t *self, const shmipc_record_t *record,
                size_t frames, size_t content)
{
    if ((record->flags & SHMIPC_RECORD_CHUNK) && (record->flags & SHMIPC_RECORD_MORE))
        return shmipc__channel_link_break (self->link, EPROTO,
                                           "record flags CHUNK and MORE together");
    if (frames >= SHMIPC_FRAMES_MAX)
        return shmipc__channel_link_break (self->link, EMSGSIZE,
                                           "too many frames in one message");
    if (self->maxmsgsize) {
        uint64_t cost = (uint64_t) content + record->size + (frames + 1) * S_FRAME_COST;
        if (cost > self->maxmsgsize)
            return shmipc__channel_link_break (self->link, EMSGSIZE,
                                               "message larger than the maximum size");
    }
    return 0;
}

//  Copy records into self->partial until the message is whole or the ring
//  is empty. Returns 0 (self->ready is IN_COPY when whole) or -1 (broken).
static int
s_assemble_copy (shmipc__channel_rx_t *self)
{
    while (true) {
        shmipc_record_t record;
        if (shmipc_ring_peek (self->ring, &record)) {
            if (errno == EAGAIN)
                return 0;
            return shmipc__channel_link_break (self->link, EPROTO,
                                               "peer ring index or record header out of range");
        }
        if (s_resolve_loan (self, &record))
            return -1;
        size_t frames = shmipc_msg_frames (self->partial);
        size_t content = shmipc_msg_content_size (self->partial);
        //  A continued frame adds bytes, not a frame
        if (s_check_record (self, &record, frames - (self->frame_open ? 1 : 0), content))
            return -1;
        void *dest = self->frame_open
                   ? shmipc_msg_grow_frame (self->partial, record.size)
                   : shmipc_msg_add_frame (self->partial, record.size);
        if (!dest)
            return shmipc__channel_link_break (self->link, ENOMEM, "out of memory");
        shmipc_ring_copy (&record, dest);
        shmipc_ring_consume (self->ring);
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
s_grow_views (shmipc__channel_rx_t *self)
{
    size_t span_slots = self->view_slots;
    if (shmipc__grow ((void **) &self->spans, &span_slots, self->nviews + 1,
                      sizeof *self->spans)
    ||  shmipc__grow ((void **) &self->views, &self->view_slots, self->nviews + 1,
                      sizeof *self->views))
        return shmipc__channel_link_break (self->link, ENOMEM, "out of memory");
    return 0;
}

//  Copy the frames viewed so far into self->partial: the message cannot be
//  handed out in place after all. Their records are still unreleased.
static int
s_views_to_copy (shmipc__channel_rx_t *self)
{
    for (size_t index = 0; index < self->nviews; index++)
        if (shmipc_msg_addmem (self->partial, self->views [index].data,
                               self->views [index].size))
            return shmipc__channel_link_break (self->link, ENOMEM, "out of memory");
    self->nviews = 0;
    return 0;
}

//  Look for a whole message, in place if it lies whole in the ring, else
//  by copying. Returns 0 (see self->ready) or -1 (broken).
static int
s_find_message (shmipc__channel_rx_t *self)
{
    if (self->ready != SHMIPC__NONE)
        return 0;
    if (shmipc_msg_frames (self->partial) == 0 && !self->frame_open) {
        size_t content = 0;
        while (true) {
            shmipc_record_t record;
            if (shmipc_ring_peek (self->ring, &record)) {
                if (errno != EAGAIN)
                    return shmipc__channel_link_break (self->link, EPROTO,
                        "peer ring index or record header out of range");
                if (self->nviews == 0)
                    return 0;
                //  Not whole yet (it streams): copy what we have, go on later
                return s_views_to_copy (self);
            }
            if (s_resolve_loan (self, &record)
            ||  s_check_record (self, &record, self->nviews, content))
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
            self->spans [self->nviews] = (shmipc__span_t) { record.at, record.bytes };
            self->views [self->nviews++] = (shmipc_frame_t) {
                .data = record.size ? record.part [0] : NULL, .size = record.size };
            content += record.size;
            shmipc_ring_consume (self->ring);
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
s_view_copy (shmipc__channel_rx_t *self)
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

//  Look once: 1 if a message is ready, 0 if none is (and the space read so
//  far is given back, before anyone sleeps on it), -1 if broken.
static int
s_look (shmipc__channel_rx_t *self)
{
    if (s_find_message (self))
        return -1;
    if (self->ready != SHMIPC__NONE)
        return 1;
    shmipc__channel_rx_release (self);
    return 0;
}

int
shmipc__channel_rx_poll (shmipc__channel_rx_t *self, bool arm)
{
    while (true) {
        int rc = s_look (self);
        if (rc > 0) {
            shmipc__channel_waiter_disarm (self->waiter, SHMIPC__DIR_RX);
            return 0;
        }
        if (rc < 0)
            return -1;
        if (!arm || shmipc__channel_waiter_armed (self->waiter, SHMIPC__DIR_RX))
            return 0;
        shmipc__channel_waiter_arm (self->waiter, SHMIPC__DIR_RX);
        //  And look once more, now that the writer will see our flag
    }
}

int
shmipc__channel_rx_readable (shmipc__channel_rx_t *self)
{
    int64_t available = self->ready != SHMIPC__NONE ? 1 : shmipc_ring_available (self->ring);
    if (available < 0)
        return shmipc__channel_link_break (self->link, EPROTO,
                                           "peer ring index or record header out of range");
    return available > 0;
}

//  Check for a message: 1 ready, 0 not yet, -1 broken, or ECONNRESET once
//  the peer is gone and a look after arming found nothing.
static int
s_check_message (void *arg)
{
    shmipc__channel_rx_t *self = (shmipc__channel_rx_t *) arg;
    if (self->link->state == SHMIPC__BROKEN) {
        errno = self->link->error;
        return -1;
    }
    int rc = s_look (self);
    if (rc == 0 && self->link->peer_gone
    &&  shmipc__channel_waiter_armed (self->waiter, SHMIPC__DIR_RX)) {
        //  Armed and re-checked after end of stream: nothing more comes
        errno = ECONNRESET;
        return -1;
    }
    return rc;
}

//  Make a whole message ready, waiting if flags allow. Returns 0 with
//  self->ready set, or -1 with errno.
static int
s_wait_message (shmipc__channel_rx_t *self, int flags)
{
    if (self->ready != SHMIPC__NONE)
        return 0;
    return shmipc__channel_waiter_wait_until (self->waiter, SHMIPC__DIR_RX,
                                              s_check_message, NULL, self,
                                              self->rcvtimeo, flags);
}

//  The caller is done with the ready message: count it, forget it, and
//  give its space back when worthwhile.
static void
s_done (shmipc__channel_rx_t *self)
{
    self->stat_msgs_received++;
    for (size_t index = 0; index < self->nviews; index++)
        self->stat_bytes_received += self->views [index].size;
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
s_deliver (shmipc__channel_rx_t *self, shmipc_msg_t *msg)
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
shmipc__channel_rx_recv_view (shmipc__channel_rx_t *self, const shmipc_frame_t **frames,
                              size_t *nframes, int flags)
{
    if (s_wait_message (self, flags))
        return -1;
    *frames = self->views;
    *nframes = self->nviews;
    self->view_held = true;
    return 0;
}

void
shmipc__channel_rx_recv_done (shmipc__channel_rx_t *self)
{
    //  Only a message handed out by recv_view: one that events () made
    //  ready is still the caller's to receive
    if (self->view_held)
        s_done (self);
}

shmipc_hold_t *
shmipc__channel_rx_hold (shmipc__channel_rx_t *self, size_t index)
{
    if (!self->view_held || index >= self->nviews) {
        errno = EINVAL;
        return NULL;
    }
    if (self->ready != SHMIPC__IN_RING || !self->holds || self->views [index].size == 0) {
        errno = EAGAIN;
        return NULL;
    }
    //  Its space is still unreleased (released at recv_done at the
    //  earliest): the hold is in the table before the writer can reuse it
    return shmipc__holds_take (self->holds, self->spans [index].at,
                               self->spans [index].bytes);
}

int
shmipc__channel_rx_recv_into (shmipc__channel_rx_t *self, shmipc_msg_t *msg, int flags)
{
    if (s_wait_message (self, flags))
        return -1;
    return s_deliver (self, msg);
}

shmipc_msg_t *
shmipc__channel_rx_recv (shmipc__channel_rx_t *self, int flags)
{
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
shmipc__channel_rx_recv_vectored (shmipc__channel_rx_t *self, shmipc_msg_t **msgs,
                                  size_t max, int flags)
{
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
    shmipc__channel_rx_release (self);
    return (ssize_t) count;
}
