/*  =========================================================================
    interpose - libzmq's socket, close, getsockopt and context terminate
    calls, defined inside libshmipc in front of libzmq's (interposed.h)

    Owns nothing. A program linked with libshmipc (before libzmq, as
    pkg-config orders the libraries) reaches these from its own code and
    from czmq's, so zsock_destroy, zmq_close and zmq_ctx_term do right by
    sockets with shm:// endpoints, and zmq_socket notes every socket's
    context for the bridges. Endpoints are not routed here: a linked
    program asks for shm:// by calling shmipc_bind (or shmipc_zmq_bind).
    =========================================================================
*/

#include "shmipc.h"
#include "interposed.h"
#include "callers.h"

//  Define name as a call of ours; but a caller linked with a libzmq of its
//  own (callers.h) gets that one's function, untouched.
#define S_INTERPOSE(type, name, ours, field, fail, parameters, arguments) \
    SHMIPC_EXPORT type name parameters;                                     \
    type name parameters                                                    \
    {                                                                       \
        const shmipc__real_t *foreign =                                     \
            shmipc__callers_foreign (__builtin_return_address (0), (void *) name); \
        if (foreign)                                                        \
            return foreign->field arguments;                                \
        return ours arguments;                                              \
    }

SHMIPC__INTERPOSED_ALWAYS (S_INTERPOSE)
