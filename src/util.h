/*  =========================================================================
    util - internal helpers shared by the core: diagnostics and the clock

    Owns nothing. Internal names carry a shmipc__ prefix (libuv style) and
    are hidden from the library's exported symbols.
    =========================================================================
*/

#ifndef SHMIPC_UTIL_H_INCLUDED
#define SHMIPC_UTIL_H_INCLUDED

#include "shmipc_common.h"

//  Print a diagnostic line on stderr when verbose mode is on.
void
    shmipc__log (const char *format, ...) __attribute__ ((format (printf, 1, 2)));

//  Return monotonic time in milliseconds.
int64_t
    shmipc__now_ms (void);

//  Return monotonic time in microseconds.
int64_t
    shmipc__now_us (void);

//  Wait for events on fd for up to timeout_ms (-1: for ever). Returns
//  poll's revents, 0 on timeout, or -1 with errno (EINTR if a signal came:
//  waiting calls report it, as ZeroMQ's do).
int
    shmipc__poll_fd (int fd, short events, int timeout_ms);

//  Return the ms left until deadline (a shmipc__now_ms value; -1 means no
//  deadline, giving -1), never below 0.
int
    shmipc__remaining_ms (int64_t deadline);

//  Return the deadline timeout_ms from now (-1 stays -1: no deadline).
int64_t
    shmipc__deadline (int timeout_ms);

//  Round size up to a power of two (size <= 2^62).
size_t
    shmipc__pow2 (size_t size);

//  Exchange the contents of two messages (msg.c). The channel hands over a
//  reassembled message this way, without copying a byte.
typedef struct _shmipc_msg_t shmipc_msg_t;
void
    shmipc__msg_swap (shmipc_msg_t *one, shmipc_msg_t *two);

#endif
