/*  =========================================================================
    endpoint - shm:// endpoints: parse, listen, accept, connect, and check
    the peer's credentials

    Owns: a listener's socket and the socket file it created. Connected
    sockets are handed to the caller. Every endpoint string is untrusted.
    =========================================================================
*/

#include "endpoint.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_SCHEME      "shm://"
#define S_LOCK_WAIT_MS 2000     //  Longest wait for a path's bind lock

struct _shmipc_listener_t {
    int sock;                           //  Listening socket; owned
    char *endpoint;                     //  As given; owned
    struct sockaddr_un addr;            //  Where we listen
    socklen_t addr_len;                 //  Its length
    bool is_path;                       //  A socket file (not abstract)
    char *path;                         //  Its path made absolute at bind
                                        //  time, for every later look-up
                                        //  (the cwd may change); owned
    char *tmpdir;                       //  shm://*: the directory made for
                                        //  the file, removed with it; owned
    bool made_file;                     //  dev and ino name the file bind made
    dev_t dev;                          //  The file we created: device
    ino_t ino;                          //  and inode, to touch only ours
    shmipc__uids_t uids;                //  Uids accepted besides ours
                                        //  and root's
};

bool
shmipc_endpoint_is_shm (const char *endpoint)
{
    return endpoint && strncmp (endpoint, S_SCHEME, strlen (S_SCHEME)) == 0;
}

int
shmipc__endpoint_parse (const char *endpoint, struct sockaddr_un *addr,
                       socklen_t *addr_len)
{
    //  Trusts: nothing in endpoint. Checks: scheme, form, length, and no
    //  control characters (they have no place in a path or a name).
    assert (addr && addr_len);
    if (!shmipc_endpoint_is_shm (endpoint)) {
        errno = EINVAL;
        return -1;
    }
    const char *rest = endpoint + strlen (S_SCHEME);
    size_t size = strlen (rest);
    if (!shmipc__printable (rest, size)) {
        errno = EINVAL;
        return -1;
    }
    memset (addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (rest [0] == '@') {
        //  Abstract: a leading NUL, then the name, not terminated. Like
        //  ZeroMQ's ipc://@name: '@' and name fit where a path would
        if (size < 2 || size >= sizeof addr->sun_path) {
            errno = EINVAL;
            return -1;
        }
        memcpy (addr->sun_path + 1, rest + 1, size - 1);
        *addr_len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + size);
        return 0;
    }
    //  A path, absolute or relative (as with ipc://, the kernel resolves a
    //  relative one against the working directory at bind or connect).
    //  "*" is a listener's wildcard, never a path to connect to
    if (size == 0 || size >= sizeof addr->sun_path
    ||  (rest [0] == '/' && size < 2) || strcmp (rest, "*") == 0) {
        errno = EINVAL;
        return -1;
    }
    memcpy (addr->sun_path, rest, size);
    *addr_len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + size + 1);
    return 0;
}

int
shmipc_endpoint_peer_uid (int sock, uid_t *uid)
{
    assert (uid);
    struct ucred cred;
    socklen_t size = sizeof cred;
    if (getsockopt (sock, SOL_SOCKET, SO_PEERCRED, &cred, &size) == -1)
        return -1;
    *uid = cred.uid;
    return 0;
}

int
shmipc_endpoint_connect (const char *endpoint, int flags)
{
    struct sockaddr_un addr;
    socklen_t addr_len;
    if (shmipc__endpoint_parse (endpoint, &addr, &addr_len))
        return -1;
    //  Blocking connect unless asked not to: a unix socket with a full
    //  backlog gives no readiness event to wait on
    int type = SOCK_SEQPACKET | SOCK_CLOEXEC;
    if (flags & SHMIPC_DONTWAIT)
        type |= SOCK_NONBLOCK;
    int sock = socket (AF_UNIX, type, 0);
    if (sock == -1)
        return -1;
    int rc;
    do
        rc = connect (sock, (struct sockaddr *) &addr, addr_len);
    while (rc == -1 && errno == EINTR);
    if (rc == -1 && errno == EISCONN)
        rc = 0;
    uid_t uid;
    if (rc == 0 && (rc = shmipc_endpoint_peer_uid (sock, &uid)) == 0
    &&  !(flags & SHMIPC_ANY_UID) && !shmipc__uids_allow (&(shmipc__uids_t) { 0 }, uid)) {
        shmipc__log ("endpoint %s: refused server running as uid %u",
                     endpoint, (unsigned) uid);
        errno = EACCES;
        rc = -1;
    }
    if (rc == 0 && !(flags & SHMIPC_DONTWAIT)) {
        int fl = fcntl (sock, F_GETFL);
        rc = fl == -1 ? -1 : fcntl (sock, F_SETFL, fl | O_NONBLOCK);
    }
    if (rc == -1) {
        int saved = errno == EWOULDBLOCK ? EAGAIN : errno;
        close (sock);
        errno = saved;
        return -1;
    }
    return sock;
}

