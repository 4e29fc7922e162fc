/*  =========================================================================
    perf_core - child roles that measure the core channel alone, without
    ZeroMQ: throughput (sendv with SHMIPC_DEFER in batches + flush, against
    recv_view, in place) and round trips (send, recv_into)

    Owns its listener, channel and buffers. The receiving or echoing side
    listens (SHMIPC_SERVER), the other connects (SHMIPC_CLIENT). Both set
    the job's spin.
    =========================================================================
*/

#include "perf.h"
#include "shmipc_channel.h"
#include "shmipc_endpoint.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Say why the channel failed.
static void
s_channel_fail (shmipc_channel_t *channel, const char *what, uint64_t seq)
{
    int saved = errno;
    const char *reason = channel ? shmipc_channel_reason (channel) : "";
    perf_fail ("%s %" PRIu64 ": %s%s%s%s", what, seq, strerror (saved),
               *reason ? " (" : "", reason, *reason ? ")" : "");
}

//  Finish setting up a new channel: handshake, spin, timeouts.
static int
s_channel_setup (shmipc_channel_t *channel, const perf_job_t *job)
{
    if (shmipc_channel_handshake (channel, job->timeout_s * 1000)) {
        s_channel_fail (channel, "handshake", 0);
        return -1;
    }
    shmipc_channel_set_spin (channel, job->spin_us);
    shmipc_channel_set_sndtimeo (channel, job->timeout_s * 1000);
    shmipc_channel_set_rcvtimeo (channel, job->timeout_s * 1000);
    return 0;
}

//  Listen on the job's endpoint, say READY, accept one peer and make it a
//  channel. Returns the channel (the listener in *listener_p), or NULL.
static shmipc_channel_t *
s_accept (const perf_job_t *job, shmipc_listener_t **listener_p)
{
    shmipc_listener_t *listener = shmipc_listener_new (job->endpoint);
    if (!listener) {
        perf_fail ("listen on %s: %s", job->endpoint, strerror (errno));
        return NULL;
    }
    *listener_p = listener;
    perf_say ("READY %s", job->endpoint);
    int sock = -1;
    while (sock < 0) {
        struct pollfd item = { .fd = shmipc_listener_fd (listener), .events = POLLIN };
        int rc = poll (&item, 1, job->timeout_s * 1000);
        if (rc == 0) {
            perf_fail ("no peer connected");
            return NULL;
        }
        if (rc < 0 && errno != EINTR) {
            perf_fail ("poll: %s", strerror (errno));
            return NULL;
        }
        sock = shmipc_listener_accept (listener);
        if (sock < 0 && errno != EAGAIN) {
            perf_fail ("accept: %s", strerror (errno));
            return NULL;
        }
    }
    shmipc_channel_t *channel = shmipc_channel_new (sock, "perf-server", job->capacity,
                                                    SHMIPC_SERVER);
    if (!channel) {
        perf_fail ("shmipc_channel_new: %s", strerror (errno));
        close (sock);
        return NULL;
    }
    if (s_channel_setup (channel, job))
        shmipc_channel_destroy (&channel);
    return channel;
}

//  Connect to the job's endpoint and make it a channel, or return NULL.
static shmipc_channel_t *
s_connect (const perf_job_t *job)
{
    int sock = shmipc_endpoint_connect (job->endpoint, 0);
    if (sock < 0) {
        perf_fail ("connect to %s: %s", job->endpoint, strerror (errno));
        return NULL;
    }
    shmipc_channel_t *channel = shmipc_channel_new (sock, "perf-client", job->capacity,
                                                    SHMIPC_CLIENT);
    if (!channel) {
        perf_fail ("shmipc_channel_new: %s", strerror (errno));
        close (sock);
        return NULL;
    }
    if (s_channel_setup (channel, job))
        shmipc_channel_destroy (&channel);
    return channel;
}

//  Check that a received message has one frame and the expected stamp.
static int
s_check (shmipc_msg_t *msg, const perf_job_t *job, uint64_t seq)
{
    if (shmipc_msg_frames (msg) != 1) {
        perf_fail ("message %" PRIu64 ": %zu frames, expected 1", seq,
                   shmipc_msg_frames (msg));
        return -1;
    }
    return perf_check (shmipc_msg_data (msg, 0), shmipc_msg_size (msg, 0), job->size, seq);
}

//  A buffer of size bytes, filled, never empty.
static uint8_t *
s_buffer (size_t size)
{
    uint8_t *buffer = (uint8_t *) malloc (size ? size : 1);
    if (!buffer)
        perf_fail ("out of memory for %zu bytes", size);
    else
        memset (buffer, 0x5a, size);
    return buffer;
}

//  --------------------------------------------------------------------------
//  Roles

//  The receiver reads each message in place (recv_view): the core's
//  zero-copy receive, for a reader that can work on the peer's bytes
//  directly. It checks the size and the sequence stamp of each.
static int
s_thr_recv (shmipc_channel_t *channel, const perf_job_t *job)
{
    int64_t start = 0;
    int rc = 0;
    for (uint64_t seq = 0; seq < job->count && rc == 0; seq++) {
        const shmipc_frame_t *frames;
        size_t nframes;
        if (shmipc_channel_recv_view (channel, &frames, &nframes, 0)) {
            s_channel_fail (channel, "receive", seq);
            rc = -1;
            break;
        }
        if (seq == 0)
            start = perf_now_ns ();
        if (nframes != 1) {
            perf_fail ("message %" PRIu64 ": %zu frames, expected 1", seq, nframes);
            rc = -1;
        }
        else
            rc = perf_check (frames [0].data, frames [0].size, job->size, seq);
        shmipc_channel_recv_done (channel);
    }
    int64_t elapsed_ns = perf_now_ns () - start;
    if (rc == 0) {
        //  Exactly count: nothing more may follow
        usleep (10000);
        const shmipc_frame_t *frames;
        size_t nframes;
        if (shmipc_channel_recv_view (channel, &frames, &nframes, SHMIPC_DONTWAIT) == 0) {
            perf_fail ("a message beyond the %" PRIu64 " sent", job->count);
            rc = -1;
        }
        else
        if (errno != EAGAIN) {
            s_channel_fail (channel, "receive after the last", job->count);
            rc = -1;
        }
    }
    if (rc == 0)
        perf_say ("RESULT count=%" PRIu64 " elapsed_ns=%" PRId64, job->count, elapsed_ns);
    return rc;
}

