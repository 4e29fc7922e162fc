/*  =========================================================================
    actor - the shmipc actor: serves the shm:// endpoints of one user socket

    Owns: every listener, connection (peer) and bridge socket of those
    endpoints, and the epoll set that watches them. Never touches the
    user's socket: it reaches it only through the socket's private inproc
    endpoint, so ZeroMQ's one-thread-per-socket rule holds.

    One loop: epoll over the pipe's ZMQ_FD, the listeners, and each peer's
    descriptors (channel socket, bridge's ZMQ_FD). Only connections that
    are ready, or had work left, are visited, so idle connections cost
    nothing per message. Idle, the actor sleeps in epoll_wait.

    See actor.h for the files of the actor and what each owns.
    =========================================================================
*/

#include "actor.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>

//  Messages moved per peer and direction before looking at the others.
#define S_BATCH     256

//  Events taken from epoll per wait.
#define S_EVENTS            64

//  Spinning: after messages went both ways (within S_SPIN_WINDOW_US), the
//  loop looks at the peers that moved them for up to S_SPIN_US before it
//  sleeps, so that a conversation in progress does not pay a sleep and a
//  wake-up per message. Bounded, and only after traffic: an idle actor
//  never spins. Nor does it spin when more than one runnable thread waits
//  for a core (the kernel's count of runnable threads, in /proc/loadavg,
//  is above the number of cores plus one): the time would be taken from
//  threads that have work. One waiting thread is allowed: in a
//  conversation it is usually the very one we wait for (the application,
//  just woken, or the peer's actor), and the spin yields it the core at
//  every look (docs/performance.md, "The actor's spin"). SHMIPC_SPIN_US in
//  the environment changes the bound (0 turns spinning off, at most
//  10000).
#define S_SPIN_US           100
#define S_SPIN_US_MAX       10000
#define S_SPIN_WINDOW_US    2000

//  How long an answer of s_core_free stands: reading /proc/loadavg at
//  every pause in a conversation was one more system call per message.
#define S_LOAD_US           10000

//  True if a core is free enough to spin on: at most one runnable thread
//  waits for one (as of at most S_LOAD_US ago). Without /proc/loadavg,
//  assume so.
static bool
s_core_free (shmipc__actor_t *self)
{
    int64_t now = zclock_usecs ();
    if (self->core_free_at && now - self->core_free_at < S_LOAD_US)
        return self->core_free;
    self->core_free_at = now;
    self->core_free = true;
    char text [128];
    ssize_t size = self->loadavg >= 0 ? pread (self->loadavg, text, sizeof text - 1, 0) : -1;
    if (size <= 0)
        return true;
    text [size] = 0;
    //  "0.50 0.40 0.30 RUNNING/TOTAL LASTPID": RUNNING counts us
    const char *field = text;
    for (int skip = 0; skip < 3 && field; skip++) {
        field = strchr (field, ' ');
        if (field)
            field++;
    }
    long running = field ? strtol (field, NULL, 10) : 0;
    self->core_free = running <= self->cores + 1;
    return self->core_free;
}

//  Process one link: move what can be moved, note its traffic, and queue
//  it for the next turn if it has work left.
static void
s_process (shmipc__actor_t *self, shmipc__link_t *link)
{
    if (link->closed)
        return;
    uint64_t in = 0, out = 0;
    shmipc__peer_traffic (link->peer, &in, &out);
    int rc = shmipc__peer_process (link->peer, S_BATCH);
    uint64_t in_after = 0, out_after = 0;
    shmipc__peer_traffic (link->peer, &in_after, &out_after);
    if (in_after != in || out_after != out) {
        int64_t now = zclock_usecs ();
        if (in_after != in)
            self->in_at = now;
        if (out_after != out)
            self->out_at = now;
        link->moved_at = now;
        shmipc__ptrs_push (&self->recent, link);
    }
    if (rc < 0) {
        shmipc__link_close (self, link);
        return;
    }
    if (link->pending && shmipc__peer_deadline (link->peer) < 0)
        shmipc__link_unpend (self, link);
    if (rc > 0)
        shmipc__actor_queue (self, link, &self->next);
}

//  Traffic just stopped: look at the links that moved messages last turn
//  for a while before sleeping, until one has work or a command comes.
//  Looking tells the remote sides not to send WAKEs, so afterwards each of
//  them takes a turn, which ends by arming its channel again.
static void
s_spin (shmipc__actor_t *self)
{
    int64_t until = zclock_usecs () + self->spin_us;
    bool found = false;
    while (!found && zclock_usecs () < until) {
        for (size_t index = 0; index < self->recent.count; index++) {
            shmipc__link_t *link = SHMIPC__LINK (&self->recent, index);
            if (!link->closed && shmipc__peer_spin (link->peer))
                found = true;
        }
        found |= (zsock_events (self->pipe) & ZMQ_POLLIN) != 0;
        if (!found)
            sched_yield ();
    }
    self->pipe_dirty = true;
    for (size_t index = 0; index < self->recent.count; index++)
        shmipc__actor_queue (self, SHMIPC__LINK (&self->recent, index), &self->run);
}