//  A socket file exists at addr: return true if a live listener holds it.
static bool
s_path_is_live (const struct sockaddr_un *addr, socklen_t addr_len)
{
    int probe = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe == -1)
        return true;            //  Cannot tell: do not steal
    int rc = connect (probe, (const struct sockaddr *) addr, addr_len);
    bool refused = rc == -1 && (errno == ECONNREFUSED || errno == ENOENT);
    close (probe);
    return !refused;
}

//  Take the lock that serializes "bind + listen" and "probe + unlink +
//  rebind" on path among shmipc listeners, so that a loser never takes a
//  winner's file, bound but not yet listening, for a stale one. The lock
//  is an abstract socket name: one socket at a time can bind it, and it
//  dies with its holder. The name comes from the directory's device and
//  inode and a hash of the last component, so every spelling of a path
//  gives the same name; it is shared by all shmipc versions, do not change
//  it. Returns 0 with *lock the lock socket, or with *lock -1 if the name
//  stayed taken S_LOCK_WAIT_MS (a stuck holder, or anyone squatting the
//  name: abstract names have no owner); -1 with errno if path's directory
//  cannot be looked up.
static int
s_lock_take (const char *path, int *lock)
{
    *lock = -1;
    char dir [sizeof ((struct sockaddr_un *) 0)->sun_path];
    snprintf (dir, sizeof dir, "%s", path);
    char *slash = strrchr (dir, '/');
    const char *base = slash ? path + (slash - dir) + 1 : path;
    if (!slash)
        strcpy (dir, ".");      //  A relative "name" lives in the cwd
    else {
        if (slash == dir)
            slash++;            //  "/name" lives in "/"
        *slash = 0;
    }
    struct stat st;
    if (stat (dir, &st) == -1)
        return -1;
    uint64_t hash = 0xcbf29ce484222325ULL;          //  FNV-1a, 64 bits
    for (const char *at = base; *at; at++)
        hash = (hash ^ (unsigned char) *at) * 0x100000001b3ULL;
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int size = snprintf (addr.sun_path + 1, sizeof addr.sun_path - 1,
                         "shmipc-lock/%llx:%llx/%016llx",
                         (unsigned long long) st.st_dev,
                         (unsigned long long) st.st_ino,
                         (unsigned long long) hash);
    socklen_t addr_len = (socklen_t) (offsetof (struct sockaddr_un, sun_path) + 1 + size);

    int sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (sock == -1)
        return -1;
    int64_t deadline = shmipc__deadline (S_LOCK_WAIT_MS);
    while (bind (sock, (struct sockaddr *) &addr, addr_len) == -1) {
        if (errno != EADDRINUSE || shmipc__remaining_ms (deadline) == 0) {
            int saved = errno;
            close (sock);
            errno = saved;
            if (saved != EADDRINUSE)
                return -1;
            shmipc__log ("endpoint %s: bind lock held for %d ms, going on "
                         "without it", path, S_LOCK_WAIT_MS);
            return 0;
        }
        //  Holders keep it for a few system calls
        usleep (1000);
    }
    *lock = sock;
    return 0;
}

