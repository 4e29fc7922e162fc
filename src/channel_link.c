/*  =========================================================================
    channel_link - the channel's socket after the handshake: the records
    that cross it (WAKE, ACK, CTRL, POOL, PIPE), the control window,
    draining, sleeping on it and on our wake pipe, and breaking the channel

    Owns the socket and the unread control messages (channel_link.h). Does
    not own the rings, the segments or the sleep flags; does not decide
    when a WAKE is due (channel_waiter.c does). Trusts nothing it reads from
    the socket: every record is decoded and checked (wire.c) before use.
    =========================================================================
*/

#include "channel_link.h"
#include "shmipc_fdpass.h"
#include "wakepipe.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void
shmipc__channel_link_init (shmipc__channel_link_t *self, const char *name)
{
    memset (self, 0, sizeof *self);
    self->sock = -1;
    self->pool_fd = -1;
    self->wake_own = -1;
    self->wake_peer = -1;
    self->state = SHMIPC__HANDSHAKE;
    self->reason = "";
    size_t size = strlen (name);
    memcpy (self->name, name, size + 1);
}

//  --------------------------------------------------------------------------
//  Errors

int
shmipc__channel_link_break (shmipc__channel_link_t *self, int code, const char *reason)
{
    if (self->state != SHMIPC__BROKEN) {
        self->state = SHMIPC__BROKEN;
        self->error = code;
        self->reason = reason;
        shutdown (self->sock, SHUT_RDWR);
        shmipc__log ("channel '%s' (peer '%s'): closed: %s",
                     self->name, self->peer_name, reason);
    }
    errno = self->error;
    return -1;
}

int
shmipc__channel_link_check_send (shmipc__channel_link_t *self)
{
    if (self->state == SHMIPC__BROKEN) {
        errno = self->error;
        return -1;
    }
    if (self->peer_gone) {
        errno = EPIPE;
        return -1;
    }
    return 0;
}

//  The kernel sets the hang-up before a reader can see end of stream, so
//  no hang-up means the 0 was a record, whether or not anything follows it.
bool
shmipc__channel_link_empty_record (shmipc__channel_link_t *self)
{
    int revents = shmipc__poll_fd (self->sock, POLLIN | POLLRDHUP, 0);
    return revents >= 0 && !(revents & (POLLRDHUP | POLLHUP));
}

//  --------------------------------------------------------------------------
//  Sending records

