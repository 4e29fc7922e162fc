/*  =========================================================================
    shmipc_zmq - shm:// endpoints through calls shaped as libzmq's: the
    public shmipc_zmq_* API, which the names libshmipc interposes
    (interpose.c) and the preload library (preload.c) call

    Owns nothing: shm:// endpoints take attach.c's path, sockets and
    contexts the registry's and the context table's; everything else goes
    to libzmq's own functions (real.c) unchanged.
    =========================================================================
*/

#include "shmipc.h"
#include "attach.h"
#include "contexts.h"
#include "registry.h"
#include "real.h"

void *
shmipc_zmq_socket (void *context, int type)
{
    void *socket = shmipc__real ()->socket (context, type);
    //  A socket we could not note works, but not with shm:// (attach says
    //  so then): nothing here may fail a program that never uses shm://
    if (socket)
        shmipc__contexts_add (socket, context);
    return socket;
}

int
shmipc_zmq_bind (void *socket, const char *endpoint)
{
    if (shmipc_endpoint_is_shm (endpoint))
        return shmipc__attach (socket, true, endpoint);
    return shmipc__real ()->bind (socket, endpoint);
}

int
shmipc_zmq_connect (void *socket, const char *endpoint)
{
    if (shmipc_endpoint_is_shm (endpoint))
        return shmipc__attach (socket, false, endpoint);
    return shmipc__real ()->connect (socket, endpoint);
}

int
shmipc_zmq_unbind (void *socket, const char *endpoint)
{
    if (shmipc_endpoint_is_shm (endpoint))
        return shmipc__detach (socket, true, endpoint);
    return shmipc__real ()->unbind (socket, endpoint);
}

int
shmipc_zmq_disconnect (void *socket, const char *endpoint)
{
    if (shmipc_endpoint_is_shm (endpoint))
        return shmipc__detach (socket, false, endpoint);
    return shmipc__real ()->disconnect (socket, endpoint);
}

int
shmipc_zmq_close (void *socket)
{
    return shmipc__registry_close (socket);
}

int
shmipc_zmq_getsockopt (void *socket, int option, void *value, size_t *size)
{
    //  The hot path (ZMQ_EVENTS, ZMQ_FD) goes straight through
    if (option == ZMQ_LAST_ENDPOINT && value && size) {
        int rc = shmipc__registry_last_endpoint (socket, value, size);
        if (rc <= 0)
            return rc;
    }
    return shmipc__real ()->getsockopt (socket, option, value, size);
}

int
shmipc_zmq_ctx_term (void *context)
{
    shmipc__registry_end_context (context);
    return shmipc__real ()->ctx_term (context);
}

int
shmipc_zmq_ctx_shutdown (void *context)
{
    shmipc__registry_end_context (context);
    return shmipc__real ()->ctx_shutdown (context);
}
