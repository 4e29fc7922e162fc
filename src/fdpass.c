/*  =========================================================================
    fdpass - bytes plus descriptors over a Unix socket (SCM_RIGHTS)

    Owns nothing. Received descriptors go to the caller, or are closed here
    when the call fails, so a hostile sender can never make us leak one.
    =========================================================================
*/

#include "shmipc_fdpass.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

//  Room for SHMIPC_FDPASS_MAX descriptors plus one spare, so that a sender
//  who sends exactly one too many is seen (and refused) rather than having
//  the kernel silently drop the excess.
#define S_CMSG_SPACE CMSG_SPACE (sizeof (int) * (SHMIPC_FDPASS_MAX + 1))

//  Wait until sock (a non-blocking one) is ready for events.
static int
s_wait (int sock, short events)
{
    int revents = shmipc__poll_fd (sock, events, -1);
    return revents < 0 ? -1 : 0;
}

ssize_t
shmipc_fdpass_send (int sock, const void *data, size_t size,
                    const int *fds, size_t nfds, int flags)
{
    assert (data || size == 0);
    assert (nfds <= SHMIPC_FDPASS_MAX);
    assert (fds || nfds == 0);
    if (size == 0) {
        errno = EINVAL;         //  Descriptors need a byte to ride on
        return -1;
    }
    union {
        char buffer [CMSG_SPACE (sizeof (int) * SHMIPC_FDPASS_MAX)];
        struct cmsghdr align;
    } control;
    memset (&control, 0, sizeof control);
    struct iovec iov = { .iov_base = (void *) data, .iov_len = size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = CMSG_SPACE (sizeof (int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN (sizeof (int) * nfds);
        memcpy (CMSG_DATA (cmsg), fds, sizeof (int) * nfds);
    }
    //  The waiting form tries a plain call first: on a blocking socket that
    //  is the whole wait, in one system call
    int mode = (flags & SHMIPC_DONTWAIT) ? MSG_DONTWAIT : 0;
    while (true) {
        ssize_t rc = sendmsg (sock, &msg, mode | MSG_NOSIGNAL);
        if (rc >= 0)
            return rc;
        if (errno == EINTR && mode)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && !mode) {
            if (s_wait (sock, POLLOUT))
                return -1;
            continue;
        }
        if (errno == EWOULDBLOCK)
            errno = EAGAIN;
        return -1;
    }
}

//  Close every descriptor in fds [0..count).
static void
s_close_all (int *fds, size_t count)
{
    for (size_t index = 0; index < count; index++)
        close (fds [index]);
}

ssize_t
shmipc_fdpass_recv (int sock, void *data, size_t size,
                    int *fds, size_t max_fds, size_t *nfds_p, int flags)
{
    assert (data || size == 0);
    assert (fds || max_fds == 0);
    assert (nfds_p);
    assert (max_fds <= SHMIPC_FDPASS_MAX);
    *nfds_p = 0;

    union {
        char buffer [S_CMSG_SPACE];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = data, .iov_len = size };
    struct msghdr msg;
    ssize_t rc;
    int mode = (flags & SHMIPC_DONTWAIT) ? MSG_DONTWAIT : 0;
    while (true) {
        memset (&msg, 0, sizeof msg);
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.buffer;
        msg.msg_controllen = sizeof control.buffer;
        rc = recvmsg (sock, &msg, mode | MSG_CMSG_CLOEXEC);
        if (rc >= 0)
            break;
        if (errno == EINTR && mode)
            continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && !mode) {
            if (s_wait (sock, POLLIN))
                return -1;
            continue;
        }
        if (errno == EWOULDBLOCK)
            errno = EAGAIN;
        return -1;
    }
    //  Collect every descriptor that arrived, whatever happens next, so
    //  that each one is either handed over or closed.
    int arrived [SHMIPC_FDPASS_MAX + 1];
    size_t count = 0;
    bool excess = false;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR (&msg); cmsg;
         cmsg = CMSG_NXTHDR (&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t bytes = cmsg->cmsg_len - CMSG_LEN (0);
        size_t in_cmsg = bytes / sizeof (int);
        const unsigned char *cursor = CMSG_DATA (cmsg);
        for (size_t index = 0; index < in_cmsg; index++) {
            int fd;
            memcpy (&fd, cursor + index * sizeof (int), sizeof fd);
            if (count < SHMIPC_FDPASS_MAX + 1)
                arrived [count++] = fd;
            else {
                close (fd);
                excess = true;
            }
        }
    }
    if ((msg.msg_flags & MSG_CTRUNC) || excess || count > max_fds) {
        s_close_all (arrived, count);
        shmipc__log ("fdpass: refused %zu descriptor(s)%s (at most %zu expected)",
                     count, (msg.msg_flags & MSG_CTRUNC) ? " and truncated control data" : "",
                     max_fds);
        errno = EPROTO;
        return -1;
    }
    if (msg.msg_flags & MSG_TRUNC) {
        s_close_all (arrived, count);
        errno = EMSGSIZE;
        return -1;
    }
    if (count)
        memcpy (fds, arrived, count * sizeof (int));
    *nfds_p = count;
    return rc;
}
