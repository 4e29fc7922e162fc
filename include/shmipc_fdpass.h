/*  =========================================================================
    shmipc_fdpass - send and receive bytes plus file descriptors over a
    connected AF_UNIX socket (SCM_RIGHTS)

    Owns nothing: descriptors received are handed to the caller, who closes
    them. Works on SOCK_SEQPACKET (one record per call) and SOCK_STREAM.
    =========================================================================
*/

#ifndef SHMIPC_FDPASS_H_INCLUDED
#define SHMIPC_FDPASS_H_INCLUDED

#include "shmipc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Most descriptors one call can carry.
#define SHMIPC_FDPASS_MAX 16

//  Send size bytes (at least one, so the descriptors have data to ride on)
//  plus nfds descriptors (0..SHMIPC_FDPASS_MAX). Without SHMIPC_DONTWAIT the
//  call waits until the socket takes the data, whatever O_NONBLOCK says
//  (EINTR if a signal interrupts the wait); with it, a full socket fails
//  with EAGAIN. A vanished peer fails with EPIPE or ECONNRESET, never
//  SIGPIPE. Returns the bytes sent (a stream socket may take fewer than
//  size; the descriptors went with the first byte), or -1.
SHMIPC_EXPORT ssize_t
    shmipc_fdpass_send (int sock, const void *data, size_t size,
                        const int *fds, size_t nfds, int flags);

//  Receive up to size bytes and up to max_fds descriptors, which arrive
//  close-on-exec; *nfds_p gets their count. Returns the bytes received, 0 at
//  end of stream, or -1 with errno: EAGAIN (SHMIPC_DONTWAIT and nothing
//  there), EINTR (a signal interrupted the wait), EPROTO (more descriptors than max_fds were sent, or the control
//  data was truncated), EMSGSIZE (a record longer than size). On any error,
//  every descriptor that did arrive is closed and *nfds_p is 0: nothing leaks.
SHMIPC_EXPORT ssize_t
    shmipc_fdpass_recv (int sock, void *data, size_t size,
                        int *fds, size_t max_fds, size_t *nfds_p, int flags);

#ifdef __cplusplus
}
#endif

#endif
