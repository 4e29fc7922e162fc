/*  =========================================================================
    util - internal helpers shared by the core and the plugin: diagnostics,
    the clock, and the one home of rules that several layers apply (names
    without control characters, the segment size of a ring, growing an
    array)

    Owns nothing. Internal names carry a shmipc__ prefix (libuv style) and
    are hidden from the library's exported symbols.
    =========================================================================
*/

#ifndef SHMIPC_UTIL_H_INCLUDED
#define SHMIPC_UTIL_H_INCLUDED

#include "shmipc_common.h"

#include <sys/types.h>

//  ThreadSanitizer builds (SHMIPC__TSAN), and the annotations that hide
//  from it what it cannot see (memory handed over through libzmq, which is
//  not instrumented, or written by another process). The Annotate* calls,
//  not __tsan_ignore_thread_*: a program that does not link libshmipc (one
//  under the launcher) exports only these from the TSan runtime in it.
#if defined (__has_feature)
#   if __has_feature (thread_sanitizer)
#       define SHMIPC__TSAN
#   endif
#endif
#if defined (__SANITIZE_THREAD__) && !defined (SHMIPC__TSAN)
#   define SHMIPC__TSAN
#endif
#ifdef SHMIPC__TSAN
void AnnotateIgnoreReadsBegin (const char *file, int line);
void AnnotateIgnoreReadsEnd (const char *file, int line);
void AnnotateIgnoreWritesBegin (const char *file, int line);
void AnnotateIgnoreWritesEnd (const char *file, int line);
void AnnotateHappensBefore (const char *file, int line, const volatile void *address);
void AnnotateHappensAfter (const char *file, int line, const volatile void *address);
#endif

//  An object handed to another thread through libzmq (a pointer in an
//  actor command): what the sender did to it happens before the
//  receiver's use. Only TSan needs telling.
#ifdef SHMIPC__TSAN
#   define SHMIPC__HANDED_OVER(address)  AnnotateHappensBefore (__FILE__, __LINE__, (address))
#   define SHMIPC__TAKEN_OVER(address)   AnnotateHappensAfter (__FILE__, __LINE__, (address))
#else
#   define SHMIPC__HANDED_OVER(address)  ((void) (address))
#   define SHMIPC__TAKEN_OVER(address)   ((void) (address))
#endif

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

//  Return true if the size bytes at text hold no control character (below
//  0x20, or 0x7f): names and paths from anyone must pass this.
bool
    shmipc__printable (const char *text, size_t size);

//  The uids allowed to talk to us besides our own effective uid and root,
//  which always may: the one home of that rule (listeners check clients,
//  connecting sockets check servers).
#define SHMIPC__UIDS_MAX    16

typedef struct {
    uid_t items [SHMIPC__UIDS_MAX];     //  Extra uids allowed
    size_t count;                       //  How many
    bool any;                           //  Any uid at all
} shmipc__uids_t;

//  Allow uid too. Returns 0, or -1 with ENOSPC when SHMIPC__UIDS_MAX are.
int
    shmipc__uids_add (shmipc__uids_t *self, uid_t uid);

//  Return true if a peer running as uid may talk to us.
bool
    shmipc__uids_allow (const shmipc__uids_t *self, uid_t uid);

//  Return the bytes of a channel segment whose ring holds capacity bytes:
//  the header page(s) and the ring, rounded up to whole pages. Both sides
//  of the handshake (and every test peer) compute it here.
size_t
    shmipc__segment_bytes (size_t capacity);

//  Make room for count items of item_size bytes in *items (a malloc'd
//  array with *slots room), doubling as needed. Returns 0, or -1 with
//  ENOMEM (the array and *slots then unchanged). The array may move: take
//  no pointer into it across a call.
int
    shmipc__grow (void **items, size_t *slots, size_t count, size_t item_size);

//  Store and load a little-endian u64 (what crosses to a peer is always
//  little-endian), at any alignment.
static inline void
shmipc__put64 (uint8_t *at, uint64_t value)
{
    for (int index = 0; index < 8; index++)
        at [index] = (uint8_t) (value >> (8 * index));
}

static inline uint64_t
shmipc__get64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--)
        value = (value << 8) | at [index];
    return value;
}

//  Exchange the contents of two messages (msg.c). The channel hands over a
//  reassembled message this way, without copying a byte.
typedef struct _shmipc_msg_t shmipc_msg_t;
void
    shmipc__msg_swap (shmipc_msg_t *one, shmipc_msg_t *two);

#endif