//  Return the epoll timeout: 0 with work queued, else the time to the
//  next deadline (handshakes, reconnects, resting listeners, LINGER), or
//  -1 for none.
static int
s_timeout (shmipc__actor_t *self)
{
    if (self->run.count || self->pipe_dirty)
        return 0;
    int64_t now = zclock_mono ();
    int64_t wake = -1;
    for (size_t index = 0; index < self->endpoints.count; index++) {
        shmipc__endpoint_t *endpoint = SHMIPC__ENDPOINT (self, index);
        if (endpoint->reconnect_at >= 0 && (wake < 0 || endpoint->reconnect_at < wake))
            wake = endpoint->reconnect_at;
        if (endpoint->rest_until >= 0 && (wake < 0 || endpoint->rest_until < wake))
            wake = endpoint->rest_until;
    }
    for (size_t index = 0; index < self->pending.count; index++) {
        int64_t deadline = shmipc__peer_deadline (SHMIPC__LINK (&self->pending, index)->peer);
        if (deadline >= 0 && (wake < 0 || deadline < wake))
            wake = deadline;
    }
    if (self->lingering && self->linger_until >= 0
    &&  (wake < 0 || self->linger_until < wake))
        wake = self->linger_until;
    if (wake < 0)
        return -1;
    return wake > now ? (int) (wake - now < INT_MAX ? wake - now : INT_MAX) : 0;
}

//  Queue what is due: connections whose handshake deadline passed (to
//  time out), reconnects, listeners whose rest is over.
static void
s_timers (shmipc__actor_t *self)
{
    int64_t now = zclock_mono ();
    size_t count = self->endpoints.count;
    for (size_t index = 0; index < count; index++) {
        shmipc__endpoint_t *endpoint = SHMIPC__ENDPOINT (self, index);
        if (!endpoint->bind && !endpoint->peer && endpoint->reconnect_at >= 0
        &&  now >= endpoint->reconnect_at)
            shmipc__endpoint_connect (self, endpoint);
        if (endpoint->rest_until >= 0 && now >= endpoint->rest_until) {
            endpoint->rest_until = -1;
            shmipc__listener_sync (self, endpoint);
        }
    }
    for (size_t index = 0; index < self->pending.count; index++) {
        shmipc__link_t *link = SHMIPC__LINK (&self->pending, index);
        int64_t deadline = shmipc__peer_deadline (link->peer);
        if (deadline >= 0 && now >= deadline)
            shmipc__actor_queue (self, link, &self->run);
    }
}

//  Drop closed links from array.
static void
s_array_drop_closed (shmipc__ptrs_t *array)
{
    size_t kept = 0;
    for (size_t index = 0; index < array->count; index++)
        if (!SHMIPC__LINK (array, index)->closed)
            array->items [kept++] = array->items [index];
    array->count = kept;
}

//  Free the links closed this turn, once nothing can name them: drop them
//  from the lists kept for the next turn first.
static void
s_reap (shmipc__actor_t *self)
{
    if (!self->closed)
        return;
    s_array_drop_closed (&self->next);
    s_array_drop_closed (&self->recent);
    while (self->closed) {
        shmipc__link_t *link = self->closed;
        self->closed = link->next_closed;
        free (link);
    }
}

