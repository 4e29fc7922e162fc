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

//  Ring bytes per direction for new connections, until shmipc_set_capacity.
#define SHMIPC__DEFAULT_CAPACITY  (1UL << 20)

//  What we keep about one user socket.
typedef struct _shmipc__entry_t {
    zsock_t *sock;                  //  The user's socket (not owned)
    void *handle;                   //  Its libzmq socket
    zactor_t *actor;                //  Its actor; owned
    char inproc [SHMIPC__INPROC_MAX];   //  Its private inproc endpoint
    bool bound;                     //  The socket is bound to it
    size_t capacity;                //  Ring bytes for new connections
    size_t max_peer_capacity;       //  Largest peer ring accepted (0: the
                                    //  channel's default)
    shmipc__uids_t uids;            //  Extra uids allowed
    int linger;                     //  Closed: its ZMQ_LINGER, for the reaper
    struct _shmipc__entry_t *next;        //  Next in the registry, or in the
                                    //  reaper's queue
} shmipc__entry_t;

//  Return the entry for sock, or NULL.
shmipc__entry_t *
    shmipc__registry_find (zsock_t *sock);

//  Return the entry for sock, creating it (starting the actor) if needed.
//  With bind, also bind the socket to its inproc endpoint, once: at its
//  first shm:// bind or connect, not before, because libzmq takes the
//  options the bridges' pipes get (the high-water marks) from the socket
//  as it is when it binds. Returns NULL with errno.
shmipc__entry_t *
    shmipc__registry_require (zsock_t *sock, bool bind);

//  Remove and return the entry for sock (or, if sock is NULL, for the
//  libzmq socket handle), or NULL.
shmipc__entry_t *
    shmipc__registry_remove (zsock_t *sock, void *handle);

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
