/*  =========================================================================
    perf_zmq - child roles that measure czmq sockets: PUSH -> PULL
    throughput and REQ/REP round trips over shm://, ipc://, tcp:// (two
    processes) and inproc:// (two threads of one process)

    Owns its sockets and buffers. The shm-loan row's senders build each
    message in their socket's loan pool (shmipc_msg_init_loan) and fill it
    from the same buffer the other rows send from: the one copy zmq_send
    makes for them. Runs only in a freshly exec'd process:
    libzmq contexts do not survive fork. Every socket goes through
    shmipc_bind / shmipc_connect, so shm:// and the other schemes take the
    same code path here, as they do in an application.
    =========================================================================
*/

#include "perf.h"
#include "shmipc.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Create a socket of type with the job's HWM and timeouts (and ring
//  capacity, for shm://; and zero-copy receive for the shm-zc and shm-loan
//  rows' receiving sockets: PULL, REQ, REP), then bind or connect it to the
//  job's endpoint. Returns the socket, setting *port for tcp binds, or NULL
//  after saying why.
static zsock_t *
s_socket (int type, const perf_job_t *job, bool bind, int *port)
{
    zsock_t *sock = zsock_new (type);
    if (!sock) {
        perf_fail ("zsock_new: %s", zmq_strerror (zmq_errno ()));
        return NULL;
    }
    zsock_set_sndhwm (sock, job->hwm);
    zsock_set_rcvhwm (sock, job->hwm);
    zsock_set_sndtimeo (sock, job->timeout_s * 1000);
    zsock_set_rcvtimeo (sock, job->timeout_s * 1000);
    if (shmipc_endpoint_is_shm (job->endpoint)
    &&  shmipc_set_capacity (sock, job->capacity)) {
        perf_fail ("shmipc_set_capacity (%zu): %s", job->capacity, strerror (errno));
        shmipc_sock_destroy (&sock);
        return NULL;
    }
    if (job->zerocopy && type != ZMQ_PUSH && shmipc_set_zerocopy (sock, true)) {
        perf_fail ("shmipc_set_zerocopy: %s", strerror (errno));
        shmipc_sock_destroy (&sock);
        return NULL;
    }
    int rc = bind ? shmipc_bind (sock, "%s", job->endpoint)
                  : shmipc_connect (sock, "%s", job->endpoint);
    if (rc == -1) {
        perf_fail ("%s %s: %s", bind ? "bind" : "connect", job->endpoint, strerror (errno));
        shmipc_sock_destroy (&sock);
        return NULL;
    }
    if (port)
        *port = rc;
    return sock;
}

//  Say READY with the endpoint a peer should connect to.
static void
s_say_ready (const perf_job_t *job, int port)
{
    if (strncmp (job->endpoint, "tcp://", 6) == 0)
        perf_say ("READY tcp://127.0.0.1:%d", port);
    else
        perf_say ("READY %s", job->endpoint);
}

//  For the shm-zc and shm-loan rows: " frames_lent=N msgs_in=N" from the
//  socket's shm counters, to end its RESULT line with; else "". Returns 0,
//  or -1 after saying why.
static int
s_lent (zsock_t *sock, const perf_job_t *job, char *buffer, size_t size)
{
    *buffer = 0;
    if (!job->zerocopy)
        return 0;
    shmipc_stats_t stats;
    if (shmipc_sock_stats (sock, &stats)) {
        perf_fail ("shmipc_sock_stats: %s", strerror (errno));
        return -1;
    }
    snprintf (buffer, size, " frames_lent=%" PRIu64 " msgs_in=%" PRIu64,
              stats.frames_lent, stats.msgs_in);
    return 0;
}

//  --------------------------------------------------------------------------
//  Loans (the shm-loan row's senders)

//  A sending socket's loans: where its pool lies, and how many of the
//  messages it built got a block there. shmipc_msg_init_loan does not say
//  whether it lent or fell back to an ordinary message, so we look: the
//  pool is one mapping of a memfd named "shmipc:loans" (the library's
//  label for it, seen in /proc/self/maps), and a loan's data lies in it.
typedef struct {
    uintptr_t low, high;        //  The pool's mapping, [low, high); empty
                                //  if there is none
    uint64_t loaned;            //  Messages built in it
    uint64_t sent;              //  Messages built at all
} s_loans_t;

