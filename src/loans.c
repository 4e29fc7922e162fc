/*  =========================================================================
    loans - a shared-memory pool of frame buffers, lent by a sending socket
    (shmipc_loans.h)

    The block map is private memory: a peer sees the data area only. One
    mutex guards it; taking a block is first fit over the units, which is
    cheap next to the copy a loan saves (loans are for large frames).
    =========================================================================
*/

#include "shmipc_loans.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct _shmipc_loans_t {
    shmipc_segment_t *segment;      //  Our pool segment; owned
    uint8_t *base;                  //  Its data area (after the header)
    size_t units;                   //  Units in the data area
    pthread_mutex_t lock;           //  Guards everything below
    uint32_t *length;               //  Per unit: units in the block that
                                    //  starts here, 0 if none; owned
    uint32_t *refs;                 //  Per unit: references of the block
                                    //  that starts here; owned
    size_t used;                    //  Units in taken blocks
    size_t retired;                 //  Of those, units in retired blocks
                                    //  (no reference, never reused)
    size_t holders;                 //  Holders not yet let go
};

shmipc_loans_t *
shmipc_loans_new (const char *name, size_t size)
{
    assert (name);
    if (size == 0 || size > SHMIPC_LOANS_MAX) {
        errno = EINVAL;
        return NULL;
    }
    size_t units = (size + SHMIPC_LOANS_UNIT - 1) / SHMIPC_LOANS_UNIT;
    shmipc_loans_t *self = (shmipc_loans_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->units = units;
    self->length = (uint32_t *) calloc (units, sizeof *self->length);
    self->refs = (uint32_t *) calloc (units, sizeof *self->refs);
    self->segment = self->length && self->refs
                  ? shmipc_segment_new (name, SHMIPC_SEGMENT_HEADER + units * SHMIPC_LOANS_UNIT,
                                        SHMIPC_LOANS_KIND)
                  : NULL;
    if (!self->segment) {
        int saved = errno;
        free (self->length);
        free (self->refs);
        free (self);
        errno = saved ? saved : ENOMEM;
        return NULL;
    }
    self->base = (uint8_t *) shmipc_segment_data (self->segment) + SHMIPC_SEGMENT_HEADER;
    self->holders = 1;
    pthread_mutex_init (&self->lock, NULL);
    return self;
}

//  Free the pool (lock not held, nobody else left).
static void
s_free (shmipc_loans_t *self)
{
    shmipc_segment_destroy (&self->segment);
    pthread_mutex_destroy (&self->lock);
    free (self->length);
    free (self->refs);
    free (self);
}

void
shmipc_loans_release (shmipc_loans_t **self_p)
{
    assert (self_p);
    shmipc_loans_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    pthread_mutex_lock (&self->lock);
    bool last = --self->holders == 0 && self->used == self->retired;
    pthread_mutex_unlock (&self->lock);
    if (last)
        s_free (self);
}

shmipc_loans_t *
shmipc_loans_share (shmipc_loans_t *self)
{
    assert (self);
    pthread_mutex_lock (&self->lock);
    self->holders++;
    pthread_mutex_unlock (&self->lock);
    return self;
}

//  Return 0 if units [start, start + count) are all free, else the unit
//  just past the block in the way. Blocks are marked at their first unit
//  only; a block that starts before start and runs into the range cannot
//  be, as callers start at 0 or just past a block.
static size_t
s_free_run (shmipc_loans_t *self, size_t start, size_t count)
{
    for (size_t unit = start; unit < start + count; unit++)
        if (self->length [unit])
            return unit + self->length [unit];
    return 0;
}

void *
shmipc_loans_take (shmipc_loans_t *self, size_t size)
{
    assert (self);
    assert (size > 0);
    size_t count = (size + SHMIPC_LOANS_UNIT - 1) / SHMIPC_LOANS_UNIT;
    void *data = NULL;
    pthread_mutex_lock (&self->lock);
    if (count <= self->units - self->used && count <= UINT32_MAX) {
        size_t unit = 0;
        while (unit + count <= self->units) {
            size_t past = s_free_run (self, unit, count);
            if (past == 0) {
                self->length [unit] = (uint32_t) count;
                self->refs [unit] = 1;
                self->used += count;
                data = self->base + unit * SHMIPC_LOANS_UNIT;
                break;
            }
            unit = past;
        }
    }
    pthread_mutex_unlock (&self->lock);
    if (!data)
        errno = ENOBUFS;
    return data;
}

//  Return the unit where a block starting at data would start, or
//  SIZE_MAX if data is not on a unit of the pool.
static size_t
s_unit_of (shmipc_loans_t *self, const void *data)
{
    const uint8_t *byte = (const uint8_t *) data;
    if (byte < self->base || byte >= self->base + self->units * SHMIPC_LOANS_UNIT)
        return SIZE_MAX;
    size_t offset = (size_t) (byte - self->base);
    if (offset % SHMIPC_LOANS_UNIT)
        return SIZE_MAX;
    return offset / SHMIPC_LOANS_UNIT;
}

int
shmipc_loans_ref (shmipc_loans_t *self, const void *data)
{
    assert (self);
    size_t unit = s_unit_of (self, data);
    int rc = -1;
    pthread_mutex_lock (&self->lock);
    //  A retired block has no reference left and takes none
    if (unit != SIZE_MAX && self->length [unit] && self->refs [unit]
    &&  self->refs [unit] < UINT32_MAX) {
        self->refs [unit]++;
        rc = 0;
    }
    pthread_mutex_unlock (&self->lock);
    if (rc)
        errno = EINVAL;
    return rc;
}

//  Drop a reference to the block at data; at zero the block is free again,
//  or (retire) kept out of use for the pool's life. The last block of a
//  pool without holders frees the pool.
static void
s_drop (shmipc_loans_t *self, const void *data, bool retire)
{
    size_t unit = s_unit_of (self, data);
    //  Only our own references come here: anything else is a bug of ours
    assert (unit != SIZE_MAX);
    pthread_mutex_lock (&self->lock);
    assert (self->length [unit] && self->refs [unit]);
    bool last = false;
    if (--self->refs [unit] == 0) {
        if (retire)
            self->retired += self->length [unit];  //  Stays taken
        else {
            self->used -= self->length [unit];
            self->length [unit] = 0;
        }
        last = self->holders == 0 && self->used == self->retired;
    }
    pthread_mutex_unlock (&self->lock);
    if (last)
        s_free (self);
}

void
shmipc_loans_unref (shmipc_loans_t *self, const void *data)
{
    assert (self);
    s_drop (self, data, false);
}

void
shmipc_loans_retire (shmipc_loans_t *self, const void *data)
{
    assert (self);
    s_drop (self, data, true);
}

int64_t
shmipc_loans_offset (shmipc_loans_t *self, const void *data, size_t size)
{
    assert (self);
    size_t unit = s_unit_of (self, data);
    if (unit == SIZE_MAX)
        return -1;
    int64_t offset = -1;
    pthread_mutex_lock (&self->lock);
    if (self->length [unit] && self->refs [unit]
    &&  size <= (size_t) self->length [unit] * SHMIPC_LOANS_UNIT)
        offset = (int64_t) unit * SHMIPC_LOANS_UNIT;
    pthread_mutex_unlock (&self->lock);
    return offset;
}

shmipc_segment_t *
shmipc_loans_segment (shmipc_loans_t *self)
{
    assert (self);
    return self->segment;
}
