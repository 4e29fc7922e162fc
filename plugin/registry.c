/*  =========================================================================
    registry - which user socket has which actor, and the end of every
    actor, however its socket ends

    Owns: the registry of entries (one per user socket with shm://
    endpoints: its actor, inproc endpoint and settings), the list of
    actors whose socket was closed, the reaper threads that end them (one
    each), and the process-wide set-up (czmq's socket limit, the fork and
    exit handlers). Careless users are served here:
      - plain zsock_destroy (or zmq_close) on a socket with shm://
        endpoints: libshmipc defines zmq_close (interpose.c), which czmq's
        and the program's calls reach before libzmq's (libshmipc comes
        before libzmq in the link order pkg-config gives, and the preload
        library before everything); it stops the socket's actor
        (shmipc__registry_close), then calls libzmq's. So a closed socket
        never leaves an entry that a new socket at the same address could
        pick up;
      - zmq_ctx_term with bridges of ours in the context: the actors of
        that context end first (shmipc__registry_end_context);
      - returning from main with live shm:// sockets: an exit handler,
        registered after czmq's and so run before it, stops every actor
        (honouring each socket's linger) before czmq closes what is left;
      - signals: commands to the actor are retried on EINTR, and every
        reply is waited for, so a reply always belongs to its command.
    s_lock is never held across a czmq call: czmq calls our zmq_close with
    its own lock held.
    =========================================================================
*/

#include "registry.h"
#include "contexts.h"
#include "real.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sys/resource.h>

//  libzmq's own socket limit (ZMQ_SOCKET_LIMIT with epoll): every shm://
//  connection needs a bridge socket, so czmq's default of 1,024 would cap
//  a server at about a thousand connections.
#define S_SOCKET_LIMIT      65535

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static shmipc__entry_t *s_entries = NULL;   //  The registry
static unsigned s_counter = 0;          //  For unique inproc names
static bool s_exit_handler = false;     //  s_at_exit is registered
static shmipc__entry_t *s_closed = NULL;    //  Closed sockets' actors
                                            //  being ended, each by a
                                            //  reaper thread of its own
static pthread_cond_t s_reaped = PTHREAD_COND_INITIALIZER;
                                        //  Signalled as each one ends

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
    s_exit_handler = false;
    pthread_mutex_init (&s_lock, NULL);
    pthread_cond_init (&s_reaped, NULL);
}

