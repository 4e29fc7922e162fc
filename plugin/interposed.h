/*  =========================================================================
    interposed - the libzmq names libshmipc and its preload library define
    in front of libzmq's, each as the shmipc_zmq_* call that does its work

    One list for every place that names them: interpose.c (inside
    libshmipc: what a program linked with it needs for its own sockets to
    close, terminate and report right), preload.c (libshmipc-preload.so,
    for programs that cannot be changed: the same, plus the endpoint calls
    that route shm://), and real.c (the tables of a libzmq's own functions,
    the system one's and any private copy's).
    X (return type, libzmq's name, ours, the field of shmipc__real_t,
       what a failure returns, parameters, arguments)
    =========================================================================
*/

#ifndef SHMIPC_INTERPOSED_H_INCLUDED
#define SHMIPC_INTERPOSED_H_INCLUDED


//  In libshmipc and the preload library: sockets, close, options, contexts
#define SHMIPC__INTERPOSED_ALWAYS(X)                                        \
    X (void *, zmq_socket, shmipc_zmq_socket, socket, NULL,                       \
       (void *context, int type), (context, type))                          \
    X (int, zmq_close, shmipc_zmq_close, close, -1, (void *socket), (socket))   \
    X (int, zmq_getsockopt, shmipc_zmq_getsockopt, getsockopt, -1,              \
       (void *socket, int option, void *value, size_t *size),               \
       (socket, option, value, size))                                       \
    X (int, zmq_ctx_term, shmipc_zmq_ctx_term, ctx_term, -1, (void *context),   \
       (context))                                                           \
    X (int, zmq_ctx_destroy, shmipc_zmq_ctx_term, ctx_destroy, -1,              \
       (void *context), (context))                                          \
    X (int, zmq_term, shmipc_zmq_ctx_term, term, -1, (void *context), (context)) \
    X (int, zmq_ctx_shutdown, shmipc_zmq_ctx_shutdown, ctx_shutdown, -1,        \
       (void *context), (context))

//  In the preload library only: shm:// endpoints in unchanged programs
#define SHMIPC__INTERPOSED_ENDPOINTS(X)                                     \
    X (int, zmq_bind, shmipc_zmq_bind, bind, -1,                                \
       (void *socket, const char *endpoint), (socket, endpoint))            \
    X (int, zmq_connect, shmipc_zmq_connect, connect, -1,                       \
       (void *socket, const char *endpoint), (socket, endpoint))            \
    X (int, zmq_unbind, shmipc_zmq_unbind, unbind, -1,                          \
       (void *socket, const char *endpoint), (socket, endpoint))            \
    X (int, zmq_disconnect, shmipc_zmq_disconnect, disconnect, -1,              \
       (void *socket, const char *endpoint), (socket, endpoint))

#endif
