/*  =========================================================================
    bridge - bridge sockets: made in czmq's context, connected to the
    user socket's private inproc endpoint, closed, and asked for events

    Owns nothing (see bridge.h).
    =========================================================================
*/

#include "bridge.h"
#include "real.h"

#include <errno.h>

//  Set an int option; returns 0 or -1.
static int
s_set_int (void *handle, int option, int value)
{
    return zmq_setsockopt (handle, option, &value, sizeof value);
}

void *
shmipc__bridge_new (const shmipc__sockinfo_t *info,
                    const uint8_t *routing_id, size_t routing_id_size)
{
    int type = shmipc__bridge_type (info->type);
    if (type < 0) {
        errno = EINVAL;
        return NULL;
    }
    //  The user socket's context (inproc connects only within one)
    void *bridge = zmq_socket (info->context, type);
    if (!bridge) {
        errno = zmq_errno ();
        return NULL;
    }
    //  inproc gives the pipe to the user's socket the sum of both ends'
    //  high-water marks, and the user's end brings the user's own: the
    //  bridge adds as little as it can (0 would lift the limit altogether).
    //  Linger 0, as czmq gives its sockets by default.
    int rc = s_set_int (bridge, ZMQ_LINGER, 0)
          || s_set_int (bridge, ZMQ_SNDHWM, 1)
          || s_set_int (bridge, ZMQ_RCVHWM, 1)
          || (type == ZMQ_XPUB && s_set_int (bridge, ZMQ_XPUB_VERBOSER, 1));
    //  The user's socket sees the remote's routing id, as over the wire
    if (rc == 0 && routing_id_size
    &&  zmq_setsockopt (bridge, ZMQ_ROUTING_ID, routing_id, routing_id_size)) {
        shmipc__bridge_destroy (&bridge);
        errno = EPROTO;
        return NULL;
    }
    if (rc || zmq_connect (bridge, info->inproc)) {
        int saved = zmq_errno ();
        shmipc__bridge_destroy (&bridge);
        errno = saved;
        return NULL;
    }
    return bridge;
}

void
shmipc__bridge_destroy (void **self_p)
{
    assert (self_p);
    if (*self_p) {
        //  Disconnect first: that ends the pipe at the user's socket from
        //  this thread, before we answer the command that closed us, so a
        //  user who disconnects and sends at once never sends into it
        //  (zmq_close would leave that to libzmq's reaper thread, later)
        char inproc [SHMIPC__INPROC_MAX];
        size_t size = sizeof inproc;
        if (zmq_getsockopt (*self_p, ZMQ_LAST_ENDPOINT, inproc, &size) == 0
        &&  size > 1)
            zmq_disconnect (*self_p, inproc);
        zmq_close (*self_p);
        *self_p = NULL;
    }
}

int
shmipc__bridge_events (void *self)
{
    int events = 0;
    size_t size = sizeof events;
    //  libzmq's own: this runs for every connection on every turn of the
    //  actor, and a bridge needs nothing of what stands in front of it
    if (shmipc__real ()->getsockopt (self, ZMQ_EVENTS, &events, &size))
        return 0;
    return events;
}