//  Let czmq's context hold as many sockets as libzmq allows, or as the
//  descriptor limit could ever allow, whichever is less, unless the user
//  chose (ZSYS_MAX_SOCKETS). czmq reads it when it makes its context, at
//  the program's first socket: we run before main, so before that. Too
//  late if libshmipc is loaded after czmq made its context (dlopen). Not
//  under the launcher: a program that never uses shm:// must see the
//  environment it was given, and so must its children.
static void
s_raise_socket_limit (void)
{
    if (getenv ("ZSYS_MAX_SOCKETS") || dlsym (RTLD_DEFAULT, "shmipc__preloaded"))
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

//  Process-wide set-up, when libshmipc is loaded: the fork handler and
//  czmq's socket limit (both above).
__attribute__ ((constructor)) static void
s_set_up (void)
{
    pthread_atfork (NULL, NULL, s_forget_after_fork);
    s_raise_socket_limit ();
}

//  Return the entry for handle, or NULL. Caller holds s_lock.
static shmipc__entry_t *
s_find (void *handle)
{
    for (shmipc__entry_t *entry = s_entries; entry; entry = entry->next)
        if (entry->handle == handle)
            return entry;
    return NULL;
}

//  Free an entry whose actor is gone.
static void
s_entry_free (shmipc__entry_t *entry)
{
    //  Frames still lent keep the pool until ZeroMQ frees them
    shmipc_loans_release (&entry->loans);
    for (int index = 0; index < 2; index++)
        if (entry->loop [index])
            shmipc__real ()->close (entry->loop [index]);
    free (entry->last_endpoint);
    free (entry->native_last);
    free (entry);
}

//  Return the context of the socket entry is for, bound to its inproc
//  endpoint: the one zmq_socket noted; else czmq's, if the socket is in it
//  (a socket made before libshmipc was loaded, or with libzmq before
//  libshmipc in the link order). The test: one inproc name binds once per
//  context. NULL with errno if neither.
static void *
s_context_of (shmipc__entry_t *entry)
{
    void *context = shmipc__contexts_find (entry->handle);
    if (context)
        return context;
    const shmipc__real_t *real = shmipc__real ();
    void *probe = real->socket (zsys_init (), ZMQ_PAIR);
    bool same = probe && real->bind (probe, entry->inproc) == -1 && zmq_errno () == EADDRINUSE;
    if (probe)
        real->close (probe);
    if (same)
        return zsys_init ();
    shmipc__log ("shm:// needs the socket's context: make the socket after "
                 "libshmipc is loaded, with libshmipc before libzmq at link time");
    errno = EINVAL;
    return NULL;
}

//  Zero-copy receive for every socket, if SHMIPC_ZEROCOPY says so (1, on,
//  yes): how a program that cannot call shmipc_set_zerocopy asks for it.
static bool
s_zerocopy_default (void)
{
    const char *env = getenv ("SHMIPC_ZEROCOPY");
    return env && (streq (env, "1") || streq (env, "on") || streq (env, "yes"));
}

//  Return the entry for sock, creating it (start the actor) if needed.
//  With bind, also bind the socket to its inproc endpoint, once: at its
//  first shm:// bind or connect, not before, because libzmq takes the
//  options the bridges' pipes get (the high-water marks) from the socket
//  as it is when it binds. Returns NULL with errno.
shmipc__entry_t *
shmipc__registry_require (void *handle, bool bind)
{
    if (!handle) {
        errno = ENOTSOCK;
        return NULL;
    }
    //  s_lock is never held across a czmq call: czmq calls our zmq_close
    //  with its own lock held, and ours takes s_lock
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *entry = s_find (handle);
    pthread_mutex_unlock (&s_lock);
    if (!entry) {
        //  Only the socket's own thread may use it, so nobody adds an
        //  entry for it meanwhile
        entry = (shmipc__entry_t *) zmalloc (sizeof *entry);
        if (!entry) {
            errno = ENOMEM;
            return NULL;
        }
        entry->handle = handle;
        entry->capacity = SHMIPC__DEFAULT_CAPACITY;
        entry->zerocopy = s_zerocopy_default ();
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
    //  libzmq's zmq_bind: zsock_endpoint stays the user's, and a bind of
    //  ours is not an shm:// one
    if (bind && !entry->bound) {
        if (shmipc__real ()->bind (entry->handle, entry->inproc)) {
            errno = zmq_errno ();
            return NULL;
        }
        entry->bound = true;
        entry->context = s_context_of (entry);
        if (!entry->context)
            return NULL;
    }
    if (bind && !entry->context) {
        errno = EINVAL;
        return NULL;
    }
    return entry;
}

shmipc__entry_t *
shmipc__registry_remove (void *handle)
{
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *found = NULL;
    for (shmipc__entry_t **link = &s_entries; *link; link = &(*link)->next)
        if ((*link)->handle == handle) {
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
int
shmipc__actor_wait (zactor_t *actor)
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
int
shmipc__entry_wait (shmipc__entry_t *entry)
{
    int status = shmipc__actor_wait (entry->actor);
    if (status <= 0)
        return status;
    errno = status;
    return -1;
}

shmipc__entry_t *
shmipc__registry_find (void *handle)
{
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *entry = s_find (handle);
    pthread_mutex_unlock (&s_lock);
    return entry;
}

//  Stopping an actor takes two steps around closing the user's socket.
//  First: no new bridge may connect to the socket's inproc endpoint once
//  the socket is gone (libzmq would keep it waiting). The entry is out of
//  the registry already.
void
shmipc__entry_stop_begin (shmipc__entry_t *entry)
{
    SHMIPC__SEND (entry->actor, "s", "STOP");
    shmipc__actor_wait (entry->actor);
}

//  Once the user's socket is closed (with a linger, what it still held has
//  flowed into the bridges), let the actor move that into the rings for up
//  to linger ms, then end it.
static void
s_end_actor (shmipc__entry_t *entry, int linger)
{
    if (linger != 0) {
        SHMIPC__SEND (entry->actor, "si", "LINGER", linger);
        shmipc__actor_wait (entry->actor);
    }
    zactor_destroy (&entry->actor);
}

//  Then: the actor's end (above), and the entry freed.
void
shmipc__entry_stop_end (shmipc__entry_t *entry, int linger)
{
    s_end_actor (entry, linger);
    s_entry_free (entry);
}

//  End a closed socket's actor: its linger, then the actor. The entry is
//  in s_closed, marked reaping, until it is done; then it goes.
static void
s_reap (shmipc__entry_t *entry)
{
    s_end_actor (entry, entry->linger);
    pthread_mutex_lock (&s_lock);
    for (shmipc__entry_t **link = &s_closed; *link; link = &(*link)->next)
        if (*link == entry) {
            *link = entry->next;
            break;
        }
    pthread_cond_broadcast (&s_reaped);
    pthread_mutex_unlock (&s_lock);
    s_entry_free (entry);
}

//  A reaper thread: one per closed socket, so that one socket's linger
//  (for ever, with -1 and a peer that does not read) holds up no other.
static void *
s_reaper (void *args)
{
    s_reap ((shmipc__entry_t *) args);
    return NULL;
}

//  A socket closed without shmipc_sock_destroy (zsock_destroy, zmq_close)
//  has its actor stopped. czmq calls zmq_close with its own lock held,
//  which zactor_destroy takes: so the STOP happens here (no new bridge,
//  listeners and their socket files gone, the endpoint free again at once),
//  and the linger and the actor's end in a short-lived thread, as libzmq
//  lingers in the background after zmq_close. The exit handler, and
//  zmq_ctx_term for its context, wait for that thread.
int
shmipc__registry_close (void *handle)
{
    const shmipc__real_t *real = shmipc__real ();
    shmipc__contexts_remove (handle);
    shmipc__entry_t *entry = handle ? shmipc__registry_remove (handle) : NULL;
    if (!entry)
        return real->close (handle);
    entry->linger = shmipc__int_option (handle, ZMQ_LINGER);
    shmipc__entry_stop_begin (entry);
    int rc = real->close (handle);
    int saved = errno;
    pthread_mutex_lock (&s_lock);
    entry->next = s_closed;
    s_closed = entry;
    entry->reaping = true;
    pthread_mutex_unlock (&s_lock);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init (&attr);
    pthread_attr_setdetachstate (&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create (&thread, &attr, s_reaper, entry)) {
        //  No thread: the next call that can wait does the work
        pthread_mutex_lock (&s_lock);
        entry->reaping = false;
        pthread_mutex_unlock (&s_lock);
    }
    pthread_attr_destroy (&attr);
    errno = saved;
    return rc;
}

//  Wait until the actors of every closed socket of context (every one, if
//  all) have ended; end here those no reaper thread took.
static void
s_settle (void *context, bool all)
{
    pthread_mutex_lock (&s_lock);
    while (true) {
        shmipc__entry_t *mine = NULL;
        bool waiting = false;
        for (shmipc__entry_t *entry = s_closed; entry; entry = entry->next)
            if (all || entry->context == context) {
                waiting = true;
                if (!entry->reaping) {
                    mine = entry;
                    break;
                }
            }
        if (!waiting)
            break;
        if (mine) {
            mine->reaping = true;
            pthread_mutex_unlock (&s_lock);
            s_reap (mine);
            pthread_mutex_lock (&s_lock);
        }
        else
            pthread_cond_wait (&s_reaped, &s_lock);
    }
    pthread_mutex_unlock (&s_lock);
}

void
shmipc__registry_end_context (void *context)
{
    s_settle (context, false);
    while (true) {
        pthread_mutex_lock (&s_lock);
        shmipc__entry_t *entry = NULL;
        for (shmipc__entry_t **link = &s_entries; *link; link = &(*link)->next)
            if ((*link)->context == context) {
                entry = *link;
                *link = entry->next;
                break;
            }
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            break;
        //  The socket is another thread's: its linger as of its last
        //  attach. It will see ETERM, as over ipc://; what it handed its
        //  bridges goes on into the rings for up to that linger
        shmipc__entry_stop_begin (entry);
        shmipc__entry_stop_end (entry, entry->linger);
    }
}

//  Read libzmq's own ZMQ_LAST_ENDPOINT of handle into native (S_NATIVE_MAX
//  bytes, terminated). Returns 0, or -1 (native is then empty).
#define S_NATIVE_MAX 512
static int
s_native_last (void *handle, char *native)
{
    size_t size = S_NATIVE_MAX;
    int rc = shmipc__real ()->getsockopt (handle, ZMQ_LAST_ENDPOINT, native, &size);
    if (rc)
        native [0] = 0;
    native [S_NATIVE_MAX - 1] = 0;
    return rc;
}

void
shmipc__registry_set_last (shmipc__entry_t *entry, char *endpoint)
{
    //  What libzmq says now: while it says the same, ours is the latest
    char native [S_NATIVE_MAX];
    s_native_last (entry->handle, native);
    pthread_mutex_lock (&s_lock);
    free (entry->last_endpoint);
    free (entry->native_last);
    entry->last_endpoint = endpoint;
    entry->native_last = strdup (native);
    pthread_mutex_unlock (&s_lock);
}

int
shmipc__registry_last_endpoint (void *handle, void *value, size_t *size)
{
    char native [S_NATIVE_MAX];
    if (s_native_last (handle, native))
        return 1;
    int rc = 1;
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *entry = s_find (handle);
    if (entry && entry->last_endpoint && entry->native_last
    &&  streq (entry->native_last, native)) {
        size_t length = strlen (entry->last_endpoint) + 1;
        if (*size < length) {
            errno = EINVAL;
            rc = -1;
        }
        else {
            memcpy (value, entry->last_endpoint, length);
            *size = length;
            rc = 0;
        }
    }
    pthread_mutex_unlock (&s_lock);
    return rc;
}

//  At exit, before czmq's handler: stop every actor still running, so that
//  czmq does not close their pipes under them. The user's sockets stay for
//  czmq to close, as it does with any socket left open.
static void
s_at_exit (void)
{
    //  Sockets closed already: finish their actors, or wait for their reapers
    s_settle (NULL, true);
    while (true) {
        pthread_mutex_lock (&s_lock);
        shmipc__entry_t *entry = s_entries;
        if (entry)
            s_entries = entry->next;
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            break;
        int linger = shmipc__int_option (entry->handle, ZMQ_LINGER);
        shmipc__entry_stop_begin (entry);
        shmipc__entry_stop_end (entry, linger);
    }
}

