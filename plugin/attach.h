/*  =========================================================================
    attach - shm:// bind, connect, unbind and disconnect of one libzmq
    socket, from any context: the one path both public APIs take (the
    czmq-shaped shmipc_sock.c and the libzmq-shaped shmipc_zmq.c)

    Owns nothing: it talks to the socket's actor (registry.h) with the
    command protocol of shmipc.h, in the caller's (the socket's) thread.
    =========================================================================
*/

#ifndef SHMIPC_ATTACH_H_INCLUDED
#define SHMIPC_ATTACH_H_INCLUDED

#include <stdbool.h>

//  Bind (bind) or connect handle to the shm:// endpoint. A relative path
//  is made absolute here, against the working directory now, as libzmq's
//  ipc:// does at the call; shm://* binds a fresh path. Returns 0 or -1
//  with errno (EINVAL, EADDRINUSE, ENOCOMPATPROTO...).
int
    shmipc__attach (void *handle, bool bind, const char *endpoint);

//  Unbind (bind) or disconnect handle from the shm:// endpoint, named as
//  it was attached (or as ZMQ_LAST_ENDPOINT showed it). Returns 0 or -1
//  with errno (ENOENT if it was not attached).
int
    shmipc__detach (void *handle, bool bind, const char *endpoint);

#endif