static int
s_thr_send (shmipc_channel_t *channel, const perf_job_t *job)
{
    uint8_t *buffer = s_buffer (job->size);
    if (!buffer)
        return -1;
    //  A batch never holds more than a quarter of the ring unpublished
    uint64_t record = job->size + 16;
    uint64_t batch = (uint64_t) job->batch;
    if (batch * record > job->capacity / 4)
        batch = job->capacity / 4 / record;
    if (batch == 0)
        batch = 1;
    struct iovec frame = { .iov_base = buffer, .iov_len = job->size };
    int rc = 0;
    for (uint64_t seq = 0; seq < job->count; seq++) {
        perf_stamp (buffer, job->size, seq);
        if (shmipc_channel_sendv (channel, &frame, 1, SHMIPC_DEFER)) {
            s_channel_fail (channel, "send", seq);
            rc = -1;
            break;
        }
        if ((seq + 1) % batch == 0 && shmipc_channel_flush (channel)) {
            s_channel_fail (channel, "flush", seq);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && shmipc_channel_flush (channel)) {
        s_channel_fail (channel, "flush", job->count);
        rc = -1;
    }
    if (rc == 0)
        perf_say ("RESULT batch=%" PRIu64, batch);
    free (buffer);
    return rc;
}

static int
s_rtt_serve (shmipc_channel_t *channel, const perf_job_t *job)
{
    shmipc_msg_t *msg = shmipc_msg_new ();
    if (!msg)
        return -1;
    int rc = 0;
    uint64_t total = job->warmup + job->count;
    for (uint64_t seq = 0; seq < total && rc == 0; seq++) {
        if (shmipc_channel_recv_into (channel, msg, 0)) {
            s_channel_fail (channel, "receive request", seq);
            rc = -1;
        }
        else
        if (s_check (msg, job, seq))
            rc = -1;
        else
        if (shmipc_channel_send_msg (channel, msg, 0)) {
            s_channel_fail (channel, "send reply", seq);
            rc = -1;
        }
    }
    if (rc == 0)
        perf_say ("RESULT");
    shmipc_msg_destroy (&msg);
    return rc;
}

static int
s_rtt_ping (shmipc_channel_t *channel, const perf_job_t *job)
{
    uint8_t *buffer = s_buffer (job->size);
    uint64_t *samples = (uint64_t *) malloc ((job->count ? job->count : 1) * sizeof *samples);
    shmipc_msg_t *msg = shmipc_msg_new ();
    int rc = 0;
    if (!buffer || !samples || !msg) {
        perf_fail ("out of memory");
        rc = -1;
    }
    uint64_t total = job->warmup + job->count;
    for (uint64_t seq = 0; seq < total && rc == 0; seq++) {
        perf_stamp (buffer, job->size, seq);
        int64_t start = perf_now_ns ();
        if (shmipc_channel_send (channel, buffer, job->size, 0)) {
            s_channel_fail (channel, "send request", seq);
            rc = -1;
            break;
        }
        if (shmipc_channel_recv_into (channel, msg, 0)) {
            s_channel_fail (channel, "receive reply", seq);
            rc = -1;
            break;
        }
        int64_t end = perf_now_ns ();
        rc = s_check (msg, job, seq);
        if (seq >= job->warmup)
            samples [seq - job->warmup] = (uint64_t) (end - start);
    }
    if (rc == 0) {
        double median_us, p99_us;
        perf_percentiles (samples, job->count, &median_us, &p99_us);
        perf_say ("RESULT count=%" PRIu64 " median_ns=%.0f p99_ns=%.0f",
                  job->count, median_us * 1000, p99_us * 1000);
    }
    shmipc_msg_destroy (&msg);
    free (buffer);
    free (samples);
    return rc;
}

int
perf_core_role (const perf_job_t *job)
{
    static const char *roles [] = {
        "core-thr-recv", "core-thr-send", "core-rtt-server", "core-rtt-client"
    };
    int which = -1;
    for (int index = 0; index < 4; index++)
        if (strcmp (job->role, roles [index]) == 0)
            which = index;
    if (which < 0) {
        perf_fail ("unknown role");
        return 2;
    }
    bool server = which == 0 || which == 2;
    shmipc_listener_t *listener = NULL;
    shmipc_channel_t *channel = server ? s_accept (job, &listener) : s_connect (job);
    int rc = -1;
    if (channel) {
        if (which == 0)
            rc = s_thr_recv (channel, job);
        else
        if (which == 1)
            rc = s_thr_send (channel, job);
        else
        if (which == 2)
            rc = s_rtt_serve (channel, job);
        else
            rc = s_rtt_ping (channel, job);
    }
    //  Stay connected until the coordinator has every side's RESULT
    if (rc == 0)
        perf_wait_release ();
    shmipc_channel_destroy (&channel);
    shmipc_listener_destroy (&listener);
    return rc ? 1 : 0;
}