//  Send an 8-byte record (plus payload) without waiting. Returns 0, or -1
//  with errno EAGAIN (socket full) or EPIPE (peer gone, now noted).
static int
s_send_record (shmipc__channel_link_t *self, int type, uint32_t value,
               const void *payload, size_t size)
{
    uint8_t head [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (head, type, value);
    struct iovec iov [2] = {
        { .iov_base = head, .iov_len = sizeof head },
        { .iov_base = (void *) payload, .iov_len = size }
    };
    struct msghdr msg = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    while (true) {
        if (sendmsg (self->sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK || errno == EAGAIN) {
            errno = EAGAIN;
            return -1;
        }
        self->peer_gone = true;
        errno = EPIPE;
        return -1;
    }
}

//  Try to send the ACK for control messages read. It carries the running
//  count, so a later ACK replaces one that could not go.
static void
s_send_ack (shmipc__channel_link_t *self)
{
    self->ack_pending = s_send_record (self, SHMIPC__WIRE_ACK,
                                       self->ctrl_consumed, NULL, 0) == -1
                        && errno == EAGAIN;
}

//  Send an 8-byte record of type with one descriptor (POOL, PIPE) without
//  waiting. Returns 0, or -1 with errno EAGAIN (socket full) or EPIPE
//  (peer gone, now noted).
static int
s_send_with_fd (shmipc__channel_link_t *self, int type, int fd)
{
    uint8_t head [SHMIPC__RECORD_HEAD];
    shmipc__wire_header (head, type, 0);
    ssize_t sent = shmipc_fdpass_send (self->sock, head, sizeof head, &fd, 1,
                                       SHMIPC_DONTWAIT);
    if (sent == (ssize_t) sizeof head)
        return 0;
    if (sent >= 0)
        errno = EAGAIN;
    if (errno == EPIPE || errno == ECONNRESET) {
        self->peer_gone = true;
        errno = EPIPE;
    }
    return -1;
}

int
shmipc__channel_link_send_pool (shmipc__channel_link_t *self, int fd)
{
    return s_send_with_fd (self, SHMIPC__WIRE_POOL, fd);
}

void
shmipc__channel_link_offer_pipe (shmipc__channel_link_t *self)
{
    int give;
    if (self->no_pipe)
        return;
    if (shmipc__wakepipe_new (&self->wake_own, &give)) {
        shmipc__log ("channel '%s': no wake pipe (%s): WAKE records instead",
                     self->name, strerror (errno));
        return;
    }
    int rc = s_send_with_fd (self, SHMIPC__WIRE_PIPE, give);
    close (give);
    if (rc) {
        //  The peer never learns of it, so it goes on with WAKE records
        close (self->wake_own);
        self->wake_own = -1;
    }
}

int
shmipc__channel_link_send_wake (shmipc__channel_link_t *self)
{
    if (self->wake_peer >= 0) {
        if (shmipc__wakepipe_wake (self->wake_peer) == 0) {
            self->stat_wakeups_sent++;
            return 0;
        }
        if (errno == EAGAIN)
            return -1;          //  Full: the peer has wake-ups to read
    }
    if (s_send_record (self, SHMIPC__WIRE_WAKE, 0, NULL, 0))
        return -1;
    self->stat_wakeups_sent++;
    return 0;
}

//  --------------------------------------------------------------------------
//  Receiving records

//  Handle one record from a ready peer, with the descriptor that came with
//  it (-1 if none; ours to close, or to keep if it is the POOL's).
static int
s_handle_record (shmipc__channel_link_t *self, const uint8_t *buffer, size_t size,
                 int fd)
{
    shmipc__wire_t record;
    const char *reason;
    bool decoded = shmipc__wire_decode (buffer, size, &record, &reason) == 0;
    bool pool = decoded && record.type == SHMIPC__WIRE_POOL;
    bool pipe = decoded && record.type == SHMIPC__WIRE_PIPE;
    //  One pool and one pipe per channel, each with its descriptor: the
    //  only descriptors we take. Any other is closed here
    bool with_fd = fd >= 0;
    if (pool && with_fd && !self->pool_seen) {
        self->pool_seen = true;
        self->pool_fd = fd;
        return 0;
    }
    if (pipe && with_fd && !self->pipe_seen) {
        self->pipe_seen = true;
        self->wake_peer = shmipc__wakepipe_adopt (fd);
        if (self->wake_peer < 0 && errno == EPROTO)
            return shmipc__channel_link_break (self, EPROTO, "PIPE descriptor is not a pipe");
        if (self->wake_peer < 0)
            shmipc__log ("channel '%s': cannot take the peer's wake pipe (%s): "
                         "WAKE records instead", self->name, strerror (errno));
        return 0;
    }
    if (with_fd)
        close (fd);
    if (!decoded)
        return shmipc__channel_link_break (self, EPROTO, reason);
    if (pool)
        return shmipc__channel_link_break (self, EPROTO, "POOL twice or without a descriptor");
    if (pipe)
        return shmipc__channel_link_break (self, EPROTO, "PIPE twice or without a descriptor");
    if (with_fd)
        return shmipc__channel_link_break (self, EPROTO,
                                           "descriptors or oversize record on the socket");
    switch (record.type) {
        case SHMIPC__WIRE_WAKE:
            self->stat_wakeups_received++;
            return 0;
        case SHMIPC__WIRE_ACK:
            //  The count only grows, and never past what we sent
            if ((uint32_t) (record.value - self->ctrl_acked)
              > (uint32_t) (self->ctrl_sent - self->ctrl_acked))
                return shmipc__channel_link_break (self, EPROTO,
                                                   "ACK for control messages never sent");
            self->ctrl_acked = record.value;
            return 0;
        case SHMIPC__WIRE_CTRL: {
            if (self->ctrl_count == SHMIPC_CTRL_WINDOW)
                return shmipc__channel_link_break (self, EPROTO, "control window exceeded");
            shmipc__ctrl_t *slot = &self->ctrl [(self->ctrl_head + self->ctrl_count)
                                          % SHMIPC_CTRL_WINDOW];
            slot->data = (uint8_t *) malloc (record.value ? record.value : 1);
            if (!slot->data)
                return shmipc__channel_link_break (self, ENOMEM, "out of memory");
            if (record.value)
                memcpy (slot->data, record.payload, record.value);
            slot->size = record.value;
            self->ctrl_count++;
            self->stat_ctrl_received++;
            return 0;
        }
        default:
            return shmipc__channel_link_break (self, EPROTO, "HELLO after the handshake");
    }
}

//  Take one record received from a ready peer: rc and errno are what
//  shmipc_fdpass_recv returned. Returns 0, or -1 if the channel broke.
static int
s_take (shmipc__channel_link_t *self, ssize_t rc, const uint8_t *buffer,
        int fd, size_t nfds)
{
    if (rc > 0)
        return s_handle_record (self, buffer, (size_t) rc, nfds ? fd : -1);
    if (nfds)
        close (fd);
    if (rc == 0) {
        if (shmipc__channel_link_empty_record (self))
            return shmipc__channel_link_break (self, EPROTO, "empty record on the socket");
        self->peer_gone = true;
        return 0;
    }
    if (errno == EPROTO || errno == EMSGSIZE)
        return shmipc__channel_link_break (self, EPROTO,
                                           "descriptors or oversize record on the socket");
    self->peer_gone = true;             //  ECONNRESET and friends
    return 0;
}

int
shmipc__channel_link_drain (shmipc__channel_link_t *self)
{
    if (self->state == SHMIPC__BROKEN) {
        errno = self->error;
        return -1;
    }
    if (self->ack_pending)
        s_send_ack (self);
    uint8_t buffer [SHMIPC__WIRE_MAX];
    while (!self->peer_gone) {
        size_t nfds = 0;
        int fd = -1;
        ssize_t rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer,
                                         &fd, 1, &nfds, SHMIPC_DONTWAIT);
        if (rc < 0 && errno == EAGAIN)
            break;
        if (rc < 0 && errno == EINTR)
            continue;
        if (s_take (self, rc, buffer, fd, nfds))
            return -1;
    }
    return 0;
}

//  Read our wake pipe if an honest peer may have written to it.
static void
s_drain_pipe (shmipc__channel_link_t *self)
{
    if (self->wake_own < 0 || !self->wake_maybe)
        return;
    self->wake_maybe = false;
    self->stat_wakeups_received += shmipc__wakepipe_drain (self->wake_own);
}

int
shmipc__channel_link_drain_all (shmipc__channel_link_t *self)
{
    s_drain_pipe (self);
    return shmipc__channel_link_drain (self);
}

int
shmipc__channel_link_drain_now (shmipc__channel_link_t *self)
{
    self->nudged = true;
    return shmipc__channel_link_drain (self);
}

int
shmipc__channel_link_sleep (shmipc__channel_link_t *self, int64_t deadline)
{
    if (self->nudged) {
        //  A look at the ring first: what woke us may have been read
        self->nudged = false;
        return 0;
    }
    if (self->wake_own >= 0) {
        //  Two descriptors: a wake-up comes on the pipe, anything else
        //  (control records, end of stream) on the socket
        struct pollfd items [2] = {
            { .fd = self->sock, .events = POLLIN },
            { .fd = self->wake_own, .events = POLLIN }
        };
        int rc = poll (items, 2, shmipc__remaining_ms (deadline));
        if (rc < 0)
            return -1;
        if (rc == 0) {
            errno = EAGAIN;
            return -1;
        }
        if (items [1].revents) {
            self->wake_maybe = true;
            s_drain_pipe (self);
        }
        return items [0].revents ? shmipc__channel_link_drain (self) : 0;
    }
    uint8_t buffer [SHMIPC__WIRE_MAX];
    size_t nfds = 0;
    int fd = -1;
    ssize_t rc;
    if (deadline < 0) {
        //  No deadline: sleep in the receive itself, one system call (the
        //  socket is blocking: see shmipc_channel_new)
        rc = shmipc_fdpass_recv (self->sock, buffer, sizeof buffer, &fd, 1, &nfds, 0);
        if (rc < 0 && errno == EINTR)
            return -1;
        return s_take (self, rc, buffer, fd, nfds);
    }
    int revents = shmipc__poll_fd (self->sock, POLLIN, shmipc__remaining_ms (deadline));
    if (revents < 0)
        return -1;
    if (revents == 0) {
        errno = EAGAIN;
        return -1;
    }
    return shmipc__channel_link_drain (self);
}

//  --------------------------------------------------------------------------
//  Control messages

int
shmipc__channel_link_send_ctrl (shmipc__channel_link_t *self, const void *data, size_t size)
{
    if (shmipc__channel_link_drain (self) || shmipc__channel_link_check_send (self))
        return -1;
    if ((uint32_t) (self->ctrl_sent - self->ctrl_acked) >= SHMIPC_CTRL_WINDOW) {
        errno = EAGAIN;
        return -1;
    }
    if (s_send_record (self, SHMIPC__WIRE_CTRL, (uint32_t) size, data, size))
        return -1;
    self->ctrl_sent++;
    self->stat_ctrl_sent++;
    return 0;
}

ssize_t
shmipc__channel_link_recv_ctrl (shmipc__channel_link_t *self, void *buffer, size_t size)
{
    if (self->ctrl_count == 0 && shmipc__channel_link_drain (self))
        return -1;
    if (self->ctrl_count == 0) {
        errno = self->peer_gone ? ECONNRESET : EAGAIN;
        return -1;
    }
    shmipc__ctrl_t *slot = &self->ctrl [self->ctrl_head];
    if (slot->size > size) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t taken = slot->size;
    if (taken)
        memcpy (buffer, slot->data, taken);
    free (slot->data);
    slot->data = NULL;
    self->ctrl_head = (self->ctrl_head + 1) % SHMIPC_CTRL_WINDOW;
    self->ctrl_count--;
    self->ctrl_consumed++;
    s_send_ack (self);
    return (ssize_t) taken;
}
