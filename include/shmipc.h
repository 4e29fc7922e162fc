/*  =========================================================================
    shmipc - shared-memory transport for ZeroMQ (czmq) programs

    The umbrella header: the core's user API (plain C + Linux: the channel,
    fd passing, messages and endpoints, in the shmipc_*.h headers it
    includes; the rings and segments under them are private) and the czmq
    layer declared here. A czmq program
    moves to shared memory by changing an endpoint string:

        zsock_t *server = shmipc_sock_new (ZMQ_REP, "@shm:///run/app/svc");
        zsock_t *client = shmipc_sock_new (ZMQ_REQ, ">shm:///run/app/svc");

    The sockets are genuine zsock_t: every czmq and libzmq call works on
    them. shm:// endpoints are served by an actor (one per socket) that
    bridges each shared-memory peer to the socket over inproc.

    Raw libzmq sockets (void *, from any context) take shm:// endpoints
    too, through the same calls or the libzmq-shaped shmipc_zmq_* ones; and
    a program that cannot be changed gets them from the launcher
    (shmipc-run PROGRAM: docs/guide.md).
    =========================================================================
*/

#ifndef SHMIPC_H_INCLUDED
#define SHMIPC_H_INCLUDED

#include <czmq.h>

#include "shmipc_common.h"
#include "shmipc_fdpass.h"
#include "shmipc_msg.h"
#include "shmipc_channel.h"
#include "shmipc_endpoint.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Counters of one socket's shm:// traffic, for monitoring.
typedef struct {
    uint64_t peers;             //  Connections up now
    uint64_t accepted;          //  Connections accepted on bound endpoints
    uint64_t connected;         //  Connections made to connected endpoints
    uint64_t closed;            //  Connections closed
    uint64_t errors;            //  Connections refused or closed by an error
    uint64_t msgs_out;          //  Messages the socket sent over shm
    uint64_t bytes_out;         //  Their bytes
    uint64_t msgs_in;           //  Messages the socket received over shm
    uint64_t bytes_in;          //  Their bytes
    uint64_t wakeups;           //  WAKE records sent and received
    uint64_t frames_lent;       //  Frames received in place, not copied
                                //  (shmipc_set_zerocopy)
} shmipc_stats_t;

//  Create a czmq socket of type (ZMQ_PAIR, PUB, SUB, XPUB, XSUB, REQ, REP,
//  DEALER, ROUTER, PUSH, PULL) and attach it to endpoints as
//  zsock_new_<type> does: a comma-separated list, '@' binds, '>' connects,
//  no prefix takes the type's default. shm:// endpoints are served by
//  shared memory, every other scheme by libzmq unchanged. Returns the
//  socket, or NULL with errno if the socket or any endpoint fails.
SHMIPC_EXPORT zsock_t *
    shmipc_sock_new (int type, const char *endpoints);

//  Destroy a socket that may have shm:// endpoints: closes the socket,
//  then, if its linger is not 0, waits up to that long (for ever if -1)
//  for what it still held to reach the shared-memory rings, then stops its
//  actor. Nothing remains: no descriptor, mapping, socket file or thread.
//  zsock_destroy and zmq_close do the same for such a socket (libshmipc
//  interposes zmq_close; see docs/guide.md for when it cannot), and so
//  does the exit of a program that left it open; this is the explicit
//  form. Idempotent; nullifies the caller's reference.
SHMIPC_EXPORT void
    shmipc_sock_destroy (zsock_t **self_p);

//  Bind or connect a socket to a formatted endpoint, like zsock_bind /
//  zsock_connect. self is, as for czmq's option calls, a zsock_t, a
//  zactor_t, or a raw libzmq socket from any context. shm:// endpoints
//  (shm:///abs/path, shm://rel/path against the working directory now,
//  shm://@abstract, and for bind shm://* for a fresh path) go to the
//  socket's actor; bind fails at once if the endpoint is taken, connect
//  succeeds at once and connects in the background (and again after
//  failures, every ZMQ_RECONNECT_IVL ms), as libzmq does. ZMQ_LAST_ENDPOINT
//  then shows the shm:// endpoint. Returns 0 (or, for tcp:// binds of a
//  zsock_t, the port), or -1 with errno (EINVAL, EADDRINUSE,
//  ENOCOMPATPROTO...).
SHMIPC_EXPORT int
    shmipc_bind (void *self, const char *format, ...) CHECK_PRINTF (2);
SHMIPC_EXPORT int
    shmipc_connect (void *self, const char *format, ...) CHECK_PRINTF (2);

