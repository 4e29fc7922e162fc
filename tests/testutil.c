/*  =========================================================================
    testutil - resource counts, scaling and process helpers for the tests
    =========================================================================
*/

#include "testutil.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  ThreadSanitizer maps shadow memory for new regions as it goes, and so
//  does valgrind's heap: under them the baselines count our segments alone
//  among the mappings. TSan also starts its symbolizer (two pipes) at its
//  first report, suppressed ones included: we start it before the first
//  baseline.
#if defined (__has_feature)
#   if __has_feature (thread_sanitizer)
#       define S_UNDER_TSAN
#       include <sanitizer/common_interface_defs.h>
#   endif
#endif
#if defined (S_UNDER_TSAN) || defined (SHMIPC_UNDER_VALGRIND)
#   define S_COUNT_MEMFD_MAPS
#endif

static int
s_count_dir (const char *path)
{
    DIR *dir = opendir (path);
    if (!dir)
        return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name [0] != '.')
            count++;
    closedir (dir);
    return count - (strcmp (path, "/proc/self/fd") == 0);   //  opendir's own
}

int
tu_fd_count (void)
{
    return s_count_dir ("/proc/self/fd");
}

int
tu_thread_count (void)
{
    return s_count_dir ("/proc/self/task");
}

int
tu_map_count (void)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    if (!file)
        return -1;
    int count = 0;
#ifdef S_COUNT_MEMFD_MAPS
    char line [512];
    while (fgets (line, sizeof line, file))
        count += strstr (line, "memfd:") != NULL;
#else
    int ch;
    while ((ch = fgetc (file)) != EOF)
        count += ch == '\n';
#endif
    fclose (file);
    return count;
}

//  Touch every allocation size class once: allocators (ASan's in
//  particular) map a region the first time a size is used, which would
//  otherwise look like a leaked mapping.
static void
s_warm_allocator (void)
{
    static bool warmed = false;
    if (warmed)
        return;
    warmed = true;
#ifdef S_UNDER_TSAN
    char symbol [128];
    __sanitizer_symbolize_pc ((void *) (uintptr_t) &s_warm_allocator, "%f", symbol,
                              sizeof symbol);
#endif
    for (size_t size = 1; size <= (1 << 17); size += size / 16 + 1) {
        void *volatile block = malloc (size);
        free (block);
    }
}

tu_baseline_t
tu_baseline (void)
{
    s_warm_allocator ();
    tu_baseline_t baseline = {
        .fds = tu_fd_count (),
        .maps = tu_map_count (),
        .threads = tu_thread_count ()
    };
    return baseline;
}

void
tu_print_fds (void)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        if (entry->d_name [0] == '.')
            continue;
        char path [300], target [256];
        snprintf (path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t size = readlink (path, target, sizeof target - 1);
        target [size > 0 ? size : 0] = 0;
        print_error ("  fd %s -> %s\n", entry->d_name, target);
    }
    closedir (dir);
}

void
tu_assert_baseline (tu_baseline_t baseline)
{
    tu_baseline_t now = tu_baseline ();
    for (int tries = 0; tries < 200; tries++) {
        if (now.fds == baseline.fds && now.maps <= baseline.maps
        &&  now.threads == baseline.threads)
            break;
        usleep (10000);
        now = tu_baseline ();
    }
    if (now.fds != baseline.fds || now.maps > baseline.maps
    ||  now.threads != baseline.threads)
    {
        print_error ("baseline: fds %d -> %d, maps %d -> %d, threads %d -> %d\n",
                     baseline.fds, now.fds, baseline.maps, now.maps,
                     baseline.threads, now.threads);
        if (now.fds != baseline.fds)
            tu_print_fds ();
    }
    assert_int_equal (now.fds, baseline.fds);
    assert_true (now.maps <= baseline.maps);
    assert_int_equal (now.threads, baseline.threads);
}

long
tu_scaled (long count, long minimum)
{
    const char *env = getenv ("SHMIPC_TEST_SCALE");
    double scale = env ? atof (env) : 1.0;
    if (scale <= 0)
        scale = 1.0;
    long scaled = (long) ((double) count * scale);
    return scaled < minimum ? minimum : scaled;
}