//  Find the loan pool's mapping in /proc/self/maps: the one that holds
//  data, if it is the pool's. Leaves the range empty if not.
static void
s_loans_locate (s_loans_t *self, const void *data)
{
    self->low = self->high = 0;
    FILE *maps = fopen ("/proc/self/maps", "r");
    if (!maps)
        return;
    char line [512];
    uintptr_t at = (uintptr_t) data;
    while (fgets (line, sizeof line, maps)) {
        unsigned long low, high;
        if (sscanf (line, "%lx-%lx", &low, &high) == 2 && at >= low && at < high) {
            if (strstr (line, "shmipc:loans")) {
                self->low = low;
                self->high = high;
            }
            break;
        }
    }
    fclose (maps);
}

//  Before measuring: make the socket's pool with one loan of the job's
//  size, given back at once, and learn where the pool lies. Returns 0 or
//  -1 after saying why.
static int
s_loans_start (s_loans_t *self, zsock_t *sock, const perf_job_t *job)
{
    memset (self, 0, sizeof *self);
    zmq_msg_t msg;
    if (shmipc_msg_init_loan (&msg, sock, job->size)) {
        perf_fail ("shmipc_msg_init_loan (%zu): %s", job->size, strerror (errno));
        return -1;
    }
    s_loans_locate (self, zmq_msg_data (&msg));
    zmq_msg_close (&msg);
    return 0;
}

//  Build msg: a loan of size bytes from the socket's pool (or the ordinary
//  message shmipc_msg_init_loan falls back to), filled from data, counted.
//  Returns 0, or -1 after saying why.
static int
s_loans_build (s_loans_t *self, zsock_t *sock, zmq_msg_t *msg, const void *data,
               size_t size)
{
    if (shmipc_msg_init_loan (msg, sock, size)) {
        perf_fail ("shmipc_msg_init_loan (%zu): %s", size, strerror (errno));
        return -1;
    }
    uintptr_t at = (uintptr_t) zmq_msg_data (msg);
    if (size)
        memcpy (zmq_msg_data (msg), data, size);
    self->sent++;
    if (at >= self->low && at < self->high)
        self->loaned++;
    return 0;
}

//  " msgs_loaned=N msgs_sent=N" for a loaning sender's RESULT line, or "".
static const char *
s_loans_say (const s_loans_t *self, const perf_job_t *job, char *buffer, size_t size)
{
    *buffer = 0;
    if (job->loan)
        snprintf (buffer, size, " msgs_loaned=%" PRIu64 " msgs_sent=%" PRIu64,
                  self->loaned, self->sent);
    return buffer;
}

//  A buffer of size bytes, filled (so its pages are real), never empty.
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
//  The measuring loops, shared by the two-process and inproc forms

//  Receive job->count messages, checking each; time from the first to the
//  last (libzmq's local_thr method). Then make sure nothing more comes.
//  Returns 0 with *elapsed_ns, or -1.
static int
s_thr_receive (zsock_t *sock, const perf_job_t *job, int64_t *elapsed_ns)
{
    void *handle = zsock_resolve (sock);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int64_t start = 0;
    int rc = -1;
    for (uint64_t seq = 0; seq < job->count; seq++) {
        if (zmq_msg_recv (&msg, handle, 0) == -1) {
            perf_fail ("receive %" PRIu64 " of %" PRIu64 ": %s", seq, job->count,
                       zmq_strerror (zmq_errno ()));
            goto done;
        }
        if (seq == 0)
            start = perf_now_ns ();
        if (zmq_msg_more (&msg)) {
            perf_fail ("message %" PRIu64 ": more than one frame", seq);
            goto done;
        }
        if (perf_check (zmq_msg_data (&msg), zmq_msg_size (&msg), job->size, seq))
            goto done;
    }
    *elapsed_ns = perf_now_ns () - start;
    zmq_pollitem_t item = { .socket = handle, .events = ZMQ_POLLIN };
    if (zmq_poll (&item, 1, 20) > 0) {
        perf_fail ("a message beyond the %" PRIu64 " sent", job->count);
        goto done;
    }
    rc = 0;
done:
    zmq_msg_close (&msg);
    return rc;
}

