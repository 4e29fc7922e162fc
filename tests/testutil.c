/*  =========================================================================
    testutil - resource counts and baselines, where bytes lie, which tool
    runs us, scaling, endpoint names, patterned bytes and channel pairs for
    the tests

    Owns nothing beyond what each helper returns to its caller. Processes
    are in testutil_proc.c.
    =========================================================================
*/

#include "testutil.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <limits.h>
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
//  does valgrind's heap, and ASan maps its stack depot in 64 KiB pieces as
//  new allocation sites appear (LeakSanitizer watches the heap there):
//  under them the baselines count our segments alone among the mappings. TSan also starts its symbolizer (two pipes) at its
//  first report, suppressed ones included: we start it before the first
//  baseline.
#ifdef TU_UNDER_TSAN
#   include <sanitizer/common_interface_defs.h>
#endif
#if defined (TU_UNDER_TSAN) || defined (TU_UNDER_ASAN) || defined (SHMIPC_UNDER_VALGRIND)
#   define S_COUNT_MEMFD_MAPS
#endif

//  In the sanitizers' runtimes, not in their headers: empties ASan's
//  quarantine (absent without a sanitizer, hence weak).
void __sanitizer_purge_allocator (void) __attribute__ ((weak));

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
tu_fds_linked_to (const char *prefix)
{
    DIR *dir = opendir ("/proc/self/fd");
    assert_non_null (dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir))) {
        char path [300], link [512];
        snprintf (path, sizeof path, "/proc/self/fd/%s", entry->d_name);
        ssize_t size = readlink (path, link, sizeof link - 1);
        if (size > 0) {
            link [size] = 0;
            count += strncmp (link, prefix, strlen (prefix)) == 0;
        }
    }
    closedir (dir);
    return count;
}

int
tu_thread_count (void)
{
    return s_count_dir ("/proc/self/task");
}

int
tu_maps_with (const char *needle)
{
    FILE *file = fopen ("/proc/self/maps", "r");
    assert_non_null (file);
    char line [512];
    int count = 0;
    while (fgets (line, sizeof line, file))
        count += strstr (line, needle) != NULL;
    fclose (file);
    return count;
}

int
tu_map_count (void)
{
#ifdef S_COUNT_MEMFD_MAPS
    return tu_maps_with ("memfd:");
#else
    FILE *file = fopen ("/proc/self/maps", "r");
    if (!file)
        return -1;
    int count = 0;
    int ch;
    while ((ch = fgetc (file)) != EOF)
        count += ch == '\n';
    fclose (file);
    return count;
#endif
}

long
tu_rss_kib (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    assert_non_null (file);
    char line [256];
    long rss = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "VmRSS: %ld kB", &rss) == 1)
            break;
    fclose (file);
    assert_true (rss > 0);
    return rss;
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
#ifdef TU_UNDER_TSAN
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
tu_assert_baseline (tu_baseline_t baseline)
{
    //  Freed blocks may sit in ASan's quarantine, still mapped: count
    //  only what is really held
    tu_settle_allocator ();
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

void
tu_settle_allocator (void)
{
    if (__sanitizer_purge_allocator)
        __sanitizer_purge_allocator ();
}

bool
tu_mapping_of (const void *address, char *perms, size_t perms_size,
               char *name, size_t name_size)
{
    FILE *maps = fopen ("/proc/self/maps", "r");
    assert_non_null (maps);
    uintptr_t target = (uintptr_t) address;
    char *line = NULL;          //  getline: a name may be PATH_MAX long
    size_t room = 0;
    bool found = false;
    while (!found && getline (&line, &room, maps) > 0) {
        //  start-end perms offset dev inode [name]: the range by hand, as
        //  sscanf on every line is slow under ThreadSanitizer and a test
        //  may look thousands of times
        char *cursor;
        uintptr_t start = (uintptr_t) strtoull (line, &cursor, 16);
        if (*cursor != '-')
            continue;
        uintptr_t end = (uintptr_t) strtoull (cursor + 1, &cursor, 16);
        if (target < start || target >= end)
            continue;
        found = true;
        char mode [8] = "";
        int name_at = 0;
        sscanf (cursor, " %7s %*s %*s %*s %n", mode, &name_at);
        snprintf (perms, perms_size, "%s", mode);
        char *text = name_at > 0 ? cursor + name_at : cursor + strlen (cursor);
        text [strcspn (text, "\n")] = 0;
        snprintf (name, name_size, "%s", text);
    }
    free (line);
    fclose (maps);
    return found;
}

//  True if address lies in a mapping whose name contains name_part, with
//  permissions perms (NULL: any).
static bool
s_mapping_is (const void *address, const char *name_part, const char *perms)
{
    char mode [8], name [PATH_MAX];
    return tu_mapping_of (address, mode, sizeof mode, name, sizeof name)
        && strstr (name, name_part) && (!perms || strcmp (mode, perms) == 0);
}

bool
tu_in_mapping (const void *data, size_t size, const char *name_part,
               const char *perms)
{
    if (!data || !s_mapping_is (data, name_part, perms))
        return false;
    return size <= 1
        || s_mapping_is ((const uint8_t *) data + size - 1, name_part, perms);
}

bool
tu_in_segment (const void *data)
{
    return tu_in_mapping (data, 0, TU_SEGMENT_MAPPING, NULL);
}

bool
tu_under_asan (void)
{
#ifdef TU_UNDER_ASAN
    return true;
#else
    return false;
#endif
}

bool
tu_under_tsan (void)
{
#ifdef TU_UNDER_TSAN
    return true;
#else
    return false;
#endif
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
    //  The server answers the client's HELLO, so it goes first
    assert_int_equal (shmipc_channel_handshake (*b, 1000), 0);
    assert_int_equal (shmipc_channel_handshake (*a, 1000), 0);
}

int
tu_channel_wait (shmipc_channel_t *channel, int timeout_ms, int *woke_p)
{
    //  A ready channel is woken through two descriptors: wake-ups come as
    //  bytes in its wake pipe, control messages and the end on the socket
    //  (and wake-ups too from a peer that has not taken our pipe yet)
    struct pollfd items [2] = {
        { .fd = shmipc_channel_fd (channel), .events = POLLIN },
        { .fd = shmipc_channel_wake_fd (channel), .events = POLLIN }
    };
    nfds_t count = items [1].fd >= 0 ? 2 : 1;
    int rc = poll (items, count, timeout_ms);
    if (woke_p) {
        *woke_p = 0;
        if (rc > 0 && items [0].revents)
            *woke_p |= 1;
        if (rc > 0 && count == 2 && items [1].revents)
            *woke_p |= 2;
    }
    return rc;
}

uint64_t
tu_random (uint64_t *state)
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
        uint64_t value = tu_random (&state);
        memcpy (bytes + index, &value, 8);
    }
    uint64_t value = tu_random (&state);
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
        uint64_t value = tu_random (&state);
        if (memcmp (bytes + index, &value, 8))
            return 0;
    }
    uint64_t value = tu_random (&state);
    for (; index < size; index++)
        if (bytes [index] != (uint8_t) (value >>= 8))
            return 0;
    return 1;
}

uint64_t
tu_frame_seed (uint64_t seed, size_t index)
{
    return seed * 1000003 + index;
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
        tu_fill (buffer + at, sizes [frame], tu_frame_seed (seed, frame));
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
                                         sizes [frame], tu_frame_seed (seed, frame))))
            return false;
    return true;
}
