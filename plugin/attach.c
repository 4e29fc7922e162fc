/*  =========================================================================
    attach - shm:// endpoints of one libzmq socket (see attach.h)

    Owns nothing. The options the actor needs are a snapshot of the user's
    socket taken here, in its thread (libzmq sockets are not thread-safe).
    =========================================================================
*/

#include "attach.h"
#include "registry.h"
#include "endpoint.h"
#include "real.h"

#include <limits.h>

//  Return where endpoint is: a relative path made absolute against the
//  working directory now; otherwise endpoint itself (shm://*, absolute
//  paths, abstract names). Fresh, or NULL with errno.
static char *
s_address (const char *endpoint)
{
    const char *rest = endpoint + strlen ("shm://");
    if (rest [0] == '/' || rest [0] == '@' || rest [0] == 0 || streq (rest, "*"))
        return strdup (endpoint);
    char cwd [PATH_MAX];
    char *address = NULL;
    if (!getcwd (cwd, sizeof cwd))
        return NULL;
    if (asprintf (&address, "shm://%s/%s", cwd, rest) == -1) {
        errno = ENOMEM;
        return NULL;
    }
    return address;
}

int
shmipc__attach (void *handle, bool bind, const char *endpoint)
{
    int type = shmipc__int_option (handle, ZMQ_TYPE);
    if (!shmipc__type_supported (type)) {
        errno = ENOCOMPATPROTO;
        return -1;
    }
    char *address = s_address (endpoint);
    if (!address)
        return -1;
    //  Refuse what cannot be an endpoint before any actor starts; the
    //  wildcard only binds
    struct sockaddr_un addr;
    socklen_t addr_len;
    bool wildcard = streq (address, "shm://*");
    if ((wildcard && !bind)
    ||  (!wildcard && shmipc__endpoint_parse (address, &addr, &addr_len))) {
        free (address);
        errno = EINVAL;
        return -1;
    }
    shmipc__entry_t *entry = shmipc__registry_require (handle, true);
    if (!entry) {
        free (address);
        return -1;
    }
    uint8_t routing_id [SHMIPC__ROUTING_ID_MAX];
    size_t routing_id_size = sizeof routing_id;
    if (shmipc__real ()->getsockopt (handle, ZMQ_ROUTING_ID, routing_id, &routing_id_size))
        routing_id_size = 0;
    int64_t maxmsgsize = -1;
    size_t maxmsgsize_size = sizeof maxmsgsize;
    if (shmipc__real ()->getsockopt (handle, ZMQ_MAXMSGSIZE, &maxmsgsize, &maxmsgsize_size))
        maxmsgsize = -1;
    entry->linger = shmipc__int_option (handle, ZMQ_LINGER);
    SHMIPC__SEND (entry->actor, "s" SHMIPC_ACTOR_ATTACH_PICTURE,
                  bind ? "BIND" : "CONNECT", endpoint, address, entry->inproc,
                  entry->context, routing_id, routing_id_size, type,
                  shmipc__int_option (handle, ZMQ_SNDHWM), shmipc__int_option (handle, ZMQ_RCVHWM),
                  shmipc__int_option (handle, ZMQ_RECONNECT_IVL),
                  shmipc__int_option (handle, ZMQ_RECONNECT_IVL_MAX),
                  shmipc__int_option (handle, ZMQ_IMMEDIATE), (uint64_t) entry->capacity,
                  (uint64_t) (maxmsgsize > 0 ? maxmsgsize : 0),
                  (uint64_t) entry->max_peer_capacity, entry->zerocopy ? 1 : 0,
                  (byte *) entry->uids.items, entry->uids.count * sizeof (uid_t));
    free (address);
    //  The reply: a status, and the endpoint as attached (for shm://*, the
    //  path made)
    int status = 0;
    char *attached = NULL;
    int rc;
    do
        rc = zsock_recv (entry->actor, SHMIPC_ACTOR_ATTACH_REPLY, &status, &attached);
    while (rc == -1 && zmq_errno () == EINTR);
    if (rc || status || !attached) {
        free (attached);
        errno = rc ? zmq_errno () : status ? status : EPROTO;
        return -1;
    }
    shmipc__registry_set_last (entry, attached);
    //  The actor may have connected a bridge: attach it now, in the user's
    //  thread, as zmq_connect attaches its pipe at once (ZMQ_EVENTS makes
    //  the socket process its commands)
    shmipc__int_option (handle, ZMQ_EVENTS);
    return 0;
}

int
shmipc__detach (void *handle, bool bind, const char *endpoint)
{
    shmipc__entry_t *entry = shmipc__registry_find (handle);
    if (!entry) {
        errno = ENOENT;
        return -1;
    }
    SHMIPC__SEND (entry->actor, "ss", bind ? "UNBIND" : "DISCONNECT", endpoint);
    if (shmipc__entry_wait (entry))
        return -1;
    //  The bridges are gone, their pipes ended: let the socket see it now,
    //  as zmq_disconnect ends its own pipes at once, so the next send
    //  never goes to a connection that is no more
    shmipc__int_option (handle, ZMQ_EVENTS);
    return 0;
}
