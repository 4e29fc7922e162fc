/*  =========================================================================
    msg - a message of frames, each in its own malloc'd buffer

    Owns the frames' buffers; keeps them across resets for reuse.
    =========================================================================
*/

#include "shmipc_msg.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *data;              //  Buffer (NULL until a byte is needed)
    size_t size;                //  Bytes in use
    size_t capacity;            //  Bytes allocated
} s_frame_t;

//  Where an empty frame without a buffer points: never read or written.
static uint8_t s_empty [1];

struct _shmipc_msg_t {
    s_frame_t *frames;          //  Frame slots, reused after reset
    size_t count;               //  Frames in the message
    size_t slots;               //  Slots allocated (some may hold buffers)
    size_t content_size;        //  Sum of frame sizes
};

shmipc_msg_t *
shmipc_msg_new (void)
{
    return (shmipc_msg_t *) calloc (1, sizeof (shmipc_msg_t));
}

void
shmipc_msg_destroy (shmipc_msg_t **self_p)
{
    assert (self_p);
    if (*self_p) {
        shmipc_msg_t *self = *self_p;
        for (size_t index = 0; index < self->slots; index++)
            free (self->frames [index].data);
        free (self->frames);
        free (self);
        *self_p = NULL;
    }
}

//  Make frame hold at least size bytes, keeping its contents.
static int
s_reserve (s_frame_t *frame, size_t size)
{
    if (size <= frame->capacity)
        return 0;
    //  Grow geometrically so that appending chunks stays linear
    size_t capacity = frame->capacity * 2;
    if (capacity < size)
        capacity = size;
    uint8_t *data = (uint8_t *) realloc (frame->data, capacity);
    if (!data) {
        errno = ENOMEM;
        return -1;
    }
    frame->data = data;
    frame->capacity = capacity;
    return 0;
}

void *
shmipc_msg_add_frame (shmipc_msg_t *self, size_t size)
{
    assert (self);
    if (self->count >= SHMIPC_FRAMES_MAX) {
        errno = E2BIG;
        return NULL;
    }
    if (self->count == self->slots) {
        size_t slots = self->slots;
        if (shmipc__grow ((void **) &self->frames, &self->slots, self->count + 1,
                          sizeof *self->frames))
            return NULL;
        //  New slots hold no buffer yet
        memset (self->frames + slots, 0, (self->slots - slots) * sizeof *self->frames);
    }
    s_frame_t *frame = &self->frames [self->count];
    //  A reused slot may hold a huge buffer from an earlier message; keep it
    //  only if it is not wildly bigger than needed
    if (frame->capacity > 65536 && frame->capacity / 4 > size) {
        free (frame->data);
        frame->data = NULL;
        frame->capacity = 0;
    }
    //  An empty frame costs no allocation (a peer may send a million)
    if (size && s_reserve (frame, size))
        return NULL;
    frame->size = size;
    self->count++;
    self->content_size += size;
    return frame->data ? frame->data : s_empty;
}

int
shmipc_msg_addmem (shmipc_msg_t *self, const void *data, size_t size)
{
    assert (data || size == 0);
    void *dest = shmipc_msg_add_frame (self, size);
    if (!dest)
        return -1;
    if (size)
        memcpy (dest, data, size);
    return 0;
}

void *
shmipc_msg_grow_frame (shmipc_msg_t *self, size_t size)
{
    assert (self);
    if (self->count == 0) {
        errno = EINVAL;
        return NULL;
    }
    s_frame_t *frame = &self->frames [self->count - 1];
    if (size > SIZE_MAX - frame->size) {
        errno = ENOMEM;
        return NULL;
    }
    //  At least one byte, as in add_frame: a detached frame has no buffer,
    //  and growing it by nothing must not return NULL for success
    size_t need = frame->size + size;
    if (s_reserve (frame, need ? need : 1))
        return NULL;
    void *tail = frame->data + frame->size;
    frame->size += size;
    self->content_size += size;
    return tail;
}

size_t
shmipc_msg_frames (shmipc_msg_t *self)
{
    assert (self);
    return self->count;
}

size_t
shmipc_msg_content_size (shmipc_msg_t *self)
{
    assert (self);
    return self->content_size;
}

const void *
shmipc_msg_data (shmipc_msg_t *self, size_t index)
{
    assert (self);
    assert (index < self->count);
    return self->frames [index].size ? self->frames [index].data : NULL;
}

size_t
shmipc_msg_size (shmipc_msg_t *self, size_t index)
{
    assert (self);
    assert (index < self->count);
    return self->frames [index].size;
}

void *
shmipc_msg_detach (shmipc_msg_t *self, size_t index)
{
    assert (self);
    assert (index < self->count);
    s_frame_t *frame = &self->frames [index];
    if (frame->size == 0)
        return NULL;
    void *data = frame->data;
    self->content_size -= frame->size;
    frame->data = NULL;
    frame->size = 0;
    frame->capacity = 0;
    return data;
}

void
shmipc_msg_reset (shmipc_msg_t *self)
{
    assert (self);
    for (size_t index = 0; index < self->count; index++)
        self->frames [index].size = 0;
    self->count = 0;
    self->content_size = 0;
}

void
shmipc__msg_swap (shmipc_msg_t *one, shmipc_msg_t *two)
{
    assert (one && two);
    shmipc_msg_t held = *one;
    *one = *two;
    *two = held;
}
