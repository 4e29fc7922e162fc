/*  test_segment - sealed memfd segments: what the seals forbid, that ours
    have every page allocated, and every descriptor attach must refuse
    (closing it).
*/
#include "testutil.h"
#include "shmipc_segment.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define KIND 0x5445u

//  The header segment.c writes at offset 0 (private to it; copied here to
//  forge segments by hand).
#define S_MAGIC     0x4745534350494d53ULL
#define S_VERSION   1
typedef struct {
    uint64_t magic;
    uint32_t version;
    uint32_t kind;
    uint64_t size;
} s_header_t;

static size_t
s_page (void)
{
    return (size_t) sysconf (_SC_PAGESIZE);
}

//  Write zeros over bytes [from, to) of fd: those pages become data.
static void
s_fill_zeros (int fd, size_t from, size_t to)
{
    static const uint8_t zeros [4096];
    while (from < to) {
        size_t chunk = to - from < sizeof zeros ? to - from : sizeof zeros;
        assert_int_equal (pwrite (fd, zeros, chunk, (off_t) from), (ssize_t) chunk);
        from += chunk;
    }
}

//  Forge a memfd of size bytes holding header, every page written (as
//  attach requires), then add seals. The header is written only if size
//  has room for it.
static int
s_forge (size_t size, s_header_t header, int seals)
{
    int fd = memfd_create ("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) size), 0);
    s_fill_zeros (fd, 0, size);
    if (size >= sizeof header)
        assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
    if (seals)
        assert_int_equal (fcntl (fd, F_ADD_SEALS, seals), 0);
    return fd;
}

//  A header that attach accepts for a segment of size bytes.
static s_header_t
s_good_header (size_t size)
{
    s_header_t header = {
        .magic = S_MAGIC, .version = S_VERSION, .kind = KIND, .size = size
    };
    return header;
}

//  Attach fd expecting refusal with errno code; check fd was closed.
static void
s_assert_refused (int fd, size_t min_size, size_t max_size, uint32_t kind, int code)
{
    int with_fd = tu_fd_count ();
    errno = 0;
    assert_null (shmipc_segment_attach (fd, min_size, max_size, kind));
    assert_int_equal (errno, code);
    assert_int_equal (tu_fd_count (), with_fd - 1);
    assert_int_equal (fcntl (fd, F_GETFD), -1);
    assert_int_equal (errno, EBADF);
}

static void
test_segment_new_carries_exactly_the_seals (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *segment = shmipc_segment_new ("seals", 10000, KIND);
    assert_non_null (segment);
    int fd = shmipc_segment_fd (segment);
    assert_int_equal (fcntl (fd, F_GET_SEALS), SHMIPC_SEGMENT_SEALS);
    //  No further seal can be added
    errno = 0;
    assert_int_equal (fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE), -1);
    assert_int_equal (errno, EPERM);
    assert_int_equal (fcntl (fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_true (shmipc_segment_writable (segment));
    shmipc_segment_destroy (&segment);
    assert_null (segment);
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_new_rounds_size_up_to_pages_and_writes_header (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t page = s_page ();
    size_t sizes [] = { SHMIPC_SEGMENT_HEADER, SHMIPC_SEGMENT_HEADER + 1,
                        3 * page - 1, 3 * page, 3 * page + 1 };
    for (size_t index = 0; index < sizeof sizes / sizeof sizes [0]; index++) {
        shmipc_segment_t *segment = shmipc_segment_new ("pages", sizes [index], KIND);
        assert_non_null (segment);
        size_t expected = (sizes [index] + page - 1) / page * page;
        assert_int_equal (shmipc_segment_size (segment), expected);
        struct stat st;
        assert_int_equal (fstat (shmipc_segment_fd (segment), &st), 0);
        assert_int_equal ((size_t) st.st_size, expected);
        s_header_t header;
        memcpy (&header, shmipc_segment_data (segment), sizeof header);
        assert_true (header.magic == S_MAGIC);
        assert_int_equal (header.version, S_VERSION);
        assert_int_equal (header.kind, KIND);
        assert_int_equal (header.size, expected);
        shmipc_segment_destroy (&segment);
    }
    tu_assert_baseline (baseline);
}

static void
test_segment_new_allocates_every_page (void **state)
{
    //  A peer's attach refuses holes, so ours must have none: every page
    //  is data for SEEK_HOLE and resident in the page cache
    tu_baseline_t baseline = tu_baseline ();
    size_t page = s_page ();
    size_t size = 256 * page;
    shmipc_segment_t *segment = shmipc_segment_new ("populated", size, KIND);
    assert_non_null (segment);
    assert_int_equal (lseek (shmipc_segment_fd (segment), 0, SEEK_HOLE), (off_t) size);
    unsigned char resident [256];
    assert_int_equal (mincore (shmipc_segment_data (segment), size, resident), 0);
    for (size_t index = 0; index < 256; index++)
        assert_int_equal (resident [index] & 1, 1);
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_name_shows_in_proc_fd (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *segment = shmipc_segment_new ("visible-name", 4096, KIND);
    assert_non_null (segment);
    char path [64], link [256];
    snprintf (path, sizeof path, "/proc/self/fd/%d", shmipc_segment_fd (segment));
    ssize_t size = readlink (path, link, sizeof link - 1);
    assert_true (size > 0);
    link [size] = 0;
    assert_non_null (strstr (link, "visible-name"));
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_maps_read_only_and_sees_owner_bytes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *owner = shmipc_segment_new ("shared", 3 * 4096, KIND);
    assert_non_null (owner);
    size_t size = shmipc_segment_size (owner);
    int fd = dup (shmipc_segment_fd (owner));
    assert_true (fd >= 0);
    shmipc_segment_t *peer = shmipc_segment_attach (fd, size, size, KIND);
    assert_non_null (peer);
    assert_false (shmipc_segment_writable (peer));
    assert_int_equal (shmipc_segment_size (peer), size);
    assert_int_equal (shmipc_segment_fd (peer), fd);
    uint8_t *mine = (uint8_t *) shmipc_segment_data (owner);
    const uint8_t *theirs = (const uint8_t *) shmipc_segment_data (peer);
    assert_ptr_not_equal (mine, theirs);
    //  Written after attaching, through the writable mapping: seen at once
    tu_fill (mine + SHMIPC_SEGMENT_HEADER, size - SHMIPC_SEGMENT_HEADER, 11);
    assert_true (tu_check (theirs + SHMIPC_SEGMENT_HEADER,
                           size - SHMIPC_SEGMENT_HEADER, 11));
    assert_memory_equal (mine, theirs, SHMIPC_SEGMENT_HEADER);
    mine [size - 1] ^= 0xff;
    assert_int_equal (theirs [size - 1], mine [size - 1]);
    shmipc_segment_destroy (&peer);
    shmipc_segment_destroy (&owner);
    tu_assert_baseline (baseline);
}

static void
test_segment_data_area_is_mirrored_read_only_for_the_peer (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *owner = shmipc_segment_new ("mirror", SHMIPC_SEGMENT_HEADER + 8192, KIND);
    assert_non_null (owner);
    if (!shmipc_segment_mirrored (owner)) {
        shmipc_segment_destroy (&owner);
        skip ();
    }
    size_t size = shmipc_segment_size (owner);
    size_t area = size - SHMIPC_SEGMENT_HEADER;
    shmipc_segment_t *peer = shmipc_segment_attach (dup (shmipc_segment_fd (owner)),
                                                    size, size, KIND);
    assert_non_null (peer);
    assert_true (shmipc_segment_mirrored (peer));
    uint8_t *mine = (uint8_t *) shmipc_segment_data (owner);
    const uint8_t *theirs = (const uint8_t *) shmipc_segment_data (peer);
    //  Written through either of our two mappings, seen through both of
    //  the peer's
    tu_fill (mine + size, area, 21);
    assert_true (tu_check (theirs + SHMIPC_SEGMENT_HEADER, area, 21));
    assert_true (tu_check (theirs + size, area, 21));
    mine [SHMIPC_SEGMENT_HEADER] ^= 0xff;
    assert_int_equal (theirs [size], mine [SHMIPC_SEGMENT_HEADER]);
    //  The peer's mirror is as read-only as the rest
    errno = 0;
    assert_int_equal (mprotect ((void *) (theirs + size), area, PROT_READ | PROT_WRITE), -1);
    assert_int_equal (errno, EACCES);
    shmipc_segment_destroy (&peer);
    shmipc_segment_destroy (&owner);
    tu_assert_baseline (baseline);
}

static void
test_segment_attached_mapping_cannot_be_made_writable (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *owner = shmipc_segment_new ("mprotect", 8192, KIND);
    assert_non_null (owner);
    size_t size = shmipc_segment_size (owner);
    shmipc_segment_t *peer = shmipc_segment_attach (dup (shmipc_segment_fd (owner)),
                                                    size, size, KIND);
    assert_non_null (peer);
    errno = 0;
    assert_int_equal (mprotect (shmipc_segment_data (peer), size,
                                PROT_READ | PROT_WRITE), -1);
    assert_int_equal (errno, EACCES);
    shmipc_segment_destroy (&peer);
    shmipc_segment_destroy (&owner);
    tu_assert_baseline (baseline);
}

static void
test_segment_fd_refuses_new_writable_mapping_and_writes (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *segment = shmipc_segment_new ("nowrite", 8192, KIND);
    assert_non_null (segment);
    int fd = shmipc_segment_fd (segment);
    size_t size = shmipc_segment_size (segment);
    errno = 0;
    assert_ptr_equal (mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0),
                      MAP_FAILED);
    assert_int_equal (errno, EPERM);
    errno = 0;
    assert_ptr_equal (mmap (NULL, size, PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    assert_int_equal (errno, EPERM);
    errno = 0;
    assert_int_equal (pwrite (fd, "x", 1, 100), -1);
    assert_int_equal (errno, EPERM);
    //  Also through a fresh open of the same file
    char path [64];
    snprintf (path, sizeof path, "/proc/self/fd/%d", fd);
    int again = open (path, O_RDWR | O_CLOEXEC);
    assert_true (again >= 0);
    errno = 0;
    assert_ptr_equal (mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, again, 0),
                      MAP_FAILED);
    assert_int_equal (errno, EPERM);
    close (again);
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_fd_cannot_shrink_or_grow (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    shmipc_segment_t *segment = shmipc_segment_new ("resize", 8192, KIND);
    assert_non_null (segment);
    int fd = shmipc_segment_fd (segment);
    size_t size = shmipc_segment_size (segment);
    errno = 0;
    assert_int_equal (ftruncate (fd, (off_t) size / 2), -1);
    assert_int_equal (errno, EPERM);
    errno = 0;
    assert_int_equal (ftruncate (fd, 0), -1);
    assert_int_equal (errno, EPERM);
    errno = 0;
    assert_int_equal (ftruncate (fd, (off_t) size * 2), -1);
    assert_int_equal (errno, EPERM);
    errno = 0;
    assert_int_equal (fallocate (fd, 0, 0, (off_t) size * 2), -1);
    assert_int_equal (errno, EPERM);
    struct stat st;
    assert_int_equal (fstat (fd, &st), 0);
    assert_int_equal ((size_t) st.st_size, size);
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_accepts_forged_segment_with_correct_seals_and_header (void **state)
{
    //  The control for the refusals below: a hand-made segment that differs
    //  from them in one respect only is accepted
    tu_baseline_t baseline = tu_baseline ();
    size_t size = 2 * s_page ();
    int fd = s_forge (size, s_good_header (size), SHMIPC_SEGMENT_SEALS);
    shmipc_segment_t *segment = shmipc_segment_attach (fd, size, size, KIND);
    assert_non_null (segment);
    assert_int_equal (shmipc_segment_size (segment), size);
    shmipc_segment_destroy (&segment);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_non_memfd_with_ebadf (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  A pipe
    int pipe_fds [2];
    assert_int_equal (pipe (pipe_fds), 0);
    close (pipe_fds [1]);
    s_assert_refused (pipe_fds [0], 0, SIZE_MAX, KIND, EBADF);
    //  A socket
    int pair [2];
    assert_int_equal (socketpair (AF_UNIX, SOCK_SEQPACKET, 0, pair), 0);
    close (pair [1]);
    s_assert_refused (pair [0], 0, SIZE_MAX, KIND, EBADF);
    //  A directory
    int dir = open ("/", O_RDONLY | O_DIRECTORY);
    assert_true (dir >= 0);
    s_assert_refused (dir, 0, SIZE_MAX, KIND, EBADF);
    //  Not a descriptor at all
    errno = 0;
    assert_null (shmipc_segment_attach (-1, 0, SIZE_MAX, KIND));
    assert_int_equal (errno, EBADF);
    //  A memfd, sealed just right, but on hugetlbfs (where supported)
    int huge = memfd_create ("huge", MFD_CLOEXEC | MFD_HUGETLB | MFD_ALLOW_SEALING);
    if (huge >= 0) {
        assert_int_equal (ftruncate (huge, 2 << 20), 0);
        assert_int_equal (fcntl (huge, F_ADD_SEALS, SHMIPC_SEGMENT_SEALS), 0);
        s_assert_refused (huge, 0, SIZE_MAX, KIND, EBADF);
    }
    else
        print_message ("no hugetlb memfd here: that case skipped\n");
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_regular_file_with_ebadf (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    //  A regular file with a perfect header, on a disk file system
    int fd = open ("/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    assert_true (fd >= 0);
    struct statfs fs;
    assert_int_equal (fstatfs (fd, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC) {
        close (fd);
        print_message ("/var/tmp is tmpfs here: regular-file case skipped\n");
        skip ();
    }
    size_t size = 2 * s_page ();
    assert_int_equal (ftruncate (fd, (off_t) size), 0);
    s_header_t header = s_good_header (size);
    assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
    s_assert_refused (fd, 0, SIZE_MAX, KIND, EBADF);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_wrong_seals_with_eperm (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t size = 2 * s_page ();
    s_header_t header = s_good_header (size);
    int seals [] = {
        0,                                                          //  Unsealed
        F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW,                  //  Writable
        SHMIPC_SEGMENT_SEALS & ~F_SEAL_SEAL,                        //  Sealable later
        SHMIPC_SEGMENT_SEALS & ~F_SEAL_SHRINK,
        SHMIPC_SEGMENT_SEALS & ~F_SEAL_GROW,
        SHMIPC_SEGMENT_SEALS | F_SEAL_WRITE,                        //  One extra
        F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE,   //  Write, not future
    };
    for (size_t index = 0; index < sizeof seals / sizeof seals [0]; index++) {
        int fd = s_forge (size, header, seals [index]);
        s_assert_refused (fd, 0, SIZE_MAX, KIND, EPERM);
    }
    //  A memfd that cannot be sealed at all
    int fd = memfd_create ("unsealable", MFD_CLOEXEC);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) size), 0);
    assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
    s_assert_refused (fd, 0, SIZE_MAX, KIND, EPERM);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_size_out_of_range_with_emsgsize (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t page = s_page ();
    size_t size = 4 * page;
    //  Both sides of each bound
    int fd = s_forge (size, s_good_header (size), SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, size + 1, SIZE_MAX, KIND, EMSGSIZE);
    fd = s_forge (size, s_good_header (size), SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, 0, size - 1, KIND, EMSGSIZE);
    fd = s_forge (size, s_good_header (size), SHMIPC_SEGMENT_SEALS);
    shmipc_segment_t *segment = shmipc_segment_attach (fd, size, size, KIND);
    assert_non_null (segment);
    shmipc_segment_destroy (&segment);
    //  Smaller than a header, or not whole pages, whatever the caller allows
    fd = s_forge (SHMIPC_SEGMENT_HEADER - 8, s_good_header (SHMIPC_SEGMENT_HEADER - 8),
                  SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, 0, SIZE_MAX, KIND, EMSGSIZE);
    fd = s_forge (0, s_good_header (0), SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, 0, SIZE_MAX, KIND, EMSGSIZE);
    fd = s_forge (size + 8, s_good_header (size + 8), SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, 0, SIZE_MAX, KIND, EMSGSIZE);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_bad_header_with_eproto (void **state)
{
    tu_baseline_t baseline = tu_baseline ();
    size_t size = 2 * s_page ();
    for (int variant = 0; variant < 6; variant++) {
        s_header_t header = s_good_header (size);
        switch (variant) {
            case 0: header.magic ^= 1; break;
            case 1: header.magic = 0; break;
            case 2: header.version = S_VERSION + 1; break;
            case 3: header.kind = KIND + 1; break;
            case 4: header.size = size - s_page (); break;
            case 5: header.size = size + s_page (); break;
        }
        int fd = s_forge (size, header, SHMIPC_SEGMENT_SEALS);
        s_assert_refused (fd, 0, SIZE_MAX, KIND, EPROTO);
    }
    //  The kind asked for is part of the header check
    int fd = s_forge (size, s_good_header (size), SHMIPC_SEGMENT_SEALS);
    s_assert_refused (fd, 0, SIZE_MAX, KIND ^ 0x100, EPROTO);
    tu_assert_baseline (baseline);
}

static void
test_segment_attach_refuses_segment_with_holes_with_enodata (void **state)
{
    //  Each differs from the forged segment that attach accepts only in
    //  pages never written, which our reads would allocate at our cost
    tu_baseline_t baseline = tu_baseline ();
    size_t page = s_page ();
    size_t size = 4 * page;
    s_header_t header = s_good_header (size);
    for (int variant = 0; variant < 4; variant++) {
        int fd = memfd_create ("sparse", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        assert_true (fd >= 0);
        assert_int_equal (ftruncate (fd, (off_t) size), 0);
        if (variant == 0)               //  Only the header page
            ;
        else
        if (variant == 1) {             //  All but one page in the middle
            s_fill_zeros (fd, 0, 2 * page);
            s_fill_zeros (fd, 3 * page, size);
        }
        else
        if (variant == 2)               //  All but the last page
            s_fill_zeros (fd, 0, size - page);
        else                            //  Allocated, never initialised
            assert_int_equal (fallocate (fd, 0, 0, (off_t) size), 0);
        assert_int_equal (pwrite (fd, &header, sizeof header, 0), sizeof header);
        assert_int_equal (fcntl (fd, F_ADD_SEALS, SHMIPC_SEGMENT_SEALS), 0);
        s_assert_refused (fd, 0, SIZE_MAX, KIND, ENODATA);
    }
    tu_assert_baseline (baseline);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_segment_new_carries_exactly_the_seals),
        cmocka_unit_test (test_segment_new_rounds_size_up_to_pages_and_writes_header),
        cmocka_unit_test (test_segment_new_allocates_every_page),
        cmocka_unit_test (test_segment_name_shows_in_proc_fd),
        cmocka_unit_test (test_segment_attach_maps_read_only_and_sees_owner_bytes),
        cmocka_unit_test (test_segment_attached_mapping_cannot_be_made_writable),
        cmocka_unit_test (test_segment_data_area_is_mirrored_read_only_for_the_peer),
        cmocka_unit_test (test_segment_fd_refuses_new_writable_mapping_and_writes),
        cmocka_unit_test (test_segment_fd_cannot_shrink_or_grow),
        cmocka_unit_test (test_segment_attach_accepts_forged_segment_with_correct_seals_and_header),
        cmocka_unit_test (test_segment_attach_refuses_non_memfd_with_ebadf),
        cmocka_unit_test (test_segment_attach_refuses_regular_file_with_ebadf),
        cmocka_unit_test (test_segment_attach_refuses_wrong_seals_with_eperm),
        cmocka_unit_test (test_segment_attach_refuses_size_out_of_range_with_emsgsize),
        cmocka_unit_test (test_segment_attach_refuses_bad_header_with_eproto),
        cmocka_unit_test (test_segment_attach_refuses_segment_with_holes_with_enodata),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
