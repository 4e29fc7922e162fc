/*  =========================================================================
    shmipc_sock - shm:// endpoints on genuine czmq sockets

    Owns: a registry that maps each user socket with shm:// endpoints to
    its actor and private inproc endpoint. The user's socket stays the
    user's: we bind it once to its inproc endpoint, in the caller's thread,
    and the actor's bridge sockets connect there. Every other scheme goes to
    czmq unchanged.

    Careless users are served too:
      - plain zsock_destroy (or zmq_close) on a socket with shm://
        endpoints: libshmipc defines zmq_close, which czmq's and the
        program's calls reach before libzmq's (libshmipc comes before
        libzmq in the link order pkg-config gives); it stops the socket's
        actor as shmipc_sock_destroy would, then calls libzmq's. So a
        closed socket never leaves a registry entry that a new socket at
        the same address could pick up;
      - returning from main with live shm:// sockets: an exit handler,
        registered after czmq's and so run before it, stops every actor
        (honouring each socket's linger) before czmq closes what is left;
      - signals: commands to the actor are retried on EINTR, and every
        reply is waited for, so a reply always belongs to its command.
    =========================================================================
*/

#include "shmipc.h"
#include "greeting.h"
#include "endpoint.h"
#include "util.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/resource.h>

#define S_DEFAULT_CAPACITY  (1UL << 20)

//  libzmq's own socket limit (ZMQ_SOCKET_LIMIT with epoll): every shm://
//  connection needs a bridge socket, so czmq's default of 1,024 would cap
//  a server at about a thousand connections.
#define S_SOCKET_LIMIT      65535

//  What we keep about one user socket.
typedef struct _s_entry_t {
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
    struct _s_entry_t *next;        //  Next in the registry, or in the
                                    //  reaper's queue
} s_entry_t;

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static s_entry_t *s_entries = NULL;     //  The registry
static unsigned s_counter = 0;          //  For unique inproc names
static bool s_exit_handler = false;     //  s_at_exit is registered
static s_entry_t *s_closed = NULL;      //  Closed sockets' actors, queued
                                        //  for the reaper
static bool s_reaping = false;          //  The reaper thread runs
static pthread_cond_t s_reaped = PTHREAD_COND_INITIALIZER;
                                        //  Signalled when it ends

static void s_at_exit (void);

//  In a child after fork: the actors (threads) did not come along, nor did
//  czmq's context, which czmq makes anew (registering its exit handler
//  again, after ours): forget the parent's entries, and register our
//  handler again at the child's first shm:// socket, so it still runs
//  before czmq's. The parent's sockets are not the child's to close.
static void
s_forget_after_fork (void)
{
    s_entries = NULL;
    s_closed = NULL;
    s_reaping = false;
    s_exit_handler = false;
    pthread_mutex_init (&s_lock, NULL);
    pthread_cond_init (&s_reaped, NULL);
}

//  Let czmq's context hold as many sockets as libzmq allows, or as the
//  descriptor limit could ever allow, whichever is less, unless the user
//  chose (ZSYS_MAX_SOCKETS). czmq reads it when it makes its context, at
//  the program's first socket: we run before main, so before that. Too
//  late if libshmipc is loaded after czmq made its context (dlopen).
__attribute__ ((constructor)) static void
s_raise_socket_limit (void)
{
    pthread_atfork (NULL, NULL, s_forget_after_fork);
    if (getenv ("ZSYS_MAX_SOCKETS"))
        return;
    struct rlimit limit;
    rlim_t max = S_SOCKET_LIMIT;
    if (getrlimit (RLIMIT_NOFILE, &limit) == 0 && limit.rlim_max < max)
        max = limit.rlim_max;
    if (max <= 1024)
        return;                 //  czmq's default is as good
    char value [16];
    snprintf (value, sizeof value, "%u", (unsigned) max);
    setenv ("ZSYS_MAX_SOCKETS", value, 0);
}

//  Return the entry for sock, or NULL. Caller holds s_lock.
static s_entry_t *
s_find (zsock_t *sock)
{
    for (s_entry_t *entry = s_entries; entry; entry = entry->next)
        if (entry->sock == sock)
            return entry;
    return NULL;
}