//  Bind self's socket to its path. Something already there is replaced
//  only if replace is set (the caller holds the path's lock) and it is a
//  socket file nobody listens on: what a crashed process leaves behind.
static int
s_bind_path (shmipc_listener_t *self, bool replace)
{
    if (bind (self->sock, (struct sockaddr *) &self->addr, self->addr_len) == 0)
        return 0;
    if (errno != EADDRINUSE)
        return -1;
    struct stat st;
    if (lstat (self->path, &st) == -1) {
        if (errno != ENOENT)
            return -1;
        //  Gone since (a listener's destroy): just bind again
    }
    else
    if (!S_ISSOCK (st.st_mode)) {
        errno = EEXIST;
        return -1;
    }
    else
    if (!replace || s_path_is_live (&self->addr, self->addr_len)) {
        errno = EADDRINUSE;
        return -1;
    }
    else {
        shmipc__log ("endpoint %s: replacing stale socket file", self->endpoint);
        if (unlink (self->path) == -1 && errno != ENOENT)
            return -1;
    }
    return bind (self->sock, (struct sockaddr *) &self->addr, self->addr_len);
}

//  Change the mode of the socket file we made. Trusts nothing at the path:
//  opens what is there without following a link and changes it only if it
//  is our socket (device and inode), through the descriptor (as glibc's
//  fchmodat does), so the path is never looked up twice.
static int
s_chmod_own_file (shmipc_listener_t *self, mode_t mode)
{
    int fd = open (self->path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd == -1)
        return -1;
    struct stat st;
    int rc = fstat (fd, &st);
    if (rc == 0 && S_ISLNK (st.st_mode)) {
        errno = ELOOP;
        rc = -1;
    }
    else
    if (rc == 0 && (!self->made_file || !S_ISSOCK (st.st_mode)
                ||  st.st_dev != self->dev || st.st_ino != self->ino)) {
        errno = ESTALE;
        rc = -1;
    }
    if (rc == 0) {
        //  fchmod does not work on an O_PATH descriptor; its /proc link does
        char name [32];
        snprintf (name, sizeof name, "/proc/self/fd/%d", fd);
        rc = chmod (name, mode);
        if (rc == -1 && errno == ENOENT)
            errno = EOPNOTSUPP;     //  No /proc: no safe way to do it
    }
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

//  Record the socket file bind just made. It must be a socket with no more
//  than owner rights: anything else was swapped in since, and is not ours
//  to record, change or unlink (ESTALE).
static int
s_record_file (shmipc_listener_t *self)
{
    struct stat st;
    if (lstat (self->path, &st) == -1)
        return -1;
    if (!S_ISSOCK (st.st_mode) || (st.st_mode & 07777 & ~0600)) {
        errno = ESTALE;
        return -1;
    }
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->made_file = true;
    //  A umask that takes even the owner's bits: owner-only is 0600
    if ((st.st_mode & 07777) != 0600)
        return s_chmod_own_file (self, 0600);
    return 0;
}

//  For shm://*: make a fresh private directory (0700) under $TMPDIR, or
//  /tmp, and name the endpoint of the file "socket" in it, as libzmq does
//  for ipc://*. Returns the endpoint (fresh), or NULL with errno.
static char *
s_wildcard (shmipc_listener_t *self)
{
    const char *base = getenv ("TMPDIR");
    char dir [sizeof self->addr.sun_path];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1 || !base || base [0] != '/')
            base = "/tmp";
        //  Room for "/socket" after it, within a socket address
        int size = snprintf (dir, sizeof dir - 8, "%s/shmipc-XXXXXX", base);
        if (size > 0 && (size_t) size < sizeof dir - 8 && mkdtemp (dir))
            break;
        if (attempt == 1) {
            if (size < 0 || (size_t) size >= sizeof dir - 8)
                errno = ENAMETOOLONG;
            return NULL;
        }
    }
    self->tmpdir = strdup (dir);
    char *endpoint = NULL;
    if (self->tmpdir && asprintf (&endpoint, S_SCHEME "%s/socket", dir) == -1)
        endpoint = NULL;
    if (!endpoint) {
        rmdir (dir);
        free (self->tmpdir);
        self->tmpdir = NULL;
        errno = ENOMEM;
    }
    return endpoint;
}

