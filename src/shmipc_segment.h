/*  =========================================================================
    shmipc_segment - a sealed anonymous memory file (memfd) and its mapping

    Owns: one memfd descriptor and one mapping of it. A segment we create is
    mapped read-write and then sealed so that nobody else can ever map it
    writable, shrink it or grow it. A segment we attach (a descriptor a peer
    sent us) is checked and mapped read-only. Knows nothing of rings.
    =========================================================================
*/

#ifndef SHMIPC_SEGMENT_H_INCLUDED
#define SHMIPC_SEGMENT_H_INCLUDED

#include "shmipc_common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _shmipc_segment_t shmipc_segment_t;

//  The seals every segment carries, no more and no fewer: F_SEAL_SEAL |
//  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE (size fixed, no new
//  writable mappings, no further seals). Spelled as a number so that this
//  header does not need _GNU_SOURCE; segment.c checks it against fcntl.h.
#define SHMIPC_SEGMENT_SEALS 0x0017

//  Bytes at the start of every segment that hold its header (magic, version,
//  size, kind); the rest is for the user. One page, so the rest is aligned.
#define SHMIPC_SEGMENT_HEADER 4096

//  Create a segment of at least size bytes (rounded up to whole pages), with
//  a header naming kind (a user-chosen tag checked on attach). Every page is
//  allocated now (attach refuses a segment with holes). Mapped read-write
//  here, sealed against writable mappings elsewhere. The name shows in
//  /proc/PID/fd. Returns NULL with errno on failure (ENOMEM or ENOSPC when
//  the pages cannot all be allocated).
shmipc_segment_t *
    shmipc_segment_new (const char *name, size_t size, uint32_t kind);

//  Attach a descriptor received from a peer. Trusts nothing: the descriptor
//  must be a memfd with exactly SHMIPC_SEGMENT_SEALS, a size in [min_size,
//  max_size], every page allocated (no hole: our reads would otherwise
//  allocate the owner's pages in our memory), and a header with our magic,
//  version, its true size and kind. Maps it read-only. Takes ownership of
//  fd in all cases (closed on failure). Returns NULL with errno: EBADF (not
//  a memfd), EPERM (wrong seals), EMSGSIZE (size out of range), ENODATA
//  (holes), EPROTO (bad header).
shmipc_segment_t *
    shmipc_segment_attach (int fd, size_t min_size, size_t max_size,
                           uint32_t kind);

//  Unmap and close. Idempotent; nullifies the caller's reference.
void
    shmipc_segment_destroy (shmipc_segment_t **self_p);

//  Return true if the data area (from SHMIPC_SEGMENT_HEADER to the end) is
//  mapped a second time right after the end, with the same protection:
//  then data [SHMIPC_SEGMENT_HEADER + i] and data [size + i] are the same
//  byte, for every i in the area.
bool
    shmipc_segment_mirrored (shmipc_segment_t *self);

//  Return the mapping's base address (the header is at offset 0).
void *
    shmipc_segment_data (shmipc_segment_t *self);

//  Return the file's size in bytes (the mapping at data; the mirror, if
//  any, follows it).
size_t
    shmipc_segment_size (shmipc_segment_t *self);

//  Return the memfd, to send it to a peer (-1 once closed). Still owned by
//  the segment.
int
    shmipc_segment_fd (shmipc_segment_t *self);

//  Close the memfd once no peer needs it sent: the mapping stays, and a
//  connection costs no descriptor for it from then on.
void
    shmipc_segment_close_fd (shmipc_segment_t *self);

//  Return true if this process may write the mapping (it created it).
bool
    shmipc_segment_writable (shmipc_segment_t *self);

#ifdef __cplusplus
}
#endif

#endif