//  Return the entry for sock, creating it (start the actor) if needed.
//  With bind, also bind the socket to its inproc endpoint, once: at its
//  first shm:// bind or connect, not before, because libzmq takes the
//  options the bridges' pipes get (the high-water marks) from the socket
//  as it is when it binds. Returns NULL with errno.
static s_entry_t *
s_require (zsock_t *sock, bool bind)
{
    //  s_lock is never held across a czmq call: czmq calls our zmq_close
    //  with its own lock held, and ours takes s_lock
    pthread_mutex_lock (&s_lock);
    s_entry_t *entry = s_find (sock);
    pthread_mutex_unlock (&s_lock);
    if (!entry) {
        //  Only the socket's own thread may use it, so nobody adds an
        //  entry for it meanwhile
        entry = (s_entry_t *) zmalloc (sizeof *entry);
        if (!entry) {
            errno = ENOMEM;
            return NULL;
        }
        entry->sock = sock;
        entry->handle = zsock_resolve (sock);
        entry->capacity = S_DEFAULT_CAPACITY;
        entry->actor = zactor_new (shmipc_actor, NULL);
        if (!entry->actor) {
            free (entry);
            errno = ENOMEM;
            return NULL;
        }
        pthread_mutex_lock (&s_lock);
        snprintf (entry->inproc, sizeof entry->inproc, "inproc://shmipc-%d-%u",
                  (int) getpid (), s_counter++);
        entry->next = s_entries;
        s_entries = entry;
        //  After czmq's own handler (our socket exists, so czmq has
        //  registered it): ours runs first, while czmq still works
        bool handler = !s_exit_handler;
        s_exit_handler = true;
        pthread_mutex_unlock (&s_lock);
        if (handler)
            atexit (s_at_exit);
    }
    //  zmq_bind, not zsock_bind: zsock_endpoint stays the user's
    if (bind && !entry->bound) {
        if (zmq_bind (entry->handle, entry->inproc)) {
            errno = zmq_errno ();
            return NULL;
        }
        entry->bound = true;
    }
    return entry;
}

//  Remove and return the entry for sock (or, if sock is NULL, for the
//  libzmq socket handle), or NULL.
static s_entry_t *
s_remove (zsock_t *sock, void *handle)
{
    pthread_mutex_lock (&s_lock);
    s_entry_t *found = NULL;
    for (s_entry_t **link = &s_entries; *link; link = &(*link)->next)
        if (sock ? (*link)->sock == sock : (*link)->handle == handle) {
            found = *link;
            *link = found->next;
            break;
        }
    pthread_mutex_unlock (&s_lock);
    return found;
}

//  Wait for the actor's signal, through signals (EINTR): its reply must
//  never be left for the next command to read. Returns the status, or -1
//  with errno if the context is terminating.
static int
s_wait_signal (zactor_t *actor)
{
    while (true) {
        int status = zsock_wait (actor);
        if (status >= 0)
            return status;
        if (zmq_errno () != EINTR) {
            errno = zmq_errno ();
            return -1;
        }
    }
}

//  Wait for the actor's signal; turn a non-zero status into -1/errno.
static int
s_wait (s_entry_t *entry)
{
    int status = s_wait_signal (entry->actor);
    if (status <= 0)
        return status;
    errno = status;
    return -1;
}

//  Send a command (a zsock_send picture and its arguments), retried while
//  a signal interrupts it: an interrupted send sent nothing (libzmq checks
//  the high-water mark on a message's first frame only).
#define S_SEND(actor, ...)                                                  \
    do {                                                                    \
        if (zsock_send ((actor), __VA_ARGS__) == 0)                         \
            break;                                                          \
    } while (zmq_errno () == EINTR)

//  Send BIND or CONNECT with a snapshot of the user socket's options,
//  taken here, in the user's thread.
static int
s_attach (zsock_t *self, const char *command, const char *endpoint)
{
    if (!shmipc__type_supported (zsock_type (self))) {
        errno = ENOCOMPATPROTO;
        return -1;
    }
    struct sockaddr_un addr;
    socklen_t addr_len;
    if (shmipc__endpoint_parse (endpoint, &addr, &addr_len))
        return -1;
    s_entry_t *entry = s_require (self, true);
    if (!entry)
        return -1;
    void *handle = zsock_resolve (self);
    uint8_t routing_id [SHMIPC__ROUTING_ID_MAX];
    size_t routing_id_size = sizeof routing_id;
    if (zmq_getsockopt (handle, ZMQ_ROUTING_ID, routing_id, &routing_id_size))
        routing_id_size = 0;
    //  Not zsock_maxmsgsize: it returns an int, this is an int64_t
    int64_t maxmsgsize = -1;
    size_t maxmsgsize_size = sizeof maxmsgsize;
    if (zmq_getsockopt (handle, ZMQ_MAXMSGSIZE, &maxmsgsize, &maxmsgsize_size))
        maxmsgsize = -1;
    S_SEND (entry->actor, "s" SHMIPC_ACTOR_ATTACH_PICTURE, command, endpoint, entry->inproc,
            routing_id, routing_id_size, zsock_type (self),
            zsock_sndhwm (self), zsock_rcvhwm (self),
            zsock_reconnect_ivl (self), zsock_reconnect_ivl_max (self),
            zsock_immediate (self), (uint64_t) entry->capacity,
            (uint64_t) (maxmsgsize > 0 ? maxmsgsize : 0),
            (uint64_t) entry->max_peer_capacity,
            (byte *) entry->uids.items, entry->uids.count * sizeof (uid_t));
    if (s_wait (entry))
        return -1;
    //  The actor may have connected a bridge: attach it now, in the user's
    //  thread, as zmq_connect attaches its pipe at once (ZMQ_EVENTS makes
    //  the socket process its commands)
    zsock_events (self);
    return 0;
}

