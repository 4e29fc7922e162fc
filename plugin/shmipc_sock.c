/*  =========================================================================
    shmipc_sock - shm:// endpoints on genuine czmq sockets: the public API

    Owns nothing of its own: each call finds (or makes) the socket's entry
    in the registry (registry.c), and shm:// endpoints take the one path of
    attach.c. The user's socket stays the user's: we bind it once to its
    private inproc endpoint, in the caller's thread, and the actor's bridge
    sockets connect there. Every other scheme goes to czmq (for a zsock_t)
    or libzmq (for a raw socket) unchanged. self is polymorphic, as in
    czmq's option calls: a zsock_t, a zactor_t or a raw libzmq socket.
    =========================================================================
*/

#include "registry.h"
#include "attach.h"
#include "real.h"

#include <stdarg.h>

//  Format an endpoint; NULL with errno on failure.
static char *
s_format (const char *format, va_list args)
{
    char *endpoint = zsys_vprintf (format, args);
    if (!endpoint)
        errno = ENOMEM;
    return endpoint;
}

//  The four kinds of endpoint operation, shm:// and libzmq's.
typedef enum { S_BIND, S_CONNECT, S_UNBIND, S_DISCONNECT } s_operation_t;

//  Do operation on another scheme's endpoint: through czmq for a zsock_t
//  (zsock_endpoint stays right), else through libzmq.
static int
s_native (void *self, s_operation_t operation, const char *endpoint)
{
    if (zsock_is (self)) {
        zsock_t *sock = (zsock_t *) self;
        return operation == S_BIND ? zsock_bind (sock, "%s", endpoint)
             : operation == S_CONNECT ? zsock_connect (sock, "%s", endpoint)
             : operation == S_UNBIND ? zsock_unbind (sock, "%s", endpoint)
             : zsock_disconnect (sock, "%s", endpoint);
    }
    const shmipc__real_t *real = shmipc__real ();
    void *handle = zsock_resolve (self);
    return operation == S_BIND ? real->bind (handle, endpoint)
         : operation == S_CONNECT ? real->connect (handle, endpoint)
         : operation == S_UNBIND ? real->unbind (handle, endpoint)
         : real->disconnect (handle, endpoint);
}

//  Do operation on the formatted endpoint: shm:// ones through the actor,
//  every other scheme through czmq or libzmq. Returns 0 or -1 with errno.
static int
s_operate (void *self, s_operation_t operation, const char *format, va_list args)
{
    void *handle = zsock_resolve (self);
    if (!handle) {
        errno = ENOTSOCK;
        return -1;
    }
    char *endpoint = s_format (format, args);
    if (!endpoint)
        return -1;
    int rc;
    if (shmipc_endpoint_is_shm (endpoint))
        rc = operation <= S_CONNECT ? shmipc__attach (handle, operation == S_BIND, endpoint)
                                    : shmipc__detach (handle, operation == S_UNBIND, endpoint);
    else {
        rc = s_native (self, operation, endpoint);
        if (rc == -1)
            errno = zmq_errno ();
    }
    free (endpoint);
    return rc;
}

int
shmipc_bind (void *self, const char *format, ...)
{
    assert (self);
    assert (format);
    va_list args;
    va_start (args, format);
    int rc = s_operate (self, S_BIND, format, args);
    va_end (args);
    return rc;
}

int
shmipc_connect (void *self, const char *format, ...)
{
    assert (self);
    assert (format);
    va_list args;
    va_start (args, format);
    int rc = s_operate (self, S_CONNECT, format, args);
    va_end (args);
    return rc;
}

int
shmipc_unbind (void *self, const char *format, ...)
{
    assert (self);
    assert (format);
    va_list args;
    va_start (args, format);
    int rc = s_operate (self, S_UNBIND, format, args);
    va_end (args);
    return rc;
}

int
shmipc_disconnect (void *self, const char *format, ...)
{
    assert (self);
    assert (format);
    va_list args;
    va_start (args, format);
    int rc = s_operate (self, S_DISCONNECT, format, args);
    va_end (args);
    return rc;
}

int
shmipc_attach (void *self, const char *endpoints, bool serverish)
{
    assert (self);
    if (!endpoints)
        return 0;
    //  Same grammar as zsock_attach: '@' binds, '>' connects, commas apart
    char endpoint [256];
    while (*endpoints) {
        const char *delimiter = strchr (endpoints, ',');
        if (!delimiter)
            delimiter = endpoints + strlen (endpoints);
        size_t size = (size_t) (delimiter - endpoints);
        if (size > 255) {
            errno = EINVAL;
            return -1;
        }
        memcpy (endpoint, endpoints, size);
        endpoint [size] = 0;
        int rc;
        if (endpoint [0] == '@')
            rc = shmipc_bind (self, "%s", endpoint + 1);
        else
        if (endpoint [0] == '>')
            rc = shmipc_connect (self, "%s", endpoint + 1);
        else
        if (serverish)
            rc = shmipc_bind (self, "%s", endpoint);
        else
            rc = shmipc_connect (self, "%s", endpoint);
        if (rc == -1)
            return -1;
        if (*delimiter == 0)
            break;
        endpoints = delimiter + 1;
    }
    return 0;
}

