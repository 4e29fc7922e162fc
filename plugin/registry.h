/*  =========================================================================
    registry.h - the registry of user sockets with shm:// endpoints and
    their actors (registry.c), for the public API (shmipc_sock.c)

    Owns nothing by itself: an entry belongs to the registry while it is
    in it, and to whoever removed it afterwards.
    =========================================================================
*/

#ifndef SHMIPC_REGISTRY_H_INCLUDED
#define SHMIPC_REGISTRY_H_INCLUDED

#include "shmipc.h"
#include "greeting.h"
#include "util.h"
#include "shmipc_loans.h"

//  Ring bytes per direction for new connections, until shmipc_set_capacity.
#define SHMIPC__DEFAULT_CAPACITY  (1UL << 20)

//  What we keep about one user socket.
typedef struct _shmipc__entry_t {
    void *handle;                   //  The user's libzmq socket (not owned)
    void *context;                  //  Its context, where bridges are made
    zactor_t *actor;                //  Its actor; owned
    char inproc [SHMIPC__INPROC_MAX];   //  Its private inproc endpoint
    bool bound;                     //  The socket is bound to it
    bool reaping;                   //  Closed: a reaper has its actor
    size_t capacity;                //  Ring bytes for new connections
    size_t max_peer_capacity;       //  Largest peer ring accepted (0: the
                                    //  channel's default)
    shmipc_loans_t *loans;          //  Its loan pool, made at the first
                                    //  loan (loan.c); held
    size_t loan_pool;               //  Its size if set (0: the default)
    void *loop [2];                 //  Inproc pair that turns a loaned
                                    //  zmq_msg_t into a zframe_t (raw
                                    //  libzmq sockets), or NULL
    bool zerocopy;                  //  Zero-copy receive for new
                                    //  connections (shmipc_set_zerocopy)
    shmipc__uids_t uids;            //  Extra uids allowed
    int linger;                     //  Its ZMQ_LINGER: as of the last
                                    //  attach, and when it closed
    char *last_endpoint;            //  Our last shm:// bind or connect,
                                    //  as ZMQ_LAST_ENDPOINT shows it; owned
    char *native_last;              //  libzmq's ZMQ_LAST_ENDPOINT just
                                    //  after it: while that stays, ours is
                                    //  the latest; owned
    struct _shmipc__entry_t *next;  //  Next in the registry, or among
                                    //  the closed ones being ended
} shmipc__entry_t;

//  Return the entry for the libzmq socket handle, or NULL.
shmipc__entry_t *
    shmipc__registry_find (void *handle);

//  Return the entry for handle, creating it (starting the actor) if needed.
//  With bind, also bind the socket to its inproc endpoint, once: at its
//  first shm:// bind or connect, not before, because libzmq takes the
//  options the bridges' pipes get (the high-water marks) from the socket
//  as it is when it binds; and learn its context then. Returns NULL with
//  errno.
shmipc__entry_t *
    shmipc__registry_require (void *handle, bool bind);

//  Remove and return the entry for handle, or NULL.
shmipc__entry_t *
    shmipc__registry_remove (void *handle);

//  Close a libzmq socket (zmq_close), stopping its actor if it has one:
//  STOP now, then the linger and the actor's end in a reaper thread of
//  its own.
//  Returns what libzmq's zmq_close returns.
int
    shmipc__registry_close (void *handle);

//  Before libzmq terminates context (or shuts it down): wait for the
//  reapers to finish the actors of its closed sockets (their bridges live
//  in that context, and need it while they linger), then stop the actors
//  of its sockets still open, each with its last known linger, so that no
//  bridge of ours keeps the context waiting.
void
    shmipc__registry_end_context (void *context);

//  ZMQ_LAST_ENDPOINT for handle: if its last bind or connect was an shm://
//  one, copy that endpoint into value (*size: its room in, the length
//  with the NUL out, as libzmq) and return 0 (or -1/EINVAL if it does not
//  fit); return 1 if libzmq's answer stands.
int
    shmipc__registry_last_endpoint (void *handle, void *value, size_t *size);

//  Note endpoint (fresh; taken) as the handle's latest shm:// bind or
//  connect, for ZMQ_LAST_ENDPOINT.
void
    shmipc__registry_set_last (shmipc__entry_t *entry, char *endpoint);

//  Wait for the actor's signal, through signals (EINTR). Returns the
//  status, or -1 with errno if the context is terminating.
int
    shmipc__actor_wait (zactor_t *actor);

//  Wait for the entry's actor's signal; a non-zero status becomes
//  -1/errno.
int
    shmipc__entry_wait (shmipc__entry_t *entry);

//  Stop an entry's actor, around closing its user socket: begin (STOP: no
//  new bridge), close the socket, then end (LINGER ms, $TERM, and the
//  entry freed). The entry is out of the registry already.
void
    shmipc__entry_stop_begin (shmipc__entry_t *entry);
void
    shmipc__entry_stop_end (shmipc__entry_t *entry, int linger);

//  Send a command (a zsock_send picture and its arguments), retried while
//  a signal interrupts it: an interrupted send sent nothing (libzmq checks
//  the high-water mark on a message's first frame only).
#define SHMIPC__SEND(actor, ...)                                            \
    do {                                                                    \
        if (zsock_send ((actor), __VA_ARGS__) == 0)                         \
            break;                                                          \
    } while (zmq_errno () == EINTR)

#endif