static void
s_self_run (shmipc__actor_t *self)
{
    struct epoll_event events [S_EVENTS];
    while (!self->terminated) {
        //  This turn runs the links queued for it (queued == turn)
        self->turn++;
        self->ran = false;
        //  Spin in a conversation only (messages both ways lately): a
        //  one-way stream is better served by sleeping, which leaves the
        //  cores to the threads that produce and consume it
        int timeout = s_timeout (self);
        int64_t usecs = zclock_usecs ();
        if (timeout != 0 && self->recent.count && self->spin_us
        &&  usecs - self->in_at < S_SPIN_WINDOW_US
        &&  usecs - self->out_at < S_SPIN_WINDOW_US) {
            self->in_at = self->out_at = 0;     //  One spin per lull
            if (s_core_free (self))
                s_spin (self);
            timeout = s_timeout (self);
        }
        int count = epoll_wait (self->epfd, events, S_EVENTS, timeout);
        if (count == -1) {
            if (errno == EINTR)
                continue;
            shmipc__log ("shmipc actor: epoll_wait: %s", strerror (errno));
            break;
        }
        self->recent.count = 0;
        bool pipe_ready = self->pipe_dirty;
        for (int index = 0; index < count; index++) {
            shmipc__watch_t *watch = (shmipc__watch_t *) events [index].data.ptr;
            if (watch->kind == SHMIPC__WATCH_PIPE)
                pipe_ready = true;
            else
            if (watch->kind == SHMIPC__WATCH_LISTENER)
                shmipc__endpoint_accept (self, (shmipc__endpoint_t *) watch->object);
            else
                shmipc__actor_queue (self, (shmipc__link_t *) watch->object, &self->run);
        }
        s_timers (self);
        //  Links queued while this runs (a first turn for a new one) run
        //  in it too
        for (size_t index = 0; index < self->run.count; index++)
            s_process (self, SHMIPC__LINK (&self->run, index));
        self->ran = true;
        //  The pipe: ZMQ_EVENTS last, after every use of it, so that its
        //  ZMQ_FD signals whatever comes next
        self->pipe_dirty = false;
        if (pipe_ready)
            while (!self->terminated && (zsock_events (self->pipe) & ZMQ_POLLIN))
                shmipc__actor_handle_pipe (self);
        if (self->lingering
        &&  (shmipc__actor_drained (self)
             || (self->linger_until >= 0 && zclock_mono () >= self->linger_until))) {
            self->lingering = false;
            self->linger_until = -1;
            zsock_signal (self->pipe, 0);
            self->pipe_dirty = true;
        }
        //  The links with work left run next turn, without waiting
        s_reap (self);
        shmipc__ptrs_t done = self->run;
        self->run = self->next;
        self->next = done;
        self->next.count = 0;
    }
}

static shmipc__actor_t *
s_self_new (zsock_t *pipe)
{
    shmipc__actor_t *self = (shmipc__actor_t *) zmalloc (sizeof *self);
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->pipe_watch = (shmipc__watch_t) { SHMIPC__WATCH_PIPE, NULL };
    self->pipe_dirty = true;
    self->linger_until = -1;
    self->spin_us = S_SPIN_US;
    self->loadavg = open ("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    self->cores = sysconf (_SC_NPROCESSORS_ONLN);
    const char *spin = getenv ("SHMIPC_SPIN_US");
    if (spin && *spin) {
        char *end;
        long value = strtol (spin, &end, 10);
        if (*end == 0 && value >= 0 && value <= S_SPIN_US_MAX)
            self->spin_us = (int) value;
    }
    self->epfd = epoll_create1 (EPOLL_CLOEXEC);
    int fd = -1;
    size_t size = sizeof fd;
    struct epoll_event event = { .events = EPOLLIN, .data.ptr = &self->pipe_watch };
    if (self->epfd < 0
    ||  zmq_getsockopt (zsock_resolve (pipe), ZMQ_FD, &fd, &size)
    ||  epoll_ctl (self->epfd, EPOLL_CTL_ADD, fd, &event)) {
        if (self->epfd >= 0)
            close (self->epfd);
        if (self->loadavg >= 0)
            close (self->loadavg);
        free (self);
        return NULL;
    }
    return self;
}

static void
s_self_destroy (shmipc__actor_t **self_p)
{
    if (*self_p) {
        shmipc__actor_t *self = *self_p;
        //  Peers first: they may borrow bridges from endpoints
        while (self->links.count)
            shmipc__link_close (self, SHMIPC__LINK (&self->links, self->links.count - 1));
        self->next.count = 0;
        s_reap (self);
        for (size_t index = 0; index < self->endpoints.count; index++) {
            shmipc__endpoint_t *endpoint = SHMIPC__ENDPOINT (self, index);
            shmipc__endpoint_destroy (&endpoint);
        }
        shmipc__ptrs_free (&self->endpoints);
        shmipc__ptrs_free (&self->links);
        shmipc__ptrs_free (&self->pending);
        shmipc__ptrs_free (&self->run);
        shmipc__ptrs_free (&self->next);
        shmipc__ptrs_free (&self->recent);
        close (self->epfd);
        if (self->loadavg >= 0)
            close (self->loadavg);
        shmipc_loans_release (&self->loans);
        free (self);
        *self_p = NULL;
    }
}

void
shmipc_actor (zsock_t *pipe, void *args)
{
    shmipc__actor_t *self = s_self_new (pipe);
    zsock_signal (pipe, 0);
    if (!self) {
        //  zactor_new ignores the start signal's status, so say it on every
        //  command instead, until $TERM
        while (true) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            free (command);
            if (term)
                break;
            zsock_signal (pipe, ENOMEM);
        }
        return;
    }
    s_self_run (self);
    s_self_destroy (&self);
}