//  Undo a bind (closing the connections accepted through it) or a connect.
//  Returns 0 or -1 with errno (ENOENT if the endpoint was not attached).
SHMIPC_EXPORT int
    shmipc_unbind (void *self, const char *format, ...) CHECK_PRINTF (2);
SHMIPC_EXPORT int
    shmipc_disconnect (void *self, const char *format, ...) CHECK_PRINTF (2);

//  Attach a socket to zero or more endpoints, like zsock_attach: '@'
//  binds, '>' connects, otherwise serverish decides. Returns 0 or -1.
SHMIPC_EXPORT int
    shmipc_attach (void *self, const char *endpoints, bool serverish);

//  The same calls shaped as libzmq's, for raw sockets of any context:
//  shm:// endpoints as above, every other one to libzmq's own function.
//  libshmipc also defines zmq_socket, zmq_close, zmq_getsockopt and the
//  context terminate calls (zmq_ctx_term, zmq_ctx_shutdown,
//  zmq_ctx_destroy, zmq_term) as these: a program linked with libshmipc
//  (before libzmq, as pkg-config orders it) closes and terminates with
//  the plain calls, and ZMQ_LAST_ENDPOINT shows shm:// endpoints. The
//  preload library (shmipc-run) defines zmq_bind, zmq_connect, zmq_unbind
//  and zmq_disconnect as these too. Each returns what libzmq's returns.
SHMIPC_EXPORT void *
    shmipc_zmq_socket (void *context, int type);
SHMIPC_EXPORT int
    shmipc_zmq_bind (void *socket, const char *endpoint);
SHMIPC_EXPORT int
    shmipc_zmq_connect (void *socket, const char *endpoint);
SHMIPC_EXPORT int
    shmipc_zmq_unbind (void *socket, const char *endpoint);
SHMIPC_EXPORT int
    shmipc_zmq_disconnect (void *socket, const char *endpoint);
//  Closes the socket; if it has shm:// endpoints, stops its actor
//  honouring ZMQ_LINGER (in the background, as libzmq lingers).
SHMIPC_EXPORT int
    shmipc_zmq_close (void *socket);
SHMIPC_EXPORT int
    shmipc_zmq_getsockopt (void *socket, int option, void *value, size_t *size);
//  Before libzmq's: ends the actors serving the context's sockets (those
//  closed, after their linger; those still open, with theirs), so that no
//  bridge of ours keeps it waiting.
SHMIPC_EXPORT int
    shmipc_zmq_ctx_term (void *context);
SHMIPC_EXPORT int
    shmipc_zmq_ctx_shutdown (void *context);

//  The actor task behind each socket's shm:// endpoints (one per socket,
//  started by zactor_new). shmipc_bind and friends drive it for you; its
//  command protocol, each command a string frame followed by arguments
//  sent and read with a czmq picture (replies marked <-):
//
//    BIND + SHMIPC_ACTOR_ATTACH_PICTURE: endpoint (its name, as given),
//          address (where: a relative path made absolute, or shm://*),
//          inproc endpoint of the user socket, its context (bridges are
//          made there), its routing id, type, sndhwm, rcvhwm, reconnect
//          ivl, reconnect ivl max, immediate, ring capacity, maxmsgsize
//          (0: none), max peer capacity (0: default), zero-copy receive
//          (0 or 1), extra uids allowed (an array of uid_t)
//          <- SHMIPC_ACTOR_ATTACH_REPLY: 0 or an errno, and the endpoint
//          as bound (for shm://*, the path made)
//    CONNECT + the same                    <- the same reply (connects in
//          the background, and again after failures)
//    UNBIND endpoint, DISCONNECT endpoint  <- signal 0, or ENOENT
//    STATS <- SHMIPC_ACTOR_STATS_PICTURE: "STATS", connections up,
//          accepted, connected, closed, errors, msgs_out, bytes_out,
//          msgs_in, bytes_in, wakeups, frames lent; then one text frame per connection
//          ("endpoint=... msgs_out=..."), which that picture drops
//    STOP  <- signal 0 once no new bridge can appear (listeners closed;
//          connections that would make their own bridge closed or not
//          remade); sent before the user's socket closes
//    LINGER ms ("i")  <- signal 0 once what the user's socket held is in
//          the rings, or ms passed (-1: no limit)
//    $TERM                                 ends the actor
#define SHMIPC_ACTOR_ATTACH_PICTURE "ssspbiiiiii888ib"
#define SHMIPC_ACTOR_ATTACH_REPLY   "is"
#define SHMIPC_ACTOR_STATS_PICTURE  "s88888888888"