//  Return true if zsock_new_<type> binds endpoints that carry no prefix.
static bool
s_serverish (int type)
{
    return type == ZMQ_PUB || type == ZMQ_REP || type == ZMQ_ROUTER
        || type == ZMQ_PULL || type == ZMQ_XPUB;
}

zsock_t *
shmipc_sock_new (int type, const char *endpoints)
{
    //  czmq asserts on a type libzmq does not know: refuse it here instead
    if (type < ZMQ_PAIR || type > ZMQ_STREAM) {
        errno = EINVAL;
        return NULL;
    }
    zsock_t *self = zsock_new (type);
    if (!self) {
        errno = zmq_errno () ? zmq_errno () : EINVAL;
        return NULL;
    }
    if (shmipc_attach (self, endpoints, s_serverish (type))) {
        int saved = errno;
        shmipc_sock_destroy (&self);
        errno = saved;
        return NULL;
    }
    return self;
}

void
shmipc_sock_destroy (zsock_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zsock_t *self = *self_p;
        shmipc__entry_t *entry = shmipc__registry_remove (zsock_resolve (self));
        int linger = zsock_linger (self);
        if (entry)
            shmipc__entry_stop_begin (entry);
        zsock_destroy (self_p);
        if (entry)
            shmipc__entry_stop_end (entry, linger);
    }
}

int
shmipc_set_capacity (void *self, size_t capacity)
{
    assert (self);
    if (capacity < SHMIPC_RING_MIN || capacity > SHMIPC_RING_MAX) {
        errno = EINVAL;
        return -1;
    }
    shmipc__entry_t *entry = shmipc__registry_require (zsock_resolve (self), false);
    if (!entry)
        return -1;
    entry->capacity = capacity;
    return 0;
}

int
shmipc_set_max_peer_capacity (void *self, size_t capacity)
{
    assert (self);
    if (capacity < SHMIPC_RING_MIN || capacity > SHMIPC_RING_MAX) {
        errno = EINVAL;
        return -1;
    }
    shmipc__entry_t *entry = shmipc__registry_require (zsock_resolve (self), false);
    if (!entry)
        return -1;
    entry->max_peer_capacity = capacity;
    return 0;
}

int
shmipc_set_zerocopy (void *self, bool on)
{
    assert (self);
    shmipc__entry_t *entry = shmipc__registry_require (zsock_resolve (self), false);
    if (!entry)
        return -1;
    entry->zerocopy = on;
    return 0;
}

int
shmipc_allow_uid (void *self, uid_t uid)
{
    assert (self);
    shmipc__entry_t *entry = shmipc__registry_require (zsock_resolve (self), false);
    if (!entry)
        return -1;
    return shmipc__uids_add (&entry->uids, uid);
}

zactor_t *
shmipc_sock_actor (void *self)
{
    assert (self);
    shmipc__entry_t *entry = shmipc__registry_find (zsock_resolve (self));
    return entry ? entry->actor : NULL;
}

int
shmipc_sock_stats (void *self, shmipc_stats_t *stats)
{
    assert (self);
    assert (stats);
    memset (stats, 0, sizeof *stats);
    zactor_t *actor = shmipc_sock_actor (self);
    if (!actor)
        return 0;               //  No shm:// endpoint: nothing to count
    SHMIPC__SEND (actor, "s", "STATS");
    //  The totals, with the picture they were sent with (the per-connection
    //  frames that follow are dropped)
    char *head = NULL;
    int rc;
    do
        rc = zsock_recv (actor, SHMIPC_ACTOR_STATS_PICTURE, &head, &stats->peers,
                         &stats->accepted, &stats->connected, &stats->closed,
                         &stats->errors, &stats->msgs_out, &stats->bytes_out,
                         &stats->msgs_in, &stats->bytes_in, &stats->wakeups,
                         &stats->frames_lent);
    while (rc == -1 && zmq_errno () == EINTR);
    if (rc == 0 && (!head || !streq (head, "STATS"))) {
        memset (stats, 0, sizeof *stats);
        errno = EPROTO;
        rc = -1;
    }
    free (head);
    return rc;
}