//  Send UNBIND or DISCONNECT for endpoint.
static int
s_detach (zsock_t *self, const char *command, const char *endpoint)
{
    pthread_mutex_lock (&s_lock);
    s_entry_t *entry = s_find (self);
    pthread_mutex_unlock (&s_lock);
    if (!entry) {
        errno = ENOENT;
        return -1;
    }
    S_SEND (entry->actor, "ss", command, endpoint);
    return s_wait (entry);
}

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

//  Do operation on the formatted endpoint: shm:// ones through the actor,
//  every other scheme through czmq. Returns 0 or -1 with errno.
static int
s_operate (zsock_t *self, s_operation_t operation, const char *format, va_list args)
{
    static const char *commands [] = { "BIND", "CONNECT", "UNBIND", "DISCONNECT" };
    char *endpoint = s_format (format, args);
    if (!endpoint)
        return -1;
    int rc;
    if (shmipc_endpoint_is_shm (endpoint))
        rc = operation <= S_CONNECT ? s_attach (self, commands [operation], endpoint)
                                    : s_detach (self, commands [operation], endpoint);
    else {
        rc = operation == S_BIND ? zsock_bind (self, "%s", endpoint)
           : operation == S_CONNECT ? zsock_connect (self, "%s", endpoint)
           : operation == S_UNBIND ? zsock_unbind (self, "%s", endpoint)
           : zsock_disconnect (self, "%s", endpoint);
        if (rc == -1)
            errno = zmq_errno ();
    }
    free (endpoint);
    return rc;
}

int
shmipc_bind (zsock_t *self, const char *format, ...)
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
shmipc_connect (zsock_t *self, const char *format, ...)
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
shmipc_unbind (zsock_t *self, const char *format, ...)
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
shmipc_disconnect (zsock_t *self, const char *format, ...)
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
shmipc_attach (zsock_t *self, const char *endpoints, bool serverish)
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

static int (*s_real_close_fn) (void *) = NULL;    //  libzmq's zmq_close
static pthread_once_t s_real_close_once = PTHREAD_ONCE_INIT;

static void
s_find_real_close (void)
{
    s_real_close_fn = (int (*) (void *)) dlsym (RTLD_NEXT, "zmq_close");
}

//  Return libzmq's zmq_close, behind ours (NULL if it cannot be found).
static int (*s_real_close (void)) (void *)
{
    pthread_once (&s_real_close_once, s_find_real_close);
    return s_real_close_fn;
}

//  Stopping an actor takes two steps around closing the user's socket.
//  First: no new bridge may connect to the socket's inproc endpoint once
//  the socket is gone (libzmq would keep it waiting). The entry is out of
//  the registry already.
static void
s_stop_begin (s_entry_t *entry)
{
    S_SEND (entry->actor, "s", "STOP");
    s_wait_signal (entry->actor);
}

//  Then, once the user's socket is closed (with a linger, what it still
//  held has flowed into the bridges), let the actor move that into the
//  rings for up to linger ms, stop it and free the entry.
static void
s_stop_end (s_entry_t *entry, int linger)
{
    if (linger != 0) {
        S_SEND (entry->actor, "si", "LINGER", linger);
        s_wait_signal (entry->actor);
    }
    zactor_destroy (&entry->actor);
    free (entry);
}

//  Return the socket's ZMQ_LINGER.
static int
s_linger (void *handle)
{
    int linger = 0;
    size_t size = sizeof linger;
    if (zmq_getsockopt (handle, ZMQ_LINGER, &linger, &size))
        linger = 0;
    return linger;
}

//  The reaper: lingers and destroys the actors of sockets closed with
//  zmq_close, one after another, then ends.
static void *
s_reaper (void *args)
{
    while (true) {
        pthread_mutex_lock (&s_lock);
        s_entry_t *entry = s_closed;
        if (entry)
            s_closed = entry->next;
        else {
            s_reaping = false;
            pthread_cond_broadcast (&s_reaped);
        }
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            return NULL;
        s_stop_end (entry, entry->linger);
    }
}