int
tu_under_valgrind (void)
{
    const char *preload = getenv ("LD_PRELOAD");
    return preload && strstr (preload, "valgrind") != NULL;
}

void
tu_endpoint (char *buffer, size_t size, char kind)
{
    static int counter = 0;
    if (kind == 'a')
        snprintf (buffer, size, "shm://@shmipc-test-%d-%d", (int) getpid (), counter++);
    else
        snprintf (buffer, size, "shm:///tmp/shmipc-test-%d-%d", (int) getpid (), counter++);
}

pid_t
tu_fork (int (*fn) (void *), void *arg)
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        _exit (fn (arg));
    return pid;
}

int
tu_wait (pid_t pid)
{
    int status;
    while (waitpid (pid, &status, 0) == -1)
        if (errno != EINTR)
            return -1;
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return WEXITSTATUS (status);
}

void
tu_channel_pair (size_t capacity_a, size_t capacity_b,
                 shmipc_channel_t **a, shmipc_channel_t **b)
{
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    *a = shmipc_channel_new (pair [0], "a", capacity_a, SHMIPC_CLIENT);
    assert_non_null (*a);
    *b = shmipc_channel_new (pair [1], "b", capacity_b, SHMIPC_SERVER);
    assert_non_null (*b);
    assert_int_equal (shmipc_channel_handshake (*a, 1000), 0);
    assert_int_equal (shmipc_channel_handshake (*b, 1000), 0);
}

//  xorshift64: cheap, reproducible bytes.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

void
tu_fill (void *buffer, size_t size, uint64_t seed)
{
    uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
    uint8_t *bytes = (uint8_t *) buffer;
    size_t index = 0;
    for (; index + 8 <= size; index += 8) {
        uint64_t value = s_next (&state);
        memcpy (bytes + index, &value, 8);
    }
    uint64_t value = s_next (&state);
    for (; index < size; index++)
        bytes [index] = (uint8_t) (value >>= 8);
}

int
tu_check (const void *buffer, size_t size, uint64_t seed)
{
    uint64_t state = seed * 0x9E3779B97F4A7C15ULL + 1;
    const uint8_t *bytes = (const uint8_t *) buffer;
    size_t index = 0;
    for (; index + 8 <= size; index += 8) {
        uint64_t value = s_next (&state);
        if (memcmp (bytes + index, &value, 8))
            return 0;
    }
    uint64_t value = s_next (&state);
    for (; index < size; index++)
        if (bytes [index] != (uint8_t) (value >>= 8))
            return 0;
    return 1;
}

int
tu_send_frames (shmipc_channel_t *channel, const size_t *sizes, size_t nframes,
                uint64_t seed, uint8_t *buffer, int flags)
{
    assert_true (nframes <= 8);
    struct iovec frames [8];
    size_t at = 0;
    for (size_t frame = 0; frame < nframes; frame++) {
        frames [frame].iov_base = buffer + at;
        frames [frame].iov_len = sizes [frame];
        tu_fill (buffer + at, sizes [frame], seed * 4 + frame);
        at += sizes [frame];
    }
    return shmipc_channel_sendv (channel, frames, nframes, flags);
}

bool
tu_msg_is (shmipc_msg_t *msg, const size_t *sizes, size_t nframes, uint64_t seed)
{
    if (shmipc_msg_frames (msg) != nframes)
        return false;
    for (size_t frame = 0; frame < nframes; frame++)
        if (shmipc_msg_size (msg, frame) != sizes [frame]
        ||  (sizes [frame] && !tu_check (shmipc_msg_data (msg, frame),
                                         sizes [frame], seed * 4 + frame)))
            return false;
    return true;
}

int
tu_read_line (int fd, char *line, size_t size, int timeout_ms)
{
    size_t used = 0;
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    int64_t deadline = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000 + timeout_ms;
    while (used + 1 < size) {
        clock_gettime (CLOCK_MONOTONIC, &now);
        int left = (int) (deadline - ((int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000));
        struct pollfd item = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll (&item, 1, left) <= 0)
            return -1;
        char ch;
        if (read (fd, &ch, 1) != 1)
            return -1;
        if (ch == '\n')
            break;
        line [used++] = ch;
    }
    line [used] = 0;
    return 0;
}