//  Send job->count stamped messages from one filled buffer (zmq_send copies
//  it into a new message, as zframe_new does; with job->loan, we copy it
//  into a loan and send that, counting into loans). Returns 0 or -1.
static int
s_thr_send (zsock_t *sock, const perf_job_t *job, s_loans_t *loans)
{
    uint8_t *buffer = s_buffer (job->size);
    if (!buffer)
        return -1;
    void *handle = zsock_resolve (sock);
    int rc = 0;
    for (uint64_t seq = 0; seq < job->count; seq++) {
        perf_stamp (buffer, job->size, seq);
        if (job->loan) {
            zmq_msg_t msg;
            if (s_loans_build (loans, sock, &msg, buffer, job->size)) {
                rc = -1;
                break;
            }
            if (zmq_msg_send (&msg, handle, 0) == -1) {
                perf_fail ("send %" PRIu64 " of %" PRIu64 ": %s", seq, job->count,
                           zmq_strerror (zmq_errno ()));
                zmq_msg_close (&msg);
                rc = -1;
                break;
            }
        }
        else
        if (zmq_send (handle, buffer, job->size, 0) == -1) {
            perf_fail ("send %" PRIu64 " of %" PRIu64 ": %s", seq, job->count,
                       zmq_strerror (zmq_errno ()));
            rc = -1;
            break;
        }
    }
    free (buffer);
    return rc;
}

//  Echo warmup + count requests, checking each: the request itself goes
//  back (sending it copies it into the ring, or onto the wire); with
//  job->loan, a loan we copy the request into, counted into loans, and the
//  request is let go at once. Returns 0 or -1.
static int
s_rtt_serve (zsock_t *sock, const perf_job_t *job, s_loans_t *loans)
{
    void *handle = zsock_resolve (sock);
    zmq_msg_t msg;
    zmq_msg_init (&msg);
    int rc = 0;
    uint64_t total = job->warmup + job->count;
    for (uint64_t seq = 0; seq < total && rc == 0; seq++) {
        if (zmq_msg_recv (&msg, handle, 0) == -1) {
            perf_fail ("receive request %" PRIu64 ": %s", seq, zmq_strerror (zmq_errno ()));
            rc = -1;
        }
        else
        if (perf_check (zmq_msg_data (&msg), zmq_msg_size (&msg), job->size, seq))
            rc = -1;
        else
        if (job->loan) {
            zmq_msg_t reply;
            if (s_loans_build (loans, sock, &reply, zmq_msg_data (&msg), zmq_msg_size (&msg)))
                rc = -1;
            else {
                //  Give a lent request back before replying, as the echo does
                zmq_msg_close (&msg);
                zmq_msg_init (&msg);
                if (zmq_msg_send (&reply, handle, 0) == -1) {
                    perf_fail ("send reply %" PRIu64 ": %s", seq, zmq_strerror (zmq_errno ()));
                    zmq_msg_close (&reply);
                    rc = -1;
                }
            }
        }
        else
        if (zmq_msg_send (&msg, handle, 0) == -1) {
            perf_fail ("send reply %" PRIu64 ": %s", seq, zmq_strerror (zmq_errno ()));
            rc = -1;
        }
    }
    zmq_msg_close (&msg);
    return rc;
}

