/*  =========================================================================
    contexts - which libzmq context each socket was made in

    libzmq cannot tell a socket's context, and a bridge must be made in the
    same one (inproc connects only there): so libshmipc notes each socket's
    context as zmq_socket makes it (interpose.c), and forgets it at
    zmq_close. Owns: the table (a hash of socket -> context).
    =========================================================================
*/

#ifndef SHMIPC_CONTEXTS_H_INCLUDED
#define SHMIPC_CONTEXTS_H_INCLUDED

//  Note that socket belongs to context. Returns 0, or -1/ENOMEM (the
//  socket then works, but not with shm:// endpoints).
int
    shmipc__contexts_add (void *socket, void *context);

//  Forget socket (it is closed).
void
    shmipc__contexts_remove (void *socket);

//  Return socket's context, or NULL if it was made before libshmipc was
//  loaded or outside our zmq_socket.
void *
    shmipc__contexts_find (void *socket);

#endif
