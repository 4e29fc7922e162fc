/*  =========================================================================
    perf_util - clock, sizes, message stamps, percentiles, and the child
    side of the line protocol (READY, RESULT on stdout; release on EOF)

    Owns nothing but the role name used in error messages.
    =========================================================================
*/

#include "perf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *s_role = "shmipc-perf";

int64_t
perf_now_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000 + now.tv_nsec;
}

int
perf_parse_size (const char *text, uint64_t *value)
{
    char *end;
    errno = 0;
    unsigned long long number = strtoull (text, &end, 10);
    if (errno || end == text || *text == '-')
        return -1;
    uint64_t scale = 1;
    switch (*end) {
        case 'k': case 'K': scale = 1ULL << 10; end++; break;
        case 'm': case 'M': scale = 1ULL << 20; end++; break;
        case 'g': case 'G': scale = 1ULL << 30; end++; break;
        default: break;
    }
    if (scale > 1 && *end == 'i')
        end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end || number > UINT64_MAX / scale)
        return -1;
    *value = number * scale;
    return 0;
}

const char *
perf_format_size (uint64_t size, char *buffer, size_t buffer_size)
{
    static const char *units [] = { "B", "KiB", "MiB", "GiB" };
    int unit = 0;
    double value = (double) size;
    while (value >= 1024 && unit < 3) {
        value /= 1024;
        unit++;
    }
    if (value == (double) (uint64_t) value)
        snprintf (buffer, buffer_size, "%" PRIu64 " %s", (uint64_t) value, units [unit]);
    else
        snprintf (buffer, buffer_size, "%.1f %s", value, units [unit]);
    return buffer;
}

//  The mark in a message's last 8 bytes: not the sequence number itself, so
//  that a message cut short or shifted does not pass.
static uint64_t
s_tail_mark (uint64_t seq)
{
    return ~seq ^ 0x53484d4950435046ULL;
}

void
perf_stamp (void *data, size_t size, uint64_t seq)
{
    uint8_t *bytes = (uint8_t *) data;
    memcpy (bytes, &seq, size < 8 ? size : 8);
    if (size >= 16) {
        uint64_t mark = s_tail_mark (seq);
        memcpy (bytes + size - 8, &mark, 8);
    }
}

int
perf_check (const void *data, size_t size, size_t expected_size, uint64_t seq)
{
    if (size != expected_size) {
        perf_fail ("message %" PRIu64 ": %zu bytes, expected %zu", seq, size, expected_size);
        return -1;
    }
    const uint8_t *bytes = (const uint8_t *) data;
    uint64_t got = 0;
    memcpy (&got, bytes, size < 8 ? size : 8);
    uint64_t want = seq;
    if (size < 8)
        want &= (1ULL << (8 * size)) - 1;
    if (got != want) {
        perf_fail ("message %" PRIu64 ": sequence number %" PRIu64 " (out of order, lost"
                   " or duplicated)", seq, got);
        return -1;
    }
    if (size >= 16) {
        uint64_t mark;
        memcpy (&mark, bytes + size - 8, 8);
        if (mark != s_tail_mark (seq)) {
            perf_fail ("message %" PRIu64 ": bad tail mark (torn or shifted content)", seq);
            return -1;
        }
    }
    return 0;
}

static int
s_compare_u64 (const void *one, const void *two)
{
    uint64_t a = *(const uint64_t *) one;
    uint64_t b = *(const uint64_t *) two;
    return a < b ? -1 : a > b;
}

void
perf_percentiles (uint64_t *samples, size_t count, double *median_us, double *p99_us)
{
    if (count == 0) {
        *median_us = *p99_us = 0;
        return;
    }
    qsort (samples, count, sizeof *samples, s_compare_u64);
    double median = count % 2 ? (double) samples [count / 2]
                  : ((double) samples [count / 2 - 1] + (double) samples [count / 2]) / 2;
    //  Nearest rank: the smallest sample with at least 99% at or below it
    size_t rank = (count * 99 + 99) / 100;
    *median_us = median / 1000;
    *p99_us = (double) samples [rank - 1] / 1000;
}

void
perf_set_role (const char *role)
{
    s_role = role;
}

void
perf_say (const char *format, ...)
{
    char line [PERF_LINE_MAX];
    va_list args;
    va_start (args, format);
    int size = vsnprintf (line, sizeof line - 1, format, args);
    va_end (args);
    if (size < 0)
        return;
    if ((size_t) size > sizeof line - 2)
        size = (int) sizeof line - 2;
    line [size++] = '\n';
    //  One write, so the coordinator never sees half a line from us
    const char *at = line;
    while (size > 0) {
        ssize_t written = write (STDOUT_FILENO, at, (size_t) size);
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        at += written;
        size -= (int) written;
    }
}

void
perf_fail (const char *format, ...)
{
    char line [PERF_LINE_MAX];
    va_list args;
    va_start (args, format);
    vsnprintf (line, sizeof line, format, args);
    va_end (args);
    fprintf (stderr, "shmipc-perf: %s: %s\n", s_role, line);
    fflush (stderr);
}

void
perf_wait_release (void)
{
    char buffer [64];
    while (true) {
        ssize_t size = read (STDIN_FILENO, buffer, sizeof buffer);
        if (size == 0 || (size < 0 && errno != EINTR))
            return;
    }
}
