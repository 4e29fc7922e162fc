/*  =========================================================================
    registry - which user socket has which actor, and the end of every
    actor, however its socket ends

    Owns: the registry of entries (one per user socket with shm://
    endpoints: its actor, inproc endpoint and settings), the queue of
    actors whose socket was closed, the reaper thread that ends them, and
    the process-wide set-up (czmq's socket limit, the fork and exit
    handlers). Careless users are served here:
      - plain zsock_destroy (or zmq_close) on a socket with shm://
        endpoints: libshmipc defines zmq_close, which czmq's and the
        program's calls reach before libzmq's (libshmipc comes before
        libzmq in the link order pkg-config gives); it stops the socket's
        actor as shmipc_sock_destroy would, then calls libzmq's. So a
        closed socket never leaves an entry that a new socket at the same
        address could pick up;
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
static shmipc__entry_t *s_closed = NULL;    //  Closed sockets' actors,
                                            //  queued for the reaper
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
static void
s_raise_socket_limit (void)
{
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

//  Process-wide set-up, when libshmipc is loaded: the fork handler and
//  czmq's socket limit (both above).
__attribute__ ((constructor)) static void
s_set_up (void)
{
    pthread_atfork (NULL, NULL, s_forget_after_fork);
    s_raise_socket_limit ();
}

//  Return the entry for sock, or NULL. Caller holds s_lock.
static shmipc__entry_t *
s_find (zsock_t *sock)
{
    for (shmipc__entry_t *entry = s_entries; entry; entry = entry->next)
        if (entry->sock == sock)
            return entry;
    return NULL;
}

//  Return the entry for sock, creating it (start the actor) if needed.
//  With bind, also bind the socket to its inproc endpoint, once: at its
//  first shm:// bind or connect, not before, because libzmq takes the
//  options the bridges' pipes get (the high-water marks) from the socket
//  as it is when it binds. Returns NULL with errno.
shmipc__entry_t *
shmipc__registry_require (zsock_t *sock, bool bind)
{
    //  s_lock is never held across a czmq call: czmq calls our zmq_close
    //  with its own lock held, and ours takes s_lock
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *entry = s_find (sock);
    pthread_mutex_unlock (&s_lock);
    if (!entry) {
        //  Only the socket's own thread may use it, so nobody adds an
        //  entry for it meanwhile
        entry = (shmipc__entry_t *) zmalloc (sizeof *entry);
        if (!entry) {
            errno = ENOMEM;
            return NULL;
        }
        entry->sock = sock;
        entry->handle = zsock_resolve (sock);
        entry->capacity = SHMIPC__DEFAULT_CAPACITY;
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
shmipc__entry_t *
shmipc__registry_remove (zsock_t *sock, void *handle)
{
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *found = NULL;
    for (shmipc__entry_t **link = &s_entries; *link; link = &(*link)->next)
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
shmipc__registry_find (zsock_t *sock)
{
    pthread_mutex_lock (&s_lock);
    shmipc__entry_t *entry = s_find (sock);
    pthread_mutex_unlock (&s_lock);
    return entry;
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
void
shmipc__entry_stop_begin (shmipc__entry_t *entry)
{
    SHMIPC__SEND (entry->actor, "s", "STOP");
    shmipc__actor_wait (entry->actor);
}

//  Then, once the user's socket is closed (with a linger, what it still
//  held has flowed into the bridges), let the actor move that into the
//  rings for up to linger ms, stop it and free the entry.
void
shmipc__entry_stop_end (shmipc__entry_t *entry, int linger)
{
    if (linger != 0) {
        SHMIPC__SEND (entry->actor, "si", "LINGER", linger);
        shmipc__actor_wait (entry->actor);
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
        shmipc__entry_t *entry = s_closed;
        if (entry)
            s_closed = entry->next;
        else {
            s_reaping = false;
            pthread_cond_broadcast (&s_reaped);
        }
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            return NULL;
        shmipc__entry_stop_end (entry, entry->linger);
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
    shmipc__entry_t *entry = handle ? shmipc__registry_remove (NULL, handle) : NULL;
    if (!entry)
        return real_close (handle);
    entry->linger = s_linger (handle);
    shmipc__entry_stop_begin (entry);
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
        shmipc__entry_t *entry = s_entries;
        if (entry)
            s_entries = entry->next;
        pthread_mutex_unlock (&s_lock);
        if (!entry)
            break;
        int linger = s_linger (entry->handle);
        shmipc__entry_stop_begin (entry);
        shmipc__entry_stop_end (entry, linger);
    }
}