SHMIPC_EXPORT void
    shmipc_actor (zsock_t *pipe, void *args);

//  Set the ring capacity, in bytes, for the socket's next shm:// binds and
//  connects (default 1 MiB each way; rounded up to a power of two).
//  Returns 0 or -1/EINVAL.
SHMIPC_EXPORT int
    shmipc_set_capacity (void *self, size_t capacity);

//  Set the largest ring, in bytes, that the socket's next shm:// binds and
//  connects accept from a peer: the memory a peer can make us map and
//  read. Default: 64 MiB or our own capacity, whichever is larger (see
//  shmipc_channel_set_max_peer_capacity). A peer that offers more is
//  refused, and logged in verbose mode. Returns 0 or -1/EINVAL.
SHMIPC_EXPORT int
    shmipc_set_max_peer_capacity (void *self, size_t capacity);

//  Receive large frames (64 KiB and up) from the socket's next shm://
//  binds and connects without a copy: the frames ZeroMQ hands the
//  application then point into the peer's ring, mapped read-only, and
//  their space goes back to the peer when ZeroMQ frees them, in any
//  order. Only for peers you trust: the peer (same uid by default) can
//  still change those bytes while you read them, and writing into such a
//  frame's data crashes the program (SIGSEGV). While the application holds
//  more than half of the sender's ring (or 64 frames), further frames are
//  copied, so the connection never stalls. Off by default; SHMIPC_ZEROCOPY=1 in the
//  environment turns it on for every socket (e.g. under shmipc-run).
//  Returns 0 or -1 with errno.
SHMIPC_EXPORT int
    shmipc_set_zerocopy (void *self, bool on);

//  Return a frame of size bytes whose data lies in the socket's loan pool:
//  shared memory that its shm:// peers map read-only. Fill it, then send
//  it with the ordinary calls (zframe_send, zmsg_send...): to a shm://
//  peer only its place in the pool travels, never its bytes (to a tcp://
//  or ipc:// peer of the same socket, libzmq sends the bytes as usual).
//  Its block goes back to the pool once ZeroMQ and every shm:// peer are
//  done with it. Under 4 KiB, before the socket's first shm:// bind or
//  connect, or when the pool (four times the socket's ring capacity, at
//  least 4 MiB, or shmipc_set_loan_pool; made at the first loan) has no
//  room left, it is an ordinary frame: a copy later, never a failure.
//  Returns NULL only where zframe_new would.
SHMIPC_EXPORT zframe_t *
    shmipc_frame_new (void *self, size_t size);

//  Set the size of the socket's loan pool, in bytes (rounded up to 4 KiB,
//  at most 1 GiB), before its first loan. The default, four rings, runs
//  dry when the application queues more large frames than that (up to
//  ZMQ_SNDHWM of them): then frames are ordinary copies. The pool is
//  shared memory allocated whole when it is made. Returns 0 or -1 with
//  errno: EINVAL (size), EBUSY (the pool exists).
SHMIPC_EXPORT int
    shmipc_set_loan_pool (void *self, size_t size);

//  The same for a raw zmq_msg_t (zmq_msg_init_size's contract): msg gets
//  a block of the socket's loan pool, or ordinary memory. Returns 0 or -1
//  with errno.
SHMIPC_EXPORT int
    shmipc_msg_init_loan (zmq_msg_t *msg, void *self, size_t size);

//  Also let peers running as uid talk to the socket's next shm:// binds
//  and connects: connect to it, or serve it. By default only our own
//  effective uid and root may; others are refused (and logged in verbose
//  mode). For a path endpoint the socket file's permissions (owner-only
//  by default) apply as well. At most 16 uids; returns 0 or -1/ENOSPC.
SHMIPC_EXPORT int
    shmipc_allow_uid (void *self, uid_t uid);

//  Return the actor serving the socket's shm:// endpoints, or NULL. Send it
//  commands (e.g. "STATS") as to any czmq actor.
SHMIPC_EXPORT zactor_t *
    shmipc_sock_actor (void *self);

//  Fill stats with the socket's shm:// counters (zeros if it has no shm://
//  endpoint). Returns 0 or -1 with errno.
SHMIPC_EXPORT int
    shmipc_sock_stats (void *self, shmipc_stats_t *stats);

#ifdef __cplusplus
}
#endif

#endif
