/*  =========================================================================
    guide.h - helpers for the Guide-style programs in tests/guide/, in the
    spirit of the ZeroMQ Guide's zhelpers.h: strings on sockets, sleeping,
    clocks, failing loudly, and the proof that a process really talked
    through shared memory (its /proc/self/maps holds shmipc's memfd files).

    The programs link libzmq only: under shmipc-run the shm:// endpoints
    are served by the preloaded library; without it they fail at bind or
    connect, as a libzmq that does not know the scheme must.
    =========================================================================
*/

#ifndef GUIDE_H_INCLUDED
#define GUIDE_H_INCLUDED

#include <zmq.h>
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  How long any single wait may take before a program gives up: far more
//  than a healthy run needs, far less than the driver's own timeout
#define GUIDE_PATIENCE_MS   20000

//  Random number in [0, num); each program seeds with its pid
#define randof(num)  (int) ((double) (num) * random () / (RAND_MAX + 1.0))

//  Print "program: message" on stdout and flush it, so that the driver
//  sees every line even when the program is killed
static inline void
    s_say (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
static inline void
s_say (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    printf ("%s: ", program_invocation_short_name);
    vprintf (format, args);
    printf ("\n");
    fflush (stdout);
    va_end (args);
}

//  Report what went wrong and exit 1: a failed check ends the program
static inline void
    s_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2), noreturn));
static inline void
s_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: FAIL: ", program_invocation_short_name);
    vfprintf (stderr, format, args);
    fprintf (stderr, " (errno %d: %s)\n", errno, zmq_strerror (errno));
    fflush (stderr);
    va_end (args);
    exit (1);
}

//  A libzmq call must succeed
#define s_check(expr) \
    do { if ((expr) == -1) s_fail ("%s, line %d: %s", __FILE__, __LINE__, #expr); } while (0)

//  Receive one frame as a fresh string, or NULL on timeout/termination
//  (or, with ZMQ_DONTWAIT, when nothing is there)
static inline char *
s_recv_flags (void *socket, int flags)
{
    char buffer [1024];
    int size = zmq_recv (socket, buffer, sizeof buffer - 1, flags);
    if (size == -1)
        return NULL;
    if (size > (int) sizeof buffer - 1)
        s_fail ("frame of %d bytes is longer than any this program sends", size);
    buffer [size] = 0;
    return strdup (buffer);
}

static inline char *
s_recv (void *socket)
{
    return s_recv_flags (socket, 0);
}

static inline char *
s_recv_nowait (void *socket)
{
    return s_recv_flags (socket, ZMQ_DONTWAIT);
}

//  Receive one frame that must come: fail on timeout
static inline char *
s_recv_must (void *socket, const char *what)
{
    char *string = s_recv (socket);
    if (!string)
        s_fail ("no %s", what);
    return string;
}

static inline int
s_send (void *socket, const char *string)
{
    return zmq_send (socket, string, strlen (string), 0);
}

static inline int
s_sendmore (void *socket, const char *string)
{
    return zmq_send (socket, string, strlen (string), ZMQ_SNDMORE);
}

//  Whether the frame just received has more frames after it
static inline bool
s_more (void *socket)
{
    int more = 0;
    size_t size = sizeof more;
    if (zmq_getsockopt (socket, ZMQ_RCVMORE, &more, &size) == -1)
        return false;
    return more != 0;
}

static inline void
s_set_int (void *socket, int option, int value)
{
    if (zmq_setsockopt (socket, option, &value, sizeof value) == -1)
        s_fail ("zmq_setsockopt (%d, %d)", option, value);
}

static inline void
s_sleep (int msecs)
{
    struct timespec t = { msecs / 1000, (msecs % 1000) * 1000000L };
    nanosleep (&t, NULL);
}

//  Monotonic milliseconds
static inline int64_t
s_clock (void)
{
    struct timespec t;
    clock_gettime (CLOCK_MONOTONIC, &t);
    return (int64_t) t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

//  -------------------------------------------------------------------------
//  Proof of shared memory: the lines of /proc/self/maps that map one of
//  shmipc's memfd files. A process with a live shm:// connection has some.

static inline int
s_shm_mappings (void)
{
    FILE *maps = fopen ("/proc/self/maps", "r");
    if (!maps)
        return 0;
    char *line = NULL;
    size_t size = 0;
    int count = 0;
    while (getline (&line, &size, maps) != -1)
        if (strstr (line, "/memfd:shmipc:"))
            count++;
    free (line);
    fclose (maps);
    return count;
}

//  The most mappings seen at any s_shm_note: call it (from one thread
//  only) where a connection is known to be up, as after a message came
static int s_shm_seen;

static inline void
s_shm_note (void)
{
    int count = s_shm_mappings ();
    if (count > s_shm_seen)
        s_shm_seen = count;
}

//  For a process that may receive nothing: wait until a connection it
//  made shows up in its maps, as it must once the peer is there
static inline void
s_shm_wait (void)
{
    int64_t deadline = s_clock () + GUIDE_PATIENCE_MS;
    while (s_shm_mappings () == 0 && s_clock () < deadline)
        s_sleep (10);
    s_shm_note ();
}

//  Stop a zmq_proxy_steerable through its control socket, from the thread
//  that reads its capture socket. Some libzmq versions (4.3.4) copy control
//  commands to the capture socket too: read on until the main thread, past
//  the proxy, says END, so the proxy never waits on a capture socket
//  nobody reads.
static inline void
s_proxy_stop (void *control, void *capture)
{
    s_check (s_send (control, "TERMINATE"));
    while (true) {
        char *frame = s_recv_must (capture, "END from the main thread");
        bool end = strcmp (frame, "END") == 0;
        free (frame);
        if (end)
            break;
    }
}

//  Print the proof line the driver checks; a process that had peers and
//  saw no shared memory failed
static inline void
s_shm_report (void)
{
    s_say ("shm-mappings: %d", s_shm_seen);
    if (s_shm_seen == 0)
        s_fail ("no /memfd:shmipc: mapping was ever seen: not over shared memory");
}

#endif