//  Send warmup + count requests, one at a time, timing each measured round
//  trip. Says RESULT. Returns 0 or -1.
static int
s_rtt_ping (zsock_t *sock, const perf_job_t *job)
{
    uint8_t *buffer = s_buffer (job->size);
    uint64_t *samples = (uint64_t *) malloc ((job->count ? job->count : 1) * sizeof *samples);
    if (!buffer || !samples) {
        free (buffer);
        free (samples);
        perf_fail ("out of memory");
        return -1;
    }
    void *handle = zsock_resolve (sock);
    s_loans_t loans = { .low = 0 };
    int rc = job->loan ? s_loans_start (&loans, sock, job) : 0;
    zmq_msg_t msg, request;
    zmq_msg_init (&msg);
    uint64_t total = rc ? 0 : job->warmup + job->count;
    for (uint64_t seq = 0; seq < total; seq++) {
        perf_stamp (buffer, job->size, seq);
        int64_t start = perf_now_ns ();
        //  A loan is built and filled inside the timing, as zmq_send
        //  builds and fills its message
        if (job->loan && s_loans_build (&loans, sock, &request, buffer, job->size)) {
            rc = -1;
            break;
        }
        if ((job->loan ? zmq_msg_send (&request, handle, 0)
                       : zmq_send (handle, buffer, job->size, 0)) == -1
        ||  zmq_msg_recv (&msg, handle, 0) == -1) {
            perf_fail ("round trip %" PRIu64 ": %s", seq, zmq_strerror (zmq_errno ()));
            if (job->loan)
                zmq_msg_close (&request);   //  Empty if it went
            rc = -1;
            break;
        }
        int64_t end = perf_now_ns ();
        if (perf_check (zmq_msg_data (&msg), zmq_msg_size (&msg), job->size, seq)) {
            rc = -1;
            break;
        }
        if (seq >= job->warmup)
            samples [seq - job->warmup] = (uint64_t) (end - start);
    }
    char lent [96], loaned [96];
    if (rc == 0 && s_lent (sock, job, lent, sizeof lent))
        rc = -1;
    if (rc == 0) {
        double median_us, p99_us;
        perf_percentiles (samples, job->count, &median_us, &p99_us);
        perf_say ("RESULT count=%" PRIu64 " median_ns=%.0f p99_ns=%.0f%s%s",
                  job->count, median_us * 1000, p99_us * 1000, lent,
                  s_loans_say (&loans, job, loaned, sizeof loaned));
    }
    zmq_msg_close (&msg);
    free (buffer);
    free (samples);
    return rc;
}

//  --------------------------------------------------------------------------
//  Two processes

static int
s_thr_recv_role (const perf_job_t *job)
{
    int port = 0;
    zsock_t *sock = s_socket (ZMQ_PULL, job, true, &port);
    if (!sock)
        return 1;
    s_say_ready (job, port);
    int64_t elapsed_ns;
    char lent [96];
    int rc = s_thr_receive (sock, job, &elapsed_ns);
    if (rc == 0)
        rc = s_lent (sock, job, lent, sizeof lent);
    if (rc == 0) {
        perf_say ("RESULT count=%" PRIu64 " elapsed_ns=%" PRId64 "%s", job->count,
                  elapsed_ns, lent);
        perf_wait_release ();
    }
    shmipc_sock_destroy (&sock);
    return rc ? 1 : 0;
}

static int
s_thr_send_role (const perf_job_t *job)
{
    zsock_t *sock = s_socket (ZMQ_PUSH, job, false, NULL);
    if (!sock)
        return 1;
    //  The loan pool is made (and found) before the wait, not in the run
    s_loans_t loans = { .low = 0 };
    if (job->loan && s_loans_start (&loans, sock, job)) {
        shmipc_sock_destroy (&sock);
        return 1;
    }
    //  Let the connection come up, so that no backlog queued before it
    //  reaches the receiver as a burst
    usleep ((useconds_t) job->settle_ms * 1000);
    int rc = s_thr_send (sock, job, &loans);
    if (rc == 0) {
        char loaned [96];
        perf_say ("RESULT%s", s_loans_say (&loans, job, loaned, sizeof loaned));
        //  Close only once the receiver has everything: nothing is lost to
        //  czmq's linger of 0
        perf_wait_release ();
    }
    shmipc_sock_destroy (&sock);
    return rc ? 1 : 0;
}

static int
s_rtt_server_role (const perf_job_t *job)
{
    int port = 0;
    zsock_t *sock = s_socket (ZMQ_REP, job, true, &port);
    if (!sock)
        return 1;
    s_loans_t loans = { .low = 0 };
    if (job->loan && s_loans_start (&loans, sock, job)) {
        shmipc_sock_destroy (&sock);
        return 1;
    }
    s_say_ready (job, port);
    char lent [96], loaned [96];
    int rc = s_rtt_serve (sock, job, &loans);
    if (rc == 0)
        rc = s_lent (sock, job, lent, sizeof lent);
    if (rc == 0) {
        perf_say ("RESULT%s%s", lent, s_loans_say (&loans, job, loaned, sizeof loaned));
        perf_wait_release ();
    }
    shmipc_sock_destroy (&sock);
    return rc ? 1 : 0;
}

