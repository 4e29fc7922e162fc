/*  =========================================================================
    shmipc_endpoint - shm:// endpoints: parsing, listening, connecting, and
    checking who is on the other end

    Owns: a listener owns its socket and, for a path endpoint, the socket
    file it created (removed on destroy if it is still ours). Connected
    sockets it returns belong to the caller, typically handed straight to
    shmipc_channel_new.

    Endpoints, like ZeroMQ's ipc://:
        shm:///abs/path     a socket file (path up to 107 bytes)
        shm://rel/path      the same, relative to the working directory at
                            bind or connect time
        shm://@name         Linux abstract namespace (name up to 106 bytes)
    and, for listeners, the wildcard (shm:// then an asterisk, as ipc://
    has): a fresh socket file, "socket" in a new private directory under
    $TMPDIR or /tmp; shmipc_listener_endpoint names it, destroy removes
    both.
    =========================================================================
*/

#ifndef SHMIPC_ENDPOINT_H_INCLUDED
#define SHMIPC_ENDPOINT_H_INCLUDED

#include "shmipc_common.h"
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_listener_t shmipc_listener_t;

//  Flag for shmipc_endpoint_connect: accept a server of any uid.
#define SHMIPC_ANY_UID 4

//  Return true if endpoint starts with "shm://".
SHMIPC_EXPORT bool
    shmipc_endpoint_is_shm (const char *endpoint);

//  Connect to endpoint and check the server's credentials (SO_PEERCRED): it
//  must run as our effective uid or as root, unless flags has SHMIPC_ANY_UID.
//  flags may also have SHMIPC_DONTWAIT (a full backlog fails with EAGAIN
//  instead of waiting). Returns a connected, non-blocking, close-on-exec
//  SOCK_SEQPACKET socket, or -1 with errno (EINVAL, ENOENT, ECONNREFUSED,
//  EACCES for a refused server, ...).
SHMIPC_EXPORT int
    shmipc_endpoint_connect (const char *endpoint, int flags);

//  Bind and listen on endpoint. A socket file left by a dead process is
//  replaced; one with a live listener is not (EADDRINUSE), nor is anything
//  that is not a socket (EEXIST). Of listeners racing for one path exactly
//  one wins: they take turns through a lock (an abstract socket named after
//  the path) held from bind to listen, waiting up to 2 s for it. If it stays
//  taken longer (a stuck holder, or anyone squatting the name) we bind
//  without it but replace nothing: EADDRINUSE if anything is there.
//  The file is owner-only (0600) from its creation, whatever the umask; if
//  it is swapped for anything else before we listen, ESTALE and it is left
//  alone. By default peers must run as our effective uid or as root.
//  Returns NULL with errno.
SHMIPC_EXPORT shmipc_listener_t *
    shmipc_listener_new (const char *endpoint);

//  Stop listening; remove the socket file if it is still the one we made.
//  Idempotent; nullifies the reference.
SHMIPC_EXPORT void
    shmipc_listener_destroy (shmipc_listener_t **self_p);

//  Return the listening descriptor (readable when a peer is waiting).
SHMIPC_EXPORT int
    shmipc_listener_fd (shmipc_listener_t *self);

//  Return the endpoint as given (for the wildcard, the one made).
SHMIPC_EXPORT const char *
    shmipc_listener_endpoint (shmipc_listener_t *self);

//  Accept one waiting peer and check its credentials. Returns a connected,
//  non-blocking, close-on-exec socket, or -1 with errno: EAGAIN (nobody
//  waiting), EACCES (refused by uid: that connection is closed, and logged
//  in verbose mode). Never blocks.
SHMIPC_EXPORT int
    shmipc_listener_accept (shmipc_listener_t *self);

//  Change the socket file's permissions (path endpoints only), e.g. 0660 to
//  let a group connect. Only the file we made is changed, never what a link
//  points to. Returns 0 or -1 with errno: EINVAL (abstract endpoint), ENOENT
//  (the file is gone), ELOOP (a symbolic link is in its place), ESTALE (any
//  other file is in its place), EOPNOTSUPP (no /proc to change it through).
SHMIPC_EXPORT int
    shmipc_listener_set_mode (shmipc_listener_t *self, mode_t mode);

//  Also accept peers running as uid. Returns 0 or -1/ENOSPC (too many).
SHMIPC_EXPORT int
    shmipc_listener_allow_uid (shmipc_listener_t *self, uid_t uid);

//  Accept peers of any uid (the socket file's mode still applies).
SHMIPC_EXPORT void
    shmipc_listener_allow_any_uid (shmipc_listener_t *self);

//  Return the uid of the peer on a connected socket, or -1 with errno.
SHMIPC_EXPORT int
    shmipc_endpoint_peer_uid (int sock, uid_t *uid);

#ifdef __cplusplus
}
#endif

#endif
