/*  =========================================================================
    wakepipe - the pipes that carry wake-ups between two channel ends: a
    byte written into the peer's pipe wakes it, where a WAKE record on the
    socket costs several times more (docs/protocol.md, PIPE)

    Owns nothing: it makes, checks and uses descriptors its caller keeps
    (channel_link). Each side makes the pipe it is woken through and sends
    its write end to the peer in a PIPE record.

    Why every descriptor here is a description of our own, opened anew
    through /proc/self/fd: a descriptor passed over a socket shares its
    open file description, flags included, with the sender. A peer could
    clear O_NONBLOCK on a shared one and fill the pipe: our next write would
    then block the actor for ever. And each of our descriptions both reads
    and writes, so the pipe never hangs up on us (no end-of-file spin when
    the peer closes its end) and a write never raises SIGPIPE.
    =========================================================================
*/

#ifndef SHMIPC_WAKEPIPE_H_INCLUDED
#define SHMIPC_WAKEPIPE_H_INCLUDED

#include "util.h"

//  Make the pipe the peer wakes us through. *own_p gets our descriptor (to
//  poll and drain), *give_p the write end to send (the caller closes it
//  once sent). Returns 0, or -1 with errno (out of descriptors; ENOENT or
//  EACCES without /proc: the caller then goes on with WAKE records).
int
    shmipc__wakepipe_new (int *own_p, int *give_p);

//  Take the pipe the peer sent (fd, always closed here): check that it is
//  an anonymous pipe and open our own description of it. Returns that
//  descriptor, or -1 with errno: EPROTO (not an anonymous pipe), or
//  another (out of descriptors, no /proc: WAKE records still work).
int
    shmipc__wakepipe_adopt (int fd);

//  Write one wake-up into the peer's pipe without waiting. Returns 0, or -1
//  with errno (EAGAIN: the pipe is full, so the peer has wake-ups to read
//  already, and this one can be dropped).
int
    shmipc__wakepipe_wake (int fd);

//  Read every wake-up waiting in our pipe, without waiting. Returns how
//  many bytes were read (a peer may write more than it should: each read
//  takes up to 256, and the pipe holds one page).
size_t
    shmipc__wakepipe_drain (int fd);

#endif