shmipc_listener_t *
shmipc_listener_new (const char *endpoint)
{
    int lock = -1;
    shmipc_listener_t *self = (shmipc_listener_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sock = -1;
    if (endpoint && strcmp (endpoint, S_SCHEME "*") == 0)
        self->endpoint = s_wildcard (self);
    else
        self->endpoint = endpoint ? strdup (endpoint) : NULL;
    if (!self->endpoint
    ||  shmipc__endpoint_parse (self->endpoint, &self->addr, &self->addr_len)) {
        if (!self->endpoint && errno == 0)
            errno = EINVAL;
        goto failed;
    }
    self->is_path = self->addr.sun_path [0] != 0;
    if (self->is_path) {
        const char *path = self->addr.sun_path;
        char cwd [PATH_MAX];
        if (path [0] == '/')
            self->path = strdup (path);
        else
        if (!getcwd (cwd, sizeof cwd)
        ||  asprintf (&self->path, "%s/%s", cwd, path) == -1)
            self->path = NULL;
        if (!self->path)
            goto failed;
    }
    self->sock = socket (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (self->sock == -1)
        goto failed;

    if (self->is_path) {
        //  bind gives the file the socket's own mode less the umask: set
        //  it here, so the file is owner-only from its first instant, and
        //  no path is followed to set it
        if (fchmod (self->sock, 0600) == -1
        ||  s_lock_take (self->addr.sun_path, &lock) == -1)
            goto failed;
        //  Without the lock, replacing a stale file could take a live one
        if (s_bind_path (self, lock != -1) == -1
        ||  s_record_file (self) == -1)
            goto failed;
    }
    else {
        //  Abstract: the kernel's bind alone decides, and leaves no file
        if (bind (self->sock, (struct sockaddr *) &self->addr, self->addr_len) == -1)
            goto failed;
    }
    if (listen (self->sock, SOMAXCONN) == -1)
        goto failed;
    if (lock != -1)
        close (lock);
    return self;

failed:;
    int saved = errno;
    shmipc_listener_destroy (&self);    //  Unlinks our file, if we made one
    if (lock != -1)
        close (lock);                   //  Only then: nobody sees it half-made
    errno = saved;
    return NULL;
}

void
shmipc_listener_destroy (shmipc_listener_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        shmipc_listener_t *self = *self_p;
        if (self->made_file) {
            //  Unlink only the file we made, not a successor's
            struct stat st;
            if (lstat (self->path, &st) == 0
            &&  st.st_dev == self->dev && st.st_ino == self->ino)
                unlink (self->path);
        }
        if (self->tmpdir)
            rmdir (self->tmpdir);       //  Only if empty: ours, as made
        free (self->tmpdir);
        free (self->path);
        if (self->sock >= 0)
            close (self->sock);
        free (self->endpoint);
        free (self);
        *self_p = NULL;
    }
}

int
shmipc_listener_fd (shmipc_listener_t *self)
{
    assert (self);
    return self->sock;
}

const char *
shmipc_listener_endpoint (shmipc_listener_t *self)
{
    assert (self);
    return self->endpoint;
}

int
shmipc_listener_accept (shmipc_listener_t *self)
{
    assert (self);
    while (true) {
        int sock = accept4 (self->sock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (sock == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EWOULDBLOCK)
                errno = EAGAIN;
            return -1;
        }
        uid_t uid;
        if (shmipc_endpoint_peer_uid (sock, &uid) == -1) {
            int saved = errno;
            close (sock);
            errno = saved;
            return -1;
        }
        if (!shmipc__uids_allow (&self->uids, uid)) {
            shmipc__log ("endpoint %s: refused peer running as uid %u",
                         self->endpoint, (unsigned) uid);
            close (sock);
            errno = EACCES;
            return -1;
        }
        return sock;
    }
}

int
shmipc_listener_set_mode (shmipc_listener_t *self, mode_t mode)
{
    assert (self);
    if (!self->is_path) {
        errno = EINVAL;
        return -1;
    }
    return s_chmod_own_file (self, mode);
}

int
shmipc_listener_allow_uid (shmipc_listener_t *self, uid_t uid)
{
    assert (self);
    return shmipc__uids_add (&self->uids, uid);
}

void
shmipc_listener_allow_any_uid (shmipc_listener_t *self)
{
    assert (self);
    self->uids.any = true;
}
