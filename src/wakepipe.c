/*  =========================================================================
    wakepipe - wake-up pipes: making ours, taking the peer's, writing and
    draining (see wakepipe.h for why each is reopened through /proc)

    Owns nothing. Trusts nothing about a descriptor the peer sent: it must
    be an anonymous pipe (its /proc link says "pipe:[...]": no file system
    is asked, so a hostile FUSE mount cannot stall us), and we use only a
    description we opened ourselves.
    =========================================================================
*/

#include "wakepipe.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  Open our own description of the pipe fd refers to: non-blocking, both
//  reading and writing. Returns it, or -1 with errno.
static int
s_reopen (int fd)
{
    char path [40];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    return open (path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
}

int
shmipc__wakepipe_new (int *own_p, int *give_p)
{
    int ends [2];
    if (pipe2 (ends, O_CLOEXEC))
        return -1;
    int own = s_reopen (ends [0]);
    int saved = errno;
    close (ends [0]);
    if (own < 0) {
        close (ends [1]);
        errno = saved;
        return -1;
    }
    //  A wake-up is one byte: a page is plenty, and bounds what a peer
    //  that writes without end makes the kernel hold for us
    (void) fcntl (own, F_SETPIPE_SZ, 4096);
    *own_p = own;
    *give_p = ends [1];
    return 0;
}

int
shmipc__wakepipe_adopt (int fd)
{
    //  Trusts: nothing. The link's target names the kind of object without
    //  asking any file system: only "pipe:[inode]" is an anonymous pipe
    char path [40];
    char target [64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t size = readlink (path, target, sizeof target - 1);
    if (size < 0) {
        int saved = errno;
        close (fd);
        errno = saved;
        return -1;
    }
    target [size] = 0;
    if (strncmp (target, "pipe:[", 6) != 0) {
        close (fd);
        errno = EPROTO;
        return -1;
    }
    int own = s_reopen (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return own;
}

int
shmipc__wakepipe_wake (int fd)
{
    while (true) {
        if (write (fd, "", 1) == 1)
            return 0;
        if (errno != EINTR)
            return -1;
    }
}

size_t
shmipc__wakepipe_drain (int fd)
{
    //  Bounded: a peer that writes as fast as we read must not keep us
    //  here (what is left only wakes us once more)
    uint8_t buffer [256];
    size_t total = 0;
    for (int reads = 0; reads < 64; reads++) {
        ssize_t rc = read (fd, buffer, sizeof buffer);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            break;
        total += (size_t) rc;
        if ((size_t) rc < sizeof buffer)
            break;              //  Empty now: no read to learn it
    }
    return total;
}
