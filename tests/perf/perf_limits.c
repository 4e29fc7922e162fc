/*  =========================================================================
    perf_limits - the machine's limits, measured in forked children (no
    czmq here): memcpy bandwidth at a message size, a cache-line ping-pong
    between two processes (two atomic words in a MAP_SHARED anonymous
    mapping, busy polling), and a bare eventfd ping-pong (blocking reads)

    Owns its buffers. The coordinator owns the shared mapping and the two
    eventfds; each child only uses what it inherited.
    =========================================================================
*/

#include "perf.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The shared words, one cache line each so that each has one writer.
typedef struct {
    _Alignas (64) _Atomic uint64_t ping;    //  Written by the pinger
    _Alignas (64) _Atomic uint64_t pong;    //  Written by the ponger
} s_lines_t;

_Static_assert (sizeof (s_lines_t) <= 4096, "the shared lines fit one page");

//  Busy-poll politely: tell the CPU we spin; yield only after a long time
//  without progress (another process holds our core), never in the normal case.
static inline void
s_relax (uint64_t *spins)
{
#if defined (__x86_64__) || defined (__i386__)
    __builtin_ia32_pause ();
#elif defined (__aarch64__)
    __asm__ __volatile__ ("yield");
#endif
    if (++*spins % (1U << 20) == 0)
        sched_yield ();
}

int
perf_memcpy_role (const perf_job_t *job)
{
    //  Small sizes: a ring of buffers of the size, hot in the cache (about
    //  256 KiB each way); large ones: one source and one destination
    size_t size = job->size ? job->size : 1;
    size_t nbuffers = (256 * 1024) / size;
    if (nbuffers > 64)
        nbuffers = 64;
    if (nbuffers < 1)
        nbuffers = 1;
    uint8_t *source = (uint8_t *) malloc (nbuffers * size);
    uint8_t *target = (uint8_t *) malloc (nbuffers * size);
    if (!source || !target) {
        perf_fail ("out of memory");
        free (source);
        free (target);
        return 1;
    }
    memset (source, 0x5a, nbuffers * size);
    memset (target, 0xa5, nbuffers * size);
    //  Copy in rounds of about 1 MiB until the time is up
    uint64_t round = (1 << 20) / size;
    if (round < 1)
        round = 1;
    int64_t start = perf_now_ns ();
    int64_t until = start + (int64_t) job->memcpy_ms * 1000000;
    uint64_t copies = 0;
    size_t index = 0;
    int64_t now;
    do {
        for (uint64_t step = 0; step < round; step++) {
            memcpy (target + index * size, source + index * size, job->size);
            //  The copy must happen: tell the compiler memory is read
            __asm__ __volatile__ ("" : : "r" (target) : "memory");
            if (++index == nbuffers)
                index = 0;
        }
        copies += round;
        now = perf_now_ns ();
    } while (now < until);
    perf_say ("RESULT copies=%" PRIu64 " elapsed_ns=%" PRId64 " buffers=%zu",
              copies, now - start, nbuffers);
    free (source);
    free (target);
    return 0;
}

int
perf_cacheline_ping (const perf_job_t *job)
{
    s_lines_t *lines = (s_lines_t *) job->shared;
    uint64_t *samples = (uint64_t *) malloc ((job->count ? job->count : 1) * sizeof *samples);
    if (!samples) {
        perf_fail ("out of memory");
        return 1;
    }
    uint64_t total = job->warmup + job->count;
    uint64_t spins = 0;
    for (uint64_t seq = 1; seq <= total; seq++) {
        int64_t start = perf_now_ns ();
        atomic_store_explicit (&lines->ping, seq, memory_order_release);
        while (atomic_load_explicit (&lines->pong, memory_order_acquire) != seq)
            s_relax (&spins);
        int64_t end = perf_now_ns ();
        if (seq > job->warmup)
            samples [seq - 1 - job->warmup] = (uint64_t) (end - start);
    }
    double median_us, p99_us;
    perf_percentiles (samples, job->count, &median_us, &p99_us);
    perf_say ("RESULT count=%" PRIu64 " median_ns=%.0f p99_ns=%.0f",
              job->count, median_us * 1000, p99_us * 1000);
    free (samples);
    perf_wait_release ();
    return 0;
}

int
perf_cacheline_pong (const perf_job_t *job)
{
    s_lines_t *lines = (s_lines_t *) job->shared;
    uint64_t total = job->warmup + job->count;
    uint64_t spins = 0;
    for (uint64_t seq = 1; seq <= total; seq++) {
        while (atomic_load_explicit (&lines->ping, memory_order_acquire) != seq)
            s_relax (&spins);
        atomic_store_explicit (&lines->pong, seq, memory_order_release);
    }
    perf_say ("RESULT");
    perf_wait_release ();
    return 0;
}

//  Read or write one eventfd count, retrying on EINTR. Returns 0 or -1.
static int
s_eventfd_io (int fd, bool write_it)
{
    uint64_t value = 1;
    while (true) {
        ssize_t size = write_it ? write (fd, &value, sizeof value)
                                : read (fd, &value, sizeof value);
        if (size == (ssize_t) sizeof value)
            return 0;
        if (size < 0 && errno == EINTR)
            continue;
        perf_fail ("eventfd %s: %s", write_it ? "write" : "read",
                   size < 0 ? strerror (errno) : "short");
        return -1;
    }
}

int
perf_eventfd_ping (const perf_job_t *job)
{
    uint64_t *samples = (uint64_t *) malloc ((job->count ? job->count : 1) * sizeof *samples);
    if (!samples) {
        perf_fail ("out of memory");
        return 1;
    }
    uint64_t total = job->warmup + job->count;
    for (uint64_t seq = 0; seq < total; seq++) {
        int64_t start = perf_now_ns ();
        if (s_eventfd_io (job->fd_a, true) || s_eventfd_io (job->fd_b, false)) {
            free (samples);
            return 1;
        }
        int64_t end = perf_now_ns ();
        if (seq >= job->warmup)
            samples [seq - job->warmup] = (uint64_t) (end - start);
    }
    double median_us, p99_us;
    perf_percentiles (samples, job->count, &median_us, &p99_us);
    perf_say ("RESULT count=%" PRIu64 " median_ns=%.0f p99_ns=%.0f",
              job->count, median_us * 1000, p99_us * 1000);
    free (samples);
    perf_wait_release ();
    return 0;
}

int
perf_eventfd_pong (const perf_job_t *job)
{
    uint64_t total = job->warmup + job->count;
    for (uint64_t seq = 0; seq < total; seq++)
        if (s_eventfd_io (job->fd_a, false) || s_eventfd_io (job->fd_b, true))
            return 1;
    perf_say ("RESULT");
    perf_wait_release ();
    return 0;
}
