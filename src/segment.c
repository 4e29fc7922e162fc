/*  =========================================================================
    segment - sealed memfd segments: create and seal ours, check and map a
    peer's read-only

    Owns one memfd and one mapping per segment. The seals are the kernel's
    guarantee that a peer can neither write our memory nor resize it (so no
    SIGBUS), whatever it does.
    =========================================================================
*/

#include "shmipc_segment.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

_Static_assert (SHMIPC_SEGMENT_SEALS
    == (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE),
    "SHMIPC_SEGMENT_SEALS must match fcntl.h");

#define S_MAGIC     0x4745534350494d53ULL   //  "SMIPCSEG", little-endian
#define S_VERSION   1

//  The header at offset 0 of every segment; written once by its owner
//  before the descriptor is sent, so the peer reads it once, on attach.
typedef struct {
    uint64_t magic;             //  S_MAGIC
    uint32_t version;           //  S_VERSION
    uint32_t kind;              //  Caller's tag (what the rest holds)
    uint64_t size;              //  Total bytes, equal to the memfd's size
} s_header_t;

struct _shmipc_segment_t {
    int fd;                     //  The memfd; owned
    void *data;                 //  Its mapping; owned
    size_t size;                //  The file's bytes
    size_t span;                //  Mapped bytes: size, and the data area
                                //  once more if mirrored
    bool mirrored;              //  The data area is mapped again right
                                //  after the end (see shmipc_segment.h)
    bool writable;              //  True if we created it (read-write)
};

static size_t
s_page_round (size_t size)
{
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    return (size + page - 1) / page * page;
}

//  ThreadSanitizer takes an mmap for a write of the whole range by the
//  thread that maps it. The peer's segment is written only by the peer,
//  through a mapping of its own that TSan never sees; but a frame lent in
//  place (shmipc_channel_hold) is read in the application's thread, which
//  libzmq (not instrumented) hands it to: every such read was reported as
//  a race with our mmap. The peer's segment is mapped with writes ignored
//  (TSan then clears the range's history instead).
#ifdef SHMIPC__TSAN
#   define S_UNSEEN_BEGIN()     AnnotateIgnoreWritesBegin (__FILE__, __LINE__)
#   define S_UNSEEN_END()       AnnotateIgnoreWritesEnd (__FILE__, __LINE__)
#else
#   define S_UNSEEN_BEGIN()
#   define S_UNSEEN_END()
#endif

//  Map self->fd (self->size bytes) with prot and flags; where the header
//  is whole pages, map the data area a second time right after the end,
//  so that a record crossing the ring's end reads and writes in one piece
//  (the two mappings are the same pages). Sets data, span and mirrored.
//  Returns 0 or -1 with errno.
static int
s_map (shmipc_segment_t *self, int prot, int flags)
{
    size_t page = (size_t) sysconf (_SC_PAGESIZE);
    size_t area = self->size - SHMIPC_SEGMENT_HEADER;
    self->mirrored = SHMIPC_SEGMENT_HEADER % page == 0 && area > 0;
    self->span = self->mirrored ? self->size + area : self->size;
    if (!self->mirrored) {
        self->data = mmap (NULL, self->size, prot, flags, self->fd, 0);
        return self->data == MAP_FAILED ? -1 : 0;
    }
    //  Reserve the whole span, then put both mappings in it
    uint8_t *base = (uint8_t *) mmap (NULL, self->span, PROT_NONE,
                                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        self->data = MAP_FAILED;
        return -1;
    }
    if (mmap (base, self->size, prot, flags | MAP_FIXED, self->fd, 0) == MAP_FAILED
    ||  mmap (base + self->size, area, prot, flags | MAP_FIXED, self->fd,
              SHMIPC_SEGMENT_HEADER) == MAP_FAILED) {
        int saved = errno;
        munmap (base, self->span);
        self->data = MAP_FAILED;
        errno = saved;
        return -1;
    }
    self->data = base;
    return 0;
}

//  Return true if every page of the file's size bytes is allocated and
//  initialised: the first hole is at the end. A hole (never written, or
//  only fallocated) would be allocated by whoever first reads it.
static bool
s_populated (int fd, size_t size)
{
    return lseek (fd, 0, SEEK_HOLE) == (off_t) size;
}