//  Ours stands before libzmq's: a socket closed without
//  shmipc_sock_destroy (zsock_destroy, zmq_close) has its actor stopped.
//  czmq calls this with its own lock held, which zactor_destroy takes: so
//  the STOP happens here (no new bridge, listeners and their socket files
//  gone, the endpoint free again at once), and the linger and the actor's
//  end in a short-lived thread, as libzmq lingers in the background after
//  zmq_close. The exit handler waits for that thread.
SHMIPC_EXPORT int
zmq_close (void *handle)
{
    int (*real_close) (void *) = s_real_close ();
    if (!real_close) {
        errno = ENOSYS;
        return -1;
    }
    s_entry_t *entry = handle ? s_remove (NULL, handle) : NULL;
    if (!entry)
        return real_close (handle);
    entry->linger = s_linger (handle);
    s_stop_begin (entry);
    int rc = real_close (handle);
    pthread_mutex_lock (&s_lock);
    entry->next = s_closed;
    s_closed = entry;
    bool start = !s_reaping;
    s_reaping = true;
    pthread_mutex_unlock (&s_lock);
    if (start) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init (&attr);
        pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create (&thread, &attr, s_reaper, NULL)) {
            //  No thread: the next call that can wait does the work
            pthread_mutex_lock (&s_lock);
            s_reaping = false;
            pthread_mutex_unlock (&s_lock);
        }
        pthread_attr_destroy (&attr);
    }
    return rc;
}

//  At exit, before czmq's handler: stop every actor still running, so that
//  czmq does not close their pipes under them. The user's sockets stay for
//  czmq to close, as it does with any socket left open.
static void
s_at_exit (void)
{
    //  Sockets closed already: finish their actors, or wait for the reaper
    pthread_mutex_lock (&s_lock);
    while (s_reaping)
        pthread_cond_wait (&s_reaped, &s_lock);
    pthread_mutex_unlock (&s_lock);
    s_reaper (NULL);
    while (true) {
        pthread_mutex_lock (&s_lock);
        s_entry_t *entry = s_entries;
        if (entry)
            s_entries = entry->next;
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            break;
        int linger = s_linger (entry->handle);
        s_stop_begin (entry);
        s_stop_end (entry, linger);
    }
}

void
shmipc_sock_destroy (zsock_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        zsock_t *self = *self_p;
        s_entry_t *entry = s_remove (self, NULL);
        int linger = zsock_linger (self);
        if (entry)
            s_stop_begin (entry);
        zsock_destroy (self_p);
        if (entry)
            s_stop_end (entry, linger);
    }
}

int
shmipc_set_capacity (zsock_t *self, size_t capacity)
{
    assert (self);
    if (capacity < SHMIPC_RING_MIN || capacity > SHMIPC_RING_MAX) {
        errno = EINVAL;
        return -1;
    }
    s_entry_t *entry = s_require (self, false);
    if (!entry)
        return -1;
    entry->capacity = capacity;
    return 0;
}

int
shmipc_set_max_peer_capacity (zsock_t *self, size_t capacity)
{
    assert (self);
    if (capacity < SHMIPC_RING_MIN || capacity > SHMIPC_RING_MAX) {
        errno = EINVAL;
        return -1;
    }
    s_entry_t *entry = s_require (self, false);
    if (!entry)
        return -1;
    entry->max_peer_capacity = capacity;
    return 0;
}

int
shmipc_allow_uid (zsock_t *self, uid_t uid)
{
    assert (self);
    s_entry_t *entry = s_require (self, false);
    if (!entry)
        return -1;
    return shmipc__uids_add (&entry->uids, uid);
}

zactor_t *
shmipc_sock_actor (zsock_t *self)
{
    assert (self);
    pthread_mutex_lock (&s_lock);
    s_entry_t *entry = s_find (self);
    pthread_mutex_unlock (&s_lock);
    return entry ? entry->actor : NULL;
}

int
shmipc_sock_stats (zsock_t *self, shmipc_stats_t *stats)
{
    assert (self);
    assert (stats);
    memset (stats, 0, sizeof *stats);
    zactor_t *actor = shmipc_sock_actor (self);
    if (!actor)
        return 0;               //  No shm:// endpoint: nothing to count
    S_SEND (actor, "s", "STATS");
    //  The totals, with the picture they were sent with (the per-connection
    //  frames that follow are dropped)
    char *head = NULL;
    int rc;
    do
        rc = zsock_recv (actor, SHMIPC_ACTOR_STATS_PICTURE, &head, &stats->peers,
                         &stats->accepted, &stats->connected, &stats->closed,
                         &stats->errors, &stats->msgs_out, &stats->bytes_out,
                         &stats->msgs_in, &stats->bytes_in, &stats->wakeups);
    while (rc == -1 && zmq_errno () == EINTR);
    if (rc == 0 && (!head || !streq (head, "STATS"))) {
        memset (stats, 0, sizeof *stats);
        errno = EPROTO;
        rc = -1;
    }
    free (head);
    return rc;
}
