/*  =========================================================================
    util - diagnostics, clock, and the shared rules (see util.h)

    Owns the process-wide verbose flag.
    =========================================================================
*/

#include "util.h"
#include "shmipc_segment.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  -1: not yet read from the environment; 0 off; 1 on.
static atomic_int s_verbose = -1;

void
shmipc_set_verbose (bool verbose)
{
    atomic_store (&s_verbose, verbose ? 1 : 0);
}

bool
shmipc_verbose (void)
{
    int verbose = atomic_load (&s_verbose);
    if (verbose < 0) {
        const char *env = getenv ("SHMIPC_VERBOSE");
        verbose = env && *env && strcmp (env, "0") != 0;
        atomic_store (&s_verbose, verbose);
    }
    return verbose == 1;
}

void
shmipc__log (const char *format, ...)
{
    if (!shmipc_verbose ())
        return;
    char line [512];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    //  One write per line, so lines from threads do not interleave
    fprintf (stderr, "shmipc[%d]: %s\n", (int) getpid (), line);
}

int64_t
shmipc__now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t
shmipc__now_ms (void)
{
    return shmipc__now_us () / 1000;
}

int64_t
shmipc__deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : shmipc__now_ms () + timeout_ms;
}

int
shmipc__remaining_ms (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - shmipc__now_ms ();
    return left < 0 ? 0 : (int) (left > 0x7fffffff ? 0x7fffffff : left);
}

int
shmipc__poll_fd (int fd, short events, int timeout_ms)
{
    struct pollfd item = { .fd = fd, .events = events };
    int rc = poll (&item, 1, timeout_ms);
    return rc > 0 ? item.revents : rc;
}

size_t
shmipc__pow2 (size_t size)
{
    size_t pow2 = 1;
    while (pow2 < size)
        pow2 <<= 1;
    return pow2;
}

bool
shmipc__printable (const char *text, size_t size)
{
    for (size_t index = 0; index < size; index++)
        if ((unsigned char) text [index] < 0x20 || (unsigned char) text [index] == 0x7f)
            return false;
    return true;
}

size_t
shmipc__segment_bytes (size_t capacity)
{
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    return (SHMIPC_SEGMENT_HEADER + capacity + page - 1) / page * page;
}

int
shmipc__grow (void **items, size_t *slots, size_t count, size_t item_size)
{
    if (count <= *slots)
        return 0;
    size_t want = *slots ? *slots : 8;
    while (want < count)
        want *= 2;
    if (want > SIZE_MAX / item_size) {
        errno = ENOMEM;
        return -1;
    }
    void *grown = realloc (*items, want * item_size);
    if (!grown) {
        errno = ENOMEM;
        return -1;
    }
    *items = grown;
    *slots = want;
    return 0;
}

int
shmipc__uids_add (shmipc__uids_t *self, uid_t uid)
{
    if (self->count == SHMIPC__UIDS_MAX) {
        errno = ENOSPC;
        return -1;
    }
    self->items [self->count++] = uid;
    return 0;
}

bool
shmipc__uids_allow (const shmipc__uids_t *self, uid_t uid)
{
    if (self->any || uid == geteuid () || uid == 0)
        return true;
    for (size_t index = 0; index < self->count; index++)
        if (self->items [index] == uid)
            return true;
    return false;
}