static int
s_rtt_client_role (const perf_job_t *job)
{
    zsock_t *sock = s_socket (ZMQ_REQ, job, false, NULL);
    if (!sock)
        return 1;
    int rc = s_rtt_ping (sock, job);
    if (rc == 0)
        perf_wait_release ();
    shmipc_sock_destroy (&sock);
    return rc ? 1 : 0;
}

//  --------------------------------------------------------------------------
//  inproc: the peer is a thread of this process

//  What the peer thread needs and reports.
typedef struct {
    const perf_job_t *job;      //  The run
    int type;                   //  Its socket type
    bool bind;                  //  It binds (else connects)
    sem_t connected;            //  Posted once its socket is attached
    sem_t release;              //  Posted when it may close its socket
    int rc;                     //  0, or -1 if it failed
} s_thread_t;

static void *
s_peer_thread (void *args)
{
    s_thread_t *self = (s_thread_t *) args;
    zsock_t *sock = s_socket (self->type, self->job, self->bind, NULL);
    if (!sock)
        self->rc = -1;
    sem_post (&self->connected);
    if (!sock)
        return NULL;
    //  No loans over inproc: job->loan is 0 there
    self->rc = self->type == ZMQ_PUSH ? s_thr_send (sock, self->job, NULL)
                                      : s_rtt_serve (sock, self->job, NULL);
    //  Keep the socket until the main thread has all it needs
    while (sem_wait (&self->release) && errno == EINTR)
        ;
    shmipc_sock_destroy (&sock);
    return NULL;
}

//  Throughput: we bind PULL, the thread connects PUSH. Round trip: the
//  thread binds REP, we connect REQ once it has.
static int
s_inproc_role (const perf_job_t *job, bool thr)
{
    zsock_t *sock = NULL;
    if (thr && !(sock = s_socket (ZMQ_PULL, job, true, NULL)))
        return 1;
    s_thread_t peer = { .job = job, .type = thr ? ZMQ_PUSH : ZMQ_REP, .bind = !thr };
    sem_init (&peer.connected, 0, 0);
    sem_init (&peer.release, 0, 0);
    pthread_t thread;
    if (pthread_create (&thread, NULL, s_peer_thread, &peer)) {
        perf_fail ("pthread_create failed");
        shmipc_sock_destroy (&sock);
        return 1;
    }
    while (sem_wait (&peer.connected) && errno == EINTR)
        ;
    int rc = peer.rc;
    if (rc == 0 && !thr && !(sock = s_socket (ZMQ_REQ, job, false, NULL)))
        rc = -1;
    if (rc == 0 && thr) {
        int64_t elapsed_ns;
        rc = s_thr_receive (sock, job, &elapsed_ns);
        if (rc == 0)
            perf_say ("RESULT count=%" PRIu64 " elapsed_ns=%" PRId64, job->count, elapsed_ns);
    }
    else
    if (rc == 0)
        rc = s_rtt_ping (sock, job);
    sem_post (&peer.release);
    pthread_join (thread, NULL);
    if (rc == 0 && peer.rc)
        rc = -1;
    if (rc == 0)
        perf_wait_release ();
    shmipc_sock_destroy (&sock);
    sem_destroy (&peer.connected);
    sem_destroy (&peer.release);
    return rc ? 1 : 0;
}

int
perf_zmq_role (const perf_job_t *job)
{
    //  Keep default signal handling, so that the coordinator can stop us,
    //  and keep stdout for the protocol
    zsys_handler_set (NULL);
    zsys_set_logstream (stderr);
    if (streq (job->role, "zmq-thr-recv"))
        return s_thr_recv_role (job);
    if (streq (job->role, "zmq-thr-send"))
        return s_thr_send_role (job);
    if (streq (job->role, "zmq-rtt-server"))
        return s_rtt_server_role (job);
    if (streq (job->role, "zmq-rtt-client"))
        return s_rtt_client_role (job);
    if (streq (job->role, "inproc-thr"))
        return s_inproc_role (job, true);
    if (streq (job->role, "inproc-rtt"))
        return s_inproc_role (job, false);
    perf_fail ("unknown role");
    return 2;
}