shmipc_segment_t *
shmipc_segment_new (const char *name, size_t size, uint32_t kind)
{
    assert (name);
    if (size < SHMIPC_SEGMENT_HEADER || size > (1UL << 40)) {
        errno = EINVAL;
        return NULL;
    }
    shmipc_segment_t *self = (shmipc_segment_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->size = s_page_round (size);
    self->writable = true;
    self->data = MAP_FAILED;
    char label [64];
    snprintf (label, sizeof label, "shmipc:%s", name);
    self->fd = memfd_create (label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (self->fd == -1
    ||  ftruncate (self->fd, (off_t) self->size) == -1)
        goto failed;
    //  Allocate every page now. fallocate reports a shortage as an error
    //  (MAP_POPULATE alone would leave holes silently); populating then
    //  clears each page, which marks it data for SEEK_HOLE, and spares the
    //  hot path its page faults. A peer refuses a segment with holes
    if (fallocate (self->fd, 0, 0, (off_t) self->size) == -1)
        goto failed;
    //  Both mappings before the seals: after them nobody, not even we,
    //  gets a writable mapping
    if (s_map (self, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE))
        goto failed;
    if (!s_populated (self->fd, self->size)) {
        errno = ENOMEM;
        goto failed;
    }
    s_header_t *header = (s_header_t *) self->data;
    header->magic = S_MAGIC;
    header->version = S_VERSION;
    header->kind = kind;
    header->size = self->size;
    //  Our read-write mapping exists; from now on nobody gets another one
    if (fcntl (self->fd, F_ADD_SEALS, SHMIPC_SEGMENT_SEALS) == -1)
        goto failed;
    return self;

failed:;
    int saved = errno;
    shmipc_segment_destroy (&self);
    errno = saved;
    return NULL;
}

//  Refuse fd with errno code and a logged reason; closes fd.
static shmipc_segment_t *
s_refuse (int fd, int code, const char *reason)
{
    shmipc__log ("segment: refused descriptor: %s", reason);
    close (fd);
    errno = code;
    return NULL;
}

shmipc_segment_t *
shmipc_segment_attach (int fd, size_t min_size, size_t max_size, uint32_t kind)
{
    //  Trusts nothing about fd: type, seals, size, allocated pages and
    //  header are all checked before anything is mapped or read.
    struct stat st;
    if (fd < 0 || fstat (fd, &st) == -1)
        return s_refuse (fd, EBADF, "not a descriptor");
    struct statfs fs;
    if (!S_ISREG (st.st_mode) || fstatfs (fd, &fs) == -1
    ||  fs.f_type != TMPFS_MAGIC)
        return s_refuse (fd, EBADF, "not a memfd");
    int seals = fcntl (fd, F_GET_SEALS);
    if (seals == -1)
        return s_refuse (fd, EBADF, "not a memfd (no seals)");
    if (seals != SHMIPC_SEGMENT_SEALS)
        return s_refuse (fd, EPERM, "wrong seals");
    //  The size is fixed only once sealed: read it again, or a peer could
    //  shrink the file between our first look and its seals (SIGBUS)
    if (fstat (fd, &st) == -1)
        return s_refuse (fd, EBADF, "not a descriptor");
    if (st.st_size < (off_t) SHMIPC_SEGMENT_HEADER
    ||  (size_t) st.st_size < min_size || (size_t) st.st_size > max_size
    ||  (size_t) st.st_size != s_page_round ((size_t) st.st_size))
        return s_refuse (fd, EMSGSIZE, "size out of range");
    //  A hole would be allocated by our first read of it, in our memory:
    //  the owner pays for its pages up front (and the seals stop it from
    //  punching holes later)
    if (!s_populated (fd, (size_t) st.st_size))
        return s_refuse (fd, ENODATA, "not populated (holes)");

    shmipc_segment_t *self = (shmipc_segment_t *) calloc (1, sizeof *self);
    if (!self) {
        close (fd);
        return NULL;
    }
    self->fd = fd;
    self->size = (size_t) st.st_size;
    S_UNSEEN_BEGIN ();
    int rc = s_map (self, PROT_READ, MAP_SHARED);
    S_UNSEEN_END ();
    if (rc) {
        int saved = errno;
        shmipc_segment_destroy (&self);
        errno = saved;
        return NULL;
    }
    //  Copy the header once; the peer may change it under us afterwards,
    //  but nothing uses it again.
    s_header_t header;
    memcpy (&header, (const void *) self->data, sizeof header);
    if (header.magic != S_MAGIC || header.version != S_VERSION
    ||  header.kind != kind || header.size != self->size) {
        shmipc__log ("segment: refused descriptor: bad header");
        shmipc_segment_destroy (&self);
        errno = EPROTO;
        return NULL;
    }
    return self;
}

void
shmipc_segment_destroy (shmipc_segment_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        shmipc_segment_t *self = *self_p;
        if (self->data != MAP_FAILED && self->data)
            munmap (self->data, self->span);
        if (self->fd >= 0)
            close (self->fd);
        free (self);
        *self_p = NULL;
    }
}

bool
shmipc_segment_mirrored (shmipc_segment_t *self)
{
    assert (self);
    return self->mirrored;
}

void *
shmipc_segment_data (shmipc_segment_t *self)
{
    assert (self);
    return self->data;
}

size_t
shmipc_segment_size (shmipc_segment_t *self)
{
    assert (self);
    return self->size;
}

int
shmipc_segment_fd (shmipc_segment_t *self)
{
    assert (self);
    return self->fd;
}

void
shmipc_segment_close_fd (shmipc_segment_t *self)
{
    assert (self);
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
}

bool
shmipc_segment_writable (shmipc_segment_t *self)
{
    assert (self);
    return self->writable;
}
